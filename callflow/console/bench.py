"""`callflow bench console`: what one tick of the console's live hub costs with N live calls.

Each call has `--history` seconds of audio readings already (the timeline the console keeps, 4 per
second) and gets new readings between ticks as a real call does (one every 0.25 s: two per 0.5 s
tick); half the calls are with an agent. Measured per tick: reading and numbering the picture
(`EventHub.tick`), then rendering what changed for one supervisor connection (`section_html`, what
each connected browser costs), and the bytes that connection is sent. Median and spread (min–max)
over `--ticks` ticks. No Asterisk, no network: the console's own cost.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from contextlib import AsyncExitStack
from types import SimpleNamespace

from callflow.agents.config import AgentsConfig, EscalationConfig
from callflow.agents.escalation import SupervisorQueue
from callflow.agents.pool import AgentPool
from callflow.core.channel import AudioReading, AudioState


class _Desk:
    """The desk's surface the console reads (calls with a person, the pool, the queue)."""

    def __init__(self) -> None:
        self.pool = AgentPool(AgentsConfig(check_registration=False))
        self.queue = SupervisorQueue()
        self.escalation_config = EscalationConfig()
        self.notifications: list = []
        self.live: dict = {}
        self._calls: dict = {}

    def calls(self) -> list[dict]:
        return list(self._calls.values())


def register_bench(bench_sub) -> None:
    p = bench_sub.add_parser("console", help="the console's live hub: cost of one tick with N live calls")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--ticks", type=int, default=20)
    p.add_argument("--history", type=float, default=120.0, help="seconds of readings each call has already")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda args: asyncio.run(_bench(args)))


async def _bench(args) -> int:
    result = await measure(calls=args.calls, ticks=args.ticks, history=args.history)
    if args.json:
        print(json.dumps(result))
    else:
        for key in ("tick_ms", "render_ms", "bytes"):
            r = result[key]
            print(f"{key:<10} median {r['median']:>9.1f}   min {r['min']:>9.1f}   max {r['max']:>9.1f}")
        print(f"{result['calls']} calls, {result['ticks']} ticks, {result['history']:.0f} s of readings each")
    return 0


async def measure(*, calls: int = 300, ticks: int = 20, history: float = 120.0) -> dict:
    from callflow import config as config_mod
    from callflow.console.live import LiveSource
    from callflow.console.store import ConsoleStore, User
    from callflow.console.web import Console

    with tempfile.TemporaryDirectory(prefix="callflow-bench-console-") as tmp:
        config = config_mod.load(env={"CALLFLOW_STORE_DATABASE": f"{tmp}/callflow.db", "CALLFLOW_ARI_USER": "u",
                                      "CALLFLOW_ARI_PASSWORD": "p", "CALLFLOW_STATE_DIR": tmp})
        stack = AsyncExitStack()
        store = await ConsoleStore.open(config.store.database)
        stack.push_async_callback(store.close)
        desk = _Desk()
        controller = SimpleNamespace(calls={}, reading_observers=[])
        live = LiveSource(controller=controller, desk=desk)
        console = Console(config=config.console, store=store, live=live)
        states = [AudioState.BREATHING, AudioState.SILENCE, AudioState.BACKGROUND_NOISE, AudioState.SPEECH]
        started = time.time()
        for i in range(calls):
            cid = f"bench-{i:04d}"
            controller.calls[cid] = SimpleNamespace(channel=SimpleNamespace(caller=SimpleNamespace(number="+33612345678")),
                                                    args=[])
            if i % 2:
                desk._calls[cid] = {"call_id": cid, "state": "with_agent", "agent": None, "legs": {}, "bridge": None,
                                    "diagnosis": {"summary": "respiration, pas de réponse au clavier", "urgent": False,
                                                  "call_type": None, "answers": {"hear": "oui"}},
                                    "language": "fr", "group": "fr", "aggressive": False, "churn_red": False,
                                    "emergency": False, "started_at": started}
        at = 0.0

        def readings(seconds: float) -> None:
            nonlocal at
            for _ in range(int(seconds * 4)):
                at += 0.25
                for i in range(calls):
                    # each call changes class every 5 s (staggered), its level every reading
                    live.on_reading(f"bench-{i:04d}", AudioReading(state=states[(i + int(at / 5)) % 4], confidence=.9, at=at,
                                                                   level_dbfs=-40.0 - ((i + int(at * 4)) % 7)))

        readings(history)
        supervisor = User(username="bench", role="supervisor")
        await console.hub.tick()  # the first picture
        tick_ms, render_ms, sizes = [], [], []
        for _ in range(ticks):
            readings(0.5)  # what arrives between two ticks
            t0 = time.perf_counter()
            events = await console.hub.tick()
            t1 = time.perf_counter()
            size = 0
            for event in events:
                payload = await console.section_html(supervisor, event.section, event.data)
                size += len(json.dumps(payload, default=str)) if payload is not None else 0
            t2 = time.perf_counter()
            tick_ms.append((t1 - t0) * 1000)
            render_ms.append((t2 - t1) * 1000)
            sizes.append(size)
        await stack.aclose()

    def spread(values: list[float]) -> dict:
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    return {"calls": calls, "ticks": ticks, "history": history, "tick_ms": spread(tick_ms),
            "render_ms": spread(render_ms), "bytes": spread([float(s) for s in sizes])}
