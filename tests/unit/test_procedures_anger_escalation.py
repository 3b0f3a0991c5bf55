"""Seeds 004 (voix forte, J+1/J+3, incident card, §8 KPIs) and 001 (A–D, « justifiée ? », outcome, §4 emails, KPIs)."""

from __future__ import annotations

import asyncio
import json

import pytest
from test_agents_fakes import Desk, until

from callflow.flows.anger import IncidentCard, RaisedVoiceWatch
from callflow.flows.escalation import Briefing, Outcome
from callflow.store import procedure_kpi


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_raised_voice_needs_sustained_shouting():
    clock = Clock()
    watch = RaisedVoiceWatch(seconds=6, window=20, clock=clock)
    for start in (0, 3, 6):  # three shouts of 1.5 s: 4.5 s of loud talk in 20 s
        clock.t = start
        watch.started()
        clock.t = start + 1.5
        watch.finished()
    assert not watch.check()
    clock.t = 10
    watch.started()
    clock.t = 11.6  # 6.1 s within the window, the last shout still going
    assert watch.check() and not watch.check()  # once


def test_old_shouting_leaves_the_window():
    clock = Clock()
    watch = RaisedVoiceWatch(seconds=6, window=20, clock=clock)
    watch.started()
    clock.t = 5
    watch.finished()
    clock.t = 40
    watch.started()
    clock.t = 42
    assert watch.loud_seconds() == pytest.approx(2) and not watch.check()


async def test_the_desk_alerts_the_agent_and_the_supervisor_when_the_caller_shouts():
    d = Desk(raised_voice_seconds=2.0, raised_voice_window=10.0)
    caller, agent = d.caller(), d.leg("agent")
    caller.plan = {"PJSIP/2001": [agent]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    assert ("loudness", "caller", 6000) in d.events  # TALK_DETECT with the shouting threshold
    caller.shouts(True)
    await until(lambda: d.desk.live["call-1"].raised_voice, timeout=4)
    assert ("play", "agent", "whisper_raised_voice") in d.events and ("play", "caller", "whisper_raised_voice") not in d.events
    assert d.desk.notifications[-1]["kind"] == "raised_voice" and "raised_voice" in d.kinds()
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_churn_red_and_aggressive_schedule_j1_and_j3_once():
    d = Desk()
    caller, agent = d.caller(), d.leg("agent")
    caller.plan = {"PJSIP/2001": [agent]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    agent.press("*8")
    await until(lambda: len(d.handoffs.requests) == 2)
    agent.press("*7")
    await until(lambda: d.desk.live["call-1"].aggressive)
    await asyncio.sleep(0.3)
    delays = [req["delay_seconds"] for kind, req in d.handoffs.requests if kind == "callback"]
    assert delays == [86400.0, 259200.0]  # J+1 and J+3, not again for *7
    assert all(req["target"] == "supervisor" and "seed 004" in req["reason"] for _, req in d.handoffs.requests)
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_incident_card_after_the_call_is_stored_with_the_record_and_red_churn_gets_followups():
    d = Desk()
    caller, agent = d.caller(), d.leg("agent")
    caller.plan = {"PJSIP/2001": [agent]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    caller.leaves()
    await asyncio.wait_for(task, 3)
    stored = await d.desk.incident_card("call-1", {"intensite": "forte", "raison": "promesse_non_tenue",
                                                    "risque_churn": "eleve", "sentiment_fin": "apaise",
                                                    "bien_etre_hotliner": 3, "geste_montant": 35,
                                                    "engagements": ["ticket urgent, expert sous 24h"]})
    assert stored["hotliner"] == "2001" and stored["risque_churn"] == "eleve"
    [card] = [json.loads(detail) for kind, detail in d.notes() if kind == "incident_card"]
    assert card["geste_montant"] == 35.0 and card["engagements"] == ["ticket urgent, expert sous 24h"]
    assert card["duree_appel_s"] >= 0 and card["rempli_le"].endswith("Z") and "fin" not in card
    assert [k for k, _ in d.handoffs.requests] == ["callback", "callback"]
    assert d.desk.notifications[-1]["kind"] == "churn_red"
    with pytest.raises(ValueError):
        await d.desk.incident_card("call-1", {"intensite": "furieuse"})
    with pytest.raises(KeyError):
        await d.desk.incident_card("nope", {})


def test_incident_card_validation():
    with pytest.raises(ValueError, match="bien_etre_hotliner"):
        IncidentCard.from_json({"bien_etre_hotliner": 9})
    with pytest.raises(ValueError, match="unknown"):
        IncidentCard.from_json({"colere": 1})
    assert IncidentCard.from_json({"risque_churn": "critique"}).churn_red


def test_briefing_motif_and_matrix():
    b = Briefing.from_json({"probleme": "atelier manqué", "motif": "c", "situation": "exception"})
    assert b.motif == "C" and b.justifiee == "oui"
    assert "motif C" in b.summary() and "justifiée ? oui" in b.summary()
    assert Briefing.from_json({"situation": "repete"}).justifiee == "non"
    for bad in ({"motif": "E"}, {"situation": "caprice"}):
        with pytest.raises(ValueError):
            Briefing.from_json(bad)


async def test_escalation_outcome_is_recorded_and_the_emails_go_through_the_outbox():
    d = Desk()
    caller, agent, supervisor = d.caller(), d.leg("agent"), d.leg("supervisor")
    caller.plan = {"PJSIP/2001": [agent], "PJSIP/2100": [supervisor]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    d.desk.submit("call-1", "escalate", {"briefing": Briefing.from_json(
        {"probleme": "remboursement", "motif": "A", "situation": "exception_possible"}, hotliner="2001")})
    await until(lambda: d.desk.live["call-1"].state == "conference", timeout=4)
    esc = d.desk.live["call-1"].escalation
    outcome = await d.desk.escalation_outcome(esc.id, {"decision": "approuvee", "valeur_eur": 35, "satisfaction": 5,
                                                       "motif_decision": "client fidèle", "superviseur": "Sophie",
                                                       "prochaines_etapes": ["crédit appliqué"]})
    assert outcome["justifiee_matrice"] == "oui" and outcome["motif"] == "A" and outcome["hold_seconds"] <= 30
    kinds = [k for k, _ in d.handoffs.requests]
    assert kinds == ["escalation_email_client", "escalation_email_hotliner"]
    client = d.handoffs.requests[0][1]
    assert client["subject"].startswith("📧 Résolution de votre demande") and "Demande approuvée (35 €)" in client["body"]
    assert "Feedback pour 2001" in d.handoffs.requests[1][1]["subject"]
    assert "escalation_outcome" in d.kinds()
    with pytest.raises(ValueError):
        await d.desk.escalation_outcome(esc.id, {"decision": "approuvee"})  # once
    with pytest.raises(ValueError):
        Outcome.from_json({"decision": "peut-être"})
    caller.leaves()
    await asyncio.wait_for(task, 3)


def _call(call_id: str, *actions: tuple[str, str]) -> dict:
    return {"call_id": call_id, "actions": [{"at": float(i), "kind": k, "detail": d} for i, (k, d) in enumerate(actions)]}


def test_procedure_kpis_from_records():
    outcome = lambda **kw: ("escalation_outcome", json.dumps({"justifiee": None, "justifiee_matrice": "oui", **kw}))
    calls = [
        _call("a", ("escalation", "esc-1"), outcome(decision="approuvee", valeur_eur=30, answer_seconds=12,
                                                     hold_seconds=20, satisfaction=5)),
        _call("b", ("escalation", "esc-2"), outcome(decision="refusee", justifiee_matrice="non", answer_seconds=20,
                                                     hold_seconds=40, satisfaction=3)),
        _call("c", ("flag", "agressif: pause de 300s après l'appel"), ("raised_voice", "voix forte"),
              ("incident_card", json.dumps({"sentiment_fin": "apaise", "risque_churn": "eleve", "bien_etre_hotliner": 2,
                                            "desescalade_minutes": 4, "geste_montant": 35, "satisfaction_plan": 4})),
              ("callback", "J+1 follow-up scheduled cb-1"), ("callback", "J+3 follow-up scheduled cb-2")),
        _call("d", ("overflow_offer", "after 120s"), ("callback", "slot hour in 30 min: scheduled cb-3")),
    ]
    k = procedure_kpi.compute(calls, [])
    e, a, m = k.escalation, k.anger, k.messages
    assert e.escalations == 2 and e.escalation_pct == 50 and e.justified_pct == 50 and e.approved_pct == 50
    assert e.mean_exception_eur == 30 and e.mean_answer_seconds == 16 and e.hold_within_30s_pct == 50
    assert e.satisfied_pct == 50
    assert a.angry_calls == 1 and a.raised_voice_alerts == 1 and a.deescalated_pct == 100 and a.retained_pct == 100
    assert a.mean_wellbeing == 2 and a.followups_scheduled == 2 and a.mean_gesture_eur == 35
    assert m.overflow_offers == 1 and m.callback_slots == 1


async def test_the_30_s_cover_the_whisper_the_conference_starts_at_the_deadline():
    d = Desk()  # supervisor_answer_timeout = 1 s in the fast configs
    caller, agent, supervisor = d.caller(), d.leg("agent"), d.leg("supervisor")
    supervisor.prompt_seconds = 5.0  # a whisper far longer than the hold allows
    caller.plan = {"PJSIP/2001": [agent], "PJSIP/2100": [supervisor]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    loop = asyncio.get_running_loop()
    asked = loop.time()
    agent.press("*1")
    await until(lambda: d.desk.live["call-1"].state == "conference", timeout=4)
    assert loop.time() - asked < 1.0 + 1.0  # the deadline (1 s here, 30 s in production) plus the key sequence
    assert "escalation_whisper_cut" in d.kinds()
    caller.leaves()
    await asyncio.wait_for(task, 3)
