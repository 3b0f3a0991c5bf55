"""`callflow records list|show ID|export --csv` and `callflow kpi [--since --until]`.

The main command (callflow/cli.py) calls `register_cli(sub)`; every handler
takes the parsed args and returns an exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from callflow.core.channel import mask_number
from callflow.core.recorder import CallType, Cause
from callflow.store.kpi import kpis
from callflow.store.records import DEFAULT_DB, Records


def register_cli(subparsers) -> None:
    records = subparsers.add_parser("records", help="silent-call documentation cards (seed 000)")
    records_sub = records.add_subparsers(dest="records_command", required=True)

    ls = records_sub.add_parser("list", help="one line per call (numbers masked)")
    _common(ls)
    ls.add_argument("--limit", type=int, default=None)
    ls.set_defaults(func=lambda args: asyncio.run(_list(args)))

    show = records_sub.add_parser("show", help="the full card of one call")
    _common(show, dates=False)
    show.add_argument("call_id")
    show.set_defaults(func=lambda args: asyncio.run(_show(args)))

    export = records_sub.add_parser("export", help="export the cards")
    _common(export)
    export.add_argument("--csv", action="store_true", required=True, help="CSV, one line per call (full numbers)")
    export.add_argument("--out", default="-", help="file to write (default: stdout)")
    export.set_defaults(func=lambda args: asyncio.run(_export(args)))

    kpi = subparsers.add_parser("kpi", help="seed 000 section 8 KPIs over the call records")
    _common(kpi)
    kpi.add_argument("--json", action="store_true", help="machine-readable output")
    kpi.set_defaults(func=lambda args: asyncio.run(_kpi(args)))


def _common(parser: argparse.ArgumentParser, dates: bool = True) -> None:
    parser.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file or postgresql:// URL (default: {DEFAULT_DB})")
    if dates:
        parser.add_argument("--since", help="ISO date/time, UTC if no offset (inclusive)")
        parser.add_argument("--until", help="ISO date/time, UTC if no offset (exclusive)")


async def _open(args) -> Records:
    return await Records.open(args.db)


async def _list(args) -> int:
    records = await _open(args)
    try:
        for c in await records.list_calls(args.since, args.until, args.limit):
            duration = "-" if c["duration"] is None else f"{c['duration']:.0f}s"
            print(
                f"{c['call_id']}\t{c['started_at']}\t{mask_number(c['number'])}\t{duration}\t"
                f"{_label(CallType, c['call_type'])}\t{_label(Cause, c['cause'])}\t{c['hung_up_by'] or '-'}"
            )
    finally:
        await records.close()
    return 0


async def _show(args) -> int:
    records = await _open(args)
    try:
        c = await records.get_call(args.call_id)
    finally:
        await records.close()
    if c is None:
        print(f"no call {args.call_id}", file=sys.stderr)
        return 1
    print("📞 APPEL MUET – DOCUMENTATION")
    print(f"Date/Heure     : {c['started_at']}")
    print(f"Numéro entrant : {c['number'] or 'masqué'}")
    duration = "-" if c["duration"] is None else f"{c['duration']:.0f} secondes"
    print(f"Durée appel    : {duration}")
    print(f"TYPE           : {_label(CallType, c['call_type'])}")
    print(f"CAUSE PROBABLE : {_label(Cause, c['cause'])}")
    print(f"Raccroché par  : {c['hung_up_by'] or '-'} ({c['hangup_reason'] or ''})")
    print("ACTIONS PRISES")
    for a in c["actions"]:
        print(f"  {a['at']:7.1f}s  {a['kind']:<15} {a['detail']}")
    print("AUDIO")
    for s in c["audio"]:
        print(f"  {s['start_at']:7.1f}s–{s['end_at']:.1f}s  {s['state']}{'  (détresse)' if s['distress'] else ''}")
    print("SUIVI")
    for link in c["links"]:
        print(f"  {link['at']}  {link['kind']}: {link['ref']}")
    return 0


async def _export(args) -> int:
    records = await _open(args)
    try:
        if args.out == "-":
            await records.export_csv(sys.stdout, args.since, args.until)
        else:
            with open(args.out, "w", newline="", encoding="utf-8") as out:
                await records.export_csv(out, args.since, args.until)
    finally:
        await records.close()
    return 0


async def _kpi(args) -> int:
    from callflow.store.messages import Messages
    from callflow.store.procedure_kpi import kpis as procedure_kpis

    records = await _open(args)
    messages = await Messages.open(args.db)
    try:
        k = await kpis(records, args.since, args.until)
        p = await procedure_kpis(records, messages, args.since, args.until)
    finally:
        await messages.close()
        await records.close()
    if args.json:
        print(json.dumps({**k.as_dict(), "procedures": p.as_dict()}, indent=2))
        return 0
    print(f"Appels                          : {k.calls}")
    print(f"% appels muets                  : {_pct(k.silent_pct)}  ({k.silent_calls})   cible 2–5 %")
    mean = "-" if k.mean_silent_duration is None else f"{k.mean_silent_duration / 60:.1f} min"
    print(f"Durée moyenne appel muet        : {mean}   cible 1–3 min")
    print(f"Taux conversion autre canal     : {_pct(k.conversion_pct)}   cible ≥ 60 %")
    print(f"Taux urgence détectée           : {_pct(k.emergency_pct)}  ({k.emergencies})   cible < 2 %")
    print(f"Taux raccrochage prématuré      : {_pct(k.premature_pct)}  ({k.premature_hangups})   doit être 0")
    print(f"Appels muets documentés         : {_pct(k.documented_pct)}  ({k.documented})   doit être 100 %")
    if k.premature_all_calls != k.premature_hangups:
        print(f"Raccrochages prématurés, tous appels : {k.premature_all_calls}   doit être 0")
    for call_id, reasons in k.premature_reasons.items():  # the audit's reading (callflow/store/audit.py)
        print(f"  raccrochage prématuré : {call_id}: {'; '.join(reasons)}")
    for call_id in k.undocumented_call_ids:
        print(f"  non documenté         : {call_id}")
    _print_procedures(p)
    return 0


def _print_procedures(p) -> None:
    e, a, m = p.escalation, p.anger, p.messages
    print("\n— Seed 001, escalades superviseur (§7, §9)")
    print(f"Escalades / total appels        : {_pct(e.escalation_pct)}  ({e.escalations})   cible 5–10 %")
    print(f"Escalades justifiées            : {_pct(e.justified_pct)}  ({e.outcomes} décisions)   cible ≥ 70 %")
    print(f"Escalades inutiles              : {_pct(e.useless_pct)}   cible < 25 %")
    print(f"Taux approbation exception      : {_pct(e.approved_pct)}   cible 30–40 %")
    print(f"Refusées / alternative / direction : {_pct(e.refused_pct)} / {_pct(e.alternative_pct)} / {_pct(e.direction_pct)}")
    print(f"Coût moyen exception            : {_eur(e.mean_exception_eur)} (médiane {_eur(e.median_exception_eur)}, max {_eur(e.max_exception_eur)})   cible < 50 €")
    print(f"Temps réponse superviseur       : {_sec(e.mean_answer_seconds)}   cible ≤ 5 min")
    print(f"Attente client avant conférence : {_sec(e.mean_hold_seconds)} ({_pct(e.hold_within_30s_pct)} ≤ 30 s)   seed : 30 s maximum")
    print(f"Satisfaction post-escalade      : {_pct(e.satisfied_pct)}   cible ≥ 85 %")
    print("\n— Seed 004, gestion colère (§8)")
    print(f"% appels agressifs              : {_pct(a.angry_pct)}  ({a.angry_calls}, dont {a.raised_voice_alerts} alertes voix forte)   cible 3–7 %")
    print(f"Taux de-escalade réussi         : {_pct(a.deescalated_pct)}  ({a.cards} fiches)   cible ≥ 80 %")
    print(f"Rétention post-colère (approx.) : {_pct(a.retained_pct)}  (risque churn ≠ critique en fin d'appel)   cible ≥ 85 %")
    print(f"Satisfaction du plan            : {_score(a.mean_plan_satisfaction)}   cible ≥ 4/5")
    print(f"Bien-être hotliner              : {_score(a.mean_wellbeing)}   cible ≥ 3/5")
    print(f"Temps de désescalade            : {'-' if a.mean_deescalation_minutes is None else f'{a.mean_deescalation_minutes:.1f} min'}   cible < 5 min")
    print(f"Gestes commerciaux              : {a.gestures} (moyenne {_eur(a.mean_gesture_eur)})")
    print(f"Suivis J+1 / J+3 planifiés      : {a.followups_scheduled}")
    print("\n— Seed 003, permanence et débordement")
    print(f"Messages laissés                : {m.messages} (urgents {m.urgent}, confirmés {_pct(m.confirmed_pct)})")
    print(f"Messages à traiter / traités    : {m.open} / {m.done}")
    print(f"Offres de débordement           : {m.overflow_offers} (créneaux de rappel choisis : {m.callback_slots})")


def _eur(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} €"


def _sec(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/5"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


def _label(enum_cls, value):
    if value is None:
        return "-"
    try:
        return enum_cls(value).label
    except ValueError:
        return value
