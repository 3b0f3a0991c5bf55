"""Follow-up email through a real SMTP server (aiosmtpd), contacts imported with the CLI."""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import socket
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from polling import poll
from aiosmtpd.controller import Controller

from callflow.handoff.cli import register_cli
from callflow.handoff.config import HandoffConfig, OutboxConfig, SmsConfig, SmtpConfig
from callflow.handoff.service import HandoffService

pytestmark = pytest.mark.integration


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=email.policy.default)))
        return "250 OK"


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callflow")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)




@pytest.fixture
def db_with_contacts(tmp_path):
    db = str(tmp_path / "callflow.db")
    csv = tmp_path / "contacts.csv"
    csv.write_text(
        "number,email,name,address\n"
        "06 12 34 56 78,marie.dupuis@example.org,Marie Dupuis,1 rue de la Paix 75002 Paris\n"
        '0698765432,"evil@example.org\nBcc: everyone@example.org",Mallory,\n'
        "not-a-number,x@example.org,,\n",
        encoding="utf-8",
    )
    assert cli("contacts", "import", str(csv), "--db", db) == 1  # two rows refused
    return db


def config(db, smtp_port, tmp_path):
    return HandoffConfig(
        sms=SmsConfig(log_path=str(tmp_path / "sms.log")),
        smtp=SmtpConfig(enabled=True, host="127.0.0.1", port=smtp_port, timeout_seconds=2, support_phone="01 23 45 67 89"),
        outbox=OutboxConfig(db_path=db, poll_seconds=0.05, backoff_initial_seconds=0.1, backoff_max_seconds=0.3, max_attempts=50),
    )


async def test_silent_call_followup_email_reaches_the_smtp_server(db_with_contacts, tmp_path):
    inbox = Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=free_port())
    server.start()
    service = HandoffService(config(db_with_contacts, server.port, tmp_path))
    await service.start()
    try:
        called_at = time.time()
        result = await service.followup_email("call-m1", "+33612345678", called_at=called_at)
        assert result.accepted
        [(rcpts, msg)] = await poll(lambda: inbox.messages, "the email at the SMTP server")
        assert rcpts == ["marie.dupuis@example.org"]
        assert msg["Subject"] == "📞 Appel numi – Nous n'avons pas pu vous entendre"
        hhmm = datetime.fromtimestamp(called_at, ZoneInfo("Europe/Paris")).strftime("%Hh%M")
        body = msg.get_content()
        assert f"Vous avez appelé numi.support aujourd'hui à {hhmm}, mais nous n'avons pas pu vous entendre." in body
        assert "01 23 45 67 89" in body and "L'équipe numi.support" in body

        # The flow's « email » choice for the same call: same email, not a second one.
        again = await service.send_email_or_instructions("call-m1", "0612345678")
        assert again.accepted and again.message_id == result.message_id
        await asyncio.sleep(0.3)
        assert len(inbox.messages) == 1
    finally:
        await service.stop()
        server.stop()


async def test_no_email_for_unknown_or_hostile_contacts(db_with_contacts, tmp_path):
    service = HandoffService(config(db_with_contacts, free_port(), tmp_path))
    await service.open()
    try:
        unknown = await service.followup_email("call-m2", "0611111111", called_at=time.time())
        assert (unknown.accepted, unknown.reason) == (False, "no_email_on_file")
        hostile = await service.followup_email("call-m3", "0698765432", called_at=time.time())
        assert (hostile.accepted, hostile.reason) == (False, "no_email_on_file")  # header injection never imported
        anonymous = await service.followup_email("call-m4", None, called_at=time.time())
        assert (anonymous.accepted, anonymous.reason) == (False, "anonymous")
        assert await service.outbox.list("queued") == []
    finally:
        await service.stop()


async def test_smtp_down_then_up_delivers_once(db_with_contacts, tmp_path):
    port = free_port()
    service = HandoffService(config(db_with_contacts, port, tmp_path))
    await service.start()
    server = None
    try:
        result = await service.followup_email("call-m5", "0612345678", called_at=time.time())

        async def retried():
            return (await service.outbox.get(result.message_id)).attempts >= 2

        await poll(retried, "retries while SMTP is down")
        inbox = Inbox()
        server = Controller(inbox, hostname="127.0.0.1", port=port)
        server.start()

        async def sent():
            return (await service.outbox.get(result.message_id)).status == "sent"

        await poll(sent, "the email sent after recovery")
        await asyncio.sleep(0.3)
        assert len(inbox.messages) == 1
    finally:
        await service.stop()
        if server:
            server.stop()
