"""Configuration of the agents' desk, escalations, the emergency bridge and feature codes.

Plain dataclasses with typed defaults, like callflow/config.py's sections; each
`validate()` raises ConfigError naming the key and the expected form. Section
names suggested for callflow/config.py's SECTIONS: `agents`, `escalation`,
`emergency`, `feature_codes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

from callflow.core.errors import ConfigError

DTMF = set("0123456789*#ABCD")
AGENT_LANGUAGES = ("fr", "en", "es", "it")

#: Numbers that reach real emergency services (France, EU, a few common foreign ones).
#: In test mode none of them may appear in the emergency destination.
REAL_EMERGENCY_NUMBERS = frozenset({"15", "17", "18", "112", "114", "115", "119", "116117", "191", "196", "911", "999", "110"})


@dataclass
class AgentsConfig:
    extensions: list[str] = field(default_factory=lambda: ["2001", "2002", "2003"])
    technology: str = "PJSIP"  # endpoint = f"{technology}/{extension}"
    ring_timeout: float = 20.0  # seconds one agent's phone rings before the next one is tried
    hold_max_wait: float = 120.0  # seconds on hold before the callback offer (then offered again each time)
    retry_interval: float = 5.0  # seconds between rounds while no agent is available
    wrap_up_seconds: float = 10.0  # after-call work before the agent gets the next call
    aggressive_pause: float = 300.0  # seed 004 §4.1: « APRÈS APPEL AGRESSIF (5 MIN) »
    callback_delay: float = 300.0  # « je vous rappelle dans 5 minutes »
    followup_delay: float = 86400.0  # seed 004 §3.2: J+1 follow-up after a churn-risk-red call
    offer_timeout: float = 8.0  # seconds to answer the callback offer
    check_registration: bool = True  # skip agents whose phone is not registered (ARI endpoint state)
    hold_prompt: str = "agents_hold"  # the holding words before the music ("" when the flow already said them)
    # seed 000 cas E « un collègue multilingue »: what each agent speaks, "2001:fr/en"; unlisted agents speak French
    languages: list[str] = field(default_factory=list)
    language_wait: float = 60.0  # seconds an en/es/it caller waits for an agent of their language before anyone
    position_interval: float = 60.0  # seed 003: the waiting caller hears their position and wait this often
    slot_hour_delay: float = 1800.0  # overflow slot 2 « dans l'heure »: when the callback is due (≤ 3600)
    followup_j3_delay: float = 259200.0  # seed 004 §3.3: the second proactive call, J+3 (followup_delay is J+1)
    # seed 004 « voix forte » while an agent has the call: TALK_DETECT's average amplitude (16-bit) that counts
    # as shouting (≈ −15 dBFS; normal speech is ≈ 2,000), and how long within how long (0 = off)
    raised_voice_threshold: int = 6000
    raised_voice_seconds: float = 6.0
    raised_voice_window: float = 20.0
    closing_step_wait: float = 5.0  # seed 002: seconds the caller has to hang up after closing steps 1 and 2
    runtime_sounds_dir: str = ""  # Asterisk's sounds/<prefix> dir: whisper the card's words, read the address ("" = off)

    def validate(self) -> "AgentsConfig":
        if not self.extensions or not all(re.fullmatch(r"[0-9A-Za-z_-]{1,40}", e) for e in self.extensions):
            raise ConfigError("agents.extensions", "a non-empty list of extensions such as [\"2001\", \"2002\"]", self.extensions)
        if len(set(self.extensions)) != len(self.extensions):
            raise ConfigError("agents.extensions", "each extension once", self.extensions)
        if not re.fullmatch(r"[A-Za-z]+", self.technology):
            raise ConfigError("agents.technology", "a channel technology such as PJSIP", self.technology)
        if not 5 <= self.ring_timeout <= 60:
            raise ConfigError("agents.ring_timeout", "seconds between 5 and 60", self.ring_timeout)
        if not 30 <= self.hold_max_wait <= 600:
            raise ConfigError("agents.hold_max_wait", "seconds between 30 and 600 (never an endless wait)", self.hold_max_wait)
        if not 1 <= self.retry_interval <= 60:
            raise ConfigError("agents.retry_interval", "seconds between 1 and 60", self.retry_interval)
        if not 0 <= self.wrap_up_seconds <= 600:
            raise ConfigError("agents.wrap_up_seconds", "seconds between 0 and 600", self.wrap_up_seconds)
        if not 300 <= self.aggressive_pause <= 3600:
            raise ConfigError("agents.aggressive_pause", "seconds between 300 (seed 004: 5 min) and 3600", self.aggressive_pause)
        if not 60 <= self.callback_delay <= 86400:
            raise ConfigError("agents.callback_delay", "seconds between 60 and 86400", self.callback_delay)
        if not 3600 <= self.followup_delay <= 3 * 86400:
            raise ConfigError("agents.followup_delay", "seconds between 3600 and 259200 (J+1 to J+3)", self.followup_delay)
        if self.hold_prompt and not re.fullmatch(r"[a-z0-9_]{1,60}", self.hold_prompt):
            raise ConfigError("agents.hold_prompt", "a prompt id such as agents_hold, or empty", self.hold_prompt)
        self.spoken()
        if not 0 <= self.language_wait <= 600:
            raise ConfigError("agents.language_wait", "seconds between 0 and 600", self.language_wait)
        if not 86400 <= self.followup_j3_delay <= 7 * 86400:
            raise ConfigError("agents.followup_j3_delay", "seconds between 86400 and 604800 (J+1 to J+7)", self.followup_j3_delay)
        if self.raised_voice_threshold and not 1000 <= self.raised_voice_threshold <= 30000:
            raise ConfigError("agents.raised_voice_threshold", "0 (off) or an amplitude between 1000 and 30000",
                              self.raised_voice_threshold)
        if not 2 <= self.raised_voice_seconds <= self.raised_voice_window <= 120:
            raise ConfigError("agents.raised_voice_seconds", "seconds ≥ 2 and ≤ raised_voice_window ≤ 120",
                              (self.raised_voice_seconds, self.raised_voice_window))
        if not 30 <= self.position_interval <= 600:
            raise ConfigError("agents.position_interval", "seconds between 30 and 600", self.position_interval)
        if not 10 <= self.slot_hour_delay <= 3600:
            raise ConfigError("agents.slot_hour_delay", "seconds between 10 and 3600 (« dans l'heure »)", self.slot_hour_delay)
        if not 1 <= self.closing_step_wait <= 20:
            raise ConfigError("agents.closing_step_wait", "seconds between 1 and 20", self.closing_step_wait)
        if not 3 <= self.offer_timeout <= 30:
            raise ConfigError("agents.offer_timeout", "seconds between 3 and 30", self.offer_timeout)
        return self

    def endpoint(self, extension: str) -> str:
        return f"{self.technology}/{extension}"

    def spoken(self) -> dict[str, tuple[str, ...]]:
        """extension → the languages the agent speaks (French when not listed)."""
        spoken = {ext: ("fr",) for ext in self.extensions}
        for entry in self.languages:
            ext, _, langs = str(entry).partition(":")
            codes = tuple(code.strip() for code in langs.split("/") if code.strip())
            if ext not in spoken or not codes or not all(c in AGENT_LANGUAGES for c in codes):
                raise ConfigError("agents.languages",
                                  'entries such as "2001:fr/en" (a configured extension, then fr, en, es or it)', entry)
            spoken[ext] = codes
        return spoken


@dataclass
class EscalationConfig:
    supervisor: str = "2100"
    technology: str = "PJSIP"
    supervisor_answer_timeout: float = 30.0  # seed 001: « Petite attente, 30 secondes maximum »
    default_mode: str = "conference"  # "conference" (seed 001's default) or "transfer"
    callback_delay: float = 900.0  # the supervisor calls back when nobody answered
    hotliner_email: str = "equipe@numi.support"  # seed 001 §4.1: where the hotliner's feedback email goes ("" = none)

    def validate(self) -> "EscalationConfig":
        if not re.fullmatch(r"[0-9A-Za-z_-]{1,40}", self.supervisor or ""):
            raise ConfigError("escalation.supervisor", "the supervisor's extension such as 2100", self.supervisor)
        if not 10 <= self.supervisor_answer_timeout <= 30:
            raise ConfigError("escalation.supervisor_answer_timeout",
                              "seconds between 10 and 30 (seed 001: « 30 secondes maximum »)", self.supervisor_answer_timeout)
        if self.default_mode not in ("conference", "transfer"):
            raise ConfigError("escalation.default_mode", '"conference" or "transfer"', self.default_mode)
        if not 60 <= self.callback_delay <= 86400:
            raise ConfigError("escalation.callback_delay", "seconds between 60 and 86400", self.callback_delay)
        if self.hotliner_email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", self.hotliner_email):
            raise ConfigError("escalation.hotliner_email", "an email address, or empty", self.hotliner_email)
        return self

    @property
    def endpoint(self) -> str:
        return f"{self.technology}/{self.supervisor}"


@dataclass
class EmergencyConfig:
    test_mode: bool = True  # never dial a real emergency number while true
    destination: str = "PJSIP/emergency-test"  # production: e.g. "PJSIP/15@operator-trunk"
    caller_id: str = ""  # presented to the emergency line; empty = the caller's own number
    ring_timeout: float = 30.0
    retry_spacing: float = 3.0  # first wait between attempts, doubled each time…
    retry_spacing_max: float = 15.0  # …up to this; the number of attempts is unbounded while the caller is there

    def validate(self) -> "EmergencyConfig":
        if not re.fullmatch(r"[A-Za-z]+/\S+", self.destination or ""):
            raise ConfigError("emergency.destination", "a dial string such as PJSIP/emergency-test", self.destination)
        self.check_destination(self.destination)
        if not 10 <= self.ring_timeout <= 60:
            raise ConfigError("emergency.ring_timeout", "seconds between 10 and 60", self.ring_timeout)
        if not 1 <= self.retry_spacing <= 30:
            raise ConfigError("emergency.retry_spacing", "seconds between 1 and 30", self.retry_spacing)
        if not self.retry_spacing <= self.retry_spacing_max <= 60:
            raise ConfigError("emergency.retry_spacing_max", "seconds between retry_spacing and 60", self.retry_spacing_max)
        return self

    def check_destination(self, destination: str) -> None:
        """Refuse a real emergency number while in test mode (called again before every dial)."""
        if self.test_mode and dials_real_emergency(destination):
            raise ConfigError("emergency.destination",
                              "a test line while emergency.test_mode is true (real emergency numbers are never dialled in test mode)",
                              destination)


def dials_real_emergency(destination: str) -> bool:
    """True when any number-like part of a dial string is a real emergency number."""
    resource = destination.split("/", 1)[1] if "/" in destination else destination
    for token in re.split(r"[/@:;,&|\s]+", resource):
        digits = token.lstrip("+").removeprefix("sip").removeprefix("tel")
        if digits in REAL_EMERGENCY_NUMBERS:
            return True
        if digits.isdigit() and digits.lstrip("0") in REAL_EMERGENCY_NUMBERS and len(digits) <= 6:
            return True
    return False


@dataclass
class FeatureCodes:
    """Keys the agent presses on the desk phone during a call."""

    escalate: str = "*1"  # conference with the supervisor (seed 001 « METTRE EN CONFÉRENCE »)
    transfer: str = "*2"  # supervisor takes the caller alone (« TRANSFÉRER »)
    emergency: str = "*9"  # second line to the emergency services (seed 000 cas F)
    close: str = "*0"  # firm, courteous closing (seed 002)
    flag_aggressive: str = "*7"  # seed 004 §4.1: pause after the call
    flag_churn_red: str = "*8"  # seed 004 §3.2: supervisor notified, J+1 follow-up
    inter_digit_timeout: float = 2.0

    def validate(self) -> "FeatureCodes":
        codes = self.codes()
        for action, code in codes.items():
            if not 2 <= len(code) <= 4 or not set(code) <= DTMF:
                raise ConfigError(f"feature_codes.{action}", "2 to 4 DTMF keys such as *1", code)
        values = list(codes.values())
        for i, a in enumerate(values):
            for j, b in enumerate(values):
                if i != j and b.startswith(a):
                    raise ConfigError("feature_codes", f"codes where none is the start of another ({a!r}, {b!r})")
        if not 0.5 <= self.inter_digit_timeout <= 5:
            raise ConfigError("feature_codes.inter_digit_timeout", "seconds between 0.5 and 5", self.inter_digit_timeout)
        return self

    def codes(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "inter_digit_timeout"}
