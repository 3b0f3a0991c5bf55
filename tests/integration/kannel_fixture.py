"""A real Kannel on 127.0.0.1 for tests: bearerbox + smsbox + the fake SMSC of kannel-extras.

Needs the Debian packages `kannel` (bearerbox, smsbox) and `kannel-extras`
(/usr/lib/kannel/test/fakesmsc). Everything listens on free loopback ports,
with a generated config in a temporary directory:

    fakesmsc (MT) ──► smsc "mt"  ◄── bearerbox ◄── smsbox ◄── HTTP sendsms (our kannel backend)
    fakesmsc (MO) ──► smsc "mo"  ──► bearerbox ──► smsbox ──► HTTP get-url (our /sms/kannel)

Two fake SMSC links because one fakesmsc connection can either print MT
messages forever or inject a fixed MO list, and the fake SMSC serves one client
at a time. MT messages are routed to "mt" only (forced-smsc / allowed-smsc-id).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_from_bytes, unquote_to_bytes

BEARERBOX = shutil.which("bearerbox") or "/usr/sbin/bearerbox"
SMSBOX = shutil.which("smsbox") or "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"

GOT_MESSAGE = re.compile(r"Got message \d+: <(?P<sender>\S+) (?P<receiver>\S+) (?P<type>\S+) (?P<rest>.*)>$")


def missing_reason() -> str | None:
    for path, package in ((BEARERBOX, "kannel"), (SMSBOX, "kannel"), (FAKESMSC, "kannel-extras")):
        if not os.access(path, os.X_OK):
            return f"{path} not found: install the Debian package {package}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    """Is a TCP port in LISTEN state? Read /proc so that probing does not count as a fake SMSC client."""
    needle = f":{port:04X} "
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                for line in fh.readlines()[1:]:
                    fields = line.split()
                    if fields[1].endswith(needle.strip()) and fields[3] == "0A":
                        return True
        except OSError:
            continue
    return False


def _wait(predicate, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"kannel fixture: timed out waiting for {what}")


@dataclass(frozen=True)
class MtMessage:
    sender: str
    receiver: str
    text: str
    parts: int


def _decode_part(kind: str, rest: str) -> tuple[bytes | None, str]:
    """(udh or None, text) of one line printed by fakesmsc."""
    if kind == "text":
        return None, rest
    if kind == "udh":  # "udh <urlencoded udh> data <urlencoded UCS-2>" or "udh <udh> text <text>"
        udh_enc, sub, payload = rest.split(" ", 2)
        udh = unquote_to_bytes(udh_enc.replace("+", " "))
        return udh, _payload(sub, payload)
    return None, _payload(kind, rest)


def _payload(kind: str, payload: str) -> str:
    if kind in ("data", "ucs2"):
        return unquote_to_bytes(payload.replace("+", " ")).decode("utf-16-be", errors="replace")
    return payload


class KannelGateway:
    def __init__(self, workdir: Path, mo_url: str, *, dlr_url: str = ""):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.mo_url = mo_url
        self.username = "callflow"
        self.password = "sendsms-secret"
        self.admin_password = "admin-secret"
        self.admin_port, self.box_port, self.mt_port, self.mo_port, self.sendsms_port = (free_port() for _ in range(5))
        self._procs: dict[str, subprocess.Popen] = {}
        self._mt_logs: list[Path] = []
        self._runs = 0
        self.conf = self.workdir / "kannel.conf"

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    def write_config(self) -> None:
        w = self.workdir
        self.conf.write_text(
            f"""group = core
admin-port = {self.admin_port}
admin-interface = 127.0.0.1
admin-password = {self.admin_password}
smsbox-port = {self.box_port}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{w}/bearerbox.log"
log-level = 1

group = smsc
smsc = fake
smsc-id = mt
allowed-smsc-id = mt
port = {self.mt_port}
connect-allow-ip = 127.0.0.1

group = smsc
smsc = fake
smsc-id = mo
denied-smsc-id = mt
port = {self.mo_port}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.box_port}
sendsms-port = {self.sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{w}/smsbox.log"
log-level = 1

group = sendsms-user
username = {self.username}
password = {self.password}
forced-smsc = mt
max-messages = 10
concatenation = true

group = sms-service
keyword = default
catch-all = yes
max-messages = 0
get-url = "{self.mo_url}?from=%p&to=%P&text=%a&id=%I&coding=%c&charset=%C"
"""
        )

    # ----- lifecycle -------------------------------------------------------
    def start(self) -> None:
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        self.write_config()
        self._runs += 1
        self._spawn("bearerbox", [BEARERBOX, str(self.conf)])
        _wait(lambda: _listening(self.box_port) and _listening(self.mt_port) and _listening(self.mo_port), "bearerbox ports")
        self._spawn("smsbox", [SMSBOX, str(self.conf)])
        _wait(lambda: _listening(self.sendsms_port), "smsbox sendsms port")
        mt_log = self.workdir / f"fakesmsc-mt-{self._runs}.log"
        self._mt_logs.append(mt_log)
        self._spawn("fakesmsc-mt", [FAKESMSC, "-H", "127.0.0.1", "-r", str(self.mt_port), "-m", "0", "0 0 text unused"],
                    stderr_path=mt_log)
        _wait(lambda: self._smsc_online("mt"), "the fake SMSC to be online")

    def stop(self) -> None:
        """Stop every process this gateway started (by its own Popen handle)."""
        for name in ("fakesmsc-mt", "smsbox", "bearerbox"):
            proc = self._procs.pop(name, None)
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        # A new bearerbox must be able to bind the same ports at once.
        _wait(lambda: not any(_listening(p) for p in (self.box_port, self.mt_port, self.mo_port, self.sendsms_port)),
              "kannel ports to close", timeout=15)

    def _spawn(self, name: str, argv: list[str], stderr_path: Path | None = None) -> None:
        out = open(self.workdir / f"{name}-{self._runs}.out", "ab")
        err = open(stderr_path, "ab") if stderr_path else subprocess.STDOUT
        self._procs[name] = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=self.workdir)
        out.close()
        if stderr_path:
            err.close()

    def _smsc_online(self, smsc_id: str) -> bool:
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?password={self.admin_password}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                status = resp.read().decode(errors="replace")
        except OSError:
            return False
        return any(line.strip().startswith(f"{smsc_id}[") and "online" in line for line in status.splitlines())

    # ----- what the fake SMSC saw / injects ---------------------------------
    def received(self) -> list[MtMessage]:
        """Every MT message the fake SMSC printed, concatenated parts put back together."""
        messages: list[MtMessage] = []
        pending: dict[tuple, dict[int, str]] = {}
        for log in self._mt_logs:
            if not log.exists():
                continue
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                m = GOT_MESSAGE.search(line)
                if not m:
                    continue
                udh, text = _decode_part(m["type"], m["rest"])
                if udh and len(udh) >= 6 and udh[1] == 0x00:  # IEI 00: 8-bit concatenation reference
                    ref, total, seq = udh[3], udh[4], udh[5]
                    key = (log, m["sender"], m["receiver"], ref, total)
                    parts = pending.setdefault(key, {})
                    parts[seq] = text
                    if len(parts) == total:
                        del pending[key]
                        messages.append(MtMessage(m["sender"], m["receiver"], "".join(parts[i] for i in sorted(parts)), total))
                else:
                    messages.append(MtMessage(m["sender"], m["receiver"], text, 1))
        return messages

    def inject_mo(self, sender: str, receiver: str, text: str, timeout: float = 15.0) -> None:
        """The caller's phone sends an SMS: one fakesmsc run on the MO link, UCS-2 so any text passes."""
        payload = quote_from_bytes(text.encode("utf-16-be"), safe="")
        log = self.workdir / f"fakesmsc-mo-{time.monotonic_ns()}.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [FAKESMSC, "-H", "127.0.0.1", "-r", str(self.mo_port), "-m", "1", f"{sender} {receiver} ucs2 {payload}"],
                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
            )
        try:
            _wait(lambda: "sent message 1" in log.read_text(errors="replace"), "fakesmsc to inject the MO", timeout)
        finally:
            # fakesmsc -m 1 stays connected after sending; the MO link serves one client at a time.
            proc.terminate()
            proc.wait(timeout=5)
