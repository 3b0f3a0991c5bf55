"""TEST-ONLY fault injection: an exception in a call's handler at a chosen moment.

OFF unless the environment variable CALLFLOW_FAULT_INJECT is set; production never
sets it, and `callflow run` logs a warning at start when it is. It exists for the
fault campaign (tests/integration/test_faults.py, issue 11 item 6), which must make
the handler of a live call fail at a given phase against the real Asterisk.

    CALLFLOW_FAULT_INJECT="KIND[:DETAIL_PREFIX][@SECONDS]"

When the call's record gets an action of that kind (and detail prefix), SECONDS
later the call's handler (the flow task the controller runs for the call, with the
desk's procedures it awaits) is interrupted and raises `InjectedFault` — what a bug
anywhere in the call's code does. Each call fails at most once.
Example: CALLFLOW_FAULT_INJECT="agent_connected@2" fails every call 2 s after an
agent answered it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

ENV = "CALLFLOW_FAULT_INJECT"
_SPEC = re.compile(r"(?P<kind>[a-z_]+)(?::(?P<detail>[^@]*))?(?:@(?P<delay>\d+(?:\.\d+)?))?")


class InjectedFault(RuntimeError):
    """The test-only fault: a handler error like any bug's."""


@dataclass
class FaultInjection:
    kind: str
    detail: str = ""
    delay: float = 0.0
    _triggers: dict[str, asyncio.Event] = field(default_factory=dict)
    _fired: set[str] = field(default_factory=set)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "FaultInjection | None":
        spec = (os.environ if env is None else env).get(ENV, "").strip()
        if not spec:
            return None
        m = _SPEC.fullmatch(spec)
        if m is None:
            raise ValueError(f"{ENV}: expected KIND[:DETAIL_PREFIX][@SECONDS], e.g. agent_connected@2 (got {spec!r})")
        injection = cls(m["kind"], m["detail"] or "", float(m["delay"] or 0.0))
        log.warning("TEST-ONLY fault injection is ON: calls fail after %s", spec, extra={"fault": spec})
        return injection

    def _event(self, call_id: str) -> asyncio.Event:
        return self._triggers.setdefault(call_id, asyncio.Event())

    def watch(self, recorder) -> None:
        """Arm the trigger from the call record's actions (flows and the desk all write there)."""
        note = recorder.note

        async def noted(call_id: str, kind: str, detail: str = "", *, at: float) -> None:
            await note(call_id, kind, detail, at=at)
            if kind == self.kind and detail.startswith(self.detail) and call_id not in self._fired:
                self._fired.add(call_id)
                asyncio.get_running_loop().call_later(self.delay, self._event(call_id).set)

        recorder.note = noted

    def wrap(self, flow: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """The call's handler, which raises InjectedFault once the trigger fires for its call."""

        async def failing_flow(ctx) -> None:
            inner = asyncio.ensure_future(flow(ctx))
            trigger = asyncio.ensure_future(self._event(ctx.call_id).wait())
            try:
                await asyncio.wait({inner, trigger}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:  # the handler itself is cancelled (shutdown): so is the flow
                inner.cancel()
                raise
            finally:
                trigger.cancel()
            if inner.done():
                self._triggers.pop(ctx.call_id, None)
                return inner.result()
            inner.cancel()  # the exception unwinds the handler's code, as a real one does
            await asyncio.gather(inner, return_exceptions=True)
            self._triggers.pop(ctx.call_id, None)
            log.warning("TEST-ONLY fault injected", extra={"call": ctx.call_id, "fault": self.kind})
            raise InjectedFault(f"injected after {self.kind}{':' + self.detail if self.detail else ''}")

        return failing_flow
