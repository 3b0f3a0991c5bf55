"""The Channel interface (callflow/core/channel.py) made real over FastAGI.

One `AgiConnection` per call: panoramisk's `Request` (headers, reader, writer)
with one reader task that sorts what Asterisk writes into hang-up notices and
replies, and a timeout on every command. `AgiChannel` speaks the flows'
language on top of it:

* prompts: ``STREAM FILE callflow/<lang>/<id> "0123456789*#"`` — a key stops it
  (Asterisk's own barge-in); a tap group or the caller's speech stops it by
  writing the next command on the socket: res_agi's `ast_waitstream_full` watches
  the AGI socket and ends the playback, without a reply line, as soon as a new
  command arrives (res_agi.c handle_streamfile, `res == 1`). No AMI round trip.
* keys: ``WAIT FOR DIGIT`` in short slices, so taps found by the classifier
  between two slices are seen within a slice;
* the caller's audio: the same ARI snoop + externalMedia fork as for ARI
  calls (an ARI snoop works on any channel, Stasis or not); its StasisStart
  events come through the controller's event router, claimed for this call;
* messages (seed 003, line closed): ``RECORD FILE`` into Asterisk's recording
  folder (``${ASTSPOOLDIR}/recording``), where ARI's stored recordings — and so
  ``callflow messages play`` — find them as for an ARI call;
* the hand-off: ``SET CONTEXT/EXTENSION/PRIORITY`` then the AGI ends and the
  dialplan goes on there; if anything goes wrong the socket closes and the
  dialplan's next line (the fail-safe) sends the caller to the agents.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from panoramisk.fast_agi import Request

from callflow.core.channel import (
    AudioReading,
    Caller,
    CallerHungUp,
    CallerInput,
    DigitInput,
    OriginateResult,
    PlayResult,
    Recording,
    SpeechStreak,
    TapInput,
)
from callflow.telephony.leg import ForkedLeg
from callflow.telephony.agi.protocol import (
    HANGUP_NOTICE,
    MAX_LINE_BYTES,
    TRYING,
    USAGE_START,
    AgiProtocolError,
    AgiReply,
    classify_line,
    parse_reply,
)

if TYPE_CHECKING:
    from callflow.telephony.media import MediaFork

log = logging.getLogger(__name__)

DTMF_KEYS = "0123456789*#"
#: ordinary commands (ANSWER, SET …, HANGUP) answer at once; a stuck PBX is a broken connection
COMMAND_TIMEOUT = 10.0
#: no prompt of ours lasts this long; a STREAM FILE without a reply after it means a stuck socket
PLAYBACK_TIMEOUT = 180.0
#: WAIT FOR DIGIT slice: taps seen by the classifier reach next_input within this
DIGIT_SLICE = 0.25
#: a key seen by AGI and by ARI is the same key when both reports come within this (a loaded machine's jitter)
KEY_MATCH_SECONDS = 3.0
AST_STATE_UP = 6  # CHANNEL STATUS: "Line is up"


class AgiTimeout(AgiProtocolError):
    """Asterisk did not answer a command in time: the connection is given up (fail-safe)."""


class AgiConnectionClosed(AgiProtocolError):
    """The socket closed (Asterisk ended the AGI, or the channel is gone)."""


class AgiConnection(Request):
    """panoramisk's Request with a reader task, notices kept apart from replies, and timeouts."""

    def __init__(self, app, headers, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 encoding: str = "utf-8", on_hangup: Callable[[], None] | None = None):
        super().__init__(app, headers, reader, writer, encoding)
        self._replies: asyncio.Queue[AgiReply | BaseException] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._on_hangup = on_hangup
        self.hangup_notice = False
        self.closed = asyncio.Event()
        self._reader_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop(), name="agi-reader")

    async def _read_loop(self) -> None:
        error: BaseException = AgiConnectionClosed("Asterisk closed the AGI connection")
        usage: list[str] | None = None
        try:
            while True:
                raw = await self.reader.readline()
                if not raw:
                    break
                if not raw.endswith(b"\n"):
                    raise AgiProtocolError(f"AGI line cut short by the end of the connection ({len(raw)} bytes)")
                if len(raw) > MAX_LINE_BYTES:
                    raise AgiProtocolError(f"AGI line too long ({len(raw)} bytes)")
                line = raw.rstrip(b"\r\n").decode(self.encoding, errors="replace")
                if usage is not None:
                    usage.append(line)
                    if line.startswith("520 "):
                        self._replies.put_nowait(AgiReply(code=520, line="\n".join(usage)))
                        usage = None
                    continue
                kind = classify_line(line)
                if kind == HANGUP_NOTICE:
                    # AGISIGHUP: not the reply of the command in flight; that reply still comes
                    self.hangup_notice = True
                    if self._on_hangup:
                        self._on_hangup()
                elif kind == TRYING:
                    continue
                elif kind == USAGE_START:
                    usage = [line]
                else:
                    self._replies.put_nowait(parse_reply(line))
        except (AgiProtocolError, ValueError) as exc:  # ValueError: StreamReader's own line limit
            log.warning("agi connection: bad input from Asterisk", extra={"error": str(exc)})
            error = exc if isinstance(exc, AgiProtocolError) else AgiProtocolError(str(exc))
        except (ConnectionError, OSError) as exc:
            error = AgiConnectionClosed(str(exc))
        finally:
            self.closed.set()
            if self._on_hangup:
                self._on_hangup()
            self._replies.put_nowait(error)

    def write(self, command: str) -> None:
        if "\n" in command or "\r" in command:
            raise ValueError("an AGI command is one line")
        self.writer.write((command + "\n").encode(self.encoding))

    async def next_reply(self, timeout: float) -> AgiReply:
        try:
            item = await asyncio.wait_for(self._replies.get(), timeout)
        except asyncio.TimeoutError:
            raise AgiTimeout(f"no AGI reply within {timeout:.0f} s") from None
        if isinstance(item, BaseException):
            self._replies.put_nowait(item)  # every later command fails the same way
            raise item
        return item

    async def send_command(self, command: str, timeout: float | None = None) -> AgiReply:  # type: ignore[override]
        async with self._lock:
            self.write(command)
            await self.writer.drain()
            return await self.next_reply(COMMAND_TIMEOUT if timeout is None else timeout)

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass


def quote(arg: str) -> str:
    """An AGI argument: double quotes, no quote or newline inside (ours are ids, never free text)."""
    if any(ch in arg for ch in '"\n\r\\'):
        raise ValueError(f"AGI argument with a quote, backslash or newline: {arg!r}")
    return f'"{arg}"'


class AgiChannel(ForkedLeg):
    """One caller's leg, driven over its FastAGI connection."""

    def __init__(self, conn: AgiConnection, caller: Caller, *, sounds_prefix: str = "callflow",
                 media_factory: Callable[["AgiChannel"], "MediaFork"] | None = None,
                 watch_voice: Callable[["AgiChannel"], Awaitable[None]] | None = None):
        self.conn = conn
        self.headers = conn.headers
        self.id = conn.headers.get("agi_uniqueid", "")
        self.caller = caller
        self._sounds_prefix = sounds_prefix
        self._init_leg(answered=False, t0=asyncio.get_running_loop().time(), media_factory=media_factory)
        self._playing = False  # a barge-in STREAM FILE is in flight
        self._interrupted = False  # we wrote the command that stops it
        self._speech = SpeechStreak()
        self._watch_voice = watch_voice  # subscribes to TALK_DETECT events (ARI) for this channel
        self.moved_to: tuple[str, str, int] | None = None  # continue_in_dialplan's target
        self.voice_watched = False  # our ARI app is subscribed to this channel's events
        # keys one source reported and the other not yet (on_ari_digit / _agi_digit): (digit, loop time)
        self._unmatched_agi: collections.deque[tuple[str, float]] = collections.deque(maxlen=64)
        self._unmatched_ari: collections.deque[tuple[str, float]] = collections.deque(maxlen=64)
        self._spool_dir: str | None = None  # Asterisk's ASTSPOOLDIR, read once for recordings
        conn._on_hangup = self._mark_hungup

    # -- state --------------------------------------------------------------------

    @property
    def in_dialplan(self) -> bool:
        return self.moved_to is not None

    def _mark_hungup(self) -> None:
        self._hungup.set()
        self._input_ready.set()

    async def _command(self, command: str, timeout: float | None = None) -> AgiReply:
        self._check_up()
        reply = await self.conn.send_command(command, timeout)
        if reply.code == 511 or (reply.code == 200 and reply.value == -1 and self.conn.hangup_notice):
            self._mark_hungup()
            raise CallerHungUp(self.id)
        if reply.code != 200:
            raise AgiProtocolError(f"{command.split(' ', 2)[:2]}: {reply.line[:80]}")
        return reply

    async def read_state(self) -> None:
        """Whether Asterisk already answered the call (before the flow's `answer`)."""
        reply = await self._command("CHANNEL STATUS")
        self._answered = reply.value == AST_STATE_UP

    # -- caller input ---------------------------------------------------------------

    def push_input(self, item: CallerInput) -> None:
        """A key (from a command's result) or a tap group (from the audio classifier)."""
        if isinstance(item, DigitInput) and item.digit not in DTMF_KEYS:
            return
        if not self._is_the_callers(item):
            return
        self._inputs.append(item)
        self._input_ready.set()
        if isinstance(item, TapInput):
            self._interrupt_playback()  # a key already stopped STREAM FILE by itself

    # Keys from two sources. res_agi reads and throws away the caller's frames while no command of ours runs
    # (between a STREAM FILE's end and the next WAIT FOR DIGIT: a TCP round trip and our turn on a loaded
    # machine), so a key pressed then is lost to AGI. Asterisk still publishes it (ChannelDtmfReceived) to our
    # ARI app once the app watches the channel (`listen_on_voice`). Each physical key comes once from each
    # source that saw it: a key from one source cancels the same key from the other within KEY_MATCH_SECONDS,
    # so every key counts once whichever saw it first, and a key only one of them saw still counts.
    def _agi_digit(self, digit: str) -> None:
        if self._match(self._unmatched_ari, digit):
            return  # ARI brought it already
        log.info("digit received", extra={"call": self.id, "digit": digit, "source": "agi"})
        self._unmatched_agi.append((digit, self._loop.time()))
        self.push_input(DigitInput(digit, self.now()))

    def on_ari_digit(self, digit: str) -> None:
        """A ChannelDtmfReceived for this channel (our ARI app watches it)."""
        if digit not in DTMF_KEYS or self._match(self._unmatched_agi, digit):
            return  # a command of ours read it too
        # the same event as any key (ops and tests follow one name); `source` says which path saw it
        log.info("digit received", extra={"call": self.id, "digit": digit, "source": "ari"})
        self._unmatched_ari.append((digit, self._loop.time()))
        self.push_input(DigitInput(digit, self.now()))

    def _match(self, pending: "collections.deque[tuple[str, float]]", digit: str) -> bool:
        now = self._loop.time()
        while pending and now - pending[0][1] > KEY_MATCH_SECONDS:
            pending.popleft()
        for i, (seen, _) in enumerate(pending):
            if seen == digit:
                del pending[i]
                return True
        return False

    def on_reading(self, reading: AudioReading) -> None:
        if self._speech.add(reading, reading.at):
            self._interrupt_playback()

    def _interrupt_playback(self) -> None:
        """End the STREAM FILE in flight: any new command on the socket does (see module doc)."""
        if self._playing and not self._interrupted and not self.conn.closed.is_set():
            self._interrupted = True
            try:
                self.conn.write("NOOP barge-in")
            except (ConnectionError, OSError):
                pass

    # -- the Channel interface --------------------------------------------------------

    async def answer(self) -> None:
        self._check_up()
        if self._answered:
            return
        await self._command("ANSWER")
        self._answered = True
        self._t0 = self._loop.time()

    def sound(self, prompt: str, language: str | None) -> str:
        return f"{self._sounds_prefix}/{language or self.caller.language}/{prompt}"

    async def play(self, prompt: str, *, language: str | None = None, barge_in: bool = True) -> PlayResult:
        self._check_up()
        if barge_in and self._inputs:
            return PlayResult(completed=False, interrupted_by=self._inputs[0])
        digits = DTMF_KEYS if barge_in else ""
        command = f"STREAM FILE {self.sound(prompt, language)} {quote(digits)}"
        async with self.conn._lock:  # the interrupting NOOP is written outside the lock on purpose
            self._check_up()
            self._playing, self._interrupted = barge_in, False
            try:
                self.conn.write(command)
                await self.conn.writer.drain()
                reply = await self.conn.next_reply(PLAYBACK_TIMEOUT)
                self._playing = False
                if self._interrupted and "endpos" not in reply.extra:
                    # the playback was cut by our NOOP, which is what answered
                    completed = False
                else:
                    if self._interrupted:  # it ended just before the NOOP: that NOOP's reply follows
                        await self.conn.next_reply(COMMAND_TIMEOUT)
                    completed = self._stream_result(reply, prompt)
            finally:
                self._playing = False
        self._check_up()
        interrupted = self._inputs[0] if (barge_in and self._inputs and not completed) else None
        return PlayResult(completed=completed, interrupted_by=interrupted)

    def _stream_result(self, reply: AgiReply, prompt: str) -> bool:
        value = reply.value
        if value is None or reply.code != 200:
            raise AgiProtocolError(f"STREAM FILE {prompt}: {reply.line[:80]}")
        if value == -1:
            if self.conn.hangup_notice or self.conn.closed.is_set():
                self._mark_hungup()
                raise CallerHungUp(self.id)
            log.warning("prompt could not be played", extra={"channel": self.id, "prompt": prompt})
            return False
        if 0 < value < 256:
            self._agi_digit(chr(value))
            return False
        return value == 0

    async def stop_playback(self) -> None:
        self._interrupt_playback()

    async def next_input(self, timeout: float, *, accept_taps: bool = True) -> CallerInput | None:
        deadline = self._loop.time() + timeout
        while True:
            while self._inputs:
                item = self._inputs.popleft()
                if accept_taps or not isinstance(item, TapInput):
                    return item
            self._input_ready.clear()
            self._check_up()
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return None
            ms = max(1, int(min(remaining, DIGIT_SLICE) * 1000))
            reply = await self._command(f"WAIT FOR DIGIT {ms}", timeout=ms / 1000 + COMMAND_TIMEOUT)
            value = reply.value or 0
            if value == -1:
                self._mark_hungup()
                raise CallerHungUp(self.id)
            if 0 < value < 256 and chr(value) in DTMF_KEYS:
                self._agi_digit(chr(value))

    # -- listening: the same ARI fork as an ARI call --------------------------------------

    async def listen_on_voice(self) -> None:
        self._check_up()
        if self._voice_armed:
            return
        if self._watch_voice is None:
            return  # nothing would hear TALK_DETECT: the flow's own listening starts the fork
        try:
            await self._watch_voice(self)  # ChannelTalkingStarted for this channel, through ARI
        except Exception as exc:  # ARI away: the flow's listening still forks when it must
            log.warning("cannot watch the line for voice", extra={"channel": self.id, "error": str(exc)})
            return
        self._voice_armed = True
        self.voice_watched = True
        await self._command('SET VARIABLE "TALK_DETECT(set)" ""')

    def on_talking(self) -> None:
        """Asterisk's TALK_DETECT says the line got loud: fork now (not awaited: the fork waits for events)."""
        if self._voice_armed and self._voice_task is None and not self.hung_up:
            self._voice_task = self._loop.create_task(self._listen_now_on_voice(), name=f"voice:{self.id}")

    # -- messages (seed 003): Asterisk records, ARI's stored recordings list them ------------

    async def _recording_path(self, name: str) -> str:
        if any(ch in name for ch in "/ \"\n\r\\"):
            raise ValueError(f"recording name with a path or a space: {name!r}")
        if self._spool_dir is None:
            reply = await self._command("GET VARIABLE ASTSPOOLDIR")
            if reply.value != 1 or not reply.data.startswith("/"):
                raise AgiProtocolError(f"ASTSPOOLDIR unknown: {reply.line[:80]}")
            self._spool_dir = reply.data
        return f"{self._spool_dir}/recording/{name}"

    async def record(self, name: str, *, max_seconds: float, max_silence: float, beep: bool = True,
                     terminate_on: str = "#") -> Recording:
        self._check_up()
        self.flush_input()
        path = await self._recording_path(name)
        # offset 0, then BEEP, then s=: res_agi reads them by position; Asterisk trims the final silence
        command = (f"RECORD FILE {quote(path)} wav {quote(terminate_on)} {int(max_seconds * 1000)} 0"
                   f"{' BEEP' if beep else ''} s={max(1, int(max_silence))}")
        try:
            reply = await self.conn.send_command(command, max_seconds + max_silence + COMMAND_TIMEOUT)
        except AgiConnectionClosed:
            self._mark_hungup()  # what was said so far is in the file: a message is never lost
            return Recording(name=name, duration=0.0, ended_by="hangup")
        duration = int(reply.extra.get("endpos", "0") or 0) / 8000  # samples at 8 kHz
        value = reply.value
        if reply.code == 511 or reply.data == "hangup" or (value == -1 and (self.conn.hangup_notice or self.conn.closed.is_set())):
            self._mark_hungup()
            ended_by = "hangup"
        elif value is None or value < 0 or reply.code != 200:
            ended_by = "failed"
        elif 0 < value < 256:
            ended_by = "key"
        elif duration >= max_seconds - 1:
            ended_by = "max_duration"
        else:
            ended_by = "silence"
        # the final silence is cut from the file: what is left is the caller talking
        talked = duration if ended_by in ("silence", "key", "max_duration", "hangup") else 0.0
        log.info("message recorded", extra={"channel": self.id, "recording": name, "seconds": round(duration, 1),
                                             "ended_by": ended_by})
        return Recording(name=name, duration=duration, ended_by=ended_by, talked=talked)

    async def play_recording(self, name: str) -> PlayResult:
        path = await self._recording_path(name)
        reply = await self._command(f"STREAM FILE {quote(path)} {quote('')}", timeout=PLAYBACK_TIMEOUT)
        return PlayResult(completed=self._stream_result(reply, name))

    # -- music, hang-up, hand-off --------------------------------------------------------

    async def start_moh(self, moh_class: str = "default") -> None:
        await self._command(f"SET MUSIC ON {quote(moh_class)}")

    async def stop_moh(self) -> None:
        if not self.hung_up:
            await self._command("SET MUSIC OFF")

    async def hang_up(self, reason: str) -> None:
        log.info("system hangs up", extra={"channel": self.id, "reason": reason})
        try:
            await self._command("HANGUP")
        except (CallerHungUp, AgiProtocolError):
            pass
        self._mark_hungup()

    async def originate(self, endpoint: str, *, caller_id: str | None = None, timeout: float = 30.0,
                        announce: str | None = None) -> OriginateResult:
        # A second call bridged with an AGI channel needs the channel in a bridge Asterisk lets us
        # drive; over FastAGI the flows hand such calls to the dialplan instead (see server.py).
        return OriginateResult(answered=False, cause="failed: no second call from a FastAGI channel")

    async def bridge_with(self, *others: object, bridge_id: str | None = None) -> str:
        raise RuntimeError("a FastAGI channel is not bridged by callflow; continue_in_dialplan instead")

    async def set_variable(self, name: str, value: str) -> None:
        await self._command(f"SET VARIABLE {quote(name)} {quote(value)}")

    async def watch_loudness(self, threshold: int, on_change) -> None:
        """Seed 004's raised-voice watch runs on the agents' desk, an ARI path: a FastAGI caller reaches people
        through the dialplan, never the desk. Refused loudly rather than silently doing nothing."""
        raise RuntimeError("the raised-voice watch is the desk's (ARI): not available to a FastAGI caller")

    async def continue_to_listen(self, context: str) -> None:
        """The AudioSocket path is an ARI one: a FastAGI caller is never in Stasis (its audio is the snoop fork's)."""
        raise RuntimeError("a FastAGI caller cannot be moved to the AudioSocket listen context")

    async def continue_in_dialplan(self, context: str, extension: str = "s", priority: int = 1) -> None:
        self._check_up()
        await self._command(f"SET CONTEXT {quote(context)}")
        await self._command(f"SET EXTENSION {quote(extension)}")
        await self._command(f"SET PRIORITY {int(priority)}")
        self.moved_to = (context, extension, priority)
        log.info("call continues in the dialplan", extra={"channel": self.id, "context": context})
