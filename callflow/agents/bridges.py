"""One mixing bridge per call, grown and shrunk as people join (agent, supervisor, emergency line).

The Channel Protocol's `bridge_with` makes a plain mixing bridge, which Asterisk
turns into a native RTP bridge between two SIP legs: the agent's keys would no
longer reach ARI. Adding a third party to an existing bridge and taking someone
out (hold, transfer) also needs the bridge itself.
`AriBridges` does that over ARI; `MemoryBridges` (tests) keeps members in a dict.
"""

from __future__ import annotations

from typing import Protocol

from callflow.core.channel import Channel


def bridge_id_for(call_id: str) -> str:
    return f"callflow-{call_id}"


class Bridges(Protocol):
    async def create(self, bridge_id: str, *channels: Channel) -> str: ...

    async def add(self, bridge_id: str, *channels: Channel) -> None: ...

    async def remove(self, bridge_id: str, *channels: Channel) -> None: ...

    async def destroy(self, bridge_id: str) -> None: ...

    async def members(self, bridge_id: str) -> list[str]: ...


class AriBridges:
    def __init__(self, client) -> None:
        self.client = client

    async def create(self, bridge_id: str, *channels: Channel) -> str:
        # "dtmf_events": no native RTP bridging, so the agent's keys (feature codes) still reach us as
        # ChannelDtmfReceived (a native_rtp bridge forwards RFC 4733 packets without telling ARI).
        claim = getattr(channels[0], "_claim", None)
        if callable(claim):
            claim(bridge_id)  # the bridge's events go to the call that owns the first channel
        await self.client.post("bridges", type="mixing,dtmf_events", bridgeId=bridge_id, name=bridge_id)
        await self.add(bridge_id, *channels)
        return bridge_id

    async def add(self, bridge_id: str, *channels: Channel) -> None:
        ids = [c.id for c in channels if c.is_up]
        if ids:
            await self.client.post(f"bridges/{bridge_id}/addChannel", channel=",".join(ids))

    async def remove(self, bridge_id: str, *channels: Channel) -> None:
        from callflow.telephony.ari.client import AriError

        for c in channels:
            if not c.is_up:
                continue
            try:
                await self.client.post(f"bridges/{bridge_id}/removeChannel", channel=c.id)
            except AriError:
                pass  # not in it any more (or gone)

    async def destroy(self, bridge_id: str) -> None:
        from callflow.telephony.ari.client import AriError

        try:
            await self.client.delete(f"bridges/{bridge_id}")
        except AriError:
            pass

    async def members(self, bridge_id: str) -> list[str]:
        from callflow.telephony.ari.client import AriError

        try:
            return list((await self.client.get(f"bridges/{bridge_id}")).get("channels", []))
        except AriError:
            return []


class MemoryBridges:
    def __init__(self) -> None:
        self.bridges: dict[str, list[str]] = {}
        self.log: list[tuple[str, str, tuple[str, ...]]] = []

    async def create(self, bridge_id: str, *channels: Channel) -> str:
        self.bridges[bridge_id] = [c.id for c in channels]
        self.log.append(("create", bridge_id, tuple(c.id for c in channels)))
        return bridge_id

    async def add(self, bridge_id: str, *channels: Channel) -> None:
        members = self.bridges.setdefault(bridge_id, [])
        for c in channels:
            if c.is_up and c.id not in members:
                members.append(c.id)
        self.log.append(("add", bridge_id, tuple(c.id for c in channels)))

    async def remove(self, bridge_id: str, *channels: Channel) -> None:
        members = self.bridges.get(bridge_id, [])
        for c in channels:
            if c.id in members:
                members.remove(c.id)
        self.log.append(("remove", bridge_id, tuple(c.id for c in channels)))

    async def destroy(self, bridge_id: str) -> None:
        self.bridges.pop(bridge_id, None)
        self.log.append(("destroy", bridge_id, ()))

    async def members(self, bridge_id: str) -> list[str]:
        return list(self.bridges.get(bridge_id, []))
