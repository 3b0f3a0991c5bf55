"""The AMI feed against a scripted AMI server on a real local socket."""

from __future__ import annotations

import asyncio

import pytest

from callflow.telephony.ami import AmiFeed, AmiPresence

EOL = "\r\n"


def message(**headers: str) -> bytes:
    return (EOL.join(f"{k}: {v}" for k, v in headers.items()) + EOL + EOL).encode()


class FakeAmi:
    """Answers Login, DeviceStateList, QueueStatus and Ping; can go silent or push events."""

    def __init__(self):
        self.devices = {"PJSIP/2001": "NOT_INUSE", "PJSIP/2002": "UNAVAILABLE"}
        self.members = [("support", "PJSIP/2001", "1", "0")]
        self.silent = False
        self.queue_module = True
        self.logins = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self):
        for w in self.writers:
            w.close()
        self.server.close()
        await self.server.wait_closed()

    async def push(self, **headers: str):
        for w in self.writers:
            if not w.is_closing():
                w.write(message(**headers))
                await w.drain()

    async def _serve(self, reader, writer):
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                req = dict(line.split(": ", 1) for line in raw.decode().strip().split(EOL) if ": " in line)
                if self.silent:
                    continue  # the socket stays open, nothing comes back
                aid = req.get("ActionID", "")
                action = req.get("Action", "").lower()
                if action == "login":
                    self.logins += 1
                    writer.write(message(Response="Success", ActionID=aid, Message="Authentication accepted"))
                elif action == "devicestatelist":
                    writer.write(message(Response="Success", ActionID=aid, EventList="start",
                                         Message="Device State Changes will follow"))
                    for device, state in self.devices.items():
                        writer.write(message(Event="DeviceStateChange", ActionID=aid, Device=device, State=state))
                    writer.write(message(Event="DeviceStateListComplete", ActionID=aid, EventList="Complete",
                                         ListItems=str(len(self.devices))))
                elif action == "queuestatus" and not self.queue_module:
                    writer.write(message(Response="Error", ActionID=aid, Message="Invalid/unknown command: QueueStatus."))
                elif action == "queuestatus":
                    writer.write(message(Response="Success", ActionID=aid, EventList="start",
                                         Message="Queue status will follow"))
                    for queue, iface, status, paused in self.members:
                        writer.write(message(Event="QueueMember", ActionID=aid, Queue=queue, Name=iface,
                                             Location=iface, StateInterface=iface, Status=status, Paused=paused,
                                             InCall="0"))
                    writer.write(message(Event="QueueStatusComplete", ActionID=aid, EventList="Complete"))
                elif action == "ping":
                    writer.write(message(Response="Success", ActionID=aid, Ping="Pong", Timestamp="1.0"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


async def wait_until(predicate, timeout: float = 5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def ami():
    fake = FakeAmi()
    port = await fake.start()
    feed = AmiFeed("127.0.0.1", port, "callflow", "secret", ping_interval=0.2, pong_timeout=0.3,
                   reconnect_delay=0.1, reconnect_delay_max=0.2)
    feed.start()
    yield fake, feed
    await feed.stop()
    await fake.stop()


async def test_connects_and_reads_devices_and_queue_members(ami):
    fake, feed = ami
    await asyncio.wait_for(feed.connected.wait(), 3)
    assert feed.devices == {"PJSIP/2001": "NOT_INUSE", "PJSIP/2002": "UNAVAILABLE"}
    (member,) = feed.members.values()
    assert member.queue == "support" and member.interface == "PJSIP/2001" and member.status == "NOT_INUSE"


async def test_events_update_the_states(ami):
    fake, feed = ami
    await asyncio.wait_for(feed.connected.wait(), 3)
    await fake.push(Event="DeviceStateChange", Device="PJSIP/2001", State="INUSE")
    await fake.push(Event="QueueMemberPause", Queue="support", Interface="PJSIP/2001", Status="2", Paused="1")
    await wait_until(lambda: feed.devices["PJSIP/2001"] == "INUSE")
    await wait_until(lambda: feed.members[("support", "PJSIP/2001")].paused)
    await fake.push(Event="QueueMemberRemoved", Queue="support", Interface="PJSIP/2001")
    await wait_until(lambda: not feed.members)


async def test_a_silent_connection_is_detected_reconnected_and_the_state_read_again(ami):
    fake, feed = ami
    await asyncio.wait_for(feed.connected.wait(), 3)
    fake.silent = True  # the socket stays open; Asterisk answers nothing (frozen PBX, dead NAT)
    fake.devices["PJSIP/2002"] = "NOT_INUSE"  # … and an agent came online meanwhile (event lost)
    await wait_until(lambda: feed.silent_detected >= 1)
    assert not feed.connected.is_set()
    fake.silent = False
    await wait_until(lambda: feed.reconnects >= 1 and feed.connected.is_set())
    assert fake.logins >= 2
    assert feed.devices["PJSIP/2002"] == "NOT_INUSE"  # re-read after the reconnection
    assert feed.rereads >= 2


async def test_a_closed_connection_is_reconnected(ami):
    fake, feed = ami
    await asyncio.wait_for(feed.connected.wait(), 3)
    for w in fake.writers:
        w.close()
    await wait_until(lambda: feed.reconnects >= 1 and feed.connected.is_set())


async def test_a_pbx_without_queues_still_gives_device_states(ami):
    fake, feed = ami
    fake.queue_module = False
    await asyncio.wait_for(feed.connected.wait(), 3)
    assert feed.devices and not feed.members


async def test_presence_reads_ami_and_falls_back_while_it_is_away(ami):
    fake, feed = ami

    class Ari:
        async def registered(self, endpoint):
            return endpoint == "PJSIP/2003"

    presence = AmiPresence(feed, fallback=Ari())
    assert await presence.registered("PJSIP/2003")  # not connected yet: ARI's answer
    await asyncio.wait_for(feed.connected.wait(), 3)
    assert await presence.registered("PJSIP/2001")
    assert not await presence.registered("PJSIP/2002")
