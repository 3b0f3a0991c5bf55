"""Outbound channels: what happens once the caller chose another way to talk to us.

    service.py    HandoffService — callflow.core.handoff.Handoffs for the flows, start()/stop()
    outbox.py     durable outbox (SMS, email): idempotency keys, claims, durable backoff, statuses
    sms/          backends log (default) | kannel | http | sip, GSM-7/UCS-2 segmentation
    email.py      section-6 follow-up email over aiosmtplib
    callbacks.py  durable callback scheduler (« je vous rappelle dans 5 minutes », J+1 / J+3)
    inbound.py    caller SMS replies linked to their latest call
    contacts.py   number → email / name / address, and calls seen per number
    phone.py      caller IDs → E.164, mobile / landline / anonymous
    templates.py  the seed's texts, rendered in a jinja2 sandbox
    web.py        add_routes(app, service): /sms/kannel, /sms/kannel/dlr, /sms/inbound
    cli.py        register_cli(subparsers): outbox list|retry, contacts import
    config.py     SmsConfig, SmtpConfig, OutboxConfig, CallbackConfig (+ HandoffConfig)
"""
