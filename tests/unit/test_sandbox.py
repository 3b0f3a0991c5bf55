"""The sandbox PBX's clear errors (the happy path runs in every integration test)."""

import socket
import subprocess

import pytest

from callflow.pbx import sandbox as sb


def test_not_root_is_refused(monkeypatch):
    monkeypatch.setattr(sb.os, "geteuid", lambda: 1000)
    with pytest.raises(sb.SandboxError, match="needs root"):
        sb.Sandbox().up()


def test_no_debootstrap_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("CALLFLOW_SANDBOX_ROOT", str(tmp_path / "root"))
    monkeypatch.setattr(sb.shutil, "which", lambda name: None)
    with pytest.raises(sb.SandboxError, match="apt-get install -y debootstrap"):
        sb.Sandbox(state_dir=tmp_path).ensure_built()


def test_a_taken_port_is_detected():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert sb.port_taken(port, socket.SOCK_DGRAM)
    assert not sb.port_taken(port, socket.SOCK_DGRAM)


def test_asterisk_dying_at_start_shows_its_last_log_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLFLOW_SANDBOX_ROOT", str(tmp_path / "root"))
    box = sb.Sandbox(state_dir=tmp_path)
    box.log_file.parent.mkdir(parents=True)
    box.log_file.write_text("line 1\nERROR loader.c: Error loading module 'res_ari.so'\n")
    monkeypatch.setattr(box, "credentials", lambda: {"ari_user": "u", "ari_password": "p", "sip_password": "s"})
    dead = subprocess.Popen(["false"])
    dead.wait()
    with pytest.raises(sb.SandboxError, match="(?s)exited at start.*res_ari.so"):
        box.wait_ari(5, dead)


def test_mirror_comes_from_the_hosts_apt_sources(monkeypatch):
    monkeypatch.setenv("CALLFLOW_DEBIAN_MIRROR", "http://mirror.example/debian")
    assert sb.debian_mirror() == "http://mirror.example/debian"
