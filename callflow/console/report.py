"""`callflow report`: the wallboard's KPIs over a period, with plots, as a PDF (matplotlib's
PdfPages) or a self-contained HTML file (the plots inlined as PNG)."""

from __future__ import annotations

import base64
import io
from datetime import datetime, timezone
from typing import Any

from callflow.console import kpi
from callflow.console.config import ConsoleConfig
from callflow.store.records import to_epoch

GROUPS = (("centre", "Centre de contact"), ("silent", "Appels muets (seed 000 §8)"),
          ("escalations", "Escalades (seed 001 §7, §9)"), ("anger", "Gestion colère (seed 004 §8)"))


def _fmt(k: dict) -> str:
    return "—" if k["value"] is None else f"{k['value']}{k['unit']}"


def _status(k: dict) -> str:
    return {True: "OK", False: "hors cible", None: ""}[k["ok"]]


def _figures(values: dict, series: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = []
    fig, ax = plt.subplots(figsize=(8.3, 4))
    times = [datetime.fromtimestamp(t, timezone.utc) for t in series["t"]]
    for name, label in (("calls", "appels"), ("silent", "appels muets"), ("answered", "répondus par un conseiller"),
                        ("abandoned", "abandonnés avant réponse")):
        ax.plot(times, series[name], marker="o", label=label)
    ax.set_title("Appels par heure (UTC)")
    ax.legend()
    ax.grid(alpha=.3)
    fig.autofmt_xdate()
    figs.append(fig)
    fig, ax = plt.subplots(figsize=(8.3, 4))
    shown = [k for g, _ in GROUPS for k in values[g] if k["unit"] == "%" and k["value"] is not None]
    ax.barh([k["label"] for k in shown], [k["value"] for k in shown],
            color=["#2a7" if k["ok"] else ("#c33" if k["ok"] is False else "#999") for k in shown])
    ax.set_xlim(0, 100)
    ax.set_title("Pourcentages (vert: dans la cible, rouge: hors cible)")
    fig.tight_layout()
    figs.append(fig)
    return figs


async def gather(records, store, since: Any, until: Any, config: ConsoleConfig | None = None) -> tuple[dict, dict, list]:
    config = config or ConsoleConfig()
    to_epoch(since)  # a bad date is a ValueError before any work
    if until:
        to_epoch(until)
    calls = await records.calls_with_details(since, until or None)
    values = kpi.compute(calls, service_level_seconds=config.service_level_seconds,
                         service_level_target=config.service_level_target,
                         abandonment_target=config.abandonment_target)
    return values, kpi.series(calls), calls


async def write_report(records, store, *, since: str, until: str | None, fmt: str, path: str,
                       config: ConsoleConfig | None = None) -> int:
    values, series, calls = await gather(records, store, since, until, config)
    period = f"{since} → {until or 'maintenant'}"
    figs = _figures(values, series)
    import matplotlib.pyplot as plt

    try:
        if fmt == "pdf":
            from matplotlib.backends.backend_pdf import PdfPages

            with PdfPages(path) as pdf:
                page = plt.figure(figsize=(8.3, 11.7))
                page.text(.05, .96, f"numi.support — rapport KPI\n{period} · {values['calls']} appel(s)", fontsize=13,
                          va="top")
                y = .9

                def room(needed: float) -> None:  # a new A4 page when this one is full
                    nonlocal page, y
                    if y - needed < .04:
                        pdf.savefig(page)
                        plt.close(page)
                        page, y = plt.figure(figsize=(8.3, 11.7)), .95

                for group, title in GROUPS:
                    room(.06)
                    page.text(.05, y, title, fontsize=11, weight="bold")
                    y -= .022
                    for k in values[group]:
                        room(.032)
                        page.text(.07, y, f"{k['label']}: {_fmt(k)}   (cible {k['target']}) {_status(k)}", fontsize=8.5)
                        page.text(.09, y - .014, k["source"], fontsize=7, color="#555")
                        y -= .032
                    y -= .01
                room(.06)
                page.text(.05, y, "Ce que les enregistrements ne donnent pas", fontsize=11, weight="bold")
                y -= .022
                for name, why in values["not_from_records"].items():
                    room(.03)
                    page.text(.07, y, f"{name}: {why}", fontsize=7.5, wrap=True)
                    y -= .03
                pdf.savefig(page)
                plt.close(page)
                for fig in figs:
                    pdf.savefig(fig)
                info = pdf.infodict()
                info["Title"] = f"callflow KPI report {period}"
        else:
            images = []
            for fig in figs:
                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=90)
                images.append(base64.b64encode(buf.getvalue()).decode())
            from callflow.console.web import _env

            html = _env().get_template("report.html").render(values=values, period=period, images=images, groups=GROUPS)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(html)
    finally:
        for fig in figs:
            plt.close(fig)
    return len(calls)
