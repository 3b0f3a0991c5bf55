"""The PBX side of callflow/core/guard.py's LineGuard: the only raw ARI hang-ups, moves and bridge deletions.

Only `LineGuard` calls these (tests/unit/test_guard_scan.py checks the package):
a channel known by id is hung up, continued into the dialplan or un-bridged here.
A 404 means the thing is already gone, which is what was asked.
"""

from __future__ import annotations

from callflow.telephony.ari.client import AriClient, AriNotFound


class AriLineActions:
    def __init__(self, client: AriClient) -> None:
        self.client = client

    async def hang_up(self, channel_id: str) -> None:
        try:
            await self.client.delete(f"channels/{channel_id}")
        except AriNotFound:
            pass

    async def continue_in_dialplan(self, channel_id: str, context: str, extension: str, priority: int) -> None:
        await self.client.post(f"channels/{channel_id}/continue", context=context, extension=extension, priority=priority)

    async def destroy_bridge(self, bridge_id: str) -> None:
        try:
            await self.client.delete(f"bridges/{bridge_id}")
        except AriNotFound:
            pass

    async def remove_from_bridge(self, bridge_id: str, channel_id: str) -> None:
        try:
            await self.client.post(f"bridges/{bridge_id}/removeChannel", channel=channel_id)
        except AriNotFound:
            pass
