"""Seed 000 section 4, « Alternatives de communication »: carry out the caller's choice.

Every request goes through callflow.core.handoff.Handoffs (a durable outbox) and
is recorded. A refused request (anonymous number, landline…) is never the end:
the caller is offered email, a callback or a person.
"""

from __future__ import annotations

from callflow.core.handoff import HandoffResult, Handoffs
from callflow.flows.caregiver import CaregiverTimers, caregiver_callback
from callflow.flows.keypad import CAREGIVER, EMAIL, NO, SMS, ask, choice, yes_no
from callflow.flows.session import FlowCall

CALLBACK, AGENT = "rappel", "conseiller"

# « Je ne peux pas vous envoyer de message… Tapez 1 email, 2 rappel, 3 conseiller »
Q_FALLBACK = choice("alternative", "q_fallback", EMAIL, CALLBACK, AGENT)
# Seed section 10: « Vous avez reçu mon SMS ? Tapez 1 si oui »
Q_SMS_RECEIVED = yes_no("sms_recu", "q_sms_received")

CLOSING = {
    EMAIL: "email_sent",
    CAREGIVER: "caregiver_sent",  # after the caregiver flow's own « C'est noté »
    CALLBACK: "callback_sent",
}
# Seed 003, line closed: callbacks are due at the next opening (HoursHandoffs), so the caller hears
# « dès la réouverture », never « dans 5 minutes ».
CLOSING_AT_OPENING = {**CLOSING, CALLBACK: "callback_sent_opening"}


def closing_prompt(call: FlowCall, kind: str) -> str:
    return (CLOSING_AT_OPENING if call.callbacks_at_opening else CLOSING)[kind]


async def request(call: FlowCall, handoffs: Handoffs, kind: str, *, agent_name: str, reason: str) -> HandoffResult:
    """Ask the outbox for one handoff and write the outcome to the record."""
    t = call.timers
    if kind == SMS:
        result = await handoffs.send_sms(call.call_id, call.number, agent_name=agent_name, language=call.language)
    elif kind == EMAIL:
        result = await handoffs.send_email_or_instructions(call.call_id, call.number, language=call.language)
    elif kind == CALLBACK:
        result = await handoffs.schedule_callback(
            call.call_id, call.number, delay_seconds=t.callback_delay, reason=reason, target="agents"
        )
    elif kind == CAREGIVER:
        # « Que quelqu'un d'autre appelle pour vous (proche, aidant) »: the caller keys
        # in the caregiver's number and we call them (callflow/flows/caregiver.py).
        outcome = await caregiver_callback(call.channel, call.call_id, handoffs, language=call.language,
                                           timers=CaregiverTimers(callback_delay=t.caregiver_callback_delay))
        if outcome.number:
            call.guard.caller_active()  # they keyed a number: somebody is there
        result = outcome.result or HandoffResult(accepted=False, reason=outcome.reason)
    else:
        raise ValueError(f"unknown handoff {kind!r}")
    if result.accepted:
        call.handoffs_done.append(kind)
        await call.note("handoff", f"{kind}" + (f" {result.message_id}" if result.message_id else ""))
        if result.message_id:
            await call.recorder.link(call.call_id, "outbox", result.message_id, at=call.now())
    else:
        await call.note("handoff_refused", f"{kind}: {result.reason or 'refused'}")
    return result


async def deliver(call: FlowCall, handoffs: Handoffs, kind: str, *, agent_name: str, reason: str) -> bool:
    """Do what the caller chose and tell them. False: only a person can help now."""
    result = await request(call, handoffs, kind, agent_name=agent_name, reason=reason)
    if not result.accepted:
        # « Anonymous caller / SMS refused » → email, callback or a person
        await call.say("handoff_refused")
        return await _fallback(call, handoffs, refused=kind, agent_name=agent_name, reason=reason)
    if kind != SMS:
        await call.say(closing_prompt(call, kind))
        return True
    # « Vous allez recevoir mon SMS dans 10 secondes. Je reste disponible. »
    await call.say("sms_sent")
    await call.listen(call.timers.sms_wait, stop_on_input=False)  # « Jean reste en ligne 10 secondes »
    if await ask(call, Q_SMS_RECEIVED) == NO:
        await call.say("sms_not_received")
        return await _fallback(call, handoffs, refused=SMS, agent_name=agent_name, reason=reason)
    # « oui », or no answer: the SMS is on its way anyway (the outbox keeps its promise).
    await call.say("sms_closing")  # « Vous me répondez par SMS tranquillement. À tout de suite… »
    return True


async def _fallback(call: FlowCall, handoffs: Handoffs, *, refused: str, agent_name: str, reason: str) -> bool:
    """« Tapez 1 email, 2 rappel, 3 conseiller »; False when a person must take over."""
    alternative = await ask(call, Q_FALLBACK)
    if alternative not in (EMAIL, CALLBACK) or alternative == refused:
        return False
    result = await request(call, handoffs, alternative, agent_name=agent_name, reason=reason)
    if not result.accepted:
        return False
    await call.say(closing_prompt(call, alternative))
    return True


async def followup(call: FlowCall, handoffs: Handoffs, *, called_at: float) -> None:
    """Seed section 6, after a silent call that found no other channel (recorded, never a conversion)."""
    result = await handoffs.followup_email(call.call_id, call.number, called_at=called_at, language=call.language)
    if result.accepted:
        await call.note("followup_email", result.message_id or "")
        if result.message_id:
            await call.recorder.link(call.call_id, "outbox", result.message_id, at=call.now())
    else:
        await call.note("followup_email_refused", result.reason or "refused")
