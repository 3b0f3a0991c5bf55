"""Cas F for a FastAGI caller: the emergency line placed by the dialplan (dialplans/agi.conf).

A FastAGI caller is not in our ARI app, so callflow cannot bridge it with a second
line itself. The dialplan can, with the same rules as `agents/emergency.py`
(docs/safety.md, rules 7-9): the call is latched; until an operator answers the
caller hears « J'appelle les secours… », never « les secours arrivent »; the line
is tried from a leg of its own, again and again while the caller is there; after
`emergency.person_after` seconds without an operator the agents and the
supervisor ring, the caller marked urgent, and the line is still tried; the
operator hears the same briefing (the same prompt files) before joining the
caller, or the caller and the person with them; nothing there hangs the caller up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from callflow.agents import latch
from callflow.agents.config import EmergencyConfig
from callflow.agents.emergency import announcement
from callflow.core.call import REGISTRY
from callflow.core.errors import ConfigError
from callflow.core.guard import Guard
from callflow.core.recorder import CallRecorder

log = logging.getLogger(__name__)

CONTEXT = "hotline-emergency"


class DialplanEmergencyLine:
    """callflow.core.handoff.EmergencyLine for channels the dialplan bridges (FastAGI)."""

    def __init__(self, config: EmergencyConfig, *, recorder: CallRecorder, channels: Callable[[str], object | None],
                 language: str = "fr"):
        self.config = config
        self.recorder = recorder
        self.channels = channels
        self.language = language

    async def start(self, call_id: str, *, caller_number: str | None, situation: str, answers: dict[str, str]) -> None:
        latch.latch(call_id)
        channel = self.channels(call_id)
        at = channel.now() if channel is not None else 0.0
        await self.recorder.note(call_id, "emergency_latched", situation, at=at)
        if channel is None or not channel.is_up:
            log.error("emergency for a call that is gone", extra={"call": call_id})
            return
        try:
            self.config.check_destination(self.config.destination)
        except ConfigError as exc:
            await self.recorder.note(call_id, "emergency_refused", str(exc), at=at)
            raise
        prompts = announcement(caller_number, address_known=False, answers=answers, situation=situation,
                               by_agent=False)
        brief = "&".join(f"callflow/{self.language}/{p}" for p in prompts)
        # the dialplan hands these to the line's own leg and to the operator's (Originate's v())
        await channel.set_variable("CALLFLOW_EMERGENCY_BRIEF", brief)
        await channel.set_variable("CALLFLOW_EMERGENCY_DEST", self.config.destination)
        await channel.set_variable("CALLFLOW_EMERGENCY_RING", str(int(self.config.ring_timeout)))
        await channel.set_variable("CALLFLOW_EMERGENCY_SPACING", str(int(self.config.retry_spacing)))
        await channel.set_variable("CALLFLOW_EMERGENCY_PERSON_AFTER", str(int(self.config.person_after)))
        await self.recorder.note(call_id, "emergency_dial", f"dialplan {CONTEXT} {self.config.destination}", at=at)

        async def note(kind: str, detail: str) -> None:
            await self.recorder.note(call_id, kind, detail, at=channel.now())

        # a move of the caller: through the one guard (the emergency context never hangs the caller up)
        await Guard(REGISTRY.open(call_id), note, channel.now).move_caller(
            channel, CONTEXT, "s", 1, reason="emergency line placed by the dialplan")
