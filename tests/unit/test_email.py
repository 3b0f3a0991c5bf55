"""Section-6 follow-up email: content, time of the call, SMTP failures (aiosmtpd as the server)."""

import email
import socket
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from callflow.handoff.config import SmtpConfig
from callflow.handoff.email import SmtpSender, build_followup, call_time_words
from callflow.handoff.errors import PermanentDeliveryError, TemporaryDeliveryError

PARIS = ZoneInfo("Europe/Paris")


def at(*args):
    return datetime(*args, tzinfo=PARIS).timestamp()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Handler:
    def __init__(self, rcpt_reply="250 OK", data_reply="250 OK"):
        self.rcpt_reply, self.data_reply = rcpt_reply, data_reply
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.rcpt_reply

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply.startswith("250"):
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return self.data_reply


@pytest.fixture
def smtp_server():
    started = []

    def start(handler):
        controller = Controller(handler, hostname="127.0.0.1", port=free_port())
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


def test_call_time_in_the_callers_words():
    assert call_time_words(at(2025, 12, 19, 14, 45), "Europe/Paris", now=at(2025, 12, 19, 18, 0)) == ("aujourd'hui", "14h45")
    assert call_time_words(at(2025, 12, 19, 9, 5), "Europe/Paris", now=at(2025, 12, 20, 8, 0)) == ("le 19/12/2025", "09h05")


def test_followup_is_the_seed_email():
    cfg = SmtpConfig(support_phone="01 23 45 67 89")
    msg = build_followup(cfg, to="marie@example.org", called_at=at(2025, 12, 19, 14, 45), message_id="abc",
                         now=at(2025, 12, 19, 15, 0))
    assert msg["Subject"] == "📞 Appel numi – Nous n'avons pas pu vous entendre"
    assert msg["From"] == "support@numi.support" and msg["To"] == "marie@example.org"
    body = msg.get_content()
    assert body.startswith("Bonjour,\n\nVous avez appelé numi.support aujourd'hui à 14h45, mais nous n'avons pas pu vous entendre.\n")
    for line in ("💬 ON EST LÀ POUR VOUS AIDER", "support@numi.support", "(Réponse sous 2h en moyenne)",
                 "www.numi.support/chat", "(Disponible 9h–18h)", "01 23 45 67 89",
                 "Répondez directement à ce numéro par SMS si plus facile pour vous",
                 "- 15 (SAMU – urgence médicale)", "- 17 (Police)", "- 18 (Pompiers)", "L'équipe numi.support"):
        assert line in body, line
    assert "abc" in msg["Message-ID"]


async def test_smtp_accepts(smtp_server):
    handler = Handler()
    server = smtp_server(handler)
    cfg = SmtpConfig(enabled=True, host="127.0.0.1", port=server.port)
    msg = build_followup(cfg, to="marie@example.org", called_at=at(2025, 12, 19, 14, 45), message_id="m1")
    await SmtpSender(cfg).send(msg)
    [(mail_from, rcpts, content)] = handler.messages
    assert mail_from == "support@numi.support" and rcpts == ["marie@example.org"]
    parsed = email.message_from_bytes(content, policy=email.policy.default)
    assert parsed["Subject"] == "📞 Appel numi – Nous n'avons pas pu vous entendre"


@pytest.mark.parametrize(
    "rcpt,data,error",
    [("550 5.1.1 No such user", "250 OK", PermanentDeliveryError),
     ("450 4.2.1 Mailbox busy", "250 OK", TemporaryDeliveryError),
     ("250 OK", "554 5.7.1 Rejected", PermanentDeliveryError),
     ("250 OK", "451 4.3.0 Try later", TemporaryDeliveryError)],
)
async def test_smtp_refusals_are_classified(smtp_server, rcpt, data, error):
    server = smtp_server(Handler(rcpt, data))
    cfg = SmtpConfig(enabled=True, host="127.0.0.1", port=server.port)
    msg = build_followup(cfg, to="marie@example.org", called_at=at(2025, 12, 19, 14, 45), message_id="m2")
    with pytest.raises(error):
        await SmtpSender(cfg).send(msg)


async def test_smtp_server_down_is_temporary():
    cfg = SmtpConfig(enabled=True, host="127.0.0.1", port=free_port(), timeout_seconds=2)
    msg = build_followup(cfg, to="marie@example.org", called_at=at(2025, 12, 19, 14, 45), message_id="m3")
    with pytest.raises(TemporaryDeliveryError):
        await SmtpSender(cfg).send(msg)
