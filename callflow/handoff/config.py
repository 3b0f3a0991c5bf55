"""Settings of the outbound channels, one plain dataclass per config section.

The main loader (callflow/config.py) fills these from the file section and the
`CALLFLOW_<SECTION>_<FIELD>` environment variables, then calls `validate()`.
Every error names the key as `section.field`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlparse

from callflow.core.errors import ConfigError
from callflow.paths import DEFAULT_DB, DEFAULT_SMS_LOG

SMS_BACKENDS = ("log", "kannel", "http", "sip")


def _require_url(key: str, value: str) -> None:
    parsed = urlparse(value or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(key, "an http:// or https:// URL", value)


def _require_positive(key: str, value: float) -> None:
    if not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(key, "a number > 0", value)


@dataclass
class SmsConfig:
    backend: str = "log"
    region: str = "FR"  # default region for national numbers (« 06 12 34 56 78 »)
    # The number the caller replies to (« Répondez à ce SMS »): an alphanumeric sender
    # (11 characters max) cannot receive replies. Empty: the gateway's own default sender.
    sender: str = ""
    max_parts: int = 6  # longer messages are refused: the SMS would cost too much
    # Accept FIXED_LINE_OR_MOBILE numbers (countries where the plan cannot tell them apart).
    accept_fixed_or_mobile: bool = True
    # log
    log_path: str = DEFAULT_SMS_LOG
    # kannel
    kannel_url: str = ""  # e.g. http://127.0.0.1:13013/cgi-bin/sendsms
    kannel_username: str = ""
    kannel_password: str = ""
    kannel_dlr_url: str = ""  # our /sms/kannel/dlr, reachable from smsbox; empty = no DLR
    kannel_dlr_mask: int = 27  # 1 delivered + 2 failed + 8 smsc ack + 16 smsc reject
    kannel_smsc: str = ""  # optional smsc id to route through
    # Kannel cannot sign its MO requests: when set, /sms/kannel and /sms/kannel/dlr need ?token=…
    kannel_inbound_token: str = ""
    # http (generic provider webhook)
    http_url: str = ""
    http_secret: str = ""  # HMAC-SHA256 key, outbound signature and inbound check
    http_signature_header: str = "X-Callflow-Signature"
    http_max_skew_seconds: float = 300.0  # inbound timestamp tolerance (replays)
    # sip (ARI /endpoints/sendMessage → SIP MESSAGE)
    sip_to_template: str = "pjsip:{number}"  # e.g. "pjsip:{number}@sms-trunk"
    sip_from: str = "sip:numi.support@localhost"
    # all backends
    timeout_seconds: float = 10.0
    inbound_link_window_seconds: float = 24 * 3600.0  # « Si client écrit : lier à cet appel »

    def validate(self) -> None:
        if self.backend not in SMS_BACKENDS:
            raise ConfigError("sms.backend", " | ".join(SMS_BACKENDS), self.backend)
        if not self.region or len(self.region) != 2 or not self.region.isalpha():
            raise ConfigError("sms.region", "an ISO 3166 two-letter region such as FR", self.region)
        numeric = self.sender.lstrip("+").isdigit()
        if self.sender and not (numeric and len(self.sender) <= 16) and not (len(self.sender) <= 11 and self.sender.isprintable()):
            raise ConfigError("sms.sender", "a phone number (replies need one) or an alphanumeric id of 11 characters max", self.sender)
        if not isinstance(self.max_parts, int) or not 1 <= self.max_parts <= 10:
            raise ConfigError("sms.max_parts", "an integer from 1 to 10", self.max_parts)
        _require_positive("sms.timeout_seconds", self.timeout_seconds)
        _require_positive("sms.inbound_link_window_seconds", self.inbound_link_window_seconds)
        if self.backend == "log" and not self.log_path:
            raise ConfigError("sms.log_path", "a file path", self.log_path)
        if self.backend == "kannel":
            _require_url("sms.kannel_url", self.kannel_url)
            if not self.kannel_username:
                raise ConfigError("sms.kannel_username", "the smsbox sendsms-user name", self.kannel_username)
            if self.kannel_dlr_url:
                _require_url("sms.kannel_dlr_url", self.kannel_dlr_url)
        if self.backend == "http":
            _require_url("sms.http_url", self.http_url)
        if self.backend == "http" or self.http_secret:
            if len(self.http_secret) < 16:
                raise ConfigError("sms.http_secret", "a shared secret of at least 16 characters", "<hidden>")
        if self.backend == "sip":
            if "{number}" not in self.sip_to_template or not self.sip_to_template.startswith("pjsip:"):
                raise ConfigError("sms.sip_to_template", "'pjsip:...{number}...'", self.sip_to_template)
            if not self.sip_from:
                raise ConfigError("sms.sip_from", "a SIP URI such as sip:numi@host", self.sip_from)


@dataclass
class SmtpConfig:
    enabled: bool = False  # off: email handoffs are refused (reason "email_disabled"), SMS instructions instead
    host: str = "127.0.0.1"
    port: int = 25
    username: str = ""
    password: str = ""
    starttls: bool = False
    use_tls: bool = False
    sender: str = "support@numi.support"
    timeout_seconds: float = 15.0
    support_phone: str = "01 XX XX XX XX"  # section 6, « 📞 Rappel »
    timezone: str = "Europe/Paris"  # the call's time as the caller reads it

    def validate(self) -> None:
        if not self.host:
            raise ConfigError("smtp.host", "a host name or address", self.host)
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ConfigError("smtp.port", "a TCP port 1..65535", self.port)
        if "@" not in self.sender:
            raise ConfigError("smtp.sender", "an email address", self.sender)
        if self.starttls and self.use_tls:
            raise ConfigError("smtp.starttls", "false when smtp.use_tls is true (pick one)", self.starttls)
        _require_positive("smtp.timeout_seconds", self.timeout_seconds)
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.timezone)
        except Exception:
            raise ConfigError("smtp.timezone", "an IANA time zone such as Europe/Paris", self.timezone) from None


@dataclass
class OutboxConfig:
    # the controller sets it from store.database; not a key of its own
    db_path: str = field(default=DEFAULT_DB, metadata={"internal": True})
    poll_seconds: float = 1.0  # worker wake-up when nothing signals new work
    batch_size: int = 20
    max_attempts: int = 8  # then failed_permanently
    backoff_initial_seconds: float = 5.0
    backoff_max_seconds: float = 900.0
    backoff_multiplier: float = 2.0
    # A row left in 'sending' longer than this (crash mid-send) is attempted again:
    # a rare duplicate beats a lost message to a caller who cannot speak.
    sending_lease_seconds: float = 120.0

    def validate(self) -> None:
        if not self.db_path:
            raise ConfigError("outbox.db_path", "a SQLite file path", self.db_path)
        _require_positive("outbox.poll_seconds", self.poll_seconds)
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError("outbox.batch_size", "an integer >= 1", self.batch_size)
        if not isinstance(self.max_attempts, int) or not 1 <= self.max_attempts <= 100:
            raise ConfigError("outbox.max_attempts", "an integer from 1 to 100", self.max_attempts)
        _require_positive("outbox.backoff_initial_seconds", self.backoff_initial_seconds)
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ConfigError("outbox.backoff_max_seconds", ">= outbox.backoff_initial_seconds", self.backoff_max_seconds)
        if self.backoff_multiplier < 1:
            raise ConfigError("outbox.backoff_multiplier", "a number >= 1", self.backoff_multiplier)
        _require_positive("outbox.sending_lease_seconds", self.sending_lease_seconds)


@dataclass
class CallbackConfig:
    max_attempts: int = 3  # per scheduled callback, busy / no answer included
    retry_spacing_seconds: float = 300.0  # between two attempts
    poll_seconds: float = 1.0
    ring_timeout_seconds: float = 30.0
    # A callback left 'calling' longer than this (crash mid-call) is attempted again.
    calling_lease_seconds: float = 180.0
    followup_days: list[int] = field(default_factory=lambda: [1, 3])  # J+1 / J+3

    def validate(self) -> None:
        if not isinstance(self.max_attempts, int) or not 1 <= self.max_attempts <= 10:
            raise ConfigError("callbacks.max_attempts", "an integer from 1 to 10", self.max_attempts)
        _require_positive("callbacks.retry_spacing_seconds", self.retry_spacing_seconds)
        _require_positive("callbacks.poll_seconds", self.poll_seconds)
        _require_positive("callbacks.ring_timeout_seconds", self.ring_timeout_seconds)
        _require_positive("callbacks.calling_lease_seconds", self.calling_lease_seconds)
        if any((not isinstance(d, int)) or d < 1 for d in self.followup_days):
            raise ConfigError("callbacks.followup_days", "a list of whole days >= 1", self.followup_days)


@dataclass
class HandoffConfig:
    """The four sections together, as the facade takes them."""

    sms: SmsConfig = field(default_factory=SmsConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)

    def validate(self) -> None:
        self.sms.validate()
        self.smtp.validate()
        self.outbox.validate()
        self.callbacks.validate()
