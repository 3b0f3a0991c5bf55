"""SMS backends, chosen by `sms.backend`: log (default), kannel, http, sip."""

from __future__ import annotations

from callflow.handoff.config import SmsConfig
from callflow.handoff.sms.base import SmsBackend, SmsMessage
from callflow.handoff.sms.sip import AriPost

__all__ = ["SmsBackend", "SmsMessage", "build_backend"]


def build_backend(config: SmsConfig, *, ari_post: AriPost | None = None) -> SmsBackend:
    if config.backend == "kannel":
        from callflow.handoff.sms.kannel import KannelSmsBackend

        return KannelSmsBackend(config)
    if config.backend == "http":
        from callflow.handoff.sms.http import HttpSmsBackend

        return HttpSmsBackend(config)
    if config.backend == "sip":
        if ari_post is None:
            from callflow.core.errors import ConfigError

            raise ConfigError("sms.backend", "'sip' only with an ARI connection (ari_post) injected", config.backend)
        from callflow.handoff.sms.sip import SipSmsBackend

        return SipSmsBackend(config, ari_post)
    from callflow.handoff.sms.log import LogSmsBackend

    return LogSmsBackend(config.log_path)
