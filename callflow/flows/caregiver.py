"""Seed 000 cas B, choice 3: « Que quelqu'un d'autre appelle pour vous (proche, aidant) ».

The caller keys in the caregiver's number (ended by # or a pause), hears it
read back digit by digit, confirms with 1 = oui (2 = non to key it again) —
or picks the contact on file — then a callback to the caregiver is scheduled
through the Handoffs outbox (durable, linked to this call).

Uses only the Channel Protocol: play, next_input, flush_input.
"""

from __future__ import annotations

from dataclasses import dataclass

from callflow.core.channel import Channel, DigitInput, TapInput
from callflow.core.handoff import HandoffResult, Handoffs
from callflow.core.phone import check_for_call

MAX_DIGITS = 16  # E.164 is 15 digits at most; more is a stuck key


@dataclass(frozen=True)
class CaregiverTimers:
    first_digit: float = 15.0  # to start keying after the prompt
    between_digits: float = 5.0  # « ou une pause » ends the number
    confirm: float = 10.0
    callback_delay: float = 120.0  # « nous allons appeler votre proche dans quelques minutes »


@dataclass(frozen=True)
class CaregiverOutcome:
    scheduled: bool
    number: str | None = None  # E.164 of the caregiver
    reason: str = ""  # why not: "no_number", "invalid_number", "hung_up"…, or the HandoffResult reason
    result: HandoffResult | None = None


async def caregiver_callback(
    channel: Channel,
    call_id: str,
    handoffs: Handoffs,
    *,
    contact_on_file: str | None = None,
    region: str = "FR",
    language: str = "fr",
    timers: CaregiverTimers = CaregiverTimers(),
    max_entries: int = 3,
) -> CaregiverOutcome:
    """Get a caregiver's number from the caller and schedule the callback to it."""
    number = None
    if contact_on_file and check_for_call(contact_on_file, region).e164:
        await channel.play("caregiver_choose_contact", language=language)
        if await _yes_no(channel, timers.confirm) is True:
            number = check_for_call(contact_on_file, region).e164
    if number is None:
        number = await _key_in_number(channel, region=region, language=language, timers=timers, max_entries=max_entries)
    if number is None:
        return CaregiverOutcome(False, reason="no_number")
    result = await handoffs.schedule_callback(
        call_id, number, delay_seconds=timers.callback_delay, reason="caregiver", target="caregiver"
    )
    if not result.accepted:
        await channel.play("caregiver_failed", language=language)
        return CaregiverOutcome(False, number, result.reason, result)
    await channel.play("caregiver_scheduled", language=language)
    return CaregiverOutcome(True, number, "", result)


async def _key_in_number(
    channel: Channel, *, region: str, language: str, timers: CaregiverTimers, max_entries: int
) -> str | None:
    for _ in range(max_entries):
        channel.flush_input()
        await channel.play("caregiver_enter_number", language=language)
        digits = await collect_digits(channel, timers)
        if not digits:
            continue
        e164 = check_for_call(digits, region).e164
        if e164 is None:
            await channel.play("caregiver_number_invalid", language=language, barge_in=False)
            continue
        if await _read_back_and_confirm(channel, digits, language=language, timeout=timers.confirm):
            return e164
    return None


async def collect_digits(channel: Channel, timers: CaregiverTimers) -> str:
    """Digits until #, a pause, or MAX_DIGITS. * starts again; taps are ignored."""
    # a press reported twice by the network is one press already (the channel's InputFilter)
    digits: list[str] = []
    while len(digits) < MAX_DIGITS:
        got = await channel.next_input(timers.between_digits if digits else timers.first_digit, accept_taps=False)
        if got is None:
            break
        if not isinstance(got, DigitInput):
            continue
        if got.digit == "#":
            break
        if got.digit == "*":
            digits.clear()
        elif got.digit.isdigit():
            digits.append(got.digit)
    return "".join(digits)


async def _read_back_and_confirm(channel: Channel, digits: str, *, language: str, timeout: float) -> bool:
    """« Vous avez tapé le : 0, 6, 1, 2… Si c'est correct, tapez 1. » — a key cuts the reading short."""
    channel.flush_input()
    for prompt in ["caregiver_number_is", *(f"digit_{d}" for d in digits), "caregiver_confirm"]:
        played = await channel.play(prompt, language=language)
        if played.interrupted_by is not None:
            break
    return await _yes_no(channel, timeout) is True


async def _yes_no(channel: Channel, timeout: float) -> bool | None:
    """1 (or one tap) = oui, 2 (or two taps) = non; None on timeout or anything else."""
    got = await channel.next_input(timeout)
    if isinstance(got, DigitInput):
        return {"1": True, "2": False}.get(got.digit)
    if isinstance(got, TapInput):
        return {1: True, 2: False}.get(got.count)
    return None
