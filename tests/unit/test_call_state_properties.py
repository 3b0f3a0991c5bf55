"""Stateful property tests (hypothesis) of the call's state machine and the one guard.

No sequence of events leads to a system hang-up after a sign of life, to an
emergency caller hung up, moved out of the conversation, separated from the
emergency line or left alone, or out of ENDED.
"""

from __future__ import annotations

import asyncio

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from callflow.core.call import TRANSITIONS, BadTransition, Call, CallRegistry, CallState
from callflow.core.channel import DigitInput
from callflow.core.guard import By, DeadLineRule, Guard, bridge_refusal, leg_refusal, listen_refusal, move_refusal

RULE = DeadLineRule(total_wait=30.0, final_countdown=10.0)


class Line:
    """The caller's leg as the guard sees it: up or not, keys waiting."""

    def __init__(self) -> None:
        self.id = "caller"
        self.up = True
        self.keys: list[DigitInput] = []
        self.hung_up_by_us = False
        self.moved = False

    @property
    def is_up(self) -> bool:
        return self.up

    async def next_input(self, timeout: float, *, accept_taps: bool = True):
        return self.keys.pop(0) if self.keys else None

    async def hang_up(self, reason: str) -> None:
        self.hung_up_by_us = True
        self.up = False

    async def continue_in_dialplan(self, context: str, extension: str = "s", priority: int = 1) -> None:
        self.moved = True
        self.up = False


class Bridges:
    def __init__(self) -> None:
        self.members: dict[str, set[str]] = {}

    async def destroy(self, bridge_id: str) -> None:
        self.members.pop(bridge_id, None)

    async def remove(self, bridge_id: str, *channels) -> None:
        for c in channels:
            self.members.get(bridge_id, set()).discard(c.id)


class CallMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.registry = CallRegistry()
        self.call = self.registry.open("p-1", channel_id="caller")
        self.now = 0.0
        self.line = Line()
        self.bridges = Bridges()
        self.notes: list[tuple[str, str]] = []
        self.guard = Guard(self.call, self._note, lambda: self.now)
        self.ever_alive = False
        self.ever_emergency = False

    async def _note(self, kind: str, detail: str) -> None:
        self.notes.append((kind, detail))

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.loop.close()

    # -- what happens on the line --------------------------------------------------------------
    @rule(seconds=st.sampled_from([0.1, 1.0, 5.0, 10.0, 30.0, 60.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @precondition(lambda self: self.line.up)
    @rule()
    def sign_of_life(self) -> None:
        self.call.sign_of_life(self.now)
        self.ever_alive = True

    @precondition(lambda self: self.line.up)
    @rule(digit=st.sampled_from("0123456789*#"))
    def key_during_a_prompt(self, digit: str) -> None:
        self.line.keys.append(DigitInput(digit, self.now))  # not seen by the flow yet: only queued

    @precondition(lambda self: self.line.up)
    @rule()
    def final_warning_spoken(self) -> None:
        self.call.final_warning_at = self.now

    @precondition(lambda self: self.line.up)
    @rule()
    def emergency(self) -> None:
        self.call.latch_emergency("test")
        self.ever_emergency = True

    @precondition(lambda self: self.line.up and self.call.emergency)
    @rule()
    def emergency_line_bridged(self) -> None:
        self.bridges.members["b-1"] = {"caller", "leg-e"}
        self.call.set_bridge("b-1")
        self.call.set_leg("emergency", "leg-e")

    @rule(to=st.sampled_from(list(CallState)))
    def state_moves(self, to: CallState) -> None:
        target = to
        before = self.call.state
        try:
            self.call.move(target, "test")
        except BadTransition:
            assert target not in TRANSITIONS[before]
        else:
            assert target is before or target in TRANSITIONS[before]

    @precondition(lambda self: self.line.up)
    @rule()
    def caller_hangs_up(self) -> None:
        self.line.up = False

    # -- what the system tries ---------------------------------------------------------------------
    @rule()
    def system_tries_to_hang_up(self) -> None:
        keys_waiting = bool(self.line.keys)
        was_up = self.line.up
        done = self.run(self.guard.hang_up_caller(self.line, "dead line", by=By.SYSTEM, rule=RULE))
        if done:
            assert was_up and not keys_waiting
            assert not self.ever_alive, "a system hang-up after a sign of life"
            assert not self.ever_emergency, "an emergency caller hung up"
            assert self.call.final_warning_at is not None and self.now - self.call.final_warning_at >= RULE.final_countdown
            assert self.now >= RULE.total_wait
        if keys_waiting and was_up:
            self.ever_alive = True  # the guard itself took the key as a sign of life

    @rule()
    def person_tries_to_close(self) -> None:
        done = self.run(self.guard.hang_up_caller(self.line, "closing", by=By.PERSON))
        if done:
            assert not self.ever_emergency, "an emergency caller closed"

    @rule(in_conversation=st.booleans())
    def something_tries_to_move_the_caller(self, in_conversation: bool) -> None:
        refused = move_refusal(self.call, in_conversation=in_conversation)
        if self.ever_emergency and in_conversation:
            assert refused is not None

    @rule()
    def the_audiosocket_path_tries_to_take_the_caller_out_of_stasis(self) -> None:
        refused = listen_refusal(self.call)
        if self.ever_emergency or self.call.bridge_id or self.call.legs:
            assert refused is not None, "out of Stasis during an emergency, a conversation or a ringing leg"
        if self.call.state in (CallState.WAITING_AGENT, CallState.WITH_AGENT, CallState.ESCALATING, CallState.ENDED):
            assert refused is not None, f"out of Stasis while {self.call.state.value}"

    @rule()
    def something_tries_to_delete_the_bridge(self) -> None:
        had_line = "leg-e" in self.bridges.members.get("b-1", set())
        done = self.run(self.guard.destroy_bridge(self.bridges, "b-1", "test", caller_up=self.line.up))
        if done and had_line:
            assert not (self.ever_emergency and self.line.up), "emergency caller separated from the line"

    @rule()
    def something_tries_to_drop_the_emergency_leg(self) -> None:
        refused = leg_refusal(self.call, "emergency", caller_up=self.line.up)
        if self.ever_emergency and self.line.up:
            assert refused is not None

    # -- always -----------------------------------------------------------------------------------------
    @invariant()
    def signs_of_life_are_never_forgotten(self) -> None:
        if self.ever_alive:
            assert self.call.showed_life

    @invariant()
    def the_emergency_latch_never_opens(self) -> None:
        assert self.call.emergency == self.ever_emergency

    @invariant()
    def an_emergency_caller_is_never_hung_up_by_us(self) -> None:
        if self.ever_emergency:
            # only hang-ups after the latch count: one before it was allowed by the rules then
            assert not (self.line.hung_up_by_us and self.call.emergency and self.call.state is not CallState.ENDED)

    @invariant()
    def ended_is_final(self) -> None:
        if self.call.history and self.call.history[-1][1] is CallState.ENDED:
            assert self.call.state is CallState.ENDED

    @invariant()
    def snapshot_round_trips(self) -> None:
        again = Call.from_snapshot(self.call.snapshot())
        assert (again.state, again.emergency, again.urgent, again.showed_life) == (
            self.call.state, self.call.emergency, self.call.urgent, self.call.showed_life)


CallMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestCallMachine = CallMachine.TestCase


def test_listening_out_of_stasis_is_allowed_only_while_the_ivr_has_the_caller_alone():
    """Guard.listen_out_of_stasis's rule (docs/safety.md rule 23) on each state, one by one."""
    call = Call(call_id="c", channel_id="c")
    assert listen_refusal(call) is None and listen_refusal(None) is None
    call.move(CallState.LISTENING, "listen")
    assert listen_refusal(call) is None
    call.set_leg("agent", "leg-1")
    assert "leg" in listen_refusal(call)
    call.set_leg("agent", None)
    call.set_bridge("callflow-c")
    assert "bridge" in listen_refusal(call)
    call.set_bridge(None)
    call.latch_emergency("cas F")
    assert "emergency" in listen_refusal(call)


def test_the_emergency_latch_keeps_when_it_latched_on_the_channel_and_in_the_snapshot():
    call = Call(call_id="c-since")
    assert call.channel_vars()["CALLFLOW_EMERGENCY_SINCE"] == ""
    call.latch_emergency("cas F")
    since = call.emergency_since
    assert since is not None and call.channel_vars()["CALLFLOW_EMERGENCY_SINCE"] == f"{since:.0f}"
    call.latch_emergency("again")  # latched once: the first time stays
    assert call.emergency_since == since
    assert Call.from_snapshot(call.snapshot()).emergency_since == since
