"""Who we know: email / name / address per number, and which call came from which number.

`contacts` is filled by `callflow contacts import FILE.csv` (columns
number,email,name,address). `contacts_calls` remembers the calls the
controller told us about, so an SMS reply can be linked to the latest one.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from email.utils import parseaddr


from callflow.store.db import Database
from callflow.core.phone import parse_number


@dataclass(frozen=True)
class Contact:
    number: str  # E.164
    email: str
    name: str
    address: str


def clean_email(raw: str) -> str:
    """A bare address or "", refusing header injection and display-name tricks."""
    text = (raw or "").strip()
    if not text or any(ch in text for ch in "\r\n,;<>\"") or len(text) > 254:
        return ""
    _, addr = parseaddr(text)
    if addr != text or addr.count("@") != 1:
        return ""
    local, domain = addr.split("@")
    if not local or "." not in domain or domain.startswith(".") or domain.endswith("."):
        return ""
    return addr


class Contacts:
    def __init__(self, conn: Database, *, region: str = "FR"):
        self.conn = conn
        self.region = region

    async def upsert(self, number: str, *, email: str = "", name: str = "", address: str = "") -> Contact:
        e164, _ = parse_number(number, self.region)
        if e164 is None:
            raise ValueError(f"invalid number {number!r}")
        if email and not clean_email(email):
            raise ValueError(f"invalid email {email!r}")
        await self.conn.execute(
            "INSERT INTO contacts (number, email, name, address, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (number) DO UPDATE SET email = excluded.email, name = excluded.name,"
            " address = excluded.address, updated_at = excluded.updated_at",
            (e164, clean_email(email), name.strip()[:200], address.strip()[:500], time.time()),
        )
        return Contact(e164, clean_email(email), name.strip()[:200], address.strip()[:500])

    async def get(self, e164: str) -> Contact | None:
        async with self.conn.execute("SELECT number, email, name, address FROM contacts WHERE number = ?", (e164,)) as cur:
            row = await cur.fetchone()
        return Contact(*row) if row else None

    async def import_csv(self, path: str) -> tuple[int, list[str]]:
        """Returns (rows imported, one message per rejected row)."""
        imported, rejected = 0, []
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = {"number", "email"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))} (expected number,email,name,address)")
            for line, row in enumerate(reader, start=2):
                try:
                    await self.upsert(
                        row.get("number") or "",
                        email=row.get("email") or "",
                        name=row.get("name") or "",
                        address=row.get("address") or "",
                    )
                    imported += 1
                except ValueError as exc:
                    rejected.append(f"line {line}: {exc}")
        return imported, rejected

    async def note_call(self, call_id: str, e164: str, at: float | None = None) -> None:
        await self.conn.execute(
            "INSERT INTO contacts_calls (call_id, number, at) VALUES (?, ?, ?) ON CONFLICT (call_id) DO NOTHING",
            (call_id, e164, at if at is not None else time.time()),
        )

    async def latest_call(self, e164: str, *, since: float) -> str | None:
        async with self.conn.execute(
            "SELECT call_id FROM contacts_calls WHERE number = ? AND at >= ? ORDER BY at DESC LIMIT 1", (e164, since)
        ) as cur:
            row = await cur.fetchone()
        return row[0] if row else None
