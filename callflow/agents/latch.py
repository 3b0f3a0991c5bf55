"""The emergency latch: once a call is an emergency, nothing of ours hangs it up or moves it.

Seed 000 cas F: « Ne JAMAIS raccrocher tant que les secours ne sont pas arrivés. »
The emergency bridge latches the call id here; the firm closing, the desk and
(through the hooks described in the issue-6 report) the safety guard and the
controller's end-of-flow rescue check `is_latched` before ending or moving a call.
A latch is kept for the life of the process (a call id is never reused).
"""

from __future__ import annotations

_LATCHED: set[str] = set()


def latch(call_id: str) -> None:
    _LATCHED.add(call_id)


def is_latched(call_id: str) -> bool:
    return call_id in _LATCHED


def latched() -> frozenset[str]:
    return frozenset(_LATCHED)
