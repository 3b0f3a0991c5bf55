"""The one store interface: the same SQL on SQLite (embedded default) and on PostgreSQL.

Every room that keeps something (records, call_state, the outbox and callbacks, contacts,
messages, the console's tables, the desk's state) opens its database here and nowhere else:

    db = await Database.open("/var/lib/callflow/callflow.db")      # SQLite (aiosqlite)
    db = await Database.open("postgresql://callflow@pg/callflow")  # PostgreSQL (asyncpg pool)

The queries are written once, in the SQL both engines run (TEXT / INTEGER / REAL, `?`
placeholders, `INSERT … ON CONFLICT`, `UPDATE … RETURNING`); this module is the whole dialect
layer:
- `?` placeholders become `$1, $2…` for asyncpg (outside quotes and comments);
- in schemas, `REAL` becomes `DOUBLE PRECISION` (PostgreSQL's `real` is 4 bytes: an epoch in it
  would lose its seconds) and SQLite's PRAGMAs are left out;
- `Database.skip_locked` is `FOR UPDATE SKIP LOCKED` on PostgreSQL, to put in the sub-select of
  a queue's "take the next jobs" UPDATE: two controllers never take the same row. On SQLite the
  same single `UPDATE … RETURNING` statement already runs under the file's one write lock (no
  other writer can come between its read and its write), which is SQLite's equivalent.

Every statement commits on its own (autocommit), as every room did before: a crash mid-call
keeps the record up to that moment. Rows read like sqlite3.Row / asyncpg.Record: `row["col"]`,
`row[0]`, `dict(row)`.

Hand-written rather than SQLAlchemy: the rooms' queries are plain SQL already, and a driver-level
layer this thin keeps them as they are (SQLAlchemy's `text()` would mean rewriting every query's
parameters, for a translation of `?` and one type name).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

from callflow.core.errors import ConfigError

log = logging.getLogger(__name__)

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
#: the expected form of store.database, for error messages
EXPECTED = "a SQLite file path (or sqlite:///path) or a PostgreSQL URL postgresql://user@host:port/dbname"
#: the environment variable the PostgreSQL password may come from (besides libpq's PGPASSWORD / ~/.pgpass)
PASSWORD_ENV = "CALLFLOW_STORE_PASSWORD"
#: one number for the advisory lock that serialises schema creation between controllers
_SCHEMA_LOCK = 0x0CA11F10


class StoreError(ConfigError):
    """A store.database value that names no database we can open (`callflow run` says so and stops)."""

    def __init__(self, expected: str, got: object = None) -> None:
        super().__init__("store.database", expected, got)


def parse_target(target: str | os.PathLike[str]) -> tuple[str, str]:
    """(dialect, where): a SQLite file path (or ':memory:') or a PostgreSQL URL. Raises StoreError."""
    text = str(target).strip()
    if not text:
        raise StoreError(EXPECTED, "")
    if text.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(text)
        if not parts.hostname and "host=" not in (parts.query or ""):
            raise StoreError(f"{EXPECTED} (no host)", mask_url(text))
        if not parts.path.strip("/"):
            raise StoreError(f"{EXPECTED} (no database name)", mask_url(text))
        return POSTGRESQL, text
    if text.startswith("sqlite://"):
        path = text[len("sqlite://"):]  # sqlite:///var/lib/callflow/callflow.db → /var/lib/callflow/callflow.db
        if path.startswith("//"):  # SQLAlchemy's four-slash absolute form
            path = path[1:]
        if path == "/:memory:":
            path = ":memory:"
        if not path:
            raise StoreError(f"{EXPECTED} (no file)", text)
        return SQLITE, path
    if "://" in text:
        raise StoreError(EXPECTED, mask_url(text))
    return SQLITE, text


def mask_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def is_postgresql(target: Any) -> bool:
    if isinstance(target, Database):
        return target.dialect == POSTGRESQL
    return str(target).strip().startswith(("postgresql://", "postgres://"))


def files_dir(target: Any, default: str | os.PathLike[str]) -> Path:
    """Where files kept beside the database go (a SQLite file's folder; `default` for PostgreSQL)."""
    if is_postgresql(target) or str(target) == ":memory:":
        return Path(default)
    _, path = parse_target(str(target))
    return Path(path).resolve().parent


@functools.lru_cache(maxsize=1024)
def to_numbered(sql: str) -> str:
    """`?` → `$1, $2…`, leaving '…' strings, "…" names and -- comments alone."""
    out: list[str] = []
    n = 0
    i, size = 0, len(sql)
    while i < size:
        ch = sql[i]
        if ch in ("'", '"'):
            end = i + 1
            while end < size:
                if sql[end] == ch:
                    if end + 1 < size and sql[end + 1] == ch:  # doubled quote inside
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i:end + 1])
            i = end + 1
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = size if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def statements(schema: str) -> list[str]:
    """A script as single statements, comments dropped (drivers that take one at a time)."""
    lines = [line.split("--", 1)[0] for line in schema.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


_REAL = re.compile(r"\bREAL\b", re.IGNORECASE)


def postgres_ddl(statement: str) -> str | None:
    """One schema statement as PostgreSQL takes it (None: SQLite-only, skipped)."""
    if statement.lstrip().upper().startswith("PRAGMA"):
        return None
    return _REAL.sub("DOUBLE PRECISION", statement)


class Result:
    """What a statement gave: its rows (read at once) and how many rows it changed."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: Sequence[Any], rowcount: int) -> None:
        self.rows = list(rows)
        self.rowcount = rowcount

    async def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    async def fetchall(self) -> list[Any]:
        return self.rows

    # the rooms were written against aiosqlite's cursor: `async with db.execute(…) as cur`
    async def __aenter__(self) -> "Result":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None


class _Pending:
    """`await db.execute(…)` and `async with db.execute(…) as cur` both work."""

    __slots__ = ("_coro",)

    def __init__(self, coro) -> None:
        self._coro = coro

    def __await__(self):
        return self._coro.__await__()

    async def __aenter__(self) -> Result:
        return await self._coro

    async def __aexit__(self, *exc: Any) -> None:
        return None


class Database:
    """One open database. `open()` picks the engine from the target; the SQL is the same."""

    dialect: str = SQLITE
    #: goes in a queue's sub-select: `SELECT id … ORDER BY … LIMIT ? {db.skip_locked}`
    skip_locked: str = ""

    @staticmethod
    async def open(target: "str | os.PathLike[str] | Database", *, password: str | None = None,
                   min_size: int = 1, max_size: int = 8) -> "Database":
        """A Database for a path, sqlite:///path or postgresql://… URL. A Database is returned as it is
        (shared: whoever opened it closes it; see `Database.owned`)."""
        if isinstance(target, Database):
            return _Borrowed(target)
        dialect, where = parse_target(target)
        if dialect == POSTGRESQL:
            return await PostgresDatabase.connect(where, password=password, min_size=min_size, max_size=max_size)
        return await SqliteDatabase.connect(where)

    def execute(self, sql: str, params: Iterable[Any] = ()) -> _Pending:
        return _Pending(self._execute(sql, tuple(params)))

    async def _execute(self, sql: str, params: tuple) -> Result:  # pragma: no cover - abstract
        raise NotImplementedError

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any:
        return await (await self.execute(sql, params)).fetchone()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        return await (await self.execute(sql, params)).fetchall()

    async def executescript(self, schema: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def commit(self) -> None:
        """Every statement commits on its own; kept for the rooms written against aiosqlite."""

    async def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def description(self) -> str:
        return self.dialect


class SqliteDatabase(Database):
    dialect = SQLITE
    skip_locked = ""  # one UPDATE … RETURNING holds SQLite's write lock from its read to its write

    def __init__(self, conn, path: str) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    async def connect(cls, path: str) -> "SqliteDatabase":
        import aiosqlite

        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)  # autocommit: each write is durable at once
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA busy_timeout = 5000")  # other rooms and processes write the same file
        if path != ":memory:":
            await conn.execute("PRAGMA journal_mode = WAL")  # the CLI and the console read while calls write
        return cls(conn, path)

    async def _execute(self, sql: str, params: tuple) -> Result:
        cursor = await self.conn.execute(sql, params)
        try:
            rows = await cursor.fetchall()  # RETURNING rows count as changed only once read
            return Result(rows, cursor.rowcount)
        finally:
            await cursor.close()

    async def executescript(self, schema: str) -> None:
        for statement in statements(schema):
            await self.conn.execute(statement)

    async def close(self) -> None:
        await self.conn.close()

    @property
    def description(self) -> str:
        return f"sqlite:{self.path}"


class PostgresDatabase(Database):
    dialect = POSTGRESQL
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, pool, url: str) -> None:
        self.pool = pool
        self.url = url

    @classmethod
    async def connect(cls, url: str, *, password: str | None = None, min_size: int = 1,
                      max_size: int = 8) -> "PostgresDatabase":
        import asyncpg

        # secrets from the environment: the URL's own, else CALLFLOW_STORE_PASSWORD, else libpq's PGPASSWORD / ~/.pgpass
        password = password or (None if urlsplit(url).password else os.environ.get(PASSWORD_ENV)) or None
        try:
            pool = await asyncpg.create_pool(url.replace("postgres://", "postgresql://", 1), password=password,
                                             min_size=min_size, max_size=max_size, command_timeout=30)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"a database that answers (cannot open it: {exc})", mask_url(url)) from None
        return cls(pool, url)

    async def _execute(self, sql: str, params: tuple) -> Result:
        import asyncpg

        query = to_numbered(sql)
        async with self.pool.acquire() as conn:
            try:
                return await self._run(conn, query, params)
            except asyncpg.DataError:
                # asyncpg wants each value in its column's type where SQLite stores what it gets (type
                # affinity): a number for a TEXT column, "1.5" for a REAL one. Convert as SQLite would.
                coerced = await _as_declared(conn, query, params)
                if coerced is None:
                    raise
                return await self._run(conn, query, coerced)

    @staticmethod
    async def _run(conn, query: str, params: tuple) -> Result:
        if _returns_rows(query):
            rows = await conn.fetch(query, *params)
            return Result(rows, len(rows))
        return Result([], _status_count(await conn.execute(query, *params)))

    async def executescript(self, schema: str) -> None:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                # two controllers starting together must not both create a table (pg_type races)
                await conn.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
                for statement in statements(schema):
                    ddl = postgres_ddl(statement)
                    if ddl:
                        await conn.execute(ddl)

    async def close(self) -> None:
        await self.pool.close()

    @property
    def description(self) -> str:
        return mask_url(self.url)


class _Borrowed(Database):
    """A Database handed to a room by its owner: the same connection, and `close()` leaves it open."""

    def __init__(self, inner: Database) -> None:
        self.inner = inner.inner if isinstance(inner, _Borrowed) else inner
        self.dialect = self.inner.dialect
        self.skip_locked = self.inner.skip_locked

    def execute(self, sql: str, params: Iterable[Any] = ()) -> _Pending:
        return self.inner.execute(sql, params)

    async def executescript(self, schema: str) -> None:
        await self.inner.executescript(schema)

    async def close(self) -> None:
        return None

    @property
    def description(self) -> str:
        return self.inner.description


_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name"})
_FLOAT_TYPES = frozenset({"float8", "float4", "numeric"})
_INT_TYPES = frozenset({"int2", "int4", "int8"})


async def _as_declared(conn, query: str, params: tuple) -> tuple | None:
    """The parameters converted to the types PostgreSQL declared for them (None: nothing to convert)."""
    try:
        declared = [t.name for t in (await conn.prepare(query)).get_parameters()]
        out = []
        for kind, value in zip(declared, params):
            if value is None:
                out.append(None)
            elif kind in _TEXT_TYPES and not isinstance(value, str):
                out.append(str(int(value)) if isinstance(value, bool) else str(value))
            elif kind in _FLOAT_TYPES and not isinstance(value, float):
                out.append(float(value))
            elif kind in _INT_TYPES and not isinstance(value, int):
                out.append(int(float(value)))
            else:
                out.append(value)
    except (TypeError, ValueError):
        return None
    result = tuple(out)
    return None if result == params else result


_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES)\b|\bRETURNING\b", re.IGNORECASE)


def _returns_rows(sql: str) -> bool:
    return bool(_ROWS.search(sql))


def _status_count(status: str) -> int:
    """asyncpg's command tag ("INSERT 0 1", "UPDATE 3", "DELETE 0") → rows changed."""
    last = (status or "").rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0
