"""Who is at the console: encrypted cookie sessions, CSRF, login attempts, roles.

- The session is a Fernet-encrypted cookie (aiohttp-session's EncryptedCookieStorage):
  nothing to store server side, unreadable and unforgeable without the key.
- Every state-changing request (POST) carries the session's CSRF token, in the form
  field `_csrf` or the `X-CSRF-Token` header; a request without it is refused (403).
- Failed logins are counted per user name and per address over a sliding window
  (in memory: a restart forgets them, which only gives an attacker one window more).
- Roles: an agent sees their own calls; a supervisor (or admin) sees everything.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
import time
from collections import defaultdict, deque
from pathlib import Path

from aiohttp import web
from aiohttp_session import get_session, new_session, setup as setup_session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from callflow.console.store import ConsoleStore, User

USER_KEY = web.AppKey("console_user", object)
COOKIE = "callflow_console"


def secret_key(configured: str, database: str) -> bytes:
    """The Fernet key: configured, or generated once and kept beside the database (mode 600)."""
    if configured:
        return configured.encode()
    if database == ":memory:":
        return Fernet.generate_key()
    from callflow.paths import STATE_DIR
    from callflow.store.db import files_dir

    path = files_dir(database, STATE_DIR) / "console-secret.key"  # PostgreSQL: in the state folder
    try:
        key = path.read_bytes().strip()
        base64.urlsafe_b64decode(key)
        if len(base64.urlsafe_b64decode(key)) == 32:
            return key
    except (OSError, ValueError):
        pass
    key = Fernet.generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def setup(app: web.Application, key: bytes, *, max_age: int, secure: bool) -> None:
    # a str is taken as the url-safe base64 Fernet key (bytes would be encoded once more)
    setup_session(app, EncryptedCookieStorage(key.decode(), cookie_name=COOKIE, max_age=max_age, httponly=True,
                                              secure=secure, samesite="Strict", path="/console"))


class LoginLimiter:
    """At most `attempts` failures per user name, and `attempts` × ADDRESS_FACTOR per address, within
    `window` seconds. The address allowance is wider: behind one loopback or one office address a
    whole team signs in, and one person's typos must not lock the others out."""

    ADDRESS_FACTOR = 4

    def __init__(self, attempts: int, window: float, clock=time.monotonic) -> None:
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        now, times = self.clock(), self._failures[key]
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def blocked(self, username: str, address: str) -> float:
        """Seconds to wait (0: may try)."""
        waits = []
        for key, allowed in ((f"u:{username.lower()}", self.attempts), (f"a:{address}", self.attempts * self.ADDRESS_FACTOR)):
            times = self._recent(key)
            if len(times) >= allowed:
                waits.append(self.window - (self.clock() - times[0]))
        return max(waits, default=0.0)

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        for key in (f"u:{username.lower()}", f"a:{address}"):
            self._recent(key).append(now)
        if len(self._failures) > 10000:  # bounded memory under a spray of names
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]

    def succeeded(self, username: str) -> None:
        self._failures.pop(f"u:{username.lower()}", None)


async def csrf_token(request: web.Request) -> str:
    session = await get_session(request)
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


async def check_csrf(request: web.Request) -> None:
    session = await get_session(request)
    expected = session.get("csrf") or ""
    given = request.headers.get("X-CSRF-Token", "")
    if not given and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        given = str((await request.post()).get("_csrf", ""))
    if not expected or not hmac.compare_digest(given, expected):
        raise web.HTTPForbidden(text="CSRF token missing or wrong: reload the page")


async def log_in(request: web.Request, user: User) -> None:
    session = await new_session(request)  # a fresh session id and token at each login (no fixation)
    session["user"] = user.username
    session["csrf"] = secrets.token_urlsafe(32)


async def current_user(request: web.Request, store: ConsoleStore) -> User | None:
    session = await get_session(request)
    name = session.get("user")
    if not name:
        return None
    user = await store.get_user(name)
    if user is None or user.disabled:
        session.invalidate()
        return None
    return user
