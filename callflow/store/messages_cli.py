"""`callflow hours close|open|auto|status` and `callflow messages list|play|done` (seed 003).

The override takes effect on the next call: the controller reads it from the
shared database for every new call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from callflow.core.channel import mask_number
from callflow.store.messages import Messages
from callflow.store.records import DEFAULT_DB


def register_cli(subparsers) -> None:
    hours = subparsers.add_parser("hours", help="opening hours (seed 003): exceptional closure or opening")
    hours_sub = hours.add_subparsers(dest="hours_command", required=True)
    for mode, text in (("close", "close the line now (until `hours auto`)"),
                       ("open", "open the line now (until `hours auto`)"),
                       ("auto", "follow the calendar of the [hours] config again")):
        p = hours_sub.add_parser(mode, help=text)
        _db(p)
        p.add_argument("--by", default="", help="who decided (kept with the override)")
        p.set_defaults(func=lambda args, mode=mode: asyncio.run(_set(args, mode)))
    status = hours_sub.add_parser("status", help="open or closed now, the override, the next opening")
    _db(status)
    status.set_defaults(func=lambda args: asyncio.run(_status(args)))

    messages = subparsers.add_parser("messages", help="messages left by callers (seed 003), urgent first")
    msg_sub = messages.add_subparsers(dest="messages_command", required=True)
    ls = msg_sub.add_parser("list", help="open messages, urgent first then the oldest (numbers masked)")
    _db(ls)
    ls.add_argument("--all", action="store_true", help="done ones too")
    ls.add_argument("--json", action="store_true", help="machine-readable, full numbers")
    ls.set_defaults(func=lambda args: asyncio.run(_list(args)))
    play = msg_sub.add_parser("play", help="fetch a message's recording from Asterisk (ARI) and play it")
    _db(play)
    play.add_argument("ticket")
    play.add_argument("--out", help="where to write the WAV (default: ./<ticket>.wav)")
    play.add_argument("--no-speaker", action="store_true", help="only write the file")
    play.set_defaults(func=lambda args: asyncio.run(_play(args)))
    done = msg_sub.add_parser("done", help="mark a message as dealt with")
    _db(done)
    done.add_argument("ticket")
    done.add_argument("--by", default="")
    done.add_argument("--note", default="")
    done.set_defaults(func=lambda args: asyncio.run(_done(args)))


def _db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, help=f"SQLite file or postgresql:// URL (default: store.database, else {DEFAULT_DB})")


def _config(args):
    from callflow.config import Config, load
    from callflow.core.errors import ConfigError

    try:
        return load(getattr(args, "config", None))
    except ConfigError:
        return Config()  # no ARI credentials: the calendar and the database still have their defaults


async def _open(args) -> Messages:
    return await Messages.open(args.db or _config(args).store.database)


async def _set(args, mode: str) -> int:
    store = await _open(args)
    try:
        await store.set_override({"close": "closed", "open": "open", "auto": "auto"}[mode], by=args.by)
    finally:
        await store.close()
    print({"close": "line closed until `callflow hours auto`", "open": "line open until `callflow hours auto`",
           "auto": "line follows the calendar"}[mode] + " (from the next call)")
    return 0


async def _status(args) -> int:
    cfg = _config(args)
    store = await _open(args)
    try:
        override = await store.override()
    finally:
        await store.close()
    calendar = cfg.hours.calendar()
    now = datetime.now(timezone.utc)
    opening = calendar.next_opening(now, override)
    print(f"now       : {'open' if calendar.is_open(now, override) else 'closed'}")
    print(f"override  : {override}")
    print(f"calendar  : {'always open' if calendar.always_open else cfg.hours.timezone}")
    if not calendar.always_open:
        for line in calendar.describe():
            print(f"  {line}")
    print(f"opens     : {opening.astimezone(calendar.tz).isoformat(timespec='minutes') if opening else 'never (check [hours])'}")
    return 0


async def _list(args) -> int:
    store = await _open(args)
    try:
        tickets = await store.list(status=None if args.all else "open")
    finally:
        await store.close()
    if args.json:
        print(json.dumps([t.as_dict() for t in tickets], indent=2, ensure_ascii=False))
        return 0
    for t in tickets:
        flag = "URGENT" if t.motive == "urgent" else "normal"
        confirmed = "confirmé" if t.confirmed else "raccroché"
        duration = "-" if t.duration is None else f"{t.duration:.0f}s"
        print(f"{t.id}\t{t.created_at}\t{flag}\t{mask_number(t.number)}\t{t.language}\t{t.source}\t{duration}\t"
              f"{confirmed}\t{t.status}\t{t.summary}")
    if not tickets:
        print("no message", file=sys.stderr)
    return 0


async def _play(args) -> int:
    store = await _open(args)
    try:
        ticket = await store.get(args.ticket)
    finally:
        await store.close()
    if ticket is None or not ticket.recording:
        print(f"no message {args.ticket}", file=sys.stderr)
        return 1
    from callflow.config import load
    from callflow.telephony.ari.client import AriClient

    cfg = load(getattr(args, "config", None))
    out = Path(args.out or f"{ticket.id}.wav")
    async with AriClient(cfg.ari.url, cfg.ari.user, cfg.ari.password, cfg.ari.app) as client:
        url = f"{client.base_url}/recordings/stored/{ticket.recording}/file"
        async with client.session.get(url) as resp:
            if resp.status != 200:
                print(f"Asterisk has no recording {ticket.recording} (HTTP {resp.status})", file=sys.stderr)
                return 1
            out.write_bytes(await resp.read())
    print(f"{ticket.id}: {out} ({out.stat().st_size} bytes, {ticket.duration or 0:.0f}s)")
    player = shutil.which("play") or shutil.which("aplay")
    if not args.no_speaker and player and sys.stdout.isatty():
        subprocess.run([player, "-q", str(out)], check=False)
    return 0


async def _done(args) -> int:
    store = await _open(args)
    try:
        ok = await store.done(args.ticket, by=args.by, note=args.note)
    finally:
        await store.close()
    if not ok:
        print(f"no open message {args.ticket}", file=sys.stderr)
        return 1
    print(f"{args.ticket} done at {time.strftime('%H:%M')}")
    return 0
