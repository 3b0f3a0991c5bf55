"""The media fork: the caller's voice, copied to our RTP receiver while a flow listens.

snoop (spy=in: the caller only, not our prompts) + externalMedia (RTP/μ-law to
our shared UDP socket) in one mixing bridge. A fork held for a whole call
triples the PBX's cost per call (../shared/notes/platform.md), so flows start
it when they need to listen and stop it as soon as they know: start and stop
are cheap, idempotent and safe to call in any order.

Dead line vs silent caller: when the caller sends nothing, the fork carries
digital silence (the snoop fills the gaps) or nothing at all, so what we hear
alone proves nothing. We also poll what Asterisk itself received from the
caller (CHANNEL(rtcp,rxcount) on the caller's channel) and hand the classifier
that fact — only while the fork hears no real sound: a caller heard breathing,
tapping, talking or just line noise within the last poll interval is sending
RTP, and each poll is a REST request the PBX must serve (a quiet caller with
line noise, the commonest silent call, used to cost one per second).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from callflow.audio.classifier import CallAudio
from callflow.audio.receiver import RtpReceiver
from callflow.core.channel import AudioReading, AudioState, TapInput
from callflow.telephony.ari.client import AriClient, AriError
from callflow.telephony.ari.events import AriEvent
from callflow.telephony.listening import ListeningWindows

log = logging.getLogger(__name__)


#: Readings that can mean "the caller's phone sends nothing": only then is rxcount worth a request.
_QUIET_STATES = frozenset({AudioState.SILENCE, AudioState.DEAD_LINE})


class MediaFork(ListeningWindows):
    def __init__(self, client: AriClient, caller_channel_id: str, receiver: RtpReceiver, *,
                 claim: Callable[[str], None], on_taps: Callable[[TapInput], None],
                 on_reading: Callable[[AudioReading], None] | None = None,
                 answered_at: float, rtp_poll_interval: float = 1.0):
        super().__init__(receiver)
        self.client = client
        self.caller_id = caller_channel_id
        self._claim = claim
        self._on_taps = on_taps
        self._on_reading = on_reading
        self._answered_at = answered_at
        self._poll_interval = rtp_poll_interval
        self._lock = asyncio.Lock()
        self._ids: dict[str, str] = {}
        self._poller: asyncio.Task[None] | None = None
        self._entering: dict[str, asyncio.Future[bool]] = {}
        self.starts = 0

    @property
    def active(self) -> bool:
        return self._audio is not None

    def owns(self, channel_id: str) -> bool:
        return channel_id in self._ids.values()

    async def handle(self, event: AriEvent) -> None:
        waiter = self._entering.get(event.channel_id or "")
        if waiter is not None and not waiter.done():
            if event.type == "StasisStart":
                waiter.set_result(True)
            elif event.type == "ChannelDestroyed":
                waiter.set_result(False)

    async def start(self) -> None:
        async with self._lock:
            if self._audio is not None:
                return
            self.starts += 1
            tag = uuid.uuid4().hex[:12]
            ids = {"snoop": f"snoop-{tag}", "media": f"media-{tag}", "bridge": f"fork-{tag}"}
            loop = asyncio.get_running_loop()
            for object_id in ids.values():
                self._claim(object_id)
            # a new channel can only join a bridge once it is in our app (its StasisStart)
            self._entering = {ids["snoop"]: loop.create_future(), ids["media"]: loop.create_future()}
            audio = CallAudio(clock=loop.time, answered_at=self._answered_at, on_taps=self._on_taps,
                              on_reading=self._on_reading)
            self.receiver.register(self.caller_id, audio)
            self._ids = ids
            self._audio = audio
            try:
                host, port = self.receiver.local_address
                app = self.client.app
                await self.client.post(f"channels/{self.caller_id}/snoop", spy="in", whisper="none", app=app,
                                       appArgs="media", snoopId=ids["snoop"])
                media = await self.client.post("channels/externalMedia", app=app, appArgs="media",
                                               channelId=ids["media"], external_host=f"{host}:{port}",
                                               format="ulaw", encapsulation="rtp", transport="udp", direction="both")
                variables = media.get("channelvars") or {}
                self.receiver.set_source(self.caller_id, variables["UNICASTRTP_LOCAL_ADDRESS"],
                                         int(variables["UNICASTRTP_LOCAL_PORT"]))
                await self.client.post("bridges", type="mixing", bridgeId=ids["bridge"], name=ids["bridge"])
                entered = await asyncio.wait_for(asyncio.gather(*self._entering.values()), 5.0)
                if not all(entered):
                    raise AriError(410, "POST", "snoop", "the fork's channels ended before joining")
                await self.client.post(f"bridges/{ids['bridge']}/addChannel", channel=f"{ids['snoop']},{ids['media']}")
            except (AriError, KeyError, asyncio.TimeoutError) as exc:
                await self._teardown()
                raise RuntimeError(f"could not fork the caller's audio: {exc}") from exc
            self._poller = loop.create_task(self._poll_caller_rtp(), name=f"rtp-poll:{self.caller_id}")

    async def stop(self) -> None:
        async with self._lock:
            await self._teardown()

    async def _teardown(self) -> None:
        self._entering = {}
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        self._close_window(self.caller_id)
        ids, self._ids = self._ids, {}
        for path in (f"bridges/{ids.get('bridge')}", f"channels/{ids.get('snoop')}", f"channels/{ids.get('media')}"):
            if "None" in path:
                continue
            try:
                await self.client.delete(path)
            except AriError:
                pass  # already gone (the caller hung up, or Asterisk cleaned up)


    async def _poll_caller_rtp(self) -> None:
        """Tell the classifier whether Asterisk still receives the caller's RTP."""
        last: int | None = None
        quiet_polls = 0
        while True:
            audio = self._audio
            reading = audio.last_reading if audio is not None else None
            heard = reading is not None and reading.state not in _QUIET_STATES
            if heard or (audio is not None and audio.hears_sound(self._poll_interval)):
                quiet_polls = 0  # something is heard: the caller's RTP arrives
                self.receiver.caller_rtp_active(self.caller_id, True)
                await asyncio.sleep(self._poll_interval)
                continue
            try:
                value = await self.client.get(f"channels/{self.caller_id}/variable", variable="CHANNEL(rtcp,rxcount)")
                count = int((value or {}).get("value") or 0)
            except (AriError, ValueError):
                count = None
            if count is not None and self._audio is not None:
                if last is not None:
                    quiet_polls = 0 if count > last else quiet_polls + 1
                    # two quiet polls in a row: the caller's phone sends nothing at all
                    self.receiver.caller_rtp_active(self.caller_id, quiet_polls < 2)
                last = count
            await asyncio.sleep(self._poll_interval)
