"""Handing a call to a human agent, with the diagnosis the flow made.

Seed 000: speech at any point, a caller who answers nothing on the keypad, a
foreign language (« Escalader vers un collègue multilingue ») all end with a
person. The real implementation (queues, screen-pop of the diagnosis) comes
later; until then `DialplanAgents` sends the call back to the dialplan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from callflow.core.call import Call


@dataclass(frozen=True)
class Diagnosis:
    """What the flow learnt before a person takes over (shown to the agent)."""

    summary: str  # one line, French, e.g. "respiration, pas de réponse au clavier"
    call_type: str | None = None  # callflow.core.recorder.CallType value
    cause: str | None = None  # callflow.core.recorder.Cause value
    answers: dict[str, str] = field(default_factory=dict)  # question id → answer
    urgent: bool = False  # distress heard: the agent should pick this one first


#: What `hand_to_agent` returns when the caller is still on the line and still the
#: flow's (a message was taken: seed 003): the flow keeps them company as after
#: any hand-off, it never hangs up on them.
CALLER_STILL_HERE = "caller_still_here"


class Agents(Protocol):
    async def hand_to_agent(self, call: "Call", diagnosis: Diagnosis, language: str) -> str | None:
        """Put the caller with an agent of the `language` group ("fr", "en", "es", "it", "multi").

        Returns once the call has left the flow (None; the flow does nothing after
        it), or CALLER_STILL_HERE when nobody could take the call and the caller's
        message was taken instead.
        """
        ...


class DialplanAgents:
    """Continue in the agents' dialplan context (routing.agents_via = "dialplan").

    For a PBX whose own queue takes the callers. The diagnosis does not travel
    with the call (the Channel has no way to set a variable): it is in the call
    record, keyed by call id.
    """

    def __init__(self, context: str = "agents", extension: str = "s") -> None:
        self.context = context
        self.extension = extension

    async def hand_to_agent(self, call: "Call", diagnosis: Diagnosis, language: str) -> None:
        from callflow.core.call import REGISTRY, CallState
        from callflow.core.guard import Guard

        state = REGISTRY.join(call)
        if diagnosis.urgent:
            state.mark_urgent(diagnosis.summary)

        async def no_notes(kind: str, detail: str) -> None:
            return None

        if await Guard(state, no_notes, lambda: 0.0).move_caller(call.channel, self.context, self.extension,
                                                                 reason="to the agents' dialplan"):
            try:
                state.move(CallState.WAITING_AGENT, "dialplan agents")
            except Exception:
                pass
