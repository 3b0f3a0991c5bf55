"""The section-6 follow-up email, sent through aiosmtplib.

SMTP answers: connection problems and 4xx replies are temporary (retry);
5xx replies (unknown mailbox, relay denied, auth refused) are permanent.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from zoneinfo import ZoneInfo

import aiosmtplib

from callflow.handoff.config import SmtpConfig
from callflow.handoff.errors import PermanentDeliveryError, TemporaryDeliveryError
from callflow.handoff.templates import DAY_WORDS, email_followup


def call_time_words(called_at: float, timezone: str, now: float | None = None, language: str = "fr") -> tuple[str, str]:
    """(« aujourd'hui » | « le 19/12/2025 », « 14h45 ») in the caller's time zone (and language)."""
    tz = ZoneInfo(timezone)
    called = datetime.fromtimestamp(called_at, tz)
    today = datetime.fromtimestamp(now, tz).date() if now is not None else datetime.now(tz).date()
    same_day, other_day = DAY_WORDS.get(language, DAY_WORDS["fr"])
    day = same_day if called.date() == today else other_day.format(date=f"{called:%d/%m/%Y}")
    hour = f"{called:%H}h{called:%M}" if language == "fr" else f"{called:%H}:{called:%M}"
    return day, hour


def build_followup(config: SmtpConfig, *, to: str, called_at: float, message_id: str, now: float | None = None,
                   language: str = "fr") -> EmailMessage:
    day, hour = call_time_words(called_at, config.timezone, now, language)
    subject, body = email_followup(day=day, time=hour, support_phone=config.support_phone, language=language)
    msg = EmailMessage()
    msg["From"] = config.sender
    msg["To"] = to
    msg["Subject"] = subject
    # Stable Message-ID from the outbox id: a retried send is recognisable downstream.
    msg["Message-ID"] = make_msgid(idstring=message_id, domain=config.sender.rsplit("@", 1)[1])
    msg.set_content(body)
    return msg


def build_plain(config: SmtpConfig, *, to: str, subject: str, body: str, message_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = config.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(idstring=message_id, domain=config.sender.rsplit("@", 1)[1])
    msg.set_content(body)
    return msg


class SmtpSender:
    def __init__(self, config: SmtpConfig):
        self.config = config

    async def send(self, message: EmailMessage) -> str:
        cfg = self.config
        try:
            await aiosmtplib.send(
                message,
                hostname=cfg.host,
                port=cfg.port,
                username=cfg.username or None,
                password=cfg.password or None,
                start_tls=cfg.starttls,
                use_tls=cfg.use_tls,
                timeout=cfg.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [err.code for err in exc.recipients]
            if codes and all(400 <= c < 500 for c in codes):
                raise TemporaryDeliveryError(f"recipient deferred: {exc}") from exc
            raise PermanentDeliveryError(f"recipient refused: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise TemporaryDeliveryError(f"SMTP {exc.code}: {exc.message}") from exc
            raise PermanentDeliveryError(f"SMTP {exc.code}: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            raise TemporaryDeliveryError(f"SMTP unreachable: {type(exc).__name__}: {exc}") from exc
        return str(message["Message-ID"])
