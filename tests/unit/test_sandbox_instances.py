"""Several sandbox Asterisks from one root: each instance's address, RTP range and directories."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callflow import config
from callflow.cli import main
from callflow.core.errors import ConfigError
from callflow.pbx.sandbox import MAX_INSTANCE, Instance, SandboxError

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"@[A-Z_]+@")


def test_instance_zero_is_the_users_pbx_exactly_as_before():
    zero = Instance(0)
    assert zero.address == "127.0.0.1"
    assert zero.rtp_range == (10000, 20000)
    assert zero.ari_url == "http://127.0.0.1:8088/ari"
    assert zero.dirs() == {"etc": "/etc/asterisk", "lib": "/var/lib/asterisk", "log": "/var/log/asterisk",
                           "spool": "/var/spool/asterisk", "run": "/run/asterisk", "cache": "/var/cache/asterisk"}


def test_every_instance_has_its_own_address_rtp_range_and_directories():
    instances = [Instance(n) for n in range(MAX_INSTANCE + 1)]
    assert len({i.address for i in instances}) == len(instances)
    assert len({i.dirs()["etc"] for i in instances}) == len(instances)
    ranges = sorted(i.rtp_range for i in instances)
    for (_, end), (start, _) in zip(ranges, ranges[1:]):
        assert end < start, ranges  # disjoint: Asterisk's RTP sockets bind every address
    assert ranges[-1][1] < 65536
    assert Instance(3).address == "127.0.0.4" and Instance(3).sip_target == "127.0.0.4:5060"


@pytest.mark.parametrize("bad", [-1, MAX_INSTANCE + 1])
def test_an_instance_out_of_range_is_refused_with_the_expected_form(bad):
    with pytest.raises(SandboxError, match=f"from 0 to {MAX_INSTANCE}"):
        Instance(bad)


def test_a_bad_instance_in_the_environment_names_the_variable():
    with pytest.raises(SandboxError, match="CALLFLOW_PBX_INSTANCE"):
        Instance.from_env({"CALLFLOW_PBX_INSTANCE": "two"})


def _rendered(text: str, instance: Instance) -> str:
    for key, value in {"@ARI_USER@": "u", "@ARI_PASSWORD@": "p", "@SIP_PASSWORD@": "s", **instance.substitutions()}.items():
        text = text.replace(key, value)
    return text


def _config_files() -> list[Path]:
    return sorted((REPO / "asterisk/etc").glob("*.conf")) + sorted((REPO / "dialplans").glob("*.conf"))


@pytest.mark.parametrize("number", [0, 1, 7])
def test_pbx_up_fills_every_placeholder_of_every_config_file(number):
    for path in _config_files():
        left = PLACEHOLDER.findall(_rendered(path.read_text(), Instance(number)))
        assert not left, f"{path.name}: {left}"


def test_the_container_entrypoint_fills_the_same_placeholders():
    used = {p for path in _config_files() for p in PLACEHOLDER.findall(path.read_text())}
    entrypoint = (REPO / "asterisk/entrypoint.sh").read_text()
    assert {p for p in used if f"s|{p}|" not in entrypoint} == set()


def test_an_instance_listens_on_its_own_address_and_rtp_range():
    inst = Instance(5)
    pjsip = _rendered((REPO / "asterisk/etc/pjsip.conf").read_text(), inst)
    http = _rendered((REPO / "asterisk/etc/http.conf").read_text(), inst)
    rtp = _rendered((REPO / "asterisk/etc/rtp.conf").read_text(), inst)
    ast = _rendered((REPO / "asterisk/etc/asterisk.conf").read_text(), inst)
    assert "bind = 127.0.0.6:5060" in pjsip and "match = 127.0.0.6" in pjsip
    assert "sip:112@127.0.0.6:5090" in pjsip  # the test lines are on the instance's address too
    assert "bindaddr = 127.0.0.6" in http
    start, end = inst.rtp_range
    assert f"rtpstart = {start}" in rtp and f"rtpend = {end}" in rtp
    assert "astetcdir => /etc/asterisk-5" in ast and "astlogdir => /var/log/asterisk-5" in ast
    assert "astrundir => /run/asterisk-5" in ast and "astspooldir => /var/spool/asterisk-5" in ast


def test_the_controller_follows_the_instance_unless_ari_url_is_given():
    env = {"CALLFLOW_ARI_USER": "u", "CALLFLOW_ARI_PASSWORD": "p", "CALLFLOW_STATE_DIR": "/nonexistent"}
    assert config.load(env={**env, "CALLFLOW_PBX_INSTANCE": "3"}).ari.url == "http://127.0.0.4:8088/ari"
    assert config.load(env=env).ari.url == "http://127.0.0.1:8088/ari"
    given = {**env, "CALLFLOW_PBX_INSTANCE": "3", "CALLFLOW_ARI_URL": "http://pbx:8088/ari"}
    assert config.load(env=given).ari.url == "http://pbx:8088/ari"
    with pytest.raises(ConfigError, match="CALLFLOW_PBX_INSTANCE"):
        config.load(env={**env, "CALLFLOW_PBX_INSTANCE": "sixty"})


def test_the_pbx_command_refuses_an_instance_out_of_range(capsys):
    with pytest.raises(SystemExit):
        main(["pbx", "status", "--instance", "99"])
    assert f"from 0 to {MAX_INSTANCE}" in capsys.readouterr().err
