"""HandoffService: callflow.core.handoff.Handoffs over the outbox, SMS, email and callbacks.

The controller builds one per process:

    service = HandoffService(config, ari_post=ari.post, originate=ari.originate_callback,
                             records=records_store)
    await service.start()          # opens the DB, starts the outbox worker and the callback scheduler
    add_routes(app, service)       # callflow.handoff.web: /sms/kannel, /sms/kannel/dlr, /sms/inbound
    ...
    await service.stop()

Every Handoffs method writes durably and returns at once; it never raises for
a gateway that is down. A refusal comes back as HandoffResult(accepted=False,
reason=…) so the flow offers another channel.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any


from callflow.store.db import Database
from callflow.core.channel import mask_number
from callflow.core.handoff import HandoffResult
from callflow.handoff import db as handoff_db
from callflow.handoff import templates
from callflow.handoff.callbacks import CallbackScheduler, Originate
from callflow.handoff.config import HandoffConfig
from callflow.handoff.contacts import Contacts
from callflow.handoff.email import SmtpSender, build_followup, build_plain
from callflow.handoff.errors import PermanentDeliveryError
from callflow.handoff.inbound import CallLinks, FindRecentCall, InboundSms
from callflow.handoff.outbox import Outbox, OutboxMessage, OutboxWorker, idempotency_key
from callflow.core.phone import NumberCheck, check_for_call, check_for_sms
from callflow.handoff.sms import SmsBackend, SmsMessage, build_backend
from callflow.handoff.sms.encoding import encode
from callflow.handoff.sms.sip import AriPost

log = logging.getLogger(__name__)

#: Asterisk endpoints a callback may ring instead of a phone number (tests, internal lines).
ENDPOINT_RE = re.compile(r"^(PJSIP|SIP|Local)/[A-Za-z0-9_.@+\-]{1,64}$")
MAX_CALLBACK_DELAY = 30 * 24 * 3600.0


class HandoffService:
    def __init__(
        self,
        config: HandoffConfig | None = None,
        *,
        ari_post: AriPost | None = None,
        originate: Originate | None = None,
        records: Any = None,
        find_recent_call: FindRecentCall | None = None,
        sms_backend: SmsBackend | None = None,
        smtp_sender: SmtpSender | None = None,
        run_callbacks: bool = True,
        database: Database | None = None,
    ):
        self.config = config or HandoffConfig()
        self.config.validate()
        self._ari_post = ari_post
        self._originate = originate
        self._records = records
        self._find_recent_call = find_recent_call
        self.sms_backend = sms_backend
        self.smtp_sender = smtp_sender or SmtpSender(self.config.smtp)
        self._run_callbacks = run_callbacks
        self._database = database  # the controller's open store, shared; None: open outbox.db_path
        self.conn: Database | None = None

    # ----- lifecycle -------------------------------------------------------
    async def open(self) -> None:
        """Open the DB and build the parts, without starting workers (CLI, tests)."""
        if self.conn is not None:
            return
        if self.sms_backend is None:
            self.sms_backend = build_backend(self.config.sms, ari_post=self._ari_post)
        self.conn = await handoff_db.connect(self._database or self.config.outbox.db_path)
        self.outbox = Outbox(self.conn, self.config.outbox)
        self.contacts = Contacts(self.conn, region=self.config.sms.region)
        self.links = CallLinks(self.conn, self._records)
        self.inbound = InboundSms(
            self.conn,
            self.contacts,
            self.links,
            region=self.config.sms.region,
            window_seconds=self.config.sms.inbound_link_window_seconds,
            find_recent_call=self._find_recent_call,
        )
        self.worker = OutboxWorker(self.outbox, {"sms": self._deliver_sms, "email": self._deliver_email})
        self.callbacks = CallbackScheduler(self.conn, self.config.callbacks, self._originate)

    async def start(self) -> None:
        await self.open()
        await self.worker.start()
        if self._run_callbacks and self._originate is not None:
            await self.callbacks.start()

    async def stop(self) -> None:
        if self.conn is None:
            return
        await self.worker.stop()
        await self.callbacks.stop()
        if self.sms_backend is not None:
            await self.sms_backend.close()
        await self.conn.close()
        self.conn = None

    # ----- Handoffs Protocol ----------------------------------------------
    async def send_sms(
        self, call_id: str, caller_number: str | None, *, agent_name: str, language: str = "fr"
    ) -> HandoffResult:
        check = self._check_sms(caller_number)
        if not check.sms_ok:
            return self._refused("sms", call_id, caller_number, check.reason)
        try:
            await self.contacts.note_call(call_id, check.e164)
            text = templates.sms_callback_by_text(agent_name, language)
            return await self._queue_sms(call_id, check.e164, text, purpose="callback_by_text")
        except Exception:
            log.exception("send_sms failed for call %s", call_id)
            return HandoffResult(False, "internal_error")

    async def send_email_or_instructions(
        self, call_id: str, caller_number: str | None, *, language: str = "fr"
    ) -> HandoffResult:
        number = check_for_call(caller_number, self.config.sms.region)
        if number.e164 is None:
            return self._refused("email", call_id, caller_number, number.reason)
        try:
            await self.contacts.note_call(call_id, number.e164)
            contact = await self.contacts.get(number.e164)
            if contact and contact.email and self.config.smtp.enabled:
                return await self._queue_followup_email(call_id, contact.email, called_at=time.time(), language=language)
            sms = self._check_sms(caller_number)
            if not sms.sms_ok:
                return self._refused("email", call_id, caller_number, "no_email_on_file")
            text = templates.sms_email_instructions(language)
            return await self._queue_sms(call_id, sms.e164, text, purpose="email_instructions")
        except Exception:
            log.exception("send_email_or_instructions failed for call %s", call_id)
            return HandoffResult(False, "internal_error")

    async def schedule_callback(
        self, call_id: str, number: str | None, *, delay_seconds: float, reason: str, target: str = "agents"
    ) -> HandoffResult:
        if not 0 <= delay_seconds <= MAX_CALLBACK_DELAY:
            return HandoffResult(False, "invalid_delay")
        destination = self._callable(number)
        if isinstance(destination, NumberCheck):
            return self._refused("callback", call_id, number, destination.reason)
        try:
            if not destination.startswith(("PJSIP/", "SIP/", "Local/")):
                await self.contacts.note_call(call_id, destination)
            row, created = await self.callbacks.schedule(
                call_id=call_id, number=destination, due_at=time.time() + delay_seconds, reason=reason, target=target
            )
            if created:
                await self.links.add(call_id, "callback", row.id)
            return HandoffResult(True, message_id=row.id)
        except Exception:
            log.exception("schedule_callback failed for call %s", call_id)
            return HandoffResult(False, "internal_error")

    async def followup_email(self, call_id: str, caller_number: str | None, *, called_at: float,
                             language: str = "fr") -> HandoffResult:
        number = check_for_call(caller_number, self.config.sms.region)
        if number.e164 is None:
            return self._refused("email", call_id, caller_number, number.reason)
        if not self.config.smtp.enabled:
            return HandoffResult(False, "email_disabled")
        try:
            await self.contacts.note_call(call_id, number.e164, called_at)
            contact = await self.contacts.get(number.e164)
            if not contact or not contact.email:
                return HandoffResult(False, "no_email_on_file")
            return await self._queue_followup_email(call_id, contact.email, called_at=called_at, language=language)
        except Exception:
            log.exception("followup_email failed for call %s", call_id)
            return HandoffResult(False, "internal_error")

    # ----- extras for the controller, the web routes and the CLI -----------
    async def note_call(self, call_id: str, caller_number: str | None, at: float | None = None) -> None:
        """Remember the call so a later SMS reply from this number is linked to it."""
        number = check_for_call(caller_number, self.config.sms.region)
        if number.e164:
            await self.contacts.note_call(call_id, number.e164, at)

    async def schedule_followups(self, call_id: str, number: str | None) -> list[HandoffResult]:
        """J+1 / J+3 follow-up calls (callbacks.followup_days)."""
        return [
            await self.schedule_callback(
                call_id, number, delay_seconds=days * 86400.0, reason=f"followup_j{days}", target="agents"
            )
            for days in self.config.callbacks.followup_days
        ]

    async def escalation_emails(self, call_id: str, caller_number: str | None, *, client: tuple[str, str],
                                hotliner: tuple[str, str], hotliner_email: str) -> list[HandoffResult]:
        """Seed 001 phase 6 (to the client, when an email is on file) and §4.1 (to the hotliner), via the outbox."""
        results = []
        if not self.config.smtp.enabled:
            return [HandoffResult(False, "email_disabled")]
        try:
            number = check_for_call(caller_number, self.config.sms.region)
            contact = await self.contacts.get(number.e164) if number.e164 else None
            targets = [("escalation_client", contact.email if contact and contact.email else None, client),
                       ("escalation_hotliner", hotliner_email or None, hotliner)]
            for purpose, address, (subject, body) in targets:
                if not address:
                    results.append(HandoffResult(False, "no_email_on_file"))
                    continue
                row, created = await self.outbox.enqueue(
                    call_id=call_id, kind="email", destination=address,
                    payload={"purpose": purpose, "subject": subject, "body": body},
                    key=idempotency_key(call_id, "email", purpose, address))
                if created:
                    await self.links.add(call_id, "email", row.id, row.created_at)
                    self.worker.notify()
                results.append(HandoffResult(True, message_id=row.id))
        except Exception:
            log.exception("escalation emails failed for call %s", call_id)
            results.append(HandoffResult(False, "internal_error"))
        return results

    async def list_for_call(self, call_id: str) -> dict[str, list]:
        return {
            "outbox": await self.outbox.list_for_call(call_id),
            "callbacks": await self.callbacks.list_for_call(call_id),
            "sms_inbound": await self.inbound.list_for_call(call_id),
            "links": await self.links.list(call_id),
        }

    # ----- internals ---------------------------------------------------------
    def _check_sms(self, raw: str | None) -> NumberCheck:
        return check_for_sms(raw, self.config.sms.region, accept_fixed_or_mobile=self.config.sms.accept_fixed_or_mobile)

    def _callable(self, raw: str | None) -> str | NumberCheck:
        if raw and ENDPOINT_RE.match(raw.strip()):
            return raw.strip()
        check = check_for_call(raw, self.config.sms.region)
        return check.e164 if check.e164 else check

    def _refused(self, kind: str, call_id: str, raw: str | None, reason: str) -> HandoffResult:
        log.info("%s refused for call %s (%s): %s", kind, call_id, mask_number(raw), reason)
        return HandoffResult(False, reason)

    async def _queue_sms(self, call_id: str, e164: str, text: str, *, purpose: str) -> HandoffResult:
        if encode(text).parts > self.config.sms.max_parts:
            return HandoffResult(False, "message_too_long")
        row, created = await self.outbox.enqueue(
            call_id=call_id,
            kind="sms",
            destination=e164,
            payload={"text": text, "sender": self.config.sms.sender, "purpose": purpose},
            key=idempotency_key(call_id, "sms", purpose, e164),
        )
        if created:
            await self.links.add(call_id, "sms", row.id, row.created_at)
            self.worker.notify()
        return HandoffResult(True, message_id=row.id)

    async def _queue_followup_email(self, call_id: str, email: str, *, called_at: float,
                                    language: str = "fr") -> HandoffResult:
        row, created = await self.outbox.enqueue(
            call_id=call_id,
            kind="email",
            destination=email,
            payload={"purpose": "followup", "called_at": called_at, "language": language},
            key=idempotency_key(call_id, "email", "followup", email),
        )
        if created:
            await self.links.add(call_id, "email", row.id, row.created_at)
            self.worker.notify()
        return HandoffResult(True, message_id=row.id)

    async def _deliver_sms(self, message: OutboxMessage) -> str | None:
        assert self.sms_backend is not None
        sms = SmsMessage(message.id, message.destination, message.payload["text"], message.payload["sender"])
        return await self.sms_backend.send(sms)

    async def _deliver_email(self, message: OutboxMessage) -> str | None:
        if not self.config.smtp.enabled:
            raise PermanentDeliveryError("smtp disabled")
        if "subject" in message.payload:  # rendered when queued (seed 001's emails)
            return await self.smtp_sender.send(build_plain(self.config.smtp, to=message.destination,
                                                           subject=message.payload["subject"],
                                                           body=message.payload["body"], message_id=message.id))
        email = build_followup(
            self.config.smtp, to=message.destination, called_at=float(message.payload["called_at"]), message_id=message.id,
            language=str(message.payload.get("language") or "fr"),
        )
        return await self.smtp_sender.send(email)
