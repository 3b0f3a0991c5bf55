"""The premature hang-up audit (issue 11, item 5): the record alone, read independently of the guard."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from callflow.core.channel import AudioState as S
from callflow.store import audit as audit_module
from callflow.store.audit import audit_call, signs_of_life, system_hangups
from callflow.store.kpi import compute, kpis
from callflow.store.records import Records
from callflow.telephony.fake import CallerScript, FakeCall, Sound, press


def seg(start, end, state, distress=0, level=-60.0):
    return {"start_at": start, "end_at": end, "state": state, "distress": distress, "level_dbfs": level}


def act(at, kind, detail=""):
    return {"at": at, "kind": kind, "detail": detail}


def dead_line_actions(hangup_at: float) -> list[dict]:
    return [act(0.0, "prompt", "greeting"), act(3.0, "prompt", "audio_check"), act(hangup_at - 12, "prompt", "dead_line_final"),
            act(hangup_at - 1, "prompt", "dead_line_goodbye"), act(hangup_at, "hangup", "ligne morte: aucun son après avertissement")]


def record(call_id="c", *, actions, audio=(), by="system", duration=None, call_type="muet_complet"):
    duration = duration if duration is not None else max([a["at"] for a in actions] + [0.0])
    return {"call_id": call_id, "call_type": call_type, "cause": "technique", "duration": duration, "hung_up_by": by,
            "hangup_reason": "ligne morte", "actions": list(actions), "audio": list(audio), "links": []}


# -- issue 11 bug B, as a user found it ----------------------------------------------------------

def bug_b_record() -> dict:
    """Breathed for 28 s, then quiet (a caller who faints); hung up by the system at 128 s as a dead line."""
    audio = [seg(0.0, 2.0, "silence"), seg(2.0, 30.0, "breathing", level=-48.0), seg(30.0, 127.0, "silence"),
             seg(127.0, 128.0, "dead_line")]
    return record(actions=dead_line_actions(128.0), audio=audio, duration=128.2)


def test_bug_b_breathed_then_quiet_then_hung_up_is_premature():
    result = audit_call(bug_b_record())
    assert result.hung_up_by_system and result.premature
    assert result.system_hangups[0][0] == 128.0
    assert result.signs_of_life[0] == (2.0, "breathing")
    assert "after a sign of life (breathing at 2.0s)" in result.reasons[0]


def test_bug_b_shows_in_the_kpi_that_used_to_say_zero():
    k = compute([bug_b_record(), record("dead", actions=dead_line_actions(45.0), audio=[seg(0, 45, "dead_line")])])
    assert k.system_hangups == 2
    assert k.premature_hangups == 1 and k.premature_call_ids == ["c"]
    assert k.premature_pct == pytest.approx(50.0)
    assert k.premature_reasons["c"]


# -- what the audit counts as a sign of life -------------------------------------------------------

def test_a_proper_dead_line_hang_up_is_not_premature():
    result = audit_call(record(actions=dead_line_actions(45.0), audio=[seg(0, 30, "dead_line"), seg(30, 45, "silence")]))
    assert result.hung_up_by_system and not result.premature and result.signs_of_life == []


@pytest.mark.parametrize("audio_state", ["breathing", "speech", "taps"])
def test_any_living_sound_at_any_time_counts(audio_state):
    audio = [seg(0.5, 1.5, audio_state), seg(1.5, 300.0, "dead_line")]
    assert audit_call(record(actions=dead_line_actions(300.0), audio=audio)).premature


def test_distress_counts_even_on_a_silent_segment():
    audio = [seg(0.0, 10.0, "silence", distress=1), seg(10.0, 60.0, "dead_line")]
    assert audit_call(record(actions=dead_line_actions(60.0), audio=audio)).premature


def test_noise_that_moves_counts_steady_noise_does_not():
    steady = [seg(0, 10, "background_noise", level=-35.0), seg(10, 12, "silence"), seg(12, 40, "background_noise", level=-37.0)]
    moved = [seg(0, 10, "background_noise", level=-35.0), seg(10, 12, "silence"), seg(12, 40, "background_noise", level=-25.0)]
    assert not audit_call(record(actions=dead_line_actions(60.0), audio=steady)).premature
    result = audit_call(record(actions=dead_line_actions(60.0), audio=moved))
    assert result.premature and "noise moved" in result.signs_of_life[0][1]


@pytest.mark.parametrize("kind,detail", [("input", "key 5"), ("input", "tap"), ("answer", "q_hears=1"),
                                         ("invalid", "q_hears: key 7"), ("barge_in", "audio_check: key 1"),
                                         ("ignored", "key 1 (burst)"), ("language", "en")])
def test_keys_taps_answers_count_even_long_before(kind, detail):
    actions = [act(1.0, kind, detail)] + dead_line_actions(200.0)
    assert audit_call(record(actions=actions)).premature


def test_a_key_during_the_goodbye_that_was_ignored_counts():
    # issue 11 bug A: the goodbye was not barge-in, the key was not even on the record; when it is, it counts
    actions = dead_line_actions(45.0)
    actions.insert(-1, act(44.5, "input", "key 1"))
    assert audit_call(record(actions=actions)).premature


def test_seed_cas_c_rules_without_any_sign_of_life():
    no_warning = [act(0.0, "prompt", "greeting"), act(40.0, "hangup", "ligne morte")]
    assert "without the final warning" in audit_call(record(actions=no_warning)).reasons[0]
    early = audit_call(record(actions=dead_line_actions(15.0)))
    assert any("before the seed's 20s" in r for r in early.reasons)


# -- system hang-ups after the IVR: the desk ---------------------------------------------------------

def handed_to_agent(*tail: dict) -> dict:
    actions = [act(0.0, "prompt", "greeting"), act(4.0, "agent", "fr: parole"), act(4.5, "agent_queue", "fr: parole"),
               act(6.0, "agent_connected", "2001 bridge b1"), *tail]
    return record(actions=actions, audio=[seg(1.0, 4.0, "speech")], by="agent", call_type="parole")


def test_an_agent_leg_that_drops_and_takes_the_caller_with_it_is_a_system_hang_up():
    # issue 11 bug F: the agent's phone dropped, the desk hung the caller up
    call = handed_to_agent(act(30.0, "leg_ended", "agent"), act(30.0, "ended_by_agent", "agent"),
                           act(30.1, "hangup", "agent hung up"))
    result = audit_call(call)
    assert result.system_hangups == [(30.1, "hangup: agent hung up")]
    assert result.premature


def test_the_firm_closing_is_the_agent_s_decision_not_a_system_hang_up():
    call = handed_to_agent(act(30.0, "feature", "close (keypad:agent)"), act(30.0, "closing", "closing_firm"),
                           act(40.0, "hangup", "closing"), act(40.0, "closing_done", "call ended after the closing prompt"))
    result = audit_call(call)
    assert result.system_hangups == [] and not result.premature


def test_an_emergency_makes_any_system_hang_up_premature_even_without_a_sign_of_life():
    actions = [act(0.0, "prompt", "greeting"), act(20.0, "emergency_latched", "agent *9"),
               act(25.0, "emergency_bridged", "b2 attempt 1"), act(60.0, "hangup", "the call ended")]
    result = audit_call(record(actions=actions, by="agent", call_type="urgence"))
    assert result.emergency_at == 20.0
    assert any("during an emergency" in r for r in result.reasons)


def test_the_caller_hanging_up_is_never_premature():
    call = record(actions=[act(0.0, "prompt", "greeting"), act(1.0, "input", "key 1")], by="caller", duration=8.0)
    assert system_hangups(call) == [] and not audit_call(call).premature


def test_an_interrupted_call_without_an_end_is_not_a_hang_up():
    call = record(actions=[act(0.0, "prompt", "greeting")], by=None, duration=None)
    call["duration"] = None
    assert not audit_call(call).hung_up_by_system


def test_signs_are_in_time_order():
    call = record(actions=[act(9.0, "input", "key 1")], audio=[seg(2.0, 3.0, "taps"), seg(12.0, 13.0, "speech")])
    assert [at for at, _ in signs_of_life(call)] == [2.0, 9.0, 12.0]


# -- independence from the guard ----------------------------------------------------------------------

def test_the_audit_does_not_read_the_guard_nor_its_sign_of_life_set():
    tree = ast.parse(Path(audit_module.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            imported |= {f"{node.module}.{alias.name}" for alias in node.names}
    assert not [m for m in imported if m.startswith("callflow.flows") or m.startswith("callflow.agents")], imported
    assert not [m for m in imported if "SIGNS_OF_LIFE" in m or "safety" in m], imported
    assert not [m for m in imported if m.startswith("callflow.core")], imported  # its own vocabulary only


# -- the product's records, through the real store ---------------------------------------------------

async def test_kpi_over_the_stored_records_of_real_flow_runs(store_url):
    store = await Records.open(store_url)  # SQLite and PostgreSQL
    scripts = {
        "dead": CallerScript(),  # a dead line: the seed's cas C hang-up, not premature
        "speaks": CallerScript(sounds=[Sound(0, S.SILENCE), Sound(3, S.SPEECH)]),
        "keys": CallerScript(sounds=[Sound(0, S.BREATHING)], replies={"q_hears": [press("1")]}, hangs_up_at=60),
    }
    for call_id, script in scripts.items():
        fake = FakeCall(script, call_id=call_id)
        fake.deps.recorder = store
        await fake.run()
    calls = await store.calls_with_details()
    k = await kpis(store)
    await store.close()
    dead = audit_call(next(c for c in calls if c["call_id"] == "dead"))
    assert dead.hung_up_by_system and not dead.premature
    assert k.premature_all_calls == 0, k.premature_reasons


async def test_the_product_s_own_record_of_bug_b_is_caught(store_url):
    """Breathes from 2 s to 30 s, then quiet (a caller who faints), through the real flow and store.

    Whatever the guard decides, a system hang-up of this caller must read as premature. On main the
    guard hangs this caller up (issue 11 bug B), so this exercises the audit on the product's own record.
    """
    store = await Records.open(store_url)  # SQLite and PostgreSQL
    fake = FakeCall(CallerScript(sounds=[Sound(0, S.SILENCE), Sound(2, S.BREATHING), Sound(30, S.SILENCE)]),
                    call_id="bug-b")
    fake.deps.recorder = store
    await fake.run()
    call = await store.get_call("bug-b")
    await store.close()
    result = audit_call(call)
    assert any(what == "breathing" for _, what in result.signs_of_life)
    assert result.premature or not result.hung_up_by_system, result
