"""The handoff tables in the shared store (SQLite by default, or PostgreSQL: callflow.store.db).

Portable SQL: TEXT ids (uuid4 hex), DOUBLE PRECISION epoch seconds,
`INSERT … ON CONFLICT DO NOTHING`, `UPDATE … RETURNING`; the store's dialect layer
translates the `?` placeholders for asyncpg. Table names are ours alone: outbox*,
contacts*, callbacks*, sms_inbound.
"""

from __future__ import annotations

import uuid

from callflow.store.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    destination TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    claim_token TEXT,
    claimed_at DOUBLE PRECISION,
    provider_ref TEXT,
    last_error TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_call ON outbox (call_id);

CREATE TABLE IF NOT EXISTS outbox_attempts (
    message_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (message_id, attempt)
);

CREATE TABLE IF NOT EXISTS outbox_links (
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ref TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (call_id, kind, ref)
);

CREATE TABLE IF NOT EXISTS contacts (
    number TEXT PRIMARY KEY,
    email TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE IF NOT EXISTS contacts_calls (
    call_id TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS contacts_calls_number ON contacts_calls (number, at);

CREATE TABLE IF NOT EXISTS sms_inbound (
    id TEXT PRIMARY KEY,
    dedup_key TEXT NOT NULL UNIQUE,
    number TEXT NOT NULL,
    text TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    call_id TEXT,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sms_inbound_call ON sms_inbound (call_id);

CREATE TABLE IF NOT EXISTS callbacks (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    call_id TEXT NOT NULL,
    number TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    due_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    claimed_at DOUBLE PRECISION,
    last_outcome TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks (status, due_at);
CREATE INDEX IF NOT EXISTS callbacks_call ON callbacks (call_id);

CREATE TABLE IF NOT EXISTS callbacks_attempts (
    callback_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (callback_id, attempt)
);
"""


def new_id() -> str:
    return uuid.uuid4().hex


async def connect(db_path: "str | Database") -> Database:
    """Open the shared store (a path, a postgresql:// URL or an open Database) with our tables created."""
    conn = await Database.open(db_path)
    await conn.executescript(SCHEMA)
    return conn
