"""Timers of the silent-call procedure (seed 000), config section `silent_call`.

Plain typed fields with the seed's defaults: the main config loader fills them
from the file section `silent_call` and the env `CALLFLOW_SILENT_CALL_<FIELD>`,
then calls `validate()`, which refuses anything below the seed's minimums.
All durations are in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from callflow.core.errors import ConfigError


@dataclass
class SilentCallTimers:
    # Phase 1: « Hotliner attend 2–3 secondes (pas de réaction immédiate) »
    greeting_listen: float = 3.0
    # Phase 2: « Vérification audio technique (10–20 secondes) »: listening after the prompt
    audio_check_listen: float = 10.0
    # Cas C: « Hotliner attend 20–30 secondes au total » before the last try
    dead_line_total_wait: float = 30.0
    # Cas C: « Je vais raccrocher dans 10 secondes » … « Compte jusqu'à 10 »
    final_countdown: float = 10.0
    # Keypad: time to answer one question, and how many times it is asked again
    question_timeout: float = 8.0
    reprompts: int = 3
    # Cas D: « Hotliner attend en silence (10–20 secondes), laisse le client respirer »
    distress_silence: float = 15.0
    # Cas D / situation 2: « je peux vous rappeler dans 5 minutes »
    callback_delay: float = 300.0
    # 3 = aidant: « nous allons appeler votre proche dans quelques minutes »
    caregiver_callback_delay: float = 120.0
    # Cas B: « Vous allez recevoir mon SMS dans 10 secondes » then « Vous avez reçu mon SMS ? »
    sms_wait: float = 10.0
    # After a handoff we never hang up on a live caller: we wait this long for
    # them to hang up, then a person takes over (or cas C if the line went dead).
    after_handoff_wait: float = 60.0
    # Networks duplicate DTMF: keys arriving this soon after an answer are the same press. A loaded
    # Asterisk reported one RFC 2833 press 8 times over 0.6 s (the last copy answered the next question);
    # nobody hears the next prompt and answers it within a second.
    dtmf_burst_window: float = 1.0
    # Cas D: this much loud breathing without words counts as distress (sobs).
    distress_voiced_seconds: float = 5.0

    def validate(self) -> "SilentCallTimers":
        """Raise ConfigError for any value the seed forbids; return self."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"silent_call.{f.name}", "a number of seconds", value)
        _range(self, "greeting_listen", 2.0, 3.0, "2–3 s (« attend 2–3 secondes »)")
        _range(self, "audio_check_listen", 5.0, 20.0, "5–20 s (phase 2 « 10–20 secondes »)")
        _at_least(self, "dead_line_total_wait", 20.0, "≥ 20 s (« 20–30 secondes au total »)")
        _at_least(self, "final_countdown", 10.0, "≥ 10 s (« raccrocher dans 10 secondes »)")
        _range(self, "question_timeout", 5.0, 30.0, "5–30 s (default 8)")
        _range(self, "reprompts", 1, 3, "1–3 re-prompts (« Répéter si besoin »)")
        if int(self.reprompts) != self.reprompts:
            raise ConfigError("silent_call.reprompts", "a whole number 1–3", self.reprompts)
        _range(self, "distress_silence", 10.0, 20.0, "10–20 s (« attend en silence (10–20 secondes) »)")
        _at_least(self, "callback_delay", 60.0, "≥ 60 s (seed: « rappeler dans 5 minutes »)")
        _at_least(self, "sms_wait", 5.0, "≥ 5 s (« SMS dans 10 secondes »)")
        _at_least(self, "caregiver_callback_delay", 0.0, "≥ 0 s")
        _at_least(self, "after_handoff_wait", self.dead_line_total_wait, "≥ dead_line_total_wait")
        _range(self, "dtmf_burst_window", 0.0, 2.0, "0–2 s")
        _at_least(self, "distress_voiced_seconds", 2.0, "≥ 2 s")
        return self


def _at_least(t: SilentCallTimers, name: str, low: float, expected: str) -> None:
    if getattr(t, name) < low:
        raise ConfigError(f"silent_call.{name}", expected, getattr(t, name))


def _range(t: SilentCallTimers, name: str, low: float, high: float, expected: str) -> None:
    if not low <= getattr(t, name) <= high:
        raise ConfigError(f"silent_call.{name}", expected, getattr(t, name))
