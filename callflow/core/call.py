"""One call, one state: what the system knows about a caller, whoever handles them now.

Before this module a call's state was spread over a flow object, the desk's live
call, an escalation, the emergency bridge's dict and a process-wide latch set.
`Call` is the one object they all read and write; `CallState` is its explicit
state machine. Every change is pushed to `CallRegistry`'s sinks: the store (the
`call_state` table) and the caller's channel (variables CALLFLOW_STATE,
CALLFLOW_EMERGENCY…, as wazo-calld keeps its call state in Asterisk), so that a
restarted controller rebuilds the call from Asterisk and the store.

Pure: no sockets, no SQL. Sinks are plain async callables given by the wiring.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callflow.core.channel import Caller, Channel

log = logging.getLogger(__name__)


class CallState(str, enum.Enum):
    IVR = "ivr"  # greeting, audio check (seed 000 phases 1–2)
    LISTENING = "listening"  # a case is being listened to (phase 3)
    QUESTIONNAIRE = "questionnaire"  # keypad / taps questions
    HANDOFF = "handoff"  # SMS / email / callback promised; the caller may still be there
    WAITING_AGENT = "waiting_agent"  # on hold, agents being rung
    WITH_AGENT = "with_agent"  # bridged with an agent (or the supervisor)
    ESCALATING = "escalating"  # the supervisor is being brought in
    EMERGENCY = "emergency"  # the emergency line is being called or is in the call
    ENDED = "ended"


S = CallState
#: Allowed moves. Any state may end (the caller hangs up at any time); nothing leaves ENDED.
#: Once a call is an emergency, the `emergency` flag stays: states after it only say who is with the caller.
TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    S.IVR: frozenset({S.LISTENING, S.QUESTIONNAIRE, S.HANDOFF, S.WAITING_AGENT, S.EMERGENCY}),
    S.LISTENING: frozenset({S.IVR, S.QUESTIONNAIRE, S.HANDOFF, S.WAITING_AGENT, S.EMERGENCY}),
    S.QUESTIONNAIRE: frozenset({S.LISTENING, S.HANDOFF, S.WAITING_AGENT, S.EMERGENCY}),
    S.HANDOFF: frozenset({S.LISTENING, S.QUESTIONNAIRE, S.WAITING_AGENT, S.EMERGENCY}),
    S.WAITING_AGENT: frozenset({S.WITH_AGENT, S.EMERGENCY}),
    S.WITH_AGENT: frozenset({S.WAITING_AGENT, S.ESCALATING, S.EMERGENCY}),
    S.ESCALATING: frozenset({S.WITH_AGENT, S.WAITING_AGENT, S.EMERGENCY}),
    S.EMERGENCY: frozenset({S.WAITING_AGENT, S.WITH_AGENT}),
    S.ENDED: frozenset(),
}
for _state in CallState:
    if _state is not S.ENDED:
        TRANSITIONS[_state] = TRANSITIONS[_state] | {S.ENDED}

#: States where the caller is still with the automaton (a restart sends them to a person, urgent).
IN_IVR = frozenset({S.IVR, S.LISTENING, S.QUESTIONNAIRE, S.HANDOFF})


class BadTransition(RuntimeError):
    pass


@dataclass
class Call:
    """Everything that decides what may happen to one caller."""

    call_id: str
    channel_id: str | None = None  # the caller's channel (Asterisk)
    number: str | None = None
    state: CallState = CallState.IVR
    emergency: bool = False  # latched for ever: « Ne JAMAIS raccrocher tant que les secours ne sont pas arrivés »
    #: when it latched (epoch s): the 30 s before a person takes the caller count from here, across a restart
    emergency_since: float | None = None
    urgent: bool = False
    summary: str = ""  # the diagnosis so far, shown to whoever takes the caller
    first_sign_of_life: float | None = None  # seconds since answer; never forgotten
    last_sign_of_life: float | None = None
    final_warning_at: float | None = None  # cas C « je vais raccrocher dans 10 secondes » spoken to its end
    bridge_id: str | None = None
    legs: dict[str, str] = field(default_factory=dict)  # role (agent, supervisor, emergency) → channel id
    #: the media path the caller is on now: "" (in Stasis, or a snoop fork beside it) or "audiosocket"
    #: (out of Stasis in the [callflow-listen] context, back through Stasis(callflow,back) or the fail-safe)
    media: str = ""
    updated_at: float = field(default_factory=time.time)
    history: list[tuple[CallState, CallState, str]] = field(default_factory=list)
    # -- what this process holds of the live call: never written out (a restart attaches a new channel) --
    channel: "Channel | None" = field(default=None, repr=False, compare=False)  # the caller's leg, as flows see it
    caller: "Caller | None" = field(default=None, repr=False, compare=False)  # who calls, as Asterisk told us
    args: list[str] = field(default_factory=list, repr=False, compare=False)  # Stasis args after the app name
    task: "asyncio.Task[None] | None" = field(default=None, repr=False, compare=False)  # the flow running it here
    _registry: "CallRegistry | None" = field(default=None, repr=False, compare=False)

    def attach(self, channel: "Channel", *, args: list[str] | None = None) -> "Call":
        """The caller's live channel (a new call, or a call taken back after a restart)."""
        self.channel = channel
        self.caller = channel.caller
        if self.channel_id is None:
            self.channel_id = channel.id
        if self.number is None:
            self.number = channel.caller.number
        if args is not None:
            self.args = list(args)
        return self

    def detach(self) -> None:
        """The flow that held the channel is over: let it go (the Call may outlive it — a write still queued,
        an adopted conversation — and must not keep the channel, its fork and their callbacks alive)."""
        self.channel = None
        self.task = None

    # -- the state machine ----------------------------------------------------------------
    def move(self, new: CallState, why: str = "") -> None:
        """Go to `new` (a no-op when already there); BadTransition for a move the machine forbids."""
        if new is self.state:
            return
        if new not in TRANSITIONS[self.state]:
            raise BadTransition(f"call {self.call_id}: {self.state.value} → {new.value} ({why})")
        self.history.append((self.state, new, why))
        self.state = new
        self._changed()

    def end(self, why: str = "") -> None:
        self.move(CallState.ENDED, why)

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    # -- what the call showed ------------------------------------------------------------------
    def sign_of_life(self, at: float) -> None:
        """Speech, breathing, a tap, a key, a level change: somebody is there (never forgotten)."""
        first = self.first_sign_of_life is None
        if first:
            self.first_sign_of_life = at
        self.last_sign_of_life = at if self.last_sign_of_life is None else max(self.last_sign_of_life, at)
        self.final_warning_at = None  # a sign of life cancels cas C's countdown
        if first:
            self._changed()

    @property
    def showed_life(self) -> bool:
        return self.first_sign_of_life is not None

    def latch_emergency(self, why: str = "") -> None:
        if not self.emergency:
            self.emergency = True
            self.emergency_since = time.time()
            self.urgent = True
            if self.state is not CallState.ENDED and self.state is not CallState.EMERGENCY:
                self.move(CallState.EMERGENCY, why or "emergency")
            else:
                self._changed()

    def mark_urgent(self, summary: str | None = None) -> None:
        changed = not self.urgent or (summary is not None and summary != self.summary)
        self.urgent = True
        if summary is not None:
            self.summary = summary
        if changed:
            self._changed()

    def diagnose(self, summary: str) -> None:
        if summary != self.summary:
            self.summary = summary
            self._changed()

    def set_bridge(self, bridge_id: str | None) -> None:
        if bridge_id != self.bridge_id:
            self.bridge_id = bridge_id
            self._changed()

    def set_leg(self, role: str, channel_id: str | None) -> None:
        if channel_id is None:
            if self.legs.pop(role, None) is not None:
                self._changed()
        elif self.legs.get(role) != channel_id:
            self.legs[role] = channel_id
            self._changed()

    def set_media(self, path: str) -> None:
        if path != self.media:
            self.media = path
            self._changed()

    # -- durable copies ------------------------------------------------------------------------
    def snapshot(self) -> dict:
        return {
            "call_id": self.call_id, "channel_id": self.channel_id, "number": self.number,
            "state": self.state.value, "emergency": self.emergency, "urgent": self.urgent,
            "summary": self.summary, "first_sign_of_life": self.first_sign_of_life,
            "bridge_id": self.bridge_id, "legs": dict(self.legs), "updated_at": self.updated_at,
            "media": self.media, "emergency_since": self.emergency_since,
        }

    @classmethod
    def from_snapshot(cls, data: dict) -> "Call":
        return cls(
            call_id=data["call_id"], channel_id=data.get("channel_id"), number=data.get("number"),
            state=CallState(data.get("state") or "ivr"), emergency=bool(data.get("emergency")),
            urgent=bool(data.get("urgent")), summary=data.get("summary") or "",
            first_sign_of_life=data.get("first_sign_of_life"), bridge_id=data.get("bridge_id"),
            legs=dict(data.get("legs") or {}), media=data.get("media") or "",
            emergency_since=data.get("emergency_since"),
        )

    def channel_vars(self) -> dict[str, str]:
        """The copy kept on the caller's channel (survives the controller; read back after a restart)."""
        return {
            "CALLFLOW_CALL": self.call_id,
            "CALLFLOW_STATE": self.state.value,
            "CALLFLOW_EMERGENCY": "1" if self.emergency else "0",
            # the store keeps no copy of it: this one lives exactly as long as the caller's channel
            "CALLFLOW_EMERGENCY_SINCE": f"{self.emergency_since:.0f}" if self.emergency_since else "",
            "CALLFLOW_URGENT": "1" if self.urgent else "0",
            "CALLFLOW_ALIVE": "1" if self.showed_life else "0",
            "CALLFLOW_BRIDGE": self.bridge_id or "",
        }

    def _changed(self) -> None:
        self.updated_at = time.time()
        if self._registry is not None:
            self._registry.changed(self)


Sink = Callable[[Call], Awaitable[None]]


class CallRegistry:
    """The calls this process handles, and where their state is written through.

    Writes go through one ordered queue per registry so a slow store never blocks a
    flow and two changes are never written out of order. A call already waiting in the queue
    is not queued again: its write takes the call's state as it is then, so the queue holds
    at most one entry per call however fast states change (a queue of every change fell
    behind under 50 calls at once). `flush()` waits for what was queued before it.
    """

    #: calls written at once; a batch never holds one call twice, and the next starts when it is done,
    #: so one call's writes keep their order
    BATCH = 32

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self.sinks: list[Sink] = []
        self._pending: asyncio.Queue[tuple[int, Call]] | None = None
        self._writer: asyncio.Task | None = None
        self._queued = 0  # changes queued so far (their order numbers)
        self._written = 0  # the last one written
        self._flushers: list[tuple[int, asyncio.Future[None]]] = []
        self._queued_calls: set[str] = set()  # in the queue, not taken by the writer yet
        self.draining = False  # SIGTERM: no new calls

    def add_sink(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def get(self, call_id: str) -> Call | None:
        return self.calls.get(call_id)

    def open(self, call_id: str, *, channel: "Channel | None" = None, args: list[str] | None = None, **fields) -> Call:
        """The call `call_id` (created with `fields` if new); `channel` attaches the caller's live leg."""
        call = self.calls.get(call_id)
        if call is None:
            call = Call(call_id=call_id, **fields)
            if channel is not None:
                call.attach(channel, args=args)
            call._registry = self
            self.calls[call_id] = call
            self.changed(call)
        elif channel is not None:
            call.attach(channel, args=args)
        return call

    def join(self, call: Call) -> Call:
        """This registry's one object for `call`'s id: `call` itself (registered now if it was not), or the
        one already registered, given `call`'s live channel (the newest leg of the caller wins)."""
        known = self.calls.get(call.call_id)
        if known is None:
            call._registry = self
            self.calls[call.call_id] = call
            self.changed(call)
            return call
        if known is not call and call.channel is not None and known.channel is not call.channel:
            known.attach(call.channel, args=call.args)
        return known

    def adopt(self, call: Call) -> Call:
        """A call rebuilt from the store / Asterisk after a restart."""
        call._registry = self
        self.calls[call.call_id] = call
        return call

    def forget(self, call_id: str) -> None:
        """Not handled here any more. A write still queued for it keeps the `Call` (not its channel or
        task) until it is written: nobody needs to wait for that."""
        call = self.calls.pop(call_id, None)
        if call is not None:
            call.detach()

    def emergencies(self) -> frozenset[str]:
        return frozenset(cid for cid, c in self.calls.items() if c.emergency)

    def changed(self, call: Call) -> None:
        if not self.sinks:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a sync test): nothing to write to
        if self._pending is None:
            self._pending = asyncio.Queue()
        if call.call_id not in self._queued_calls:  # else its queued write will carry this change too
            self._queued_calls.add(call.call_id)
            self._queued += 1
            self._pending.put_nowait((self._queued, call))
        self._start_writer(loop)

    def _start_writer(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_all(), name="call-state-writer")

    async def _write_all(self) -> None:
        assert self._pending is not None
        while not self._pending.empty():
            batch: list[tuple[int, Call]] = []
            while not self._pending.empty() and len(batch) < self.BATCH:
                seq, call = self._pending.get_nowait()
                self._queued_calls.discard(call.call_id)  # a change from now on is queued again
                batch.append((seq, call))
            try:
                # distinct calls (one queue entry per call), written side by side: one call after the other
                # made the writer the bottleneck (a few REST requests and a store write each), and every
                # call waiting on it lagged — its mirror on the channel, and whoever flushed
                await asyncio.gather(*(self._write(call) for _, call in batch))
            finally:  # written, failed or cancelled (a stop): nobody may wait for it for ever
                self._written = batch[-1][0]
                for _ in batch:
                    self._pending.task_done()
                self._wake_flushers()

    async def _write(self, call: Call) -> None:
        for sink in self.sinks:  # in order for one call: the store, then the channel's copy
            try:
                await sink(call)
            except Exception:  # a failing copy must never break the call itself
                log.exception("call state write failed", extra={"call": call.call_id})

    def _wake_flushers(self) -> None:
        waiting = []
        for target, done in self._flushers:
            if self._written >= target:
                if not done.done():
                    done.set_result(None)
            else:
                waiting.append((target, done))
        self._flushers = waiting

    async def flush(self) -> None:
        """Wait until every change queued before now is written — not the ones queued after: with
        calls coming all the time the queue is never empty, and waiting for it to be (as this did)
        kept every ended call's task, channel and state in memory (the 60-minute soak: ~12 KB a call)."""
        if self._pending is None or self._written >= self._queued:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._flushers.append((self._queued, done))
        self._start_writer(loop)  # a writer cancelled with changes left (a stop) would leave us waiting
        await done


#: The registry of this process (the controller, the desk and the flows share it).
REGISTRY = CallRegistry()
