"""A call's listening windows, as both media paths keep them (the snoop fork, telephony/media.py, and the
AudioSocket listener, telephony/audiosocket.py): the window open now — its CallAudio, registered with the
receiver — and the timelines of the windows closed before, which the call's record keeps whole."""

from __future__ import annotations

import asyncio

from callflow.audio.classifier import CallAudio, TimelineEntry
from callflow.audio.receiver import RtpReceiver
from callflow.core.channel import AudioReading


class ListeningWindows:
    def __init__(self, receiver: RtpReceiver) -> None:
        self.receiver = receiver
        self._audio: CallAudio | None = None
        self._timeline: list[TimelineEntry] = []  # earlier listening windows of this call

    def _close_window(self, call_id: str) -> None:
        """Stop feeding the open window (if any) and keep its timeline."""
        if self._audio is not None:
            self._timeline.extend(self._audio.timeline)
            self.receiver.unregister(call_id)
            self._audio = None

    async def next_reading(self, timeout: float) -> AudioReading | None:
        audio = self._audio
        if audio is None:
            await asyncio.sleep(max(timeout, 0))
            return None
        return await audio.next_reading(timeout)

    @property
    def timeline(self) -> list[TimelineEntry]:
        current = self._audio.timeline if self._audio is not None else []
        return [*self._timeline, *current]
