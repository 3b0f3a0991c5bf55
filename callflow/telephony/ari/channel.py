"""The Channel interface (callflow/core/channel.py) made real over ARI."""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from callflow.core.channel import (
    AudioReading,
    Caller,
    CallerHungUp,
    CallerInput,
    DigitInput,
    InputFilter,
    OriginateResult,
    PlayResult,
    Recording,
    SpeechStreak,
    TapInput,
)
from callflow.telephony.ari.client import AriClient, AriError, AriNotFound
from callflow.telephony.ari.events import AriEvent
from callflow.telephony.leg import ForkedLeg

if TYPE_CHECKING:
    from callflow.telephony.media import MediaFork

log = logging.getLogger(__name__)

DTMF_KEYS = frozenset("0123456789*#ABCD")

# Q.850 causes Asterisk reports when an originated leg ends before answering
_CAUSES = {17: "busy", 18: "no_answer", 19: "no_answer", 21: "rejected", 34: "congestion", 38: "congestion"}


class AriChannel(ForkedLeg):
    """One leg of a call. Its events arrive in order through the call's event pump.

    Its state (is_up, hung_up, now, flush_input…) is `ForkedLeg`'s, shared with the FastAGI channel; the
    listening methods below still override the base's while the AudioSocket path reworks them."""

    def __init__(self, client: AriClient, channel_id: str, caller: Caller, *, claim: Callable[[str], None],
                 sounds_prefix: str = "callflow", answered_at: float | None = None,
                 media_factory: Callable[["AriChannel"], MediaFork] | None = None, answered: bool = False):
        self.client = client
        self.id = channel_id
        self.caller = caller
        self._claim = claim
        self._sounds_prefix = sounds_prefix
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._t0 = answered_at if answered_at is not None else loop.time()
        self._inputs: collections.deque[CallerInput] = collections.deque(maxlen=64)  # a flood of digits can't grow memory
        self._input_filter = InputFilter()
        self._input_ready = asyncio.Event()
        self._hungup = asyncio.Event()
        self._playbacks: dict[str, asyncio.Future[bool]] = {}
        self._recordings: dict[str, asyncio.Future[dict]] = {}  # name → the finished recording's JSON
        self._current_playback: str | None = None
        self._legs: dict[str, asyncio.Future[OriginateResult]] = {}
        self.legs: dict[str, AriChannel] = {}
        self._answered = answered
        self.media: MediaFork | None = None
        self._media_factory = media_factory
        self._voice_armed = False  # listen_on_voice: fork when TALK_DETECT says the line got loud
        self._voice_task: asyncio.Task[None] | None = None
        self._speech = SpeechStreak()  # a barge-in prompt stops when the caller talks over it
        self._loudness: Callable[[bool], None] | None = None  # watch_loudness (seed 004 « voix forte »)
        self.in_stasis = True
        self._stasis = asyncio.Event()  # set while the channel is in our app (AudioSocket path: it leaves and comes back)
        self._stasis.set()
        self._socket_playback: str | None = None  # the prompt the AudioSocket path is playing

    # -- state ------------------------------------------------------------------

    # is_up, hung_up, now(), _check_up: callflow/telephony/leg.py (shared with the FastAGI channel)

    async def _call(self, method: str, path: str, **params: object) -> object:
        try:
            return await self.client.request(method, path, {k: v for k, v in params.items()})
        except AriNotFound as exc:
            # A 404 may be about a sound, a playback, a bridge…: "the caller is gone" only
            # when the caller's channel itself is verifiably gone (issue 11 H).
            if await self.verifiably_gone():
                self._mark_hungup()
                raise CallerHungUp(self.id) from exc
            raise

    async def verifiably_gone(self) -> bool:
        """GET channels/{id} answers 404: the caller's channel no longer exists."""
        if self._hungup.is_set():
            return True
        try:
            await self.client.get(f"channels/{self.id}")
        except AriNotFound:
            return True
        except Exception:  # cannot tell (ARI down, timeout): the caller is NOT assumed gone
            log.warning("could not check the caller's channel", extra={"channel": self.id})
            return False
        return False

    async def set_vars(self, variables: dict[str, str]) -> None:
        """Channel variables (the call's state kept in Asterisk, read back after a restart)."""
        for name, value in variables.items():
            await self.client.post(f"channels/{self.id}/variable", variable=name, value=value)

    def left_stasis(self) -> None:
        """The caller was `continue`d out of our app (the AudioSocket listen context)."""
        self.in_stasis = False
        self._stasis.clear()

    async def wait_in_stasis(self, timeout: float) -> bool:
        """True once the caller is (back) in our app, False after `timeout`."""
        try:
            await asyncio.wait_for(self._stasis.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def gone_outside_stasis(self) -> None:
        """ARI confirmed it: the caller hung up while out of our app (no ARI event tells us then)."""
        log.info("caller hung up while out of Stasis", extra={"channel": self.id})
        self._mark_hungup()

    @property
    def _socket(self):
        """The AudioSocket path while the caller is in it (it carries prompts, keys and hang-up), else None."""
        media = self.media
        return media if media is not None and getattr(media, "carries_prompts", False) and media.active else None

    async def _to_stasis(self) -> None:
        """Before an operation only ARI can do on the caller (record, music, a bridge, a move):
        leave the AudioSocket path, which brings the caller back to Stasis(callflow,back)."""
        media = self.media
        if media is not None and getattr(media, "carries_prompts", False) and (media.active or not self.in_stasis):
            await media.stop()
        self._check_up()

    def _mark_hungup(self) -> None:
        self._hungup.set()
        self._input_ready.set()
        for fut in self._playbacks.values():
            if not fut.done():
                fut.set_result(False)

    # -- events (called in order by the call's pump) -----------------------------------

    async def route(self, event: AriEvent) -> None:
        """Every ARI event the router gives this call, in order: to this channel, one of its legs, or its
        media fork; playback and bridge events to all of them (each checks its own ids)."""
        cid = event.channel_id
        if cid == self.id:
            await self.handle(event)
        elif cid is not None and (cid in self.legs or cid.startswith("leg-")):
            await self.handle_leg(event)
        elif cid is not None and self.media is not None and self.media.owns(cid):
            await self.media.handle(event)
        else:
            await self.handle(event)
            for leg in list(self.legs.values()):
                await leg.handle(event)

    async def handle(self, event: AriEvent) -> None:
        kind = event.type
        if event.channel_id is not None and event.channel_id != self.id:
            return  # about another channel of the call (a leg, a media fork): not ours
        if kind == "ChannelDtmfReceived" and event.digit:
            log.info("digit received", extra={"call": self.id, "digit": event.digit})
            self.push_input(DigitInput(event.digit, self.now()), pressed_at=event.at)
        elif kind in ("PlaybackFinished", "PlaybackFailed") and event.playback_id:
            fut = self._playbacks.get(event.playback_id)
            if fut and not fut.done():
                fut.set_result(kind == "PlaybackFinished" and event.raw.get("playback", {}).get("state") == "done")
        elif kind in ("ChannelTalkingStarted", "ChannelTalkingFinished") and self._loudness is not None:
            self._loudness(kind == "ChannelTalkingStarted")
        elif kind in ("RecordingFinished", "RecordingFailed") and event.recording_name in self._recordings:
            fut = self._recordings[event.recording_name]
            if not fut.done():
                fut.set_result(dict(event.raw.get("recording") or {}, event=kind))
        elif kind == "ChannelTalkingStarted" and self._voice_armed and self._voice_task is None:
            # not awaited here: the fork waits for its channels' StasisStart, which this pump delivers
            self._voice_task = self._loop.create_task(self._listen_now_on_voice(), name=f"voice:{self.id}")
        elif kind in ("ChannelHangupRequest", "ChannelDestroyed"):
            self._mark_hungup()
        elif kind == "StasisEnd":
            self.in_stasis = False
            self._stasis.clear()
        elif kind == "StasisStart":
            self.in_stasis = True  # back from the AudioSocket listen context (route "back")
            self._stasis.set()

    def push_input(self, item: CallerInput, pressed_at: float | None = None) -> None:
        """A key (from ARI or the AudioSocket) or a tap group (from the audio classifier)."""
        if isinstance(item, DigitInput) and item.digit not in DTMF_KEYS:
            return
        if not self._is_the_callers(item, pressed_at):
            return
        self._inputs.append(item)
        self._input_ready.set()
        if self._current_playback is not None:
            # barge-in: any key or tap group stops the prompt at once
            self._loop.create_task(self._stop_quietly(self._current_playback))

    def on_reading(self, reading: AudioReading) -> None:
        """Every classifier reading of the fork (the flow gets them too, through next_reading)."""
        if self._speech.add(reading, reading.at) and self._current_playback is not None:
            self._loop.create_task(self._stop_quietly(self._current_playback))

    # -- the Channel interface -------------------------------------------------------------

    async def answer(self) -> None:
        self._check_up()
        if self._answered:
            return
        await self._call("POST", f"channels/{self.id}/answer")
        self._answered = True
        self._t0 = self._loop.time()

    def media_uri(self, prompt: str, language: str | None) -> str:
        return f"sound:{self._sounds_prefix}/{language or self.caller.language}/{prompt}"

    async def play(self, prompt: str, *, language: str | None = None, barge_in: bool = True) -> PlayResult:
        self._check_up()
        if barge_in and self._inputs:
            return PlayResult(completed=False, interrupted_by=self._inputs[0])
        socket = self._socket
        if socket is not None and socket.can_play(prompt, language or self.caller.language):
            return await self._play_on_socket(socket, prompt, language or self.caller.language, barge_in)
        await self._to_stasis()
        playback_id = f"pb-{uuid.uuid4().hex[:16]}"
        fut: asyncio.Future[bool] = self._loop.create_future()
        self._playbacks[playback_id] = fut
        self._claim(playback_id)
        self._current_playback = playback_id if barge_in else None
        try:
            await self._call("POST", f"channels/{self.id}/play/{playback_id}", media=self.media_uri(prompt, language))
            completed = await fut
        except asyncio.CancelledError:
            # whoever waited gave up (e.g. seed 001's 30 s are over during the whisper): the sound stops too
            self._loop.create_task(self._stop_quietly(playback_id))
            raise
        finally:
            self._playbacks.pop(playback_id, None)
            if self._current_playback == playback_id:
                self._current_playback = None
        self._check_up()
        interrupted = self._inputs[0] if (barge_in and self._inputs and not completed) else None
        return PlayResult(completed=completed, interrupted_by=interrupted)

    async def _play_on_socket(self, socket, prompt: str, language: str, barge_in: bool) -> PlayResult:
        """A prompt sent by us as 20 ms frames on the caller's AudioSocket; barge-in as over ARI."""
        playback_id = f"as-{uuid.uuid4().hex[:16]}"
        # what Asterisk's "Playing '…'" line says on the ARI path: which sound reached the caller
        log.info("prompt on the audiosocket", extra={"channel": self.id, "sound": f"{self._sounds_prefix}/{language}/{prompt}"})
        self._socket_playback = playback_id
        self._current_playback = playback_id if barge_in else None
        try:
            completed = await socket.play(prompt, language)
        finally:
            self._socket_playback = None
            if self._current_playback == playback_id:
                self._current_playback = None
        if not socket.active and not completed:
            await socket.stop()  # the socket closed under the prompt: back in Stasis, or gone (checked by ARI)
        self._check_up()
        interrupted = self._inputs[0] if (barge_in and self._inputs and not completed) else None
        return PlayResult(completed=completed, interrupted_by=interrupted)

    async def play_recording(self, name: str) -> PlayResult:
        self._check_up()
        await self._to_stasis()
        playback_id = f"pb-{uuid.uuid4().hex[:16]}"
        fut: asyncio.Future[bool] = self._loop.create_future()
        self._playbacks[playback_id] = fut
        self._claim(playback_id)
        try:
            await self._call("POST", f"channels/{self.id}/play/{playback_id}", media=f"recording:{name}")
            completed = await fut
        finally:
            self._playbacks.pop(playback_id, None)
        self._check_up()
        return PlayResult(completed=completed)

    async def _stop_quietly(self, playback_id: str) -> None:
        if playback_id == self._socket_playback and self.media is not None:
            self.media.stop_prompt()
            return
        try:
            await self.client.delete(f"playbacks/{playback_id}")
        except AriError:
            pass  # already finished

    async def stop_playback(self) -> None:
        if self._current_playback:
            await self._stop_quietly(self._current_playback)

    async def next_input(self, timeout: float, *, accept_taps: bool = True) -> CallerInput | None:
        deadline = self._loop.time() + timeout
        while True:
            while self._inputs:
                item = self._inputs.popleft()
                if accept_taps or not isinstance(item, TapInput):
                    if not self._inputs:
                        self._input_ready.clear()
                    return item
            self._input_ready.clear()
            self._check_up()
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._input_ready.wait(), remaining)
            except asyncio.TimeoutError:
                return None

    async def listen_on_voice(self) -> None:
        self._check_up()
        if self._voice_armed:
            return
        media = self._make_media()
        if getattr(media, "carries_prompts", False):
            # AudioSocket costs the PBX little more than the call itself (docs/benchmarks.md), and an
            # ARI prompt would hold a `continue` back until it ends: listen now, prompts go through the socket.
            self._voice_armed = True
            await self.start_listening()
            return
        self._voice_armed = True
        # Asterisk's defaults: "talking" above an average amplitude of 256 (≈ −42 dBFS), 2.5 s to "finished"
        await self._call("POST", f"channels/{self.id}/variable", variable="TALK_DETECT(set)", value="")

    async def _listen_now_on_voice(self) -> None:
        try:
            await self.start_listening()
        except (CallerHungUp, RuntimeError) as exc:
            log.info("fork on voice not started", extra={"channel": self.id, "reason": str(exc)})
        finally:
            self._voice_task = None
        if self.media is not None and self.media.active and (not self._voice_armed or self.hung_up):
            await self.media.stop()  # the flow stopped listening while we were starting: it wins

    def _make_media(self):
        if self.media is None and self._media_factory is not None:
            self.media = self._media_factory(self)
        return self.media

    async def start_listening(self) -> None:
        self._check_up()
        if self._make_media() is None:
            raise RuntimeError("no media fork configured for this channel")
        await self.media.start()

    # stop_listening and next_reading: ForkedLeg's

    async def record(self, name: str, *, max_seconds: float, max_silence: float, beep: bool = True,
                     terminate_on: str = "#") -> Recording:
        self._check_up()
        await self._to_stasis()
        fut: asyncio.Future[dict] = self._loop.create_future()
        self._recordings[name] = fut
        self._claim(name)
        self.flush_input()
        try:
            await self._call("POST", f"channels/{self.id}/record", name=name, format="wav",
                             maxDurationSeconds=int(max_seconds), maxSilenceSeconds=int(max_silence),
                             ifExists="overwrite", beep=beep, terminateOn=terminate_on)
            hangup = asyncio.ensure_future(self._hungup.wait())
            try:
                await asyncio.wait({fut, hangup}, timeout=max_seconds + 10, return_when=asyncio.FIRST_COMPLETED)
            finally:
                hangup.cancel()
            if not fut.done():
                # the caller hung up: Asterisk closes the file and says so shortly after; a message is never lost
                try:
                    await asyncio.wait_for(asyncio.shield(fut), 3.0)
                except asyncio.TimeoutError:
                    pass
        except CallerHungUp:
            pass  # hung up before the recording started: maybe nothing, checked below
        finally:
            self._recordings.pop(name, None)
        info = fut.result() if fut.done() else {}
        duration = float(info.get("duration") or 0.0)
        talked = float(info.get("talking_duration") or 0.0)
        if self.hung_up:
            if not info:
                duration = await self._stored_seconds(name)
            ended_by = "hangup"
        elif info.get("event") == "RecordingFailed" or not info:
            ended_by = "failed"
        elif duration >= max_seconds - 1:
            ended_by = "max_duration"
        elif any(isinstance(i, DigitInput) and i.digit in terminate_on for i in self._inputs):
            ended_by = "key"
        else:
            ended_by = "silence"
        self.flush_input()  # the # that ended it is not an answer to the next question
        return Recording(name=name, duration=duration, ended_by=ended_by, talked=talked)

    async def _stored_seconds(self, name: str) -> float:
        """A recording Asterisk kept though we missed its end: 1 s if it exists (its length is unknown here)."""
        try:
            await self.client.get(f"recordings/stored/{name}")
        except AriError:
            return 0.0
        return 1.0

    async def watch_loudness(self, threshold: int, on_change: Callable[[bool], None] | None) -> None:
        self._check_up()
        await self._to_stasis()
        self._loudness = on_change
        self._voice_armed = False  # the fork-on-voice trigger is off while a person has the call
        # TALK_DETECT(set)=<ms of quiet before "finished">,<average amplitude that counts as talking>
        value = f"1000,{int(threshold)}" if on_change is not None else ""
        await self._call("POST", f"channels/{self.id}/variable", variable="TALK_DETECT(set)", value=value)

    async def start_moh(self, moh_class: str = "default") -> None:
        self._check_up()
        await self._to_stasis()
        await self._call("POST", f"channels/{self.id}/moh", mohClass=moh_class)

    async def stop_moh(self) -> None:
        if self._socket is not None:
            return  # no music is playing through the AudioSocket path
        if not self.hung_up:
            await self._call("DELETE", f"channels/{self.id}/moh")

    async def hang_up(self, reason: str) -> None:
        log.info("system hangs up", extra={"channel": self.id, "reason": reason})
        try:
            await self.client.delete(f"channels/{self.id}", reason="normal")
        except AriNotFound:
            pass
        self._mark_hungup()

    async def originate(self, endpoint: str, *, caller_id: str | None = None, timeout: float = 30.0,
                        announce: str | None = None) -> OriginateResult:
        self._check_up()
        leg_id = f"leg-{uuid.uuid4().hex[:16]}"
        fut: asyncio.Future[OriginateResult] = self._loop.create_future()
        self._legs[leg_id] = fut
        self._claim(leg_id)  # claim before Asterisk can send a single event about it
        try:
            await self.client.post("channels", endpoint=endpoint, app=self.client.app, appArgs=f"leg,{self.id}",
                                   channelId=leg_id, callerId=caller_id, timeout=int(timeout))
        except AriError as exc:
            self._legs.pop(leg_id, None)
            return OriginateResult(answered=False, cause=f"failed: {exc}")
        result = await fut
        # settled (answered: the leg is in self.legs now; or not): a caller on hold for long has an agent rung
        # every few seconds, and each attempt's future stayed here for the rest of the call
        self._legs.pop(leg_id, None)
        if result.answered and announce and result.channel is not None:
            await result.channel.play(announce, barge_in=False)
        return result

    async def abandon_ringing_legs(self) -> None:
        """The caller left while legs placed for them still ring: nobody is there to take them
        (only callflow.core.guard.abandon_ringing_legs calls this, once the caller is gone)."""
        for leg_id, fut in list(self._legs.items()):
            if fut.done():
                continue
            try:
                await self.client.delete(f"channels/{leg_id}")
            except AriError:
                pass  # it ended on its own meanwhile
            except Exception as exc:  # ARI unreachable: the leg rings out on its own (its ring timeout)
                log.info("ringing leg not cancelled", extra={"channel": leg_id, "error": repr(exc)})

    async def catch_up(self, existing: set[str], in_app: set[str]) -> None:
        """After an ARI reconnect (events are not replayed): what ended while the link was down.

        A prompt that finished during the cut would keep the flow waiting in silence until the
        caller gives up (seen in the fault campaign: 50 s after an ARI cut in the greeting)."""
        for playback_id, fut in list(self._playbacks.items()):
            if not fut.done() and await self._gone(f"playbacks/{playback_id}"):
                fut.set_result(True)  # it played out (or stopped) while we were away
        for name, fut in list(self._recordings.items()):
            if not fut.done() and await self._gone(f"recordings/live/{name}"):
                fut.set_result({})  # record() then looks for the stored file
        await self.catch_up_legs(existing, in_app)
        for leg in list(self.legs.values()):
            if leg.id not in existing:
                await leg.handle(AriEvent.from_dict({"type": "ChannelDestroyed", "channel": {"id": leg.id}}))
            else:
                await leg.catch_up(existing, in_app)

    async def _gone(self, path: str) -> bool:
        try:
            await self.client.get(path)
        except AriNotFound:
            return True
        return False

    async def catch_up_legs(self, existing: set[str], in_app: set[str]) -> None:
        """Legs that answered or ended while the link was down."""
        for leg_id, fut in list(self._legs.items()):
            if fut.done():
                continue
            if leg_id in in_app:
                await self.handle_leg(AriEvent.from_dict({"type": "StasisStart", "channel": {"id": leg_id}}))
            elif leg_id not in existing:
                fut.set_result(OriginateResult(answered=False, cause="ended while ARI was unreachable"))

    async def handle_leg(self, event: AriEvent) -> None:
        """Events about a leg we originated (answered → StasisStart; failed → destroyed)."""
        leg_id = event.channel_id or ""
        fut = self._legs.get(leg_id)
        if event.type == "StasisStart" and fut is not None and not fut.done():
            leg = AriChannel(self.client, leg_id, Caller(number=None, dialed=None, language=self.caller.language),
                             claim=self._claim, sounds_prefix=self._sounds_prefix, answered=True)
            self.legs[leg_id] = leg
            fut.set_result(OriginateResult(answered=True, cause="answered", channel=leg))
            return
        if event.type == "ChannelDestroyed" and fut is not None and not fut.done():
            fut.set_result(OriginateResult(answered=False, cause=_CAUSES.get(event.cause or 0, f"cause {event.cause}")))
        leg = self.legs.get(leg_id)
        if leg is not None:
            await leg.handle(event)

    async def bridge_with(self, *others: object, bridge_id: str | None = None) -> str:
        self._check_up()
        await self._to_stasis()
        bridge_id = bridge_id or f"callflow-{self.id}"
        self._claim(bridge_id)
        await self.client.post("bridges", type="mixing", bridgeId=bridge_id, name=bridge_id)
        ids = [self.id, *(getattr(o, "id") for o in others)]
        await self.client.post(f"bridges/{bridge_id}/addChannel", channel=",".join(ids))
        return bridge_id

    async def continue_to_listen(self, context: str) -> None:
        """Out of Stasis into the AudioSocket listen context (Guard.listen_out_of_stasis decides it)."""
        self._check_up()
        await self.client.post(f"channels/{self.id}/continue", context=context, extension="s", priority=1)
        self.left_stasis()

    async def continue_in_dialplan(self, context: str, extension: str = "s", priority: int = 1) -> None:
        self._check_up()
        await self._to_stasis()
        await self._call("POST", f"channels/{self.id}/continue", context=context, extension=extension, priority=priority)
        self.in_stasis = False
