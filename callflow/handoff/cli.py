"""`callflow outbox list|retry ID` and `callflow contacts import FILE.csv`.

The main CLI (callflow/cli.py) calls `register_cli(subparsers)`; each command
sets `func(args) -> int` (exit code) through `set_defaults`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys

from callflow.handoff import db as handoff_db
from callflow.handoff.callbacks import CallbackScheduler
from callflow.handoff.contacts import Contacts
from callflow.handoff.outbox import STATUSES, Outbox

from callflow.paths import DEFAULT_DB


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    outbox = subparsers.add_parser("outbox", help="SMS / email outbox and callbacks: list, retry")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", required=True)
    ls = outbox_sub.add_parser("list", help="list messages (newest first) or one call's messages")
    ls.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file or postgresql:// URL (default {DEFAULT_DB})")
    ls.add_argument("--call", help="only this call id (also shows its callbacks)")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=_run(_outbox_list))
    retry = outbox_sub.add_parser("retry", help="send a failed_permanently message (or place a failed callback) again")
    retry.add_argument("id", help="message or callback id (see `outbox list --call CALL_ID`)")
    retry.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file or postgresql:// URL (default {DEFAULT_DB})")
    retry.set_defaults(func=_run(_outbox_retry))

    contacts = subparsers.add_parser("contacts", help="numbers with their email / name / address")
    contacts_sub = contacts.add_subparsers(dest="contacts_command", required=True)
    imp = contacts_sub.add_parser("import", help="import a CSV with columns number,email,name,address")
    imp.add_argument("file")
    imp.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file or postgresql:// URL (default {DEFAULT_DB})")
    imp.add_argument("--region", default="FR", help="region of national numbers (default FR)")
    imp.set_defaults(func=_run(_contacts_import))


def _run(coro_fn):
    def run(args: argparse.Namespace) -> int:
        return asyncio.run(coro_fn(args))

    return run


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


async def _outbox_list(args: argparse.Namespace) -> int:
    conn = await handoff_db.connect(args.db)
    try:
        outbox = Outbox(conn)
        rows = await outbox.list_for_call(args.call) if args.call else await outbox.list(args.status, args.limit)
        if args.call and args.status:
            rows = [r for r in rows if r.status == args.status]
        for r in rows:
            # Destinations are masked: the terminal is not a place for full caller numbers.
            dest = r.destination if r.kind == "email" else r.destination[:5] + "…" + r.destination[-2:]
            print(f"{r.id}  {r.kind:5}  {r.status:18} attempts={r.attempts}  {_when(r.updated_at)}  call={r.call_id}  to={dest}"
                  + (f"  error={r.last_error}" if r.last_error else ""))
        if args.call:
            for cb in await CallbackScheduler(conn).list_for_call(args.call):
                print(f"{cb.id}  call   {cb.status:18} attempts={cb.attempts}/{cb.max_attempts}  due={_when(cb.due_at)}"
                      f"  target={cb.target}  last={cb.last_outcome}")
        if not rows:
            print("(no messages)", file=sys.stderr)
        return 0
    finally:
        await conn.close()


async def _outbox_retry(args: argparse.Namespace) -> int:
    conn = await handoff_db.connect(args.db)
    try:
        outbox = Outbox(conn)
        message = await outbox.get(args.id)
        if message is None:
            callbacks = CallbackScheduler(conn)
            callback = await callbacks.get(args.id)
            if callback is None:
                print(f"no message or callback {args.id}", file=sys.stderr)
                return 2
            if not await callbacks.retry(args.id):
                print(f"callback {args.id} is {callback.status}: only failed callbacks can be retried", file=sys.stderr)
                return 1
            print(f"callback {args.id} due now; the running controller's scheduler will place it")
            return 0
        if not await outbox.retry(args.id):
            print(f"message {args.id} is {message.status}: only failed_permanently messages can be retried", file=sys.stderr)
            return 1
        print(f"{args.id} queued again; the running controller's worker will send it")
        return 0
    finally:
        await conn.close()


async def _contacts_import(args: argparse.Namespace) -> int:
    conn = await handoff_db.connect(args.db)
    try:
        try:
            imported, rejected = await Contacts(conn, region=args.region).import_csv(args.file)
        except (OSError, ValueError) as exc:
            print(str(exc), file=sys.stderr)
            return 2
        for line in rejected:
            print(line, file=sys.stderr)
        print(f"{imported} contact(s) imported, {len(rejected)} rejected")
        return 0 if not rejected else 1
    finally:
        await conn.close()
