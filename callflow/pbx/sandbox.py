"""The sandbox PBX: a real Asterisk 22 from Debian sid, in a chroot on this machine.

Debian 12 has no asterisk package and sid's cannot be installed on the host
(it would pull a new libc), so we debootstrap a throw-away sid root once and run
Asterisk inside it with `chroot`. It shares the host's network namespace, so
SIP and ARI are reachable on 127.0.0.1. See ../shared/notes/platform.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ["asterisk", "asterisk-core-sounds-en", "asterisk-core-sounds-fr", "asterisk-moh-opsound-wav"]
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SIP_PORT = 5060
ARI_PORT = 8088
REPO = Path(__file__).resolve().parents[2]
#: Instances beyond this would run their RTP ranges past 60000 (see Instance.rtp_range).
MAX_INSTANCE = 59


@dataclass(frozen=True)
class Instance:
    """One Asterisk of the sandbox: its loopback address, RTP range and directories.

    Instance 0 is the users' PBX, exactly as it always was: 127.0.0.1, RTP 10000–20000,
    Debian's own paths. Instance N ≥ 1 (parallel test workers) runs from the same sid
    root with its own address 127.0.0.(N+1) — same SIP/ARI/AMI ports, so every
    configuration file and test line keeps its port —, its own RTP range (Asterisk's RTP
    sockets bind every address) and its own etc/lib/log/spool/run/cache directories.
    """

    number: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.number <= MAX_INSTANCE:
            raise SandboxError(f"PBX instance {self.number!r}: expected a whole number from 0 to {MAX_INSTANCE}")

    @classmethod
    def from_env(cls, env: "os._Environ[str] | dict[str, str]" = os.environ) -> "Instance":
        raw = env.get("CALLFLOW_PBX_INSTANCE", "0") or "0"
        try:
            return cls(int(raw))
        except ValueError:
            raise SandboxError(f"CALLFLOW_PBX_INSTANCE: expected a whole number from 0 to {MAX_INSTANCE} (got {raw!r})") from None

    @property
    def address(self) -> str:
        return f"127.0.0.{self.number + 1}"

    @property
    def suffix(self) -> str:
        return "" if self.number == 0 else f"-{self.number}"

    @property
    def rtp_range(self) -> tuple[int, int]:
        if self.number == 0:
            return 10000, 20000
        start = 30000 + (self.number - 1) * 500  # 500 ports: ~100 calls with a media fork each
        return start, start + 499

    @property
    def ari_url(self) -> str:
        return f"http://{self.address}:{ARI_PORT}/ari"

    @property
    def sip_target(self) -> str:
        return f"{self.address}:{SIP_PORT}"

    def dirs(self) -> dict[str, str]:
        """Asterisk's directories inside the root (asterisk.conf's [directories])."""
        x = self.suffix
        # /run, not /var/run: in the root /var/run is an absolute link that would lead out of it
        return {"etc": f"/etc/asterisk{x}", "lib": f"/var/lib/asterisk{x}", "log": f"/var/log/asterisk{x}",
                "spool": f"/var/spool/asterisk{x}", "run": f"/run/asterisk{x}", "cache": f"/var/cache/asterisk{x}"}

    def substitutions(self) -> dict[str, str]:
        d = self.dirs()
        start, end = self.rtp_range
        return {"@ADDR@": self.address, "@RTP_START@": str(start), "@RTP_END@": str(end),
                "@ETC_DIR@": d["etc"], "@LIB_DIR@": d["lib"], "@LOG_DIR@": d["log"], "@SPOOL_DIR@": d["spool"],
                "@RUN_DIR@": d["run"], "@CACHE_DIR@": d["cache"]}


class SandboxError(RuntimeError):
    """Something the operator must fix; the message says what."""


@dataclass
class Sandbox:
    state_dir: Path = Path(os.environ.get("CALLFLOW_STATE_DIR", "/var/lib/callflow"))
    repo: Path = REPO
    instance: Instance = field(default_factory=Instance.from_env)

    @property
    def root(self) -> Path:
        return Path(os.environ.get("CALLFLOW_SANDBOX_ROOT", str(self.state_dir / "sid-root")))

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets.json"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"asterisk{self.instance.suffix}.pid"

    @property
    def log_file(self) -> Path:
        """Asterisk's own file log (logger.conf), readable by tests."""
        return self._in_root(self.instance.dirs()["log"]) / "callflow.log"

    @property
    def console_log(self) -> Path:
        return self.state_dir / f"asterisk-console{self.instance.suffix}.log"

    @property
    def modules_stamp(self) -> Path:
        """The modules.conf this instance was started with (a reload cannot load new modules)."""
        return self.state_dir / f"asterisk{self.instance.suffix}.modules"

    @property
    def etc_dir(self) -> Path:
        return self._in_root(self.instance.dirs()["etc"])

    @property
    def ari_url(self) -> str:
        return self.instance.ari_url

    def _in_root(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    # -- build ---------------------------------------------------------------

    def ensure_built(self) -> None:
        if (self.root / "usr/sbin/asterisk").exists():
            return
        if shutil.which("debootstrap") is None:
            raise SandboxError("debootstrap is not installed: run `apt-get install -y debootstrap` (as root)")
        tmp = self.root.with_name(self.root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), "sid", str(tmp), debian_mirror()]
        print(f"building the sandbox root (once): {' '.join(cmd)}", flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise SandboxError(f"debootstrap failed (exit {done.returncode}):\n{tail}")
        tmp.rename(self.root)  # only a complete root is ever reused

    # -- credentials ------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        """ARI and SIP passwords: from the environment, else generated once and kept (mode 600)."""
        stored: dict[str, str] = {}
        if self.secrets_file.exists():
            stored = json.loads(self.secrets_file.read_text())
        wanted = {
            "ari_user": os.environ.get("CALLFLOW_ARI_USER") or stored.get("ari_user") or "callflow",
            "ari_password": os.environ.get("CALLFLOW_ARI_PASSWORD") or stored.get("ari_password") or secrets.token_urlsafe(18),
            "sip_password": os.environ.get("CALLFLOW_SIP_PASSWORD") or stored.get("sip_password") or secrets.token_urlsafe(12),
        }
        if wanted != stored:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(wanted, fh)
        return wanted

    # -- install ------------------------------------------------------------------

    def install_config(self) -> None:
        """Copy asterisk/etc, dialplans and rendered sounds into the root (every `up`)."""
        etc = self.etc_dir
        dist = self.root / "etc/asterisk.dist"
        if self.instance.number == 0 and etc.exists() and not dist.exists():
            etc.rename(dist)  # keep Debian's samples aside; we load only our own files
        shutil.rmtree(etc, ignore_errors=True)
        etc.mkdir(parents=True)
        creds = self.credentials()
        subst = {"@ARI_USER@": creds["ari_user"], "@ARI_PASSWORD@": creds["ari_password"],
                 "@SIP_PASSWORD@": creds["sip_password"], **self.instance.substitutions()}
        for src in sorted((self.repo / "asterisk/etc").glob("*.conf")):
            text = src.read_text()
            for key, value in subst.items():
                text = text.replace(key, value)
            (etc / src.name).write_text(text)
        (etc / "dialplans").mkdir()
        for src in sorted((self.repo / "dialplans").glob("*.conf")):
            text = src.read_text()
            for key, value in subst.items():
                text = text.replace(key, value)
            (etc / "dialplans" / src.name).write_text(text)
        self._install_sounds()
        # spool/recording: where ARI's live recordings go (seed 003's messages); Asterisk does not create it
        for sub in [*self.instance.dirs().values(), f"{self.instance.dirs()['spool']}/recording"]:
            self._in_root(sub).mkdir(parents=True, exist_ok=True)
            self._chroot(["chown", "-R", "asterisk:asterisk", sub])
        os.chmod(etc, 0o750)

    def _install_sounds(self) -> None:
        """The rendered prompts, shared by every instance: replaced file by file (atomically),
        so an instance that is playing a prompt never finds it missing."""
        sounds = self.root / "usr/share/asterisk/sounds/callflow"
        wanted: set[Path] = set()
        for lang_dir in sorted(p for p in (self.repo / "sounds").iterdir() if p.is_dir()):
            dest = sounds / lang_dir.name
            dest.mkdir(parents=True, exist_ok=True)
            for f in lang_dir.iterdir():
                if f.suffix in (".wav", ".ulaw", ".alaw", ".sln", ".gsm"):
                    target = dest / f.name
                    wanted.add(target)
                    if target.exists() and target.read_bytes() == f.read_bytes():
                        continue
                    tmp = target.with_name(f".{f.name}.{os.getpid()}")
                    shutil.copy2(f, tmp)
                    os.replace(tmp, target)
        for old in sounds.glob("*/*"):
            if old.is_file() and old not in wanted and not old.name.startswith("."):
                old.unlink(missing_ok=True)

    # -- lifecycle ----------------------------------------------------------------

    def up(self, timeout: float = 60.0) -> dict[str, str]:
        require_root()
        if self.running():
            self.install_config()
            started_with = self.modules_stamp.read_text() if self.modules_stamp.exists() else None
            if (self.etc_dir / "modules.conf").read_text() == started_with:
                self.cli("core reload")
                self.wait_ari(timeout)
                return self.endpoints()
            self.down()  # `core reload` loads no new module (app_stack, app_queue…): start afresh
        self.ensure_built()
        address = self.instance.address
        for port, proto in ((SIP_PORT, socket.SOCK_DGRAM), (ARI_PORT, socket.SOCK_STREAM)):
            if port_taken(port, proto, address, grace=5.0):
                kind = "UDP" if proto == socket.SOCK_DGRAM else "TCP"
                raise SandboxError(f"port {port}/{kind} on {address} is already taken: stop what listens there (ss -lnp | grep {port})")
        self.install_config()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        console = open(self.console_log, "wb")
        with self._mounts_held():
            self._mount()
            proc = subprocess.Popen(
                ["chroot", str(self.root), "asterisk", *self._conf_args(), "-f", "-U", "asterisk", "-G", "asterisk", "-n"],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
            )
            self._wait_chrooted(proc.pid)  # until then, another instance's `down` would not see it
        self.pid_file.write_text(str(proc.pid))
        self.modules_stamp.write_text((self.etc_dir / "modules.conf").read_text())  # what this start loads
        try:
            self.wait_ari(timeout, proc)
        except SandboxError:
            self.down()
            raise
        return self.endpoints()

    def wait_ari(self, timeout: float, proc: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise SandboxError(f"Asterisk exited at start (code {proc.returncode}). Last log lines:\n{self.last_log_lines()}")
            if self.ari_ok():
                return
            time.sleep(0.3)
        raise SandboxError(f"Asterisk's ARI did not answer within {timeout:.0f} s. Last log lines:\n{self.last_log_lines()}")

    def ari_ok(self) -> bool:
        creds = self.credentials()
        req = urllib.request.Request(f"{self.ari_url}/asterisk/info")
        token = b64encode(f"{creds['ari_user']}:{creds['ari_password']}".encode()).decode()
        req.add_header("Authorization", "Basic " + token)
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def down(self) -> None:
        require_root()
        if self.running():
            self.cli("core stop now", check=False)
        pid = self._pid()
        deadline = time.monotonic() + 10
        while pid and pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        for p in self._processes_in_root(mine_only=True):  # strays: a hung asterisk, a remote console…
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # a killed process lets go of its SIP/ARI sockets only once it has exited: on a loaded machine
        # that is not at once, and an `up` right after (a restart) would find the ports still taken
        deadline = time.monotonic() + 10
        while self._processes_in_root(mine_only=True) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.pid_file.unlink(missing_ok=True)
        self.modules_stamp.unlink(missing_ok=True)
        with self._mounts_held():
            if not self._processes_in_root(mine_only=False):
                self._unmount()  # /proc and /dev are shared by every instance: only the last one out unmounts

    def running(self) -> bool:
        pid = self._pid()
        return bool(pid and pid_alive(pid))

    def status(self) -> dict[str, object]:
        info: dict[str, object] = {"instance": self.instance.number, "root": str(self.root),
                                   "built": (self.root / "usr/sbin/asterisk").exists(), "running": self.running()}
        if info["running"]:
            info.update(self.endpoints())
            info["version"] = self.cli("core show version", check=False).strip()
            info["ari"] = "answering" if self.ari_ok() else "not answering"
        return info

    def endpoints(self) -> dict[str, str]:
        start, end = self.instance.rtp_range
        return {"sip": f"udp {self.instance.sip_target}", "ari": f"{self.ari_url} (user {self.credentials()['ari_user']})",
                "rtp": f"{start}-{end}", "log": str(self.log_file)}

    def cli(self, command: str, check: bool = True) -> str:
        done = self._chroot(["asterisk", *self._conf_args(), "-rx", command], check=False)
        if check and done.returncode != 0:
            raise SandboxError(f"asterisk -rx {command!r} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def last_log_lines(self, n: int = 20) -> str:
        for path in (self.log_file, self.console_log):
            if path.exists() and path.stat().st_size:
                return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
        return "(no log written)"

    # -- internals ------------------------------------------------------------------

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None

    def _conf_args(self) -> list[str]:
        """Instance 0 runs with Debian's default /etc/asterisk/asterisk.conf, as before."""
        return [] if self.instance.number == 0 else ["-C", f"{self.instance.dirs()['etc']}/asterisk.conf"]

    def _chroot(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["chroot", str(self.root), *args], capture_output=True, text=True, check=check)

    def _mounts(self) -> list[Path]:
        return [self.root / "proc", self.root / "dev"]

    @contextlib.contextmanager
    def _mounts_held(self) -> Iterator[None]:
        """/proc and /dev in the root are shared by every instance, and instances start and stop side
        by side: mounting and starting an Asterisk, or checking that none is left and unmounting, are
        each done under one lock, so that nobody unmounts under an Asterisk that is starting."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "mount.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _wait_chrooted(self, pid: int, timeout: float = 5.0) -> None:
        root = os.path.realpath(self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if os.readlink(f"/proc/{pid}/root") == root:
                    return
            except OSError:
                return  # exited already: wait_ari reports it
            time.sleep(0.01)

    def _mount(self) -> None:
        proc, dev = self._mounts()
        if not os.path.ismount(proc):
            subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
        if not os.path.ismount(dev):
            subprocess.run(["mount", "--bind", "/dev", str(dev)], check=True)

    def _unmount(self) -> None:
        for path in reversed(self._mounts()):
            if os.path.ismount(path):
                subprocess.run(["umount", "-l", str(path)], check=False)

    def _processes_in_root(self, mine_only: bool) -> list[int]:
        """Processes chrooted in the sandbox root; with mine_only, those of this instance
        (told apart by the -C option naming the instance's asterisk.conf)."""
        root = os.path.realpath(self.root)
        marker = f"{self.instance.dirs()['etc']}/asterisk.conf"
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/root") != root:
                        continue
                    args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if mine_only:
                    named = [a.decode(errors="replace") for a in args if a.startswith(b"/etc/asterisk-")]
                    if self.instance.number == 0 and named or self.instance.number and marker not in named:
                        continue
                found.append(int(entry))
        return found


def require_root() -> None:
    if os.geteuid() != 0:
        raise SandboxError("the sandbox PBX needs root (debootstrap, chroot, mount): run it with sudo or as root")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def port_taken(port: int, kind: int, address: str = "127.0.0.1", grace: float = 0.0) -> bool:
    """Whether something listens on the port; `grace` seconds let a process that is exiting let go of it."""
    deadline = time.monotonic() + grace
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            # like Asterisk itself: a TIME_WAIT left by our own ARI probes is no owner
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((address, port))
                return False
            except OSError:
                if time.monotonic() >= deadline:
                    return True
        time.sleep(0.2)


def debian_mirror() -> str:
    """The mirror the host's apt already uses (the only registry we may reach)."""
    if os.environ.get("CALLFLOW_DEBIAN_MIRROR"):
        return os.environ["CALLFLOW_DEBIAN_MIRROR"]
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            for word in words:
                if word.startswith("http") and word.rstrip("/").endswith("/debian"):
                    if line.startswith("URIs:") or line.startswith("deb "):
                        return word.rstrip("/")
    return DEFAULT_MIRROR
