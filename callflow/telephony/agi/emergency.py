"""Cas F for a FastAGI caller: the emergency line placed by the dialplan (dialplans/agi.conf).

A FastAGI caller is not in our ARI app, so callflow cannot bridge it with a second
line itself. The dialplan can, with the same steps as `flows/emergency.py`: the
call is latched, the operator hears the same briefing (the same prompt files,
played by Dial's U() subroutine on the operator's leg before the bridge), busy or
no answer means « Les secours arrivent… » and another attempt, with no limit while
the caller is there, and nothing in that context ever hangs the caller up; when
the operator hangs up first, the caller goes to the agents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from callflow.agents import latch
from callflow.agents.config import EmergencyConfig
from callflow.core.errors import ConfigError
from callflow.core.recorder import CallRecorder
from callflow.flows.emergency import announcement

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
        # __: inherited by the operator's leg, where Dial's U() subroutine plays the briefing
        await channel.set_variable("__CALLFLOW_EMERGENCY_BRIEF", brief)
        await channel.set_variable("CALLFLOW_EMERGENCY_DEST", self.config.destination)
        await channel.set_variable("CALLFLOW_EMERGENCY_RING", str(int(self.config.ring_timeout)))
        await channel.set_variable("CALLFLOW_EMERGENCY_SPACING", str(int(self.config.retry_spacing)))
        await self.recorder.note(call_id, "emergency_dial", f"dialplan {CONTEXT} {self.config.destination}", at=at)
        await channel.continue_in_dialplan(CONTEXT, "s", 1)
