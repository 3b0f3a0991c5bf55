"""Runs where users run it: README's first command (as root without sudo, and with sudo), README's
test call, and the wheel installed non-editable in a fresh venv running what the image runs.

Everything runs against this worker's sandbox instance (CALLFLOW_PBX_INSTANCE, set by the `pbx`
fixture), never the users' instance 0. README's commands run in a copy of the repository (a
clone, as the README says), with its own .venv, so the venv running these tests is untouched.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from callflow.pbx.sipp import Caller, start_sipp

from conftest import ControllerProcess, dies_with_this_worker, free_port

REPO = Path(__file__).resolve().parents[2]


def sh_blocks(text: str, after: str) -> list[str]:
    """The ```sh blocks of README after a heading, commands only (comments dropped)."""
    section = text[text.index(after):]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [re.sub(r"\s+#.*$", "", b.strip(), flags=re.M).strip() for b in blocks]


README = (REPO / "README.md").read_text()
FIRST_COMMAND = sh_blocks(README, "## The two commands")[0]
TEST_CALL = sh_blocks(README, "## Place a test call")[0]


def copy_of_repo(dest: Path) -> Path:
    """The repository's files as a clone has them (tracked and new, not ignored)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def without_sudo(command: str) -> list[str]:
    """`command` in a private mount namespace where sudo is not a command (a fresh Debian root has none)."""
    sudo = shutil.which("sudo")
    hide = f"mount --bind /dev/null {shlex.quote(sudo)} && " if sudo else ""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'{hide}if command -v sudo >/dev/null; then echo "sudo still visible" >&2; exit 90; fi; exec sh -c "$0"',
            command]


def controller_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "VIRTUAL_ENV", "PYTHON"))}
    env.update({"CALLFLOW_LOG_FORMAT": "json", "CALLFLOW_HTTP_PORT": str(port),
                "CALLFLOW_STORE_DATABASE": str(tmp_path / "callflow.db"),
                "CALLFLOW_SMS_LOG_PATH": str(tmp_path / "sms.log"), "CALLFLOW_ARI_PING_INTERVAL": "1.0"})
    assert env.get("CALLFLOW_PBX_INSTANCE", "0") != "0", "tests never touch the users' instance 0"
    return env


def launch(ctl: ControllerProcess, argv: list[str], cwd: Path) -> None:
    ctl.starts += 1
    log = ctl.log_path.with_suffix(f".{ctl.starts}.log")
    ctl._logs.append(log)
    ctl.proc = subprocess.Popen(argv, env=ctl.env, cwd=cwd, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=dies_with_this_worker)


async def a_call_is_greeted_and_its_key_seen(ctl: ControllerProcess, audio_dir: Path, service: str = "3000",
                                             **call_fields: str) -> dict:
    caller = Caller().audio(audio_dir / "silence.ulaw").pause(6).press("5").pause(2)
    run = await start_sipp(caller.xml(caller_number="0612345678"), name=f"install-{service}", service=service)
    assert await run.wait(40) == 0, run.errors()
    call = await ctl.wait_for_event("call in", timeout=15, **call_fields)
    digit = await ctl.wait_for_event("digit received", call=call["call"], timeout=15)
    assert digit["digit"] == "5"
    return call


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    return copy_of_repo(tmp_path_factory.mktemp("clone"))


def stop(ctl: ControllerProcess) -> None:
    if ctl.proc is not None and ctl.proc.poll() is None:
        os.killpg(ctl.proc.pid, 15)  # the command's own process group: sh, sudo, callflow run
        try:
            ctl.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(ctl.proc.pid, 9)


@pytest.fixture
def stopped():
    started: list[ControllerProcess] = []
    yield started.append
    for ctl in started:
        stop(ctl)


async def test_readme_first_command_as_root_without_sudo_then_its_test_call_then_with_sudo(pbx, clone, tmp_path,
                                                                                          audio_dir, stopped):
    """As root on a fresh Debian (no sudo), then through sudo from the same clone: one test, so that the
    clone's venv and rendered prompts are made once (a second clone cost the suite ~100 s, issue 10)."""
    assert FIRST_COMMAND.split()[0] != "sudo", FIRST_COMMAND
    ctl = ControllerProcess(env=controller_env(tmp_path, free_port()), log_path=tmp_path / "readme", http_port=0)
    ctl.http_port = int(ctl.env["CALLFLOW_HTTP_PORT"])
    stopped(ctl)
    launch(ctl, without_sudo(FIRST_COMMAND), cwd=clone)
    ctl.wait_healthy(timeout=600)  # the clone's .ci/setup makes its venv, `pbx up` renders the prompts

    # README's test call, as written, against the instance the command started
    argv = shlex.split(TEST_CALL)
    assert argv[:2] == [".venv/bin/callflow", "test-call"], TEST_CALL
    done = subprocess.run(argv, cwd=clone, env=ctl.env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "answered 1, failed 0" in done.stdout, done.stdout
    assert re.search(r"heard \(s\) \d", done.stdout), done.stdout  # the caller heard the prompts' audio
    call = await ctl.wait_for_event("call in")
    assert (await ctl.wait_for_event("digit received", call=call["call"]))["digit"] == "9"
    stop(ctl)

    # the same command through sudo (an account that is not root), keeping the instance's environment
    assert shutil.which("sudo"), ".ci/setup installs sudo"
    ctl = ControllerProcess(env=controller_env(tmp_path, free_port()), log_path=tmp_path / "sudo", http_port=0)
    ctl.http_port = int(ctl.env["CALLFLOW_HTTP_PORT"])
    keep = "CALLFLOW_PBX_INSTANCE,CALLFLOW_HTTP_PORT,CALLFLOW_STORE_DATABASE,CALLFLOW_SMS_LOG_PATH,CALLFLOW_LOG_FORMAT"
    stopped(ctl)
    launch(ctl, ["sudo", f"--preserve-env={keep}", "sh", "-c", FIRST_COMMAND], cwd=clone)
    ctl.wait_healthy(timeout=600)
    await a_call_is_greeted_and_its_key_seen(ctl, audio_dir)


async def test_the_wheel_in_a_fresh_venv_runs_what_the_image_runs(pbx, clone, tmp_path, audio_dir, asterisk_log, stopped):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(clone)], check=True,
                   capture_output=True, timeout=600)
    (wheel,) = dist.glob("callflow-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", str(wheel)], check=True, capture_output=True, timeout=900)
    # the image's own command (Dockerfile CMD), its environment, and a working directory with no sources
    cmd = re.search(r'^CMD (\[.*\])$', (REPO / "Dockerfile").read_text(), flags=re.M)
    assert cmd, "Dockerfile has a CMD"
    argv = __import__("json").loads(cmd.group(1))
    image_env = dict(re.findall(r"^ENV (\w+)=(\S+)$", (REPO / "Dockerfile").read_text(), flags=re.M))
    assert "CALLFLOW_SOUNDS_DIR" in image_env
    workdir = tmp_path / "app"
    workdir.mkdir()
    ctl = ControllerProcess(env=controller_env(tmp_path, free_port()), log_path=tmp_path / "image", http_port=0)
    ctl.http_port = int(ctl.env["CALLFLOW_HTTP_PORT"])
    ctl.env.update({"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "CALLFLOW_SOUNDS_DIR": str(workdir / "sounds")})
    stopped(ctl)
    launch(ctl, argv, cwd=workdir)
    ctl.wait_healthy(timeout=400)  # renders every prompt first (espeak-ng), like the container's start
    assert (workdir / "sounds/fr/greeting.ulaw").stat().st_size > 8000
    where = subprocess.run([str(venv / "bin/python"), "-c", "import callflow; print(callflow.__file__)"],
                           capture_output=True, text=True, cwd=workdir).stdout
    assert where.startswith(str(venv)), where  # the installed wheel, not a checkout
    await a_call_is_greeted_and_its_key_seen(ctl, audio_dir)
    await asterisk_log.wait_for("Playing 'callflow/fr/greeting")
    agi_call = await a_call_is_greeted_and_its_key_seen(ctl, audio_dir, service="agi", via="fastagi")
    assert agi_call["via"] == "fastagi"
