"""Seed 000 section 8 KPIs, audited from the records."""

from __future__ import annotations

import pytest

from callflow.core.channel import AudioState as S
from callflow.store.kpi import compute, is_premature, kpis
from callflow.store.records import Records
from callflow.telephony.fake import CallerScript, FakeCall, Sound, press, tap


def call(call_id, call_type="muet_complet", *, duration=45.0, by="system", cause="technique", actions=None, audio=None):
    actions = actions if actions is not None else [
        {"at": 0.0, "kind": "prompt", "detail": "greeting"},
        {"at": 30.0, "kind": "prompt", "detail": "dead_line_final"},
    ]
    return {"call_id": call_id, "call_type": call_type, "cause": cause, "duration": duration, "hung_up_by": by,
            "actions": actions, "audio": audio or [], "links": []}


def test_proper_dead_line_hang_up_is_not_premature():
    assert not is_premature(call("c"))


def test_hang_up_without_final_warning_is_premature():
    assert is_premature(call("c", actions=[{"at": 0.0, "kind": "prompt", "detail": "greeting"}]))


def test_hang_up_before_20_seconds_is_premature():
    assert is_premature(call("c", duration=15.0))


def test_hang_up_with_breathing_in_the_window_is_premature():
    audio = [{"start_at": 20.0, "end_at": 30.0, "state": "breathing", "distress": 0}]
    assert is_premature(call("c", audio=audio))


def test_hang_up_with_a_key_in_the_window_is_premature():
    actions = call("c")["actions"] + [{"at": 40.0, "kind": "input", "detail": "key 1"}]
    assert is_premature(call("c", actions=actions))


def test_an_old_sign_of_life_still_makes_a_system_hang_up_premature():
    # issue 11 bug B: a caller who breathed for a minute then went quiet was hung up at 150 s
    audio = [{"start_at": 0.0, "end_at": 60.0, "state": "breathing", "distress": 0}]
    assert is_premature(call("c", duration=150.0, audio=audio))


def test_the_section_8_metrics():
    sms = [{"at": 90.0, "kind": "handoff", "detail": "sms msg-1"}]
    calls = [
        call("dead"),
        call("sms", "respiration", by="caller", cause="handicap", duration=75.0, actions=sms),
        call("emergency", "urgence", by="agent", cause="urgence", duration=60.0,
             actions=[{"at": 20.0, "kind": "emergency", "detail": "EmergencyLine.start"}]),
        call("undocumented", "bruit_de_fond", by="caller", cause=None, duration=20.0),
        call("talk", "parole", by="agent", cause=None, duration=8.0),
        call("talk2", "parole", by="agent", cause=None, duration=8.0),
    ]
    k = compute(calls)
    assert k.calls == 6 and k.silent_calls == 4
    assert k.silent_pct == pytest.approx(400 / 6)
    assert k.mean_silent_duration == pytest.approx((45 + 75 + 60 + 20) / 4)
    assert k.conversion_pct == pytest.approx(25.0)
    assert k.emergencies == 1 and k.emergency_pct == pytest.approx(25.0)
    assert k.system_hangups == 1 and k.premature_hangups == 0 and k.premature_pct == 0.0
    assert k.documented == 3 and k.documented_pct == pytest.approx(75.0)
    assert k.undocumented_call_ids == ["undocumented"]


def test_no_calls_no_division_by_zero():
    k = compute([])
    assert k.silent_pct is None and k.premature_pct is None and k.documented_pct is None


async def test_kpis_over_real_flow_runs_premature_0_and_documented_100(store_url):
    store = await Records.open(store_url)  # SQLite and PostgreSQL
    breathing = [Sound(0, S.SILENCE), Sound(12, S.BREATHING)]
    seed = {"q_hears": [press("1")], "q_technical": [press("2")], "q_difficulty": [press("1")],
            "q_preference": [press("1")], "q_confirm_sms": [press("1")], "q_sms_received": [press("1")]}
    scripts = [
        CallerScript(),  # dead line: system hang-up
        CallerScript(sounds=breathing, replies=seed, hangs_up_at=120),  # SMS
        CallerScript(sounds=[Sound(0, S.BREATHING)]),  # breathes, never answers: an agent
        CallerScript(sounds=[Sound(0, S.SILENCE), Sound(16, S.BREATHING, distress=True)], replies={"q_emergency": [tap(1)]}),
        CallerScript(sounds=[Sound(0, S.SILENCE), Sound(5, S.SPEECH)]),  # talks: not a silent call
        CallerScript(sounds=[Sound(0, S.SILENCE), Sound(12, S.BREATHING), Sound(100, S.SILENCE)], replies=seed),
    ]
    for i, script in enumerate(scripts):
        fake = FakeCall(script, call_id=f"c-{i}")
        fake.deps.recorder = store
        await fake.run()
    k = await kpis(store)
    await store.close()
    assert k.calls == 6 and k.silent_calls == 5
    assert k.system_hangups == 1  # the breathing caller gone quiet goes to a person (issue 11 B), not a dead line
    assert k.premature_hangups == 0 and k.premature_pct == 0.0
    assert k.documented_pct == 100.0
    assert k.emergencies == 1
    assert k.conversion_pct == pytest.approx(40.0)
