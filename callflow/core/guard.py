"""The one place that decides whether the system may end or move a caller.

Seed 000: « Ne pas raccrocher prématurément (le client a un besoin réel) »;
cas F: « Ne JAMAIS raccrocher tant que les secours ne sont pas arrivés ».

Every hang-up of a caller, every bridge deletion, every removal of a caller from
a bridge, every move of a caller's channel (continue into the dialplan, including
the AudioSocket path's listen context: `Guard.listen_out_of_stasis`) and every
hang-up of a leg that keeps a caller company goes through `Guard` (channels the
flows and the desk hold) or `LineGuard` (bare channel ids the controller sees
after a restart). tests/unit/test_guard_scan.py checks the whole package for
any other path.

The rules (docs/safety.md lists each with the test that proves it):

1. Emergency: from the latch on, the caller is never hung up, never taken out
   of the bridge where the emergency line is, and the emergency leg is never
   hung up by us while the caller is there. Moving an emergency caller is only
   allowed when they are alone (to a person).
2. The system (as opposed to a person's deliberate action) may hang up only a
   line that never showed a sign of life, after the seed's cas C timings and
   the final warning's countdown, with no key or tap waiting.
3. A person's deliberate action (an agent's closing, the agent ending the call
   after a transfer) may end the call — except in an emergency.

Pure: it talks to the Channel protocol and to small protocols for bridges and
bare ids, never to sockets or SQL.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from callflow.core.call import Call, CallState
from callflow.core.channel import CallerHungUp, Channel

log = logging.getLogger(__name__)

Notes = Callable[[str, str], Awaitable[None]]


class By(str, enum.Enum):
    SYSTEM = "system"  # the automaton decided (cas C)
    PERSON = "person"  # an agent's deliberate action (closing code, ending the call)


@dataclass(frozen=True)
class DeadLineRule:
    """Cas C: « Hotliner attend 20–30 secondes au total », then « raccrocher dans 10 secondes »."""

    total_wait: float = 30.0
    final_countdown: float = 10.0


# -- the decisions (pure functions of the call) --------------------------------------------
def hangup_refusal(call: Call, *, by: By, now: float, rule: DeadLineRule | None = None,
                   pending_input: bool = False) -> str | None:
    """Why hanging the caller up now would break a rule; None when it is allowed."""
    if call.emergency:
        return "emergency: never hang up until help is there"
    if pending_input:
        return "a key or tap is waiting: the caller is there"
    if by is By.PERSON:
        return None
    if call.showed_life:
        return f"sign of life at {call.first_sign_of_life:.1f}s: a person takes the call"
    rule = rule or DeadLineRule()
    if call.final_warning_at is None:
        return "no final warning spoken"
    if now - call.final_warning_at < rule.final_countdown:
        return f"countdown not over ({now - call.final_warning_at:.1f}s < {rule.final_countdown:.0f}s)"
    if now < rule.total_wait:
        return f"waited {now:.1f}s < {rule.total_wait:.0f}s"
    return None


def move_refusal(call: Call | None, *, in_conversation: bool) -> str | None:
    """Why moving the caller (continue into the dialplan) would break a rule."""
    if call is not None and call.emergency and in_conversation:
        return "emergency: the caller stays in the conversation with the emergency line"
    return None


def listen_refusal(call: Call | None) -> str | None:
    """Why sending the caller out of our app to be listened to (media.path "audiosocket": `continue` into
    the listen context, which comes back to Stasis(callflow,back)) would break a rule. Out of Stasis, ARI
    can neither bridge the caller nor take them to a person until they come back: never during an
    emergency, never while a person or a line is with the caller or ringing for them, never once the
    call is over."""
    if call is None:
        return None
    if call.emergency:
        return "emergency: the caller stays where the emergency line and the people can reach them"
    if call.ended:
        return "the call is over"
    if call.bridge_id is not None:
        return f"in the bridge {call.bridge_id}: leaving Stasis would take the caller out of the conversation"
    if in_person_hands(call.state) or call.state is CallState.WAITING_AGENT:
        return f"{call.state.value}: a person is with the caller or being rung for them"
    if call.legs:
        return f"a leg ({', '.join(sorted(call.legs))}) is with the caller or ringing for them"
    return None


def bridge_refusal(call: Call | None, bridge_id: str, *, caller_up: bool) -> str | None:
    """Why deleting the bridge or taking the caller out of it would break a rule."""
    if call is not None and call.emergency and caller_up and "emergency" in call.legs and call.bridge_id == bridge_id:
        return "emergency: the caller stays bridged with the emergency line"
    return None


def leg_refusal(call: Call | None, role: str, *, caller_up: bool) -> str | None:
    """Why hanging up a leg (agent, supervisor, emergency line) would break a rule."""
    if call is not None and call.emergency and caller_up and role == "emergency":
        return "emergency: the line stays with the caller"
    return None


# -- the actions ------------------------------------------------------------------------------
class Bridges(Protocol):
    async def destroy(self, bridge_id: str) -> None: ...

    async def remove(self, bridge_id: str, *channels: Channel) -> None: ...


class Guard:
    """One call's guard: the only code that hangs up, moves or un-bridges this caller."""

    def __init__(self, call: Call, notes: Notes, now: Callable[[], float]) -> None:
        self.call = call
        self._notes = notes
        self._now = now  # seconds since the call was answered

    async def _note(self, kind: str, detail: str) -> None:
        try:
            await self._notes(kind, detail)
        except Exception:
            log.exception("guard: record note failed", extra={"call": self.call.call_id})

    async def hang_up_caller(self, caller: Channel, reason: str, *, by: By,
                             rule: DeadLineRule | None = None) -> bool:
        """Hang the caller up if the rules allow it; otherwise record the refusal. True when hung up."""
        # a person's deliberate end is theirs to make; the system's must not ignore a waiting key
        pending = by is By.SYSTEM and await self._pending_input(caller)
        why_not = hangup_refusal(self.call, by=by, now=self._now(), rule=rule, pending_input=pending)
        if why_not is not None:
            await self._note("hangup_refused", f"{reason}: {why_not}")
            return False
        if not caller.is_up:
            return False
        await self._note("hangup", reason)
        try:
            await caller.hang_up(reason)
        except CallerHungUp:
            pass
        self.call.end(f"hung up by {by.value}: {reason}")
        return True

    async def _pending_input(self, caller: Channel) -> bool:
        """A key or tap already queued (pressed during a non-barge-in prompt): the caller is there."""
        if not caller.is_up:
            return False
        try:
            got = await caller.next_input(0)
        except CallerHungUp:
            return False
        if got is None:
            return False
        self.call.sign_of_life(self._now())
        detail = f"key {got.digit}" if hasattr(got, "digit") else f"taps {getattr(got, 'count', '?')}"
        await self._note("input", f"{detail} (before the hang-up)")
        return True

    async def move_caller(self, caller: Channel, context: str, extension: str = "s", priority: int = 1, *,
                          reason: str, in_conversation: bool = False) -> bool:
        """Continue the caller in the dialplan (the agents' queue…). The flow ends there."""
        why_not = move_refusal(self.call, in_conversation=in_conversation)
        if why_not is not None:
            await self._note("move_refused", f"{reason}: {why_not}")
            return False
        await self._note("moved", f"{context},{extension},{priority}: {reason}")
        await caller.continue_in_dialplan(context, extension, priority)
        return True

    async def listen_out_of_stasis(self, caller: Channel, context: str, *, reason: str = "listening") -> bool:
        """The AudioSocket path's one move: the caller out of Stasis into the listen context, which runs
        AudioSocket() to us and comes back to Stasis(callflow,back) (its fail-safe: the agents). Refused
        (and noted) wherever leaving Stasis is unsafe (`listen_refusal`); True when the caller was moved."""
        why_not = listen_refusal(self.call)
        if why_not is not None:
            await self._note("listen_refused", f"{context}: {reason}: {why_not}")
            return False
        await caller.continue_to_listen(context)
        return True

    async def destroy_bridge(self, bridges: Bridges, bridge_id: str, reason: str, *, caller_up: bool) -> bool:
        why_not = bridge_refusal(self.call, bridge_id, caller_up=caller_up)
        if why_not is not None:
            await self._note("bridge_kept", f"{reason}: {why_not}")
            return False
        await bridges.destroy(bridge_id)
        if self.call.bridge_id == bridge_id:
            self.call.set_bridge(None)
        return True

    async def remove_caller(self, bridges: Bridges, bridge_id: str, caller: Channel, reason: str) -> bool:
        why_not = bridge_refusal(self.call, bridge_id, caller_up=caller.is_up)
        if why_not is not None:
            await self._note("bridge_kept", f"{reason}: {why_not}")
            return False
        await bridges.remove(bridge_id, caller)
        return True

    async def remove_leg(self, bridges: Bridges, bridge_id: str, leg: Channel) -> None:
        """Take a person's leg (agent, supervisor) out of the call's bridge: never the caller's."""
        await bridges.remove(bridge_id, leg)

    async def drop_leg(self, leg: Channel | None, role: str, reason: str, *, caller_up: bool) -> bool:
        """Hang up a leg we placed (agent, supervisor, emergency line)."""
        if leg is None or not leg.is_up:
            return False
        why_not = leg_refusal(self.call, role, caller_up=caller_up)
        if why_not is not None:
            await self._note("hangup_refused", f"{role} leg, {reason}: {why_not}")
            return False
        try:
            await leg.hang_up(reason)
        except Exception:
            log.info("leg already gone", extra={"channel": getattr(leg, "id", "?")})
        self.call.set_leg(role, None)
        return True


async def drop_stray_leg(leg: Channel | None, reason: str) -> None:
    """A leg nobody needs any more (answered after its caller left): no caller to protect."""
    if leg is None or not leg.is_up:
        return
    try:
        await leg.hang_up(reason)
    except Exception:
        log.info("leg already gone", extra={"channel": getattr(leg, "id", "?")})


async def abandon_ringing_legs(caller: Channel) -> None:
    """Legs still ringing for a caller who is gone (agents, supervisor, the emergency line): nobody is
    there to take them; left ringing they outlive the call by up to their ring timeout."""
    if caller.is_up:
        return
    abandon = getattr(caller, "abandon_ringing_legs", None)  # adapters that can cancel a ringing leg
    if abandon is not None:
        await abandon()


# -- bare channel ids (the controller after a restart, before any flow holds the call) ----------
class LineActions(Protocol):
    """What the PBX adapter does on bare ids (telephony/ari/actions.py)."""

    async def hang_up(self, channel_id: str) -> None: ...

    async def continue_in_dialplan(self, channel_id: str, context: str, extension: str, priority: int) -> None: ...

    async def destroy_bridge(self, bridge_id: str) -> None: ...

    async def remove_from_bridge(self, bridge_id: str, channel_id: str) -> None: ...


class LineGuard:
    """The same rules for channels known only by id (reconcile, adopted bridges, stray legs)."""

    def __init__(self, actions: LineActions, lookup: Callable[[str], Call | None]) -> None:
        self.actions = actions
        self.lookup = lookup  # call id → Call (durable, rebuilt after a restart)

    async def move(self, channel_id: str, context: str, *, call_id: str | None = None, extension: str = "s",
                   priority: int = 1, in_conversation: bool = False) -> bool:
        call = self.lookup(call_id or channel_id)
        why_not = move_refusal(call, in_conversation=in_conversation)
        if why_not is not None:
            log.warning("move refused", extra={"channel": channel_id, "why": why_not})
            return False
        await self.actions.continue_in_dialplan(channel_id, context, extension, priority)
        return True

    async def hang_up_leg(self, channel_id: str, *, call_id: str | None, role: str = "leg",
                          caller_up: bool = False) -> bool:
        """A leg we placed (leg-…), never a caller: refused for an emergency line whose caller is there."""
        call = self.lookup(call_id) if call_id else None
        why_not = leg_refusal(call, role, caller_up=caller_up)
        if why_not is not None:
            log.warning("leg hang-up refused", extra={"channel": channel_id, "why": why_not})
            return False
        await self.actions.hang_up(channel_id)
        return True

    async def hang_up_media(self, channel_id: str) -> None:
        """A media-fork channel (Snoop/, UnicastRTP/): not a person."""
        await self.actions.hang_up(channel_id)

    async def take_out(self, bridge_id: str, channel_id: str, *, call_id: str | None, members: list[str]) -> bool:
        """Take a caller out of a bridge (to hand them to someone else): never away from the emergency line."""
        call = self.lookup(call_id) if call_id else None
        if call is not None and call.emergency and "emergency" in call.legs and call.legs["emergency"] in members:
            log.warning("take-out refused: emergency conversation", extra={"bridge": bridge_id})
            return False
        await self.actions.remove_from_bridge(bridge_id, channel_id)
        return True

    async def destroy_bridge(self, bridge_id: str, *, call_id: str | None, members: list[str]) -> bool:
        call = self.lookup(call_id) if call_id else None
        if call is not None and call.emergency and call.channel_id in members and len(members) > 1:
            log.warning("bridge kept: emergency conversation", extra={"bridge": bridge_id})
            return False
        await self.actions.destroy_bridge(bridge_id)
        return True


def in_person_hands(state: CallState) -> bool:
    return state in (CallState.WITH_AGENT, CallState.ESCALATING, CallState.EMERGENCY)
