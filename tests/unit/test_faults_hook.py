"""The TEST-ONLY fault hook (callflow/faults.py): off without CALLFLOW_FAULT_INJECT, exact when on."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from callflow.core.recorder import MemoryRecorder
from callflow.faults import ENV, FaultInjection, InjectedFault


def test_off_unless_the_variable_is_set():
    assert FaultInjection.from_env({}) is None
    assert FaultInjection.from_env({ENV: "  "}) is None


def test_spec_is_parsed_and_a_bad_one_names_the_variable_and_the_form():
    inj = FaultInjection.from_env({ENV: "escalation_supervisor:esc-@1.5"})
    assert (inj.kind, inj.detail, inj.delay) == ("escalation_supervisor", "esc-", 1.5)
    with pytest.raises(ValueError, match="CALLFLOW_FAULT_INJECT: expected KIND"):
        FaultInjection.from_env({ENV: "Agent Connected!"})


async def test_the_handler_raises_after_the_trigger_note_and_the_flow_is_unwound():
    inj = FaultInjection.from_env({ENV: "agent_connected@0.05"})
    recorder = MemoryRecorder()
    inj.watch(recorder)
    unwound = asyncio.Event()

    async def flow(ctx) -> None:
        await recorder.start(ctx.call_id, number=None, started_at=0.0, flow="t", language="fr")
        await recorder.note(ctx.call_id, "agent_ring", "2001", at=1.0)
        await recorder.note(ctx.call_id, "agent_connected", "2001 bridge b", at=2.0)
        try:
            await asyncio.sleep(10)
        finally:
            unwound.set()

    with pytest.raises(InjectedFault, match="agent_connected"):
        await asyncio.wait_for(inj.wrap(flow)(SimpleNamespace(call_id="c1")), 2)
    assert unwound.is_set()
    assert recorder.calls["c1"].kinds("agent_connected") == ["2001 bridge b"]  # the note itself was written


async def test_a_flow_that_ends_before_the_trigger_is_untouched():
    inj = FaultInjection.from_env({ENV: "emergency_bridged"})
    recorder = MemoryRecorder()
    inj.watch(recorder)

    async def flow(ctx) -> str:
        await recorder.start(ctx.call_id, number=None, started_at=0.0, flow="t", language="fr")
        await recorder.note(ctx.call_id, "agent_connected", "", at=1.0)
        return "done"

    assert await inj.wrap(flow)(SimpleNamespace(call_id="c2")) == "done"
