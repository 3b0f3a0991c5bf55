"""The call-record schema, plain SQL that runs on SQLite and PostgreSQL alike.

Only TEXT, INTEGER and REAL; dates as ISO 8601 TEXT (UTC) next to an epoch
REAL for range queries; no foreign keys (SQLite never enforced them, and on
PostgreSQL a note for a call whose start row is missing — written by a controller
that stopped, a leg of a callback — must not be lost to a constraint); no AUTOINCREMENT/SERIAL (rows are numbered per call by
the writer); "end" is a reserved word in PostgreSQL, hence end_at.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id        TEXT PRIMARY KEY,
    started_at     TEXT NOT NULL,    -- « Date/Heure », ISO 8601 UTC
    started_epoch  REAL NOT NULL,
    number         TEXT,             -- « Numéro entrant », full; NULL when withheld
    flow           TEXT NOT NULL,
    language       TEXT NOT NULL,
    call_type      TEXT,             -- « TYPE » (callflow.core.recorder.CallType)
    cause          TEXT,             -- « CAUSE PROBABLE » (callflow.core.recorder.Cause)
    duration       REAL,             -- « Durée appel », seconds; NULL while the call runs
    hung_up_by     TEXT,             -- caller / system / agent
    hangup_reason  TEXT,
    ended_at       TEXT
);

CREATE INDEX IF NOT EXISTS calls_started_epoch ON calls (started_epoch);

CREATE TABLE IF NOT EXISTS call_actions (   -- « ACTIONS PRISES »
    call_id  TEXT NOT NULL,                 -- calls.call_id
    seq      INTEGER NOT NULL,
    at       REAL NOT NULL,                 -- seconds since the call was answered
    kind     TEXT NOT NULL,                 -- prompt, question, answer, timeout, handoff, hangup…
    detail   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE IF NOT EXISTS call_audio (     -- the audio timeline, one row per segment
    call_id     TEXT NOT NULL,              -- calls.call_id
    seq         INTEGER NOT NULL,
    start_at    REAL NOT NULL,              -- seconds since the call was answered
    end_at      REAL NOT NULL,
    state       TEXT NOT NULL,              -- callflow.core.channel.AudioState value
    distress    INTEGER NOT NULL DEFAULT 0,
    level_dbfs  REAL,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE IF NOT EXISTS call_links (     -- « SUIVI »: « Si client écrit : Lier à cet appel »
    call_id  TEXT NOT NULL,                 -- no foreign key: a reply may be linked before its call is written
    kind     TEXT NOT NULL,                 -- outbox, sms, email, callback, sms_reply, ticket…
    ref      TEXT NOT NULL,
    at       TEXT NOT NULL,                 -- ISO 8601 UTC
    PRIMARY KEY (call_id, kind, ref)
);

CREATE TABLE IF NOT EXISTS call_state (     -- each call's one state (callflow/core/call.py), written through
    call_id             TEXT PRIMARY KEY,
    channel_id          TEXT,               -- the caller's Asterisk channel
    number              TEXT,
    state               TEXT NOT NULL,      -- ivr … ended (callflow.core.call.CallState)
    emergency           INTEGER NOT NULL DEFAULT 0,
    urgent              INTEGER NOT NULL DEFAULT 0,
    summary             TEXT NOT NULL DEFAULT '',
    first_sign_of_life  REAL,
    bridge_id           TEXT,
    legs                TEXT NOT NULL DEFAULT '{}',   -- JSON: role → channel id
    updated_epoch       REAL NOT NULL
);

CREATE INDEX IF NOT EXISTS call_state_live ON call_state (state);
"""


def statements(schema: str = SCHEMA) -> list[str]:
    """The schema as single statements (drivers that take one at a time)."""
    from callflow.store.db import statements as split

    return split(schema)
