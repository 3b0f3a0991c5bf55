"""The emergency latch, kept on the call's one state (callflow/core/call.py).

Seed 000 cas F: « Ne JAMAIS raccrocher tant que les secours ne sont pas arrivés. »
There is one emergency flag per call, `Call.emergency`; it is written through to
the store and to the caller's channel (CALLFLOW_EMERGENCY=1) so a restarted
controller keeps it. These functions are the old module API, kept for callers
that only know a call id.
"""

from __future__ import annotations

from callflow.core.call import REGISTRY


def latch(call_id: str) -> None:
    REGISTRY.open(call_id).latch_emergency("latched")


def is_latched(call_id: str) -> bool:
    call = REGISTRY.get(call_id)
    return call is not None and call.emergency


def latched() -> frozenset[str]:
    return REGISTRY.emergencies()
