"""The AMI feed: agents' device states and queue members, from Asterisk's manager interface.

For a PBX whose own `Queue()` takes the callers, ARI does not see the agents'
calls; AMI does (DeviceStateChange, QueueMember*). Built on panoramisk's
`Manager` (login, actions, event dispatch), with what it lacks:

* a silent connection is noticed: panoramisk pings but never looks for the pong;
  here a Ping without its Pong within `pong_timeout` closes the connection;
* one reconnect loop (panoramisk's own `call_later(connect)` is switched off so
  two loops never race), with a bounded back-off;
* after every (re)connection the state is read again (DeviceStateList,
  QueueStatus): AMI does not replay the events missed while it was away;
* the reader is bounded: a message that never ends (no blank line) past
  `MAX_PENDING_BYTES` closes the connection instead of growing memory, and a
  message panoramisk cannot parse is logged and skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager

log = logging.getLogger(__name__)

MAX_PENDING_BYTES = 1024 * 1024
#: device states that mean "this phone can take a call"
REACHABLE = frozenset({"NOT_INUSE", "INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"})
#: QueueMember Status codes (Asterisk's AST_DEVICE_* numbering)
_MEMBER_STATUS = {"0": "UNKNOWN", "1": "NOT_INUSE", "2": "INUSE", "3": "BUSY", "4": "INVALID",
                  "5": "UNAVAILABLE", "6": "RINGING", "7": "RINGINUSE", "8": "ONHOLD"}


class AmiError(Exception):
    pass


class _GuardedProtocol(AMIProtocol):
    """panoramisk's reader with a size limit and a parse guard."""

    def data_received(self, data: bytes) -> None:
        pending = sum(len(chunk) for chunk in self.queue) + len(data)
        if pending > MAX_PENDING_BYTES:
            log.error("ami: a message larger than %d bytes without its end; closing the connection",
                      MAX_PENDING_BYTES)
            self.queue.clear()
            self.transport.close()
            return
        try:
            super().data_received(data)
        except Exception:  # one unreadable message must not stop the feed
            log.exception("ami: unreadable message skipped")
            self.queue.clear()


class _Manager(Manager):
    """panoramisk's Manager without its own pinger and reconnect timer (AmiFeed runs both)."""

    def __init__(self, on_lost: Callable[[], None], **config):
        super().__init__(**config)
        self._on_lost = on_lost

    def ping(self) -> None:  # pragma: no cover - replaced by AmiFeed's watchdog
        self.pinger = None

    def connection_lost(self, exc) -> None:
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self._on_lost()


@dataclass
class QueueMember:
    queue: str
    interface: str
    name: str = ""
    status: str = "UNKNOWN"
    paused: bool = False
    in_call: bool = False

    def as_dict(self) -> dict:
        return {"queue": self.queue, "interface": self.interface, "name": self.name, "status": self.status,
                "paused": self.paused, "in_call": self.in_call}


class AmiFeed:
    def __init__(self, host: str, port: int, username: str, secret: str, *, ping_interval: float = 5.0,
                 pong_timeout: float = 3.0, reconnect_delay: float = 1.0, reconnect_delay_max: float = 15.0):
        self.host, self.port = host, port
        self.username, self.secret = username, secret
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.reconnect_delay = reconnect_delay
        self.reconnect_delay_max = reconnect_delay_max
        self.devices: dict[str, str] = {}  # "PJSIP/2001" → "NOT_INUSE"
        self.members: dict[tuple[str, str], QueueMember] = {}
        self.connected = asyncio.Event()
        self.connections = 0  # successful logins, the first included
        self.rereads = 0
        self.silent_detected = 0
        self._manager: _Manager | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def reconnects(self) -> int:
        return max(0, self.connections - 1)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="ami-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._close()

    async def run(self) -> None:
        delay = self.reconnect_delay
        while True:
            try:
                await self._connect()
                delay = self.reconnect_delay
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("ami: connection failed or lost; reconnecting", extra={"error": str(exc) or type(exc).__name__,
                                                                                     "in_seconds": delay})
            self.connected.clear()
            self._close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_delay_max)

    def _close(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.close()

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        manager = _Manager(self._lost.set, host=self.host, port=self.port, username=self.username,
                           secret=self.secret, ping_delay=10**6, loop=loop, protocol_factory=_GuardedProtocol)
        for pattern, handler in (("DeviceStateChange", self._on_device), ("QueueMember*", self._on_member)):
            manager.register_event(pattern, handler)
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(_GuardedProtocol, self.host, self.port), self.pong_timeout + 2)
        made: asyncio.Future = loop.create_future()
        made.set_result((transport, protocol))
        self._manager = manager
        manager.connection_made(made)  # panoramisk wires the protocol and sends Login
        login = manager.authenticated_future
        if login is None:
            raise AmiError("no AMI username configured")
        response = await asyncio.wait_for(asyncio.shield(login), self.pong_timeout + 2)
        if not response.success:
            raise AmiError(f"AMI login refused: {response.get('Message', '')}")
        await self.reread()
        self.connections += 1
        self.connected.set()
        log.info("ami connected", extra={"host": f"{self.host}:{self.port}", "devices": len(self.devices),
                                         "reconnects": self.reconnects})

    async def _action(self, action: dict, *, as_list: bool | None = None):
        if self._manager is None:
            raise AmiError("not connected")
        future = self._manager.send_action(dict(action), as_list=as_list)
        return await asyncio.wait_for(asyncio.shield(future), self.pong_timeout)

    async def reread(self) -> None:
        """What AMI says now (after a connection: the events of the gap are lost)."""
        # as_list stays None: panoramisk then follows EventList (a list) or takes one Error
        # (QueueStatus on a PBX without app_queue), where as_list=True would wait forever
        devices = await self._action({"Action": "DeviceStateList"})
        self.devices = {m["Device"]: m["State"] for m in _as_list(devices)
                        if m.get("Event") == "DeviceStateChange" and "Device" in m}
        members: dict[tuple[str, str], QueueMember] = {}
        status = await self._action({"Action": "QueueStatus"})
        for message in _as_list(status):
            if message.get("Event") == "QueueMember":
                member = self._member_from(message)
                members[(member.queue, member.interface)] = member
        self.members = members
        self.rereads += 1

    async def _watch(self) -> None:
        """Ping; a missing Pong (a silent socket, a frozen PBX) ends the connection."""
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), self.ping_interval)
                raise AmiError("AMI connection closed")
            except asyncio.TimeoutError:
                pass
            try:
                pong = await self._action({"Action": "Ping"})
            except asyncio.TimeoutError:
                self.silent_detected += 1
                raise AmiError(f"AMI silent: no Pong within {self.pong_timeout:.1f} s") from None
            if getattr(pong, "get", None) is None or pong.get("Ping", pong.get("Response")) not in ("Pong", "Success"):
                raise AmiError(f"AMI Ping answered oddly: {pong!r}")

    # -- events ------------------------------------------------------------------------

    def _on_device(self, _manager, message) -> None:
        device, state = message.get("Device"), message.get("State")
        if device and state:
            self.devices[device] = state

    def _on_member(self, _manager, message) -> None:
        event = message.get("Event", "")
        member = self._member_from(message)
        key = (member.queue, member.interface)
        if event == "QueueMemberRemoved":
            self.members.pop(key, None)
        elif member.queue and member.interface:
            self.members[key] = member

    @staticmethod
    def _member_from(message) -> QueueMember:
        interface = message.get("Interface") or message.get("Location") or message.get("StateInterface") or ""
        return QueueMember(queue=message.get("Queue", ""), interface=interface,
                           name=message.get("MemberName") or message.get("Name") or "",
                           status=_MEMBER_STATUS.get(str(message.get("Status", "0")), "UNKNOWN"),
                           paused=str(message.get("Paused", "0")) == "1",
                           in_call=str(message.get("InCall", "0")) == "1")

    # -- what others read ----------------------------------------------------------------

    def device_state(self, device: str) -> str | None:
        return self.devices.get(device)

    def snapshot(self) -> dict:
        return {"connected": self.connected.is_set(), "reconnects": self.reconnects, "rereads": self.rereads,
                "silent_detected": self.silent_detected, "devices": dict(sorted(self.devices.items())),
                "queue_members": [m.as_dict() for m in self.members.values()]}


def _as_list(result) -> list:
    return list(result) if isinstance(result, list) else [result]


class AmiPresence:
    """Presence (callflow/agents/pool.py) from AMI device states; ARI's answer while AMI is away."""

    def __init__(self, feed: AmiFeed, fallback=None):
        self.feed = feed
        self.fallback = fallback

    async def registered(self, endpoint: str) -> bool:
        state = self.feed.device_state(endpoint) if self.feed.connected.is_set() else None
        if state is None:
            return await self.fallback.registered(endpoint) if self.fallback is not None else True
        return state in REACHABLE


def add_routes(app: web.Application, feed: AmiFeed) -> None:
    async def pbx_agents(_request: web.Request) -> web.Response:
        return web.json_response(feed.snapshot(), status=200 if feed.connected.is_set() else 503)

    app.router.add_get("/api/pbx/agents", pbx_agents)
