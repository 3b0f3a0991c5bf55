"""Feature codes the agent keys on the desk phone during a call (*1 escalate, *9 emergency…)."""

from __future__ import annotations

from callflow.agents.config import FeatureCodes


class KeySequence:
    """Turns the agent leg's digits into actions.

    A code must be keyed within `inter_digit_timeout` between keys. Digits that
    start no code are ignored; a repeated first key (a duplicated RFC 2833 burst,
    « ** ») does not break the sequence.
    """

    def __init__(self, codes: FeatureCodes) -> None:
        self.by_code = {code: action for action, code in codes.codes().items()}
        self.timeout = codes.inter_digit_timeout
        self.buffer = ""
        self.last_at: float | None = None

    def feed(self, digit: str, at: float) -> str | None:
        if self.buffer and self.last_at is not None and at - self.last_at > self.timeout:
            self.buffer = ""
        self.last_at = at
        candidate = self.buffer + digit
        if not any(code.startswith(candidate) for code in self.by_code):
            if self.buffer and self.buffer[-1] == digit and len(self.buffer) == 1:
                return None  # a duplicate of the first key: keep waiting for the second one
            candidate = digit if any(code.startswith(digit) for code in self.by_code) else ""
        self.buffer = candidate
        action = self.by_code.get(candidate)
        if action is not None:
            self.buffer = ""
        return action
