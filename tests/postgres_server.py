"""A throw-away PostgreSQL for the tests: Debian's `postgresql` binaries, a cluster made with
`initdb` in a temporary folder, listening on a unix socket only, started and stopped by a fixture.

We run as root and PostgreSQL refuses to: as root the cluster belongs to `nobody`. Durability
is switched off (fsync, synchronous_commit): a test cluster is thrown away, and the machine is
shared. One server per pytest worker; one database per test (`new_database`).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

USER = "callflow"  # the cluster's superuser (trust authentication on its private socket)
PORT = 5432  # on a unix socket the port only names the socket file


def binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (.ci/setup does it)")
    return Path(found[-1]).parent


class PostgresServer:
    def __init__(self) -> None:
        self.bin = binaries()
        self.dir = Path(tempfile.mkdtemp(prefix="callflow-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._as_nobody = os.geteuid() == 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self._as_nobody:
            cmd = ["runuser", "-u", "nobody", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> "PostgresServer":
        if self._as_nobody:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            os.chmod(self.dir, 0o755)  # root's processes (the controller) reach the socket in it
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        options = (f"-k {self.dir} -c listen_addresses='' -p {PORT} -c fsync=off -c synchronous_commit=off"
                   " -c full_page_writes=off -c max_connections=200")
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
                      "-t", "60", "start")
        except subprocess.CalledProcessError as exc:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{log}") from None
        return self

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@/{database}?host={self.dir}&port={PORT}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        return subprocess.run([str(self.bin / "psql"), "-h", str(self.dir), "-p", str(PORT), "-U", USER, "-d", database,
                               "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
                              check=True, capture_output=True, text=True, timeout=60).stdout

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = "t_" + uuid.uuid4().hex[:16]
        self.psql(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)
