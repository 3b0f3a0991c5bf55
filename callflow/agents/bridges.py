"""One mixing bridge per call, grown and shrunk as people join (agent, supervisor, emergency line).

The Channel Protocol's `bridge_with` creates a bridge; adding a third party to an
existing bridge and taking someone out (hold, transfer) needs the bridge itself.
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
        first, *others = channels
        # through the Channel Protocol: the adapter claims the bridge's events for the call
        return await first.bridge_with(*others, bridge_id=bridge_id)

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
