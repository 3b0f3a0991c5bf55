"""Errors shared across rooms."""


class ConfigError(ValueError):
    """A configuration value is wrong. Always names the key and the expected form."""

    def __init__(self, key: str, expected: str, got: object = None):
        self.key = key
        self.expected = expected
        self.got = got
        shown = "" if got is None else f" (got {got!r})"
        super().__init__(f"config key '{key}': expected {expected}{shown}")
