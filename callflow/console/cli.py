"""`callflow users add|list|disable|enable|password` and `callflow report --since --until --format pdf|html`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from callflow.console.store import ROLES, ConsoleStore, UserError


def register_bench(bench_sub) -> None:
    from callflow.console.bench import register_bench as register

    register(bench_sub)


def register_cli(subparsers) -> None:
    users = subparsers.add_parser("users", help="console logins: agents, supervisors, admins")
    users_sub = users.add_subparsers(dest="users_command", required=True)

    add = users_sub.add_parser("add", help="create a login (asks for the password; there is no default one)")
    add.add_argument("username")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--extension", default="", help="the agent's desk phone (required for agents), e.g. 2001")
    add.add_argument("--name", default="", help="full name shown on the console")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    _db(add)
    add.set_defaults(func=lambda args: asyncio.run(_add(args)))

    ls = users_sub.add_parser("list", help="the logins (never their passwords)")
    _db(ls)
    ls.set_defaults(func=lambda args: asyncio.run(_list(args)))

    for name, disabled in (("disable", True), ("enable", False)):
        p = users_sub.add_parser(name, help=f"{name} a login (nothing is deleted: the audit log keeps its name)")
        p.add_argument("username")
        _db(p)
        p.set_defaults(func=lambda args, d=disabled: asyncio.run(_disable(args, d)))

    pw = users_sub.add_parser("password", help="set a new password")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true")
    _db(pw)
    pw.set_defaults(func=lambda args: asyncio.run(_password(args)))

    report = subparsers.add_parser("report", help="KPIs over a period with plots, as a PDF or HTML file")
    report.add_argument("--since", required=True, help="ISO date/time, UTC if no offset (inclusive)")
    report.add_argument("--until", help="ISO date/time, UTC if no offset (exclusive; default: now)")
    report.add_argument("--format", choices=("pdf", "html"), default="pdf")
    report.add_argument("--out", help="file to write (default: callflow-report-SINCE.pdf|html)")
    _db(report)
    report.set_defaults(func=lambda args: asyncio.run(_report(args)))


def _db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="the SQLite file or postgresql:// URL (default: store.database from the config)")


def _database(args) -> str:
    if args.db:
        return args.db
    from callflow.cli import _load_config_or_default

    return _load_config_or_default(args).store.database


def _read_password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ")
    return first


async def _add(args) -> int:
    store = await ConsoleStore.open(_database(args))
    try:
        user = await store.add_user(args.username, _read_password(args), args.role, extension=args.extension,
                                    full_name=args.name)
        await store.audit(None, "user_added", user.username, f"role {user.role} (cli)")
    except UserError as exc:
        print(f"callflow users add: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    print(f"user {user.username} ({user.role}{', poste ' + user.extension if user.extension else ''}) created")
    return 0


async def _list(args) -> int:
    store = await ConsoleStore.open(_database(args))
    try:
        users = await store.list_users()
    finally:
        await store.close()
    for u in users:
        print(f"{u.username:<20} {u.role:<11} {u.extension or '-':<6} {'disabled' if u.disabled else 'active':<8} {u.full_name}")
    if not users:
        print("no users yet: callflow users add NAME --role supervisor")
    return 0


async def _disable(args, disabled: bool) -> int:
    store = await ConsoleStore.open(_database(args))
    try:
        ok = await store.set_disabled(args.username, disabled)
        if ok:
            await store.audit(None, "user_disabled" if disabled else "user_enabled", args.username, "cli")
    finally:
        await store.close()
    if not ok:
        print(f"callflow users: no user {args.username!r}", file=sys.stderr)
        return 1
    print(f"user {args.username} {'disabled' if disabled else 'enabled'}")
    return 0


async def _password(args) -> int:
    store = await ConsoleStore.open(_database(args))
    try:
        ok = await store.set_password(args.username, _read_password(args))
        if ok:
            await store.audit(None, "password_set", args.username, "cli")
    except UserError as exc:
        print(f"callflow users password: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    if not ok:
        print(f"callflow users: no user {args.username!r}", file=sys.stderr)
        return 1
    print(f"password of {args.username} changed")
    return 0


async def _report(args) -> int:
    from callflow.console.report import write_report
    from callflow.store.records import Records

    records = await Records.open(_database(args))
    store = await ConsoleStore.open(_database(args))
    try:
        out = args.out or f"callflow-report-{args.since.replace(':', '')}.{args.format}"
        try:
            n = await write_report(records, store, since=args.since, until=args.until, fmt=args.format, path=out)
        except ValueError as exc:
            print(f"callflow report: {exc} (dates look like 2026-11-01 or 2026-11-01T08:00)", file=sys.stderr)
            return 2
    finally:
        await store.close()
        await records.close()
    print(f"{out}: {n} call(s)")
    return 0
