"""The console's settings: section [console] of the config (env CALLFLOW_CONSOLE_<KEY>)."""

from __future__ import annotations

from dataclasses import dataclass

from callflow.core.errors import ConfigError


@dataclass
class ConsoleConfig:
    enabled: bool = True
    # Fernet key (32 url-safe base64 bytes) for the session cookie. Empty: one is generated at first
    # start and kept next to the database (mode 600), so sessions survive a restart.
    secret_key: str = ""
    session_hours: float = 10.0  # a shift; the cookie expires after this
    cookie_secure: bool = False  # true behind HTTPS (the console binds to loopback by default)
    login_attempts: int = 5  # failures allowed per user and per address …
    login_window_seconds: float = 300.0  # … within this window, then refused until it passes
    sms_unanswered_seconds: float = 600.0  # an SMS reply nobody answered becomes an alert after this
    callback_unanswered_after: int = 1  # failed callback attempts before an alert
    service_level_seconds: float = 20.0  # answered within this counts for the service level
    service_level_target: float = 80.0  # % (the classic 80/20)
    abandonment_target: float = 5.0  # % of offered calls abandoned before an agent answered
    refresh_seconds: float = 0.5  # how often live views are compared and changes pushed
    # how often the wallboard's KPI tiles are recomputed from the records (a day of records per request)
    wallboard_refresh_seconds: float = 10.0

    def validate(self) -> None:
        if self.secret_key:
            import base64

            try:
                raw = base64.urlsafe_b64decode(self.secret_key.encode())
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise ConfigError("console.secret_key", "a Fernet key: 32 bytes in url-safe base64 "
                                  "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')",
                                  "(hidden)")
        if not 0.25 <= self.session_hours <= 24:
            raise ConfigError("console.session_hours", "hours between 0.25 and 24", self.session_hours)
        if not 1 <= self.login_attempts <= 100:
            raise ConfigError("console.login_attempts", "a whole number between 1 and 100", self.login_attempts)
        if not 10 <= self.login_window_seconds <= 86400:
            raise ConfigError("console.login_window_seconds", "seconds between 10 and 86400", self.login_window_seconds)
        if not 30 <= self.sms_unanswered_seconds <= 7 * 86400:
            raise ConfigError("console.sms_unanswered_seconds", "seconds between 30 and 604800", self.sms_unanswered_seconds)
        if not 1 <= self.callback_unanswered_after <= 20:
            raise ConfigError("console.callback_unanswered_after", "a whole number between 1 and 20", self.callback_unanswered_after)
        if not 1 <= self.service_level_seconds <= 600:
            raise ConfigError("console.service_level_seconds", "seconds between 1 and 600", self.service_level_seconds)
        for key in ("service_level_target", "abandonment_target"):
            if not 0 <= getattr(self, key) <= 100:
                raise ConfigError(f"console.{key}", "a percentage between 0 and 100", getattr(self, key))
        if not 0.1 <= self.refresh_seconds <= 10:
            raise ConfigError("console.refresh_seconds", "seconds between 0.1 and 10", self.refresh_seconds)
        if not 2 <= self.wallboard_refresh_seconds <= 600:
            raise ConfigError("console.wallboard_refresh_seconds", "seconds between 2 and 600",
                              self.wallboard_refresh_seconds)
