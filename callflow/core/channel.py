"""The channel interface: everything a flow may ask of a live call.

Flows (callflow/flows/) talk only to this Protocol. Adapters make it real:
ARI (callflow/telephony/ari/), FastAGI (callflow/telephony/agi/) and an
in-memory fake for unit tests (callflow/telephony/fake.py). Nothing here knows
about sockets, HTTP or SQL.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable


class AudioState(str, enum.Enum):
    """What a trained hotliner hears on the line (seed 000, phase 2)."""

    DEAD_LINE = "dead_line"  # no media at all from the caller: line cut or muted device
    SILENCE = "silence"  # media arrives, nobody makes a sound
    BACKGROUND_NOISE = "background_noise"  # street, transport, TV… (cas A)
    BREATHING = "breathing"  # somebody is there but does not speak (cas B)
    SPEECH = "speech"  # the caller talks
    TAPS = "taps"  # the caller taps the handset to communicate
    LINE_TONE = "line_tone"  # busy, ringback, dial tone, fax/modem: the network, not a caller


#: States that prove somebody is on the line. The system never hangs up while
#: any of these was heard recently (caller-safety invariant).
SIGNS_OF_LIFE = frozenset({AudioState.BREATHING, AudioState.SPEECH, AudioState.TAPS})


@dataclass(frozen=True)
class AudioReading:
    """One classifier output, emitted at least every 500 ms while listening."""

    state: AudioState
    confidence: float  # 0..1
    at: float  # seconds since the call was answered
    level_dbfs: float = -99.0
    raised_voice: bool = False  # loud, strained speech (angry-caller procedure)
    distress: bool = False  # sobs / irregular breathing with voice energy (cas D/F)


class SpeechStreak:
    """« Si client commence à parler »: when readings prove the caller talks.

    Confident speech readings, READINGS of them within SPAN seconds (about a
    second of talk): one flicker is not speech. One rule for the flows (a
    person takes the call) and the adapters (a prompt stops when the caller
    talks over it).
    """

    READINGS = 2
    SPAN = 3.0
    CONFIDENCE = 0.6

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def add(self, reading: AudioReading, now: float) -> bool:
        """Count `reading` as heard at `now`; True once speech is confirmed."""
        if reading.state is AudioState.SPEECH and reading.confidence >= self.CONFIDENCE:
            self._times.append(now)
        while self._times and now - self._times[0] > self.SPAN:
            self._times.popleft()
        return self.confirmed

    @property
    def confirmed(self) -> bool:
        return len(self._times) >= self.READINGS


@dataclass(frozen=True)
class DigitInput:
    """A DTMF key from the caller (RFC 2833 or SIP INFO, whatever Asterisk saw)."""

    digit: str
    at: float


@dataclass(frozen=True)
class TapInput:
    """A group of distinct taps on the handset, closed after a short pause.

    The seed asks « tapez une fois sur votre téléphone »: 1 tap = oui, 2 = non.
    """

    count: int
    at: float


CallerInput = DigitInput | TapInput

#: A link whose RFC 2833 packets arrive late or out of order makes Asterisk report one press as a burst
#: of presses (seen on a loaded PBX: one « 1 » reported 8 times in 650 ms, 45-150 ms apart). Nobody
#: presses one key twice within 150 ms: the same key again within this time of its last report is the
#: same press. Chained, so a burst of any length is one press.
SAME_KEY_WINDOW = 0.15
#: A phone's keys click in its microphone, and the tap detector heard a tap group in the seconds a
#: caller keyed a number (seen: a caregiver's number « confirmed » by that group on a loaded PBX). A tap
#: group arriving within this time of a key is the keypad's sound, not an answer: a caller who keys
#: answers with keys. A group closes 1.3 s after its last tap.
TAPS_AFTER_KEY = 3.0


class InputFilter:
    """Each thing the caller did, once. The ARI and FastAGI channels pass their keys and tap groups through
    one of these per call before a flow sees them, and give the times (seconds on one clock). The fake
    channel delivers what its script says: flows keep their own burst guard (FlowCall.swallow_burst)."""

    def __init__(self) -> None:
        self._last_key: tuple[str, float] | None = None  # the last key reported, and when it was pressed
        self._key_arrived: float | None = None

    def refuses(self, item: CallerInput, *, now: float, pressed_at: float | None = None) -> str | None:
        """Why `item` is not the caller's (None: pass it on). `pressed_at`: when the PBX saw the key, if
        it says (a loaded controller receives keys in bunches; the PBX's times keep their spacing)."""
        if isinstance(item, DigitInput):
            at = now if pressed_at is None else pressed_at
            last, self._last_key, self._key_arrived = self._last_key, (item.digit, at), now
            if last is not None and last[0] == item.digit and 0 <= at - last[1] < SAME_KEY_WINDOW:
                return "the same press reported again"
            return None
        if self._key_arrived is not None and now - self._key_arrived < TAPS_AFTER_KEY:
            return "the keypad's own sound"
        return None


@dataclass(frozen=True)
class PlayResult:
    """How a prompt ended: played to the end, or cut short (barge-in / hang-up)."""

    completed: bool
    interrupted_by: CallerInput | None = None


@dataclass
class Caller:
    """Who is calling, as Asterisk told us."""

    number: str | None  # raw caller ID; None when anonymous / withheld
    name: str | None = None
    dialed: str | None = None  # the hotline number they called (DNID / exten)
    language: str = "fr"

    @property
    def masked(self) -> str:
        """Caller number safe for logs: never print a full caller number."""
        return mask_number(self.number)


def mask_number(number: str | None) -> str:
    if not number:
        return "anonymous"
    digits = "".join(ch for ch in number if ch.isdigit())
    if len(digits) <= 4:
        return "*" * len(digits)
    return digits[:2] + "*" * (len(digits) - 4) + digits[-2:]


class CallerHungUp(Exception):
    """Raised by any channel call once the caller's leg is gone."""


@dataclass(frozen=True)
class OriginateResult:
    """Outcome of a call we place (agent, supervisor, emergency line, callback)."""

    answered: bool
    cause: str  # "answered", "busy", "no_answer", "congestion", "failed"
    channel: "Channel | None" = None


@dataclass(frozen=True)
class Recording:
    """A message the caller recorded (Asterisk stores it; seed 003's messages)."""

    name: str  # Asterisk's stored recording name
    duration: float  # seconds recorded
    ended_by: str  # "key" (# pressed), "silence", "max_duration", "hangup", "failed"
    talked: float = 0.0  # seconds Asterisk heard talking, when it says so


@runtime_checkable
class Channel(Protocol):
    """One leg of a call, as the flows see it."""

    id: str
    caller: Caller

    @property
    def is_up(self) -> bool:
        """Answered and not hung up (Asterisk's "Up" state)."""
        ...

    async def answer(self) -> None: ...

    async def play(self, prompt: str, *, language: str | None = None, barge_in: bool = True) -> PlayResult:
        """Play a prompt id (see callflow/core/prompts.py) and wait for its end.

        With barge_in, a key or a tap group stops the prompt at once (the input
        stays queued so the next `next_input` returns it), and so does speech
        confirmed while listening (SpeechStreak; interrupted_by stays None).
        """
        ...

    async def stop_playback(self) -> None: ...

    async def next_input(self, timeout: float, *, accept_taps: bool = True) -> CallerInput | None:
        """Wait for the next key (or tap group), None on timeout."""
        ...

    def flush_input(self) -> None:
        """Forget queued keys/taps (e.g. a burst of duplicated digits)."""
        ...

    async def listen_on_voice(self) -> None:
        """Start listening by itself as soon as the caller's line gets loud.

        Uses the PBX's own loudness detector (Asterisk's TALK_DETECT: native
        cost, but loudness only, so not a verdict): the fork, which costs the
        PBX about as much as the call itself, only starts when there is
        something to hear or when a flow asks to listen. `stop_listening`
        disarms it. Idempotent.
        """
        ...

    async def start_listening(self) -> None:
        """Fork the caller's audio to the classifier. Cheap and idempotent."""
        ...

    async def stop_listening(self) -> None:
        """Tear the audio fork down (and disarm `listen_on_voice`). Cheap and idempotent."""
        ...

    async def next_reading(self, timeout: float) -> AudioReading | None:
        """Next classifier reading while listening; None on timeout, or at once when not listening."""
        ...

    async def record(self, name: str, *, max_seconds: float, max_silence: float, beep: bool = True,
                     terminate_on: str = "#") -> Recording:
        """Record the caller until `terminate_on`, `max_silence` of silence, `max_seconds` or hang-up.

        A caller who hangs up keeps what they said (ended_by "hangup"): it does
        not raise CallerHungUp.
        """
        ...

    async def play_recording(self, name: str) -> PlayResult:
        """Play a recording made with `record` back to this leg (not interruptible)."""
        ...

    async def watch_loudness(self, threshold: int, on_change: "Callable[[bool], None] | None") -> None:
        """Seed 004 « voix forte »: call on_change(True) when the caller gets louder than `threshold`
        (average amplitude, 16-bit), on_change(False) when they stop; None stops watching.

        The PBX's own talk detector with a high threshold (no media fork).
        """
        ...

    async def start_moh(self, moh_class: str = "default") -> None: ...

    async def stop_moh(self) -> None: ...

    async def hang_up(self, reason: str) -> None:
        """End this leg. Flows must go through the safety guard, never call this directly on the caller."""
        ...

    async def originate(
        self, endpoint: str, *, caller_id: str | None = None, timeout: float = 30.0, announce: str | None = None
    ) -> OriginateResult:
        """Place a second call (agent, supervisor, emergency line) linked to this one."""
        ...

    async def bridge_with(self, *others: "Channel", bridge_id: str | None = None) -> str:
        """Put this leg and the others in one mixing bridge; returns the bridge id."""
        ...

    async def continue_in_dialplan(self, context: str, extension: str = "s", priority: int = 1) -> None:
        """Hand the call back to the dialplan (e.g. the agents' queue). The flow ends there."""
        ...

    async def continue_to_listen(self, context: str) -> None:
        """The AudioSocket path: the caller out of Stasis into the listen `context`, which runs AudioSocket()
        to us and comes back to Stasis(callflow,back). Only `Guard.listen_out_of_stasis` calls it (it refuses
        wherever leaving Stasis is unsafe); an adapter whose caller is never in Stasis raises RuntimeError."""
        ...
