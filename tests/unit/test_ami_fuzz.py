"""Property tests: whatever bytes an AMI socket delivers, the reader never raises and never grows without bound."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callflow.telephony import ami
from callflow.telephony.ami import AmiFeed, _GuardedProtocol, _Manager


class _Transport:
    def __init__(self):
        self.closed = False

    def write(self, data):
        pass

    def close(self):
        self.closed = True


ami_lines = st.lists(
    st.one_of(
        st.builds(lambda k, v: f"{k}: {v}\r\n", st.sampled_from(["Event", "Device", "State", "Response", "ActionID",
                                                                 "Queue", "Interface", "Status", "Paused", "Message"]),
                  st.text(max_size=30).map(lambda t: t.replace("\r", "").replace("\n", ""))),
        st.just("\r\n"),
        st.text(max_size=60),
    ),
    max_size=40,
).map(lambda parts: "".join(parts).encode("utf-8", "replace"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(st.binary(max_size=2000), ami_lines), min_size=1, max_size=6))
def test_any_input_is_read_or_skipped_never_raised(chunks):
    async def main():
        feed = AmiFeed("127.0.0.1", 1, "u", "p")
        manager = _Manager(lambda: None, loop=asyncio.get_running_loop())
        for pattern, handler in (("DeviceStateChange", feed._on_device), ("QueueMember*", feed._on_member)):
            manager.register_event(pattern, handler)
        protocol = _GuardedProtocol()
        protocol.connection_made(_Transport())
        protocol.factory = manager
        for chunk in chunks:
            protocol.data_received(chunk)  # must not raise
        assert all(isinstance(v, str) for v in feed.devices.values())

    asyncio.run(main())


def test_an_endless_message_closes_the_connection_instead_of_growing(monkeypatch):
    monkeypatch.setattr(ami, "MAX_PENDING_BYTES", 10_000)

    async def main():
        protocol = _GuardedProtocol()
        transport = _Transport()
        protocol.connection_made(transport)
        protocol.factory = _Manager(lambda: None, loop=asyncio.get_running_loop())
        for _ in range(20):
            protocol.data_received(b"Event: X\r\nPadding: " + b"a" * 1000 + b"\r\n")
        assert transport.closed
        assert sum(len(c) for c in protocol.queue) <= 10_000

    asyncio.run(main())
