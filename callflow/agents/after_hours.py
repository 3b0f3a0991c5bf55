"""Seed 003 « Permanence téléphonique »: never miss a call, take the message, make sure it is answered.

The seed's promises, as the line keeps them:

* « ne manquer aucun appel » — out of hours (callflow/core/hours.py) the caller
  hears the personalised message (`closed_greeting`: closed, « relevé et traité
  dès la réouverture », 15 / 112 for an emergency) instead of a ring group
  that rings into the void.
* Seed 000's safety holds out of hours too: the closed line runs the very same
  silent-call procedure (callflow/flows/silent_call.py) with this greeting, so a
  silent caller still gets the audio check, the keypad questions and cas F's
  emergency question, never a bare answering machine. Where seed 000 would
  pass the caller to a person, the closed line takes their message instead
  (`MessageDesk` is the flow's `Agents`).
* « prendre un message … bien vérifier par la suite qu'une réponse a bien été
  apportée »: the caller records after the beep (Asterisk records it), hears it
  back (« reformuler … valider »), confirms (1) or records again (2); then
  chooses the motive « plus ou moins urgent » (1 urgent, 2 normal). The message
  becomes a ticket (callflow/store/messages.py) listed for the agents at
  opening; an urgent one also gets a callback at opening.
* A caller who hangs up after speaking keeps their message, as on any
  voicemail (ticket with confirmed = false, motive normal unless the call was
  already urgent).

Choices made where the seed and the issue were silent:

* Three recordings at most per message; « Je n'ai rien entendu » when a
  recording has no voice in it (shorter than a second).
* No key at the confirmation: the message is kept (the caller heard it back).
  No key at the motive: normal (urgent when the silent-call flow had heard
  distress: the ticket keeps the flow's judgement).
* After the message the caller hears « vous pouvez raccrocher » and the flow
  keeps them company exactly as after any hand-off of seed 000 (a key → a new
  message; a dead line → cas C's warnings before any hang-up).
* Callbacks promised while closed (cas B « rappel », cas D « dans 5 minutes »)
  are due at opening (`HoursHandoffs`): a callback at 3 a.m. would ring
  nobody's phone.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable

from callflow.agents.legs import CallNotes
from callflow.core.agents import CALLER_STILL_HERE, Diagnosis
from callflow.core.call import Call
from callflow.core.channel import CallerHungUp, Channel, DigitInput, Recording, TapInput
from callflow.core.handoff import HandoffResult, Handoffs
from callflow.core.hours import Calendar
from callflow.core.recorder import CallRecorder

log = logging.getLogger(__name__)

# prompts (sounds/prompts.yaml)
CLOSED_GREETING = "closed_greeting"  # « … notre permanence est fermée … relevé et traité dès la réouverture »
MESSAGE_INVITE = "message_invite"  # « Laissez votre message après le bip. Tapez dièse … »
MESSAGE_EMPTY = "message_empty"  # « Je n'ai rien entendu. »
MESSAGE_PLAYBACK = "message_playback"  # « Voici votre message : »
MESSAGE_CONFIRM = "message_confirm"  # « Pour le confirmer, tapez 1. Pour le réenregistrer, tapez 2. »
MESSAGE_MOTIVE = "message_motive"  # « Si votre demande est urgente, tapez 1. Sinon, tapez 2. »
MESSAGE_THANKS = {"urgent": "message_thanks_urgent", "normal": "message_thanks"}
MESSAGE_FAILED = "message_failed"  # « Votre message n'a pas pu être enregistré… »

MAX_RECORDINGS = 3
MIN_MESSAGE_SECONDS = 1.0
KEY_TIMEOUT = 8.0


class TicketStore:
    """What the message desk needs from callflow/store/messages.py (a fake in unit tests)."""

    async def add(self, **fields): ...

    async def set_callback(self, ticket_id: str, callback_id: str) -> None: ...


@dataclass
class MessageSettings:
    max_seconds: float = 180.0
    max_silence: float = 8.0


class MessageDesk:
    """`Agents` for a line nobody can answer: the caller leaves a message (closed line, overflow)."""

    def __init__(self, *, tickets: TicketStore, recorder: CallRecorder, handoffs: Handoffs,
                 seconds_until_opening: Callable[[], float | None], settings: MessageSettings | None = None,
                 source: str = "closed") -> None:
        self.tickets = tickets
        self.recorder = recorder
        self.handoffs = handoffs
        self.seconds_until_opening = seconds_until_opening
        self.settings = settings or MessageSettings()
        self.source = source

    async def hand_to_agent(self, call: Call, diagnosis: Diagnosis, language: str) -> str | None:
        await take_message(call, self, diagnosis=diagnosis, language=_spoken(language, call))
        # message or not, a caller still on the line stays with the flow (never sent to a ring group nobody answers)
        return CALLER_STILL_HERE if call.channel.is_up else None


def _spoken(language: str, call: Call) -> str:
    return language if language in ("fr", "en", "es", "it") else (call.caller.language or "fr")


async def take_message(call: Call, desk: MessageDesk, *, diagnosis: Diagnosis, language: str,
                       notes: CallNotes | None = None):
    """Record, confirm, sort by motive, store. Returns the ticket (None when nothing was said)."""
    channel = call.channel
    notes = notes or CallNotes(desk.recorder, call.call_id, channel)
    kept: Recording | None = None
    confirmed = False
    motive = "urgent" if diagnosis.urgent else "normal"
    try:
        for attempt in range(1, MAX_RECORDINGS + 1):
            await _say(channel, MESSAGE_INVITE, language, notes)
            name = f"msg-{call.call_id}-{attempt}-{uuid.uuid4().hex[:6]}"
            recording = await channel.record(name, max_seconds=desk.settings.max_seconds,
                                             max_silence=desk.settings.max_silence)
            await notes("message_recorded", f"{recording.name} {recording.duration:.1f}s ended by {recording.ended_by}")
            if recording.ended_by == "failed":
                await _say(channel, MESSAGE_FAILED, language, notes)
                break
            if _has_voice(recording):
                kept = recording
            if recording.ended_by == "hangup":
                raise CallerHungUp(call.call_id)
            if kept is None or kept is not recording:
                await _say(channel, MESSAGE_EMPTY, language, notes)
                continue
            # « reformuler … valider »: the caller hears the message back, then confirms or records again
            await _say(channel, MESSAGE_PLAYBACK, language, notes)
            await channel.play_recording(recording.name)
            key = await _key(channel, MESSAGE_CONFIRM, language, notes, {"1", "2"})
            await notes("message_confirm", key or "timeout")
            if key == "2" and attempt < MAX_RECORDINGS:
                kept = None
                continue
            confirmed = True
            break
        if kept is None:
            return None
        key = await _key(channel, MESSAGE_MOTIVE, language, notes, {"1", "2"})
        if key is not None:
            motive = "urgent" if key == "1" else "normal"
        await notes("message_motive", f"{motive} ({key or 'timeout'})")
    except CallerHungUp:
        if kept is None:
            await notes("message_none", "the caller hung up before saying anything")
            return None
        await notes("message_kept", "the caller hung up after speaking: the message is kept")
    ticket = await _store(call, desk, kept, confirmed=confirmed, motive=motive, diagnosis=diagnosis,
                          language=language, notes=notes)
    if channel.is_up:
        try:
            await _say(channel, MESSAGE_THANKS[motive], language, notes)
        except CallerHungUp:
            pass
    return ticket


async def _store(call: Call, desk: MessageDesk, recording: Recording, *, confirmed: bool, motive: str,
                 diagnosis: Diagnosis, language: str, notes: CallNotes):
    ticket = await desk.tickets.add(call_id=call.call_id, number=call.caller.number, language=language,
                                    source=desk.source, motive=motive, recording=recording.name,
                                    duration=round(recording.duration, 1), confirmed=confirmed,
                                    summary=diagnosis.summary)
    await notes("ticket", f"{ticket.id} {motive}{'' if confirmed else ' (not confirmed: hung up)'}")
    try:
        await desk.recorder.link(call.call_id, "ticket", ticket.id, at=round(notes.now(), 3))
    except Exception:
        log.exception("ticket link failed", extra={"call": call.call_id})
    if motive == "urgent":
        # « bien vérifier par la suite qu'une réponse a bien été apportée »: a person calls back at opening
        delay = desk.seconds_until_opening()
        result = await desk.handoffs.schedule_callback(
            call.call_id, call.caller.number, delay_seconds=delay if delay is not None else 0.0,
            reason=f"message urgent {ticket.id}: rappel à l'ouverture", target="agents")
        if result.accepted and result.message_id:
            await desk.tickets.set_callback(ticket.id, result.message_id)
        await notes("callback", f"at opening ({(delay or 0) / 60:.0f} min) "
                    + (f"scheduled {result.message_id}" if result.accepted else f"refused: {result.reason}"))
    return ticket


def _has_voice(recording: Recording) -> bool:
    # Asterisk's talking_duration when it gives one, else the length (silence ends a recording after max_silence)
    if recording.talked > 0:
        return recording.talked >= MIN_MESSAGE_SECONDS / 2
    if recording.ended_by == "silence":
        return False
    return recording.duration >= MIN_MESSAGE_SECONDS


async def _say(channel: Channel, prompt: str, language: str, notes: CallNotes) -> None:
    await notes("prompt", prompt)
    await channel.play(prompt, language=language, barge_in=False)


async def _key(channel: Channel, prompt: str, language: str, notes: CallNotes, keys: set[str], tries: int = 2) -> str | None:
    """A prompt answered by one of `keys` (the caller may press during it); None after `tries` silences."""
    for _ in range(tries):
        channel.flush_input()
        await notes("prompt", prompt)
        result = await channel.play(prompt, language=language, barge_in=True)
        got = result.interrupted_by or await channel.next_input(KEY_TIMEOUT, accept_taps=True)
        if result.interrupted_by is not None:
            await channel.next_input(0)  # it stayed queued: take it
        if isinstance(got, TapInput):
            got = DigitInput(str(got.count), got.at)  # 1 tap = 1, 2 taps = 2, like the keypad questions
        if isinstance(got, DigitInput) and got.digit in keys:
            channel.flush_input()  # a duplicated burst of the same key is one answer
            return got.digit
        if got is not None:
            await notes("invalid", f"key {got.digit}")
    return None


class HoursHandoffs:
    """Handoffs whose callbacks are due once the line is open (a person must be there to take them)."""

    def __init__(self, inner: Handoffs, seconds_until_opening: Callable[[], float | None]) -> None:
        self.inner = inner
        self.seconds_until_opening = seconds_until_opening

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    async def schedule_callback(self, call_id: str, number: str | None, *, delay_seconds: float, reason: str,
                                target: str = "agents") -> HandoffResult:
        until = self.seconds_until_opening()
        if until is not None and until > delay_seconds:
            reason = f"{reason} (à l'ouverture)"
            delay_seconds = until
        return await self.inner.schedule_callback(call_id, number, delay_seconds=delay_seconds, reason=reason,
                                                  target=target)


def opening_clock(calendar: Calendar, override: Callable[[], str], now: Callable[[], float] = time.time
                  ) -> Callable[[], float | None]:
    """seconds_until_opening() for the current override (read when called)."""

    def seconds() -> float | None:
        return calendar.seconds_until_opening(datetime.fromtimestamp(now(), timezone.utc), override())

    return seconds


Flow = Callable[[Call], Awaitable[None]]
