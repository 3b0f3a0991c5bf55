"""How a delivery attempt failed: worth retrying, or not."""


class DeliveryError(Exception):
    """A message could not be handed to its gateway."""


class TemporaryDeliveryError(DeliveryError):
    """Gateway down, timeout, throttled, 5xx…: the worker retries with backoff."""


class PermanentDeliveryError(DeliveryError):
    """Refused for good (bad number, auth rejected, 4xx…): never retried automatically."""
