"""The console's own tables: people (users), the audit log, SMS conversations.

Same database as the call records (callflow.store.db: SQLite or PostgreSQL, the same SQL)
(TEXT ids, DOUBLE PRECISION epochs, INSERT … ON CONFLICT DO NOTHING). Passwords are
argon2id hashes (argon2-cffi); nothing here ever holds a clear password.
"""

from __future__ import annotations

import asyncio

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from callflow.store.db import Database

ROLES = ("agent", "supervisor", "admin")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
MIN_PASSWORD = 10

SCHEMA = """
CREATE TABLE IF NOT EXISTS console_users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    extension TEXT NOT NULL DEFAULT '',
    full_name TEXT NOT NULL DEFAULT '',
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    last_login_at DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS console_audit (
    id TEXT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    username TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS console_audit_at ON console_audit (at);

CREATE TABLE IF NOT EXISTS console_conversations (
    number TEXT PRIMARY KEY,
    call_id TEXT,
    status TEXT NOT NULL,
    opened_at DOUBLE PRECISION NOT NULL,
    last_in_at DOUBLE PRECISION NOT NULL,
    last_answer_at DOUBLE PRECISION,
    closed_at DOUBLE PRECISION,
    closed_by TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS console_messages (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    direction TEXT NOT NULL,
    text TEXT NOT NULL,
    username TEXT NOT NULL DEFAULT '',
    outbox_id TEXT NOT NULL DEFAULT '',
    inbound_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS console_messages_number ON console_messages (number, at);
CREATE UNIQUE INDEX IF NOT EXISTS console_messages_inbound ON console_messages (inbound_id) WHERE inbound_id <> '';

CREATE TABLE IF NOT EXISTS console_cards (
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    username TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (call_id, kind)
);
"""


class UserError(ValueError):
    """Bad input for a user (name, role, password): the message says what is expected."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    extension: str = ""
    full_name: str = ""
    disabled: bool = False
    created_at: float = 0.0
    last_login_at: float | None = None

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "admin")

    def as_dict(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role, "extension": self.extension,
                "full_name": self.full_name, "disabled": self.disabled}


def _user(row: Any) -> User:
    return User(row["username"], row["role"], row["extension"], row["full_name"], bool(row["disabled"]),
                row["created_at"], row["last_login_at"])


class ConsoleStore:
    def __init__(self, conn: Database, hasher: PasswordHasher | None = None) -> None:
        self.conn = conn
        self.hasher = hasher or PasswordHasher()

    @classmethod
    async def open(cls, path: "str | Database") -> "ConsoleStore":
        """A path, a postgresql:// URL or an open Database (callflow.store.db)."""
        conn = await Database.open(path)
        await conn.executescript(SCHEMA)
        return cls(conn)

    async def close(self) -> None:
        await self.conn.close()

    # -- users ---------------------------------------------------------------------------
    async def add_user(self, username: str, password: str, role: str, *, extension: str = "",
                       full_name: str = "") -> User:
        username = username.strip().lower()
        if not USERNAME_RE.match(username):
            raise UserError("a user name is 2 to 40 characters: lower-case letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise UserError(f"role is one of {', '.join(ROLES)} (got {role!r})")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"the password has at least {MIN_PASSWORD} characters")
        if password.lower() == username or password.lower() in ("password12", "motdepasse", "0123456789", "1234567890"):
            raise UserError("that password is too easy to guess")
        if extension and not re.fullmatch(r"[0-9]{2,8}", extension):
            raise UserError("extension is the desk phone's number, e.g. 2001")
        if role == "agent" and not extension:
            raise UserError("an agent needs the extension of their desk phone (--extension 2001)")
        cursor = await self.conn.execute(
            "INSERT INTO console_users (username, password_hash, role, extension, full_name, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (username, self.hasher.hash(password), role, extension, full_name.strip()[:80], time.time()))
        if cursor.rowcount != 1:
            raise UserError(f"user {username!r} already exists")
        user = await self.get_user(username)
        assert user is not None
        return user

    async def get_user(self, username: str) -> User | None:
        async with self.conn.execute("SELECT * FROM console_users WHERE username = ?", (username.strip().lower(),)) as cur:
            row = await cur.fetchone()
        return _user(row) if row else None

    async def list_users(self) -> list[User]:
        async with self.conn.execute("SELECT * FROM console_users ORDER BY role, username") as cur:
            return [_user(r) for r in await cur.fetchall()]

    async def set_disabled(self, username: str, disabled: bool = True) -> bool:
        cursor = await self.conn.execute("UPDATE console_users SET disabled = ? WHERE username = ?",
                                         (int(disabled), username.strip().lower()))
        return cursor.rowcount == 1

    async def set_password(self, username: str, password: str) -> bool:
        if len(password) < MIN_PASSWORD:
            raise UserError(f"the password has at least {MIN_PASSWORD} characters")
        cursor = await self.conn.execute("UPDATE console_users SET password_hash = ? WHERE username = ?",
                                         (self.hasher.hash(password), username.strip().lower()))
        return cursor.rowcount == 1

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def check_password(self, username: str, password: str) -> User | None:
        """The user when the password matches and the account is enabled; else None (same cost either way)."""
        async with self.conn.execute("SELECT * FROM console_users WHERE username = ?", (username.strip().lower(),)) as cur:
            row = await cur.fetchone()
        stored = row["password_hash"] if row else await asyncio.to_thread(_dummy_hash, self.hasher)
        # argon2 costs ~0.1 s of CPU on purpose (0.8 s measured on the loaded 2-core test box): in a thread
        # (argon2-cffi releases the GIL), never on the controller's loop, which carries the calls' events
        ok = await asyncio.to_thread(self._verify, stored, password) and row is not None
        if not ok or row["disabled"]:
            return None
        if self.hasher.check_needs_rehash(stored):
            await self.conn.execute("UPDATE console_users SET password_hash = ? WHERE username = ?",
                                    (await asyncio.to_thread(self.hasher.hash, password), row["username"]))
        await self.conn.execute("UPDATE console_users SET last_login_at = ? WHERE username = ?",
                                (time.time(), row["username"]))
        return _user(row)

    # -- audit ---------------------------------------------------------------------------
    async def audit(self, user: User | None, action: str, target: str = "", detail: Any = "", address: str = "") -> None:
        if not isinstance(detail, str):
            detail = json.dumps(detail, ensure_ascii=False, default=str)
        await self.conn.execute(
            "INSERT INTO console_audit (id, at, username, role, action, target, detail, address) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (uuid.uuid4().hex, time.time(), user.username if user else "-", user.role if user else "-", action,
             target[:200], detail[:2000], address[:64]))

    async def audit_log(self, limit: int = 200) -> list[dict]:
        async with self.conn.execute("SELECT * FROM console_audit ORDER BY at DESC LIMIT ?", (limit,)) as cur:
            return [dict(r) for r in await cur.fetchall()]

    # -- SMS conversations ------------------------------------------------------------------
    async def sync_inbound(self, rows: list[dict]) -> int:
        """Open (or reopen) a conversation for every caller's SMS reply not seen yet. Returns new replies."""
        new = 0
        for row in rows:
            cursor = await self.conn.execute(
                "INSERT INTO console_messages (id, number, at, direction, text, inbound_id) VALUES (?, ?, ?, 'in', ?, ?)"
                " ON CONFLICT DO NOTHING", (uuid.uuid4().hex, row["number"], row["received_at"], row["text"], row["id"]))
            if cursor.rowcount != 1:
                continue
            new += 1
            await self.conn.execute(
                "INSERT INTO console_conversations (number, call_id, status, opened_at, last_in_at) VALUES (?, ?, 'open', ?, ?)"
                " ON CONFLICT (number) DO UPDATE SET status = 'open', last_in_at = excluded.last_in_at,"
                " call_id = COALESCE(excluded.call_id, console_conversations.call_id), closed_at = NULL",
                (row["number"], row.get("call_id"), row["received_at"], row["received_at"]))
        return new

    async def conversations(self, status: str | None = None) -> list[dict]:
        sql = "SELECT * FROM console_conversations"
        params: tuple = ()
        if status:
            sql += " WHERE status = ?"
            params = (status,)
        async with self.conn.execute(sql + " ORDER BY last_in_at DESC LIMIT 200", params) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def conversation(self, number: str) -> dict | None:
        async with self.conn.execute("SELECT * FROM console_conversations WHERE number = ?", (number,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        conv = dict(row)
        async with self.conn.execute("SELECT * FROM console_messages WHERE number = ? ORDER BY at", (number,)) as cur:
            conv["messages"] = [dict(r) for r in await cur.fetchall()]
        return conv

    async def add_answer(self, number: str, text: str, username: str, outbox_id: str) -> None:
        now = time.time()
        await self.conn.execute(
            "INSERT INTO console_messages (id, number, at, direction, text, username, outbox_id) VALUES (?, ?, ?, 'out', ?, ?, ?)",
            (uuid.uuid4().hex, number, now, text, username, outbox_id))
        await self.conn.execute("UPDATE console_conversations SET last_answer_at = ? WHERE number = ?", (now, number))

    async def close_conversation(self, number: str, username: str, note: str) -> bool:
        cursor = await self.conn.execute(
            "UPDATE console_conversations SET status = 'closed', closed_at = ?, closed_by = ?, note = ? WHERE number = ?",
            (time.time(), username, note[:2000], number))
        return cursor.rowcount == 1

    # -- after-call cards (documentation 000, incident 004 §3.1) --------------------------------
    async def save_card(self, call_id: str, kind: str, username: str, body: dict) -> None:
        await self.conn.execute(
            "INSERT INTO console_cards (call_id, kind, username, at, body) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (call_id, kind) DO UPDATE SET username = excluded.username, at = excluded.at, body = excluded.body",
            (call_id, kind, username, time.time(), json.dumps(body, ensure_ascii=False)))

    async def cards(self, call_id: str) -> dict[str, dict]:
        async with self.conn.execute("SELECT kind, username, at, body FROM console_cards WHERE call_id = ?", (call_id,)) as cur:
            return {r["kind"]: {"username": r["username"], "at": r["at"], **json.loads(r["body"])} for r in await cur.fetchall()}


_DUMMY: list[str] = []


def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash to verify against for unknown users (same cost as a real one); made on first use,
    not at import: the controller's start must not pay for it."""
    if not _DUMMY:
        _DUMMY.append(hasher.hash("not a password: equalises the time of unknown users"))
    return _DUMMY[0]
