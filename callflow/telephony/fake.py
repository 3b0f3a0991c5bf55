"""In-memory Channel for unit tests: a scripted caller on a virtual clock.

Nothing sleeps. The channel owns the clock and moves it forward exactly as far
as each call would have taken on a real line: a prompt takes its duration, a
wait for a key lasts until the key or the timeout, a reading arrives every
500 ms while listening. A whole five-minute call runs in milliseconds.

The caller is a script: what the line sounds like from which second, the keys
and tap groups at given seconds or as replies to given prompts, and when (if
ever) they hang up. Everything the
flow does lands in `channel.log` (prompts with start/end times, hang-ups and by
whom, dialplan continuations…).

    script = CallerScript(sounds=[Sound(0, AudioState.BREATHING)], replies={"q_hears": [press("1")]})
    fake = FakeCall(script)
    await fake.run()            # runs callflow.flows.silent_call.run_silent_call
    fake.channel.prompts()      # ["greeting", "audio_check", …]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache


from callflow import prompts as prompts_source
from callflow.core.agents import Diagnosis
from callflow.core.call import Call
from callflow.core.channel import (
    AudioReading,
    AudioState,
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
from callflow.core.handoff import HandoffResult
from callflow.core.recorder import MemoryRecorder

EPS = 1e-9
#: Asterisk TALK_DETECT's default threshold (average amplitude 256), in dBFS: what starts a fork on voice.
VOICE_DBFS = -42.0


class FakeMisuse(BaseException):
    """The flow did something no real call allows (or never ended).

    A BaseException so that the flow's own « never leave the caller in silence »
    handler (which catches Exception) cannot hide it from the test.
    """

#: 2025-12-19 14:45 Paris, the seed's documentation card.
SEED_EPOCH = 1766151900.0


# -- the caller's script ----------------------------------------------------
@dataclass(frozen=True)
class Sound:
    """From second `at` on, the line sounds like `state` (until the next Sound)."""

    at: float
    state: AudioState
    level_dbfs: float = -45.0
    distress: bool = False
    confidence: float = 0.9


def key(at: float, digit: str) -> DigitInput:
    return DigitInput(digit=digit, at=at)


def taps(at: float, count: int) -> TapInput:
    return TapInput(count=count, at=at)


def burst(at: float, digit: str, n: int = 8, gap: float = 0.02) -> list[DigitInput]:
    """The same key reported n times (duplicated RTP events), as seen on real networks."""
    return [DigitInput(digit=digit, at=at + i * gap) for i in range(n)]


@dataclass(frozen=True)
class Reply:
    """The caller answers a prompt: a key or a tap group `after` seconds after it ends.

    A negative `after` answers while the prompt plays (barge-in). `repeat` > 1
    sends the same key that many times 20 ms apart (a duplicated-DTMF burst).
    """

    digit: str | None = None
    taps: int | None = None
    after: float = 1.0
    repeat: int = 1
    typed: str = ""  # several keys, one every `gap` seconds (a phone number)
    gap: float = 0.3

    def inputs(self, at: float) -> list[CallerInput]:
        if self.taps is not None:
            return [TapInput(count=self.taps, at=at)]
        if self.typed:
            return [DigitInput(digit=d, at=at + i * self.gap) for i, d in enumerate(self.typed)]
        return [DigitInput(digit=self.digit or "", at=at + i * 0.02) for i in range(self.repeat)]


def press(digit: str, after: float = 1.0, repeat: int = 1) -> Reply:
    return Reply(digit=digit, after=after, repeat=repeat)


def typed(keys: str, after: float = 1.0, gap: float = 0.3) -> Reply:
    return Reply(typed=keys, after=after, gap=gap)


def tap(count: int, after: float = 1.0) -> Reply:
    return Reply(taps=count, after=after)


@dataclass
class CallerScript:
    sounds: list[Sound] = field(default_factory=lambda: [Sound(0.0, AudioState.SILENCE)])
    inputs: list[CallerInput] = field(default_factory=list)
    # prompt id → the caller's replies, one per time that prompt is played
    replies: dict[str, list[Reply]] = field(default_factory=dict)
    hangs_up_at: float | None = None
    # seconds the caller talks into each recording, in order (then presses #); none left: silence
    messages: list[float] = field(default_factory=list)
    number: str | None = "+33612345678"
    language: str = "fr"


@dataclass(frozen=True)
class Event:
    at: float
    kind: str  # answer, play, hangup, caller_hangup, continue, listen, moh, originate, bridge
    detail: str = ""
    end: float | None = None  # for plays: when it stopped
    completed: bool = True
    language: str | None = None


class FakeClock:
    """Seconds since the call was answered, plus an epoch for record dates."""

    def __init__(self, epoch: float = SEED_EPOCH) -> None:
        self.epoch = epoch
        self.t = 0.0

    def time(self) -> float:
        return self.epoch + self.t


# -- the channel --------------------------------------------------------------
class FakeChannel:
    def __init__(
        self,
        script: CallerScript | None = None,
        *,
        clock: FakeClock | None = None,
        prompt_seconds: float | dict[str, float] = 4.0,
        channel_id: str = "fake-1",
        reading_interval: float = 0.5,
        max_seconds: float = 3600.0,
        prompts: dict[str, dict[str, str]] | None = None,
        reading_stalls: tuple[tuple[float, float], ...] = (),
    ) -> None:
        self.script = script or CallerScript()
        self.max_seconds = max_seconds  # a flow that loops fails the test instead of hanging it
        self.known_prompts = prompts  # when given, an unknown id or a missing language fails the test
        self.clock = clock or FakeClock()
        self.id = channel_id
        self.caller = Caller(number=self.script.number, language=self.script.language)
        self.log: list[Event] = []
        self._prompt_seconds = prompt_seconds
        self._interval = reading_interval
        # (from, until): readings stamped in [from, until) reach the flow only at `until`, all at once —
        # a stalled loop or flow under load; each keeps its own time (`at`)
        self._stalls = tuple(reading_stalls)
        self._sounds = sorted(self.script.sounds, key=lambda s: s.at)
        self._queue: list[list] = [[i, False] for i in sorted(self.script.inputs, key=lambda i: i.at)]  # [input, consumed]
        self._replies = {prompt: list(replies) for prompt, replies in self.script.replies.items()}
        self._answered = False
        self._gone: str | None = None  # "caller", "system", "dialplan"
        self._listening = False
        self._voice_armed_at: float | None = None  # listen_on_voice
        self._next_tick = 0.0
        self._messages = list(self.script.messages)

    # -- clock and caller hang-up ------------------------------------------
    @property
    def now(self) -> float:
        return self.clock.t

    def _alive(self) -> None:
        if self._gone == "dialplan":
            raise FakeMisuse(f"flow used the channel after it left for the dialplan (t={self.now})")
        if self._gone is not None:
            raise CallerHungUp()
        self._advance(self.now)

    def _advance(self, target: float) -> None:
        """Move time to `target`, unless the caller hangs up on the way."""
        if target > self.max_seconds:
            raise FakeMisuse(f"call still in the flow after {self.max_seconds:.0f} virtual seconds")
        h = self.script.hangs_up_at
        if h is not None and h <= target + EPS and self._gone is None:
            self.clock.t = max(self.clock.t, h)
            self._gone = "caller"
            self.log.append(Event(self.now, "caller_hangup"))
            raise CallerHungUp()
        self._fork_on_voice(target)
        self.clock.t = max(self.clock.t, target)

    def _voice_at(self, target: float) -> float | None:
        """listen_on_voice: when, by `target`, a loud sound began (Asterisk's TALK_DETECT threshold)."""
        armed = self._voice_armed_at
        if armed is None or self._listening:
            return None
        for s, following in zip(self._sounds, [*self._sounds[1:], None]):
            loud = s.state in (AudioState.SPEECH, AudioState.BACKGROUND_NOISE) or s.level_dbfs >= VOICE_DBFS
            start = max(s.at, armed)  # a sound already going when armed counts from then, if still going
            if loud and start <= target + EPS and (following is None or following.at > start):
                return start
        return None

    def _fork_on_voice(self, target: float) -> None:
        start = self._voice_at(target)
        if start is not None:
            self._listening = True
            self._next_tick = start + self._interval
            self.log.append(Event(start, "listen", "start on voice"))

    def _speech_over(self, end: float) -> float | None:
        """When, before `end`, the classifier's readings would confirm speech (a barge-in prompt stops)."""
        first = self._next_tick if self._listening else self._voice_at(end)
        if first is None:
            return None
        tick = first if self._listening else first + self._interval
        streak = SpeechStreak()
        while tick <= end + EPS:
            if streak.add(self.reading_at(tick), tick):
                return tick
            tick += self._interval
        return None

    def _first_input(self, until: float, accept_taps: bool = True) -> list | None:
        for entry in self._queue:
            inp, consumed = entry
            if consumed or (isinstance(inp, TapInput) and not accept_taps):
                continue
            return entry if inp.at <= until + EPS else None
        return None

    def _schedule(self, inputs: list[CallerInput]) -> None:
        self._queue.extend([i, False] for i in inputs)
        self._queue.sort(key=lambda entry: entry[0].at)

    def _before_hangup(self, at: float) -> bool:
        h = self.script.hangs_up_at
        return h is None or at < h

    # -- Channel Protocol ---------------------------------------------------
    @property
    def is_up(self) -> bool:
        return self._answered and self._gone is None

    async def answer(self) -> None:
        self._alive()
        self._answered = True
        self.log.append(Event(self.now, "answer"))

    async def play(self, prompt: str, *, language: str | None = None, barge_in: bool = True) -> PlayResult:
        self._alive()
        if self.known_prompts is not None:
            texts = self.known_prompts.get(prompt)
            if texts is None or (language or "fr") not in texts:
                raise FakeMisuse(f"prompt {prompt!r} has no {language or 'fr'} text in sounds/prompts.yaml")
        start = self.now
        seconds = self._prompt_seconds
        duration = seconds.get(prompt, 4.0) if isinstance(seconds, dict) else seconds
        end = start + duration
        if self._replies.get(prompt):
            reply = self._replies[prompt].pop(0)
            self._schedule(reply.inputs(max(start, end + reply.after)))
        if barge_in:
            found = self._first_input(end)
            speech_at = self._speech_over(end)
            if speech_at is not None and (found is None or speech_at < found[0].at) and self._before_hangup(speech_at):
                self._advance(max(start, speech_at))
                self.log.append(Event(start, "play", prompt, self.now, False, language))
                return PlayResult(completed=False)  # the caller talks over the prompt
            if found is not None and self._before_hangup(found[0].at):
                self._advance(max(start, found[0].at))
                self.log.append(Event(start, "play", prompt, self.now, False, language))
                return PlayResult(completed=False, interrupted_by=found[0])  # stays queued
        try:
            self._advance(end)
        finally:
            self.log.append(Event(start, "play", prompt, self.now, self.now >= end - EPS, language))
        return PlayResult(completed=True)

    async def stop_playback(self) -> None:
        self._alive()

    async def next_input(self, timeout: float, *, accept_taps: bool = True) -> CallerInput | None:
        self._alive()
        deadline = self.now + max(0.0, timeout)
        found = self._first_input(deadline, accept_taps)
        if found is not None and self._before_hangup(found[0].at):
            inp = found[0]
            self._advance(max(self.now, inp.at))
            found[1] = True
            return inp
        self._advance(deadline)
        return None

    def flush_input(self) -> None:
        for entry in self._queue:
            if entry[0].at <= self.now + EPS:
                entry[1] = True

    async def listen_on_voice(self) -> None:
        self._alive()
        if self._voice_armed_at is None:
            self._voice_armed_at = self.now
            self.log.append(Event(self.now, "listen", "on voice"))

    async def start_listening(self) -> None:
        self._alive()
        if not self._listening:
            self._listening = True
            self._next_tick = self.now + self._interval
            self.log.append(Event(self.now, "listen", "start"))

    async def stop_listening(self) -> None:
        self._voice_armed_at = None
        if self._listening:
            self._listening = False
            self.log.append(Event(self.now, "listen", "stop"))

    async def next_reading(self, timeout: float) -> AudioReading | None:
        self._alive()
        deadline = self.now + max(0.0, timeout)
        if self._listening and self._next_tick <= deadline + EPS:
            at = self._next_tick
            delivered = next((until for start, until in self._stalls if start <= at + EPS < until), at)
            if delivered <= deadline + EPS:
                self._advance(max(self.now, delivered))
                self._next_tick += self._interval
                return self.reading_at(at)
        self._advance(deadline)
        return None

    def reading_at(self, at: float) -> AudioReading:
        sound = Sound(0.0, AudioState.SILENCE)
        for s in self._sounds:
            if s.at <= at + EPS:
                sound = s
        return AudioReading(sound.state, sound.confidence, at, sound.level_dbfs, distress=sound.distress)

    async def record(self, name: str, *, max_seconds: float, max_silence: float, beep: bool = True,
                     terminate_on: str = "#") -> Recording:
        self._alive()
        start = self.now
        talk = self._messages.pop(0) if self._messages else 0.0
        length, ended_by = (min(talk, max_seconds), "key") if talk > 0 else (max_silence, "silence")
        if talk >= max_seconds:
            ended_by = "max_duration"
        try:
            self._advance(start + length)
        except CallerHungUp:
            self.log.append(Event(start, "record", name, self.now, False))
            return Recording(name=name, duration=self.now - start, ended_by="hangup", talked=min(talk, self.now - start))
        self.log.append(Event(start, "record", name, self.now, True))
        return Recording(name=name, duration=length, ended_by=ended_by, talked=min(talk, length))

    async def play_recording(self, name: str) -> PlayResult:
        self._alive()
        start = self.now
        took = next((e.end - e.at for e in reversed(self.log) if e.kind == "record" and e.detail == name), 1.0)
        try:
            self._advance(start + (took or 1.0))
        finally:
            self.log.append(Event(start, "play", f"recording:{name}", self.now, True))
        return PlayResult(completed=True)

    async def watch_loudness(self, threshold: int, on_change) -> None:
        self._alive()
        self.log.append(Event(self.now, "loudness", str(threshold) if on_change else "off"))

    async def start_moh(self, moh_class: str = "default") -> None:
        self._alive()
        self.log.append(Event(self.now, "moh", f"start {moh_class}"))

    async def stop_moh(self) -> None:
        self._alive()
        self.log.append(Event(self.now, "moh", "stop"))

    async def hang_up(self, reason: str) -> None:
        self._alive()
        self._gone = "system"
        self.log.append(Event(self.now, "hangup", reason))

    async def originate(
        self, endpoint: str, *, caller_id: str | None = None, timeout: float = 30.0, announce: str | None = None
    ) -> OriginateResult:
        self._alive()
        self.log.append(Event(self.now, "originate", endpoint))
        return OriginateResult(answered=True, cause="answered")

    async def bridge_with(self, *others, bridge_id: str | None = None) -> str:
        self._alive()
        self.log.append(Event(self.now, "bridge", bridge_id or "bridge-1"))
        return bridge_id or "bridge-1"

    async def continue_to_listen(self, context: str) -> None:
        self._alive()
        self.log.append(Event(self.now, "continue_to_listen", context))  # the fake keeps listening as before

    async def continue_in_dialplan(self, context: str, extension: str = "s", priority: int = 1) -> None:
        self._alive()
        self._gone = "dialplan"
        self.log.append(Event(self.now, "continue", f"{context},{extension},{priority}"))

    # -- what tests look at -------------------------------------------------
    def prompts(self) -> list[str]:
        return [e.detail for e in self.log if e.kind == "play" and not e.detail.startswith("recording:")]

    def recordings(self) -> list[Event]:
        return [e for e in self.log if e.kind == "record"]

    def plays(self, prompt: str) -> list[Event]:
        return [e for e in self.log if e.kind == "play" and e.detail == prompt]

    def system_hangups(self) -> list[Event]:
        return [e for e in self.log if e.kind == "hangup"]

    @property
    def hung_up_by(self) -> str | None:
        return self._gone


# -- the other sides, recorded -----------------------------------------------
class FakeHandoffs:
    """Handoffs that accept everything except the kinds in `refuse` ("sms", "email", "callback")."""

    def __init__(self, refuse: dict[str, str] | None = None) -> None:
        self.refuse = refuse or {}
        self.requests: list[tuple[str, dict]] = []

    def _result(self, kind: str, **kw) -> HandoffResult:
        self.requests.append((kind, kw))
        if kind in self.refuse:
            return HandoffResult(accepted=False, reason=self.refuse[kind])
        return HandoffResult(accepted=True, message_id=f"msg-{len(self.requests)}")

    async def send_sms(self, call_id, caller_number, *, agent_name, language="fr") -> HandoffResult:
        return self._result("sms", call_id=call_id, number=caller_number, agent_name=agent_name, language=language)

    async def send_email_or_instructions(self, call_id, caller_number, *, language="fr") -> HandoffResult:
        return self._result("email", call_id=call_id, number=caller_number, language=language)

    async def schedule_callback(self, call_id, number, *, delay_seconds, reason, target="agents") -> HandoffResult:
        return self._result(
            "callback", call_id=call_id, number=number, delay_seconds=delay_seconds, reason=reason, target=target
        )

    async def followup_email(self, call_id, caller_number, *, called_at, language="fr") -> HandoffResult:
        return self._result("followup_email", call_id=call_id, number=caller_number, called_at=called_at,
                            language=language)

    async def escalation_emails(self, call_id, caller_number, *, client, hotliner, hotliner_email) -> list[HandoffResult]:
        return [self._result("escalation_email_client", call_id=call_id, number=caller_number, subject=client[0], body=client[1]),
                self._result("escalation_email_hotliner", call_id=call_id, to=hotliner_email, subject=hotliner[0],
                             body=hotliner[1])]

    def kinds(self) -> list[str]:
        return [k for k, _ in self.requests]


class FakeEmergencyLine:
    def __init__(self) -> None:
        self.started: list[dict] = []

    async def start(self, call_id, *, caller_number, situation, answers) -> None:
        self.started.append(dict(call_id=call_id, caller_number=caller_number, situation=situation, answers=answers))


class FakeAgents:
    """Records the handoff and continues in the agents context, like DialplanAgents."""

    def __init__(self) -> None:
        self.handed: list[tuple[str, Diagnosis, str]] = []

    async def hand_to_agent(self, call: Call, diagnosis: Diagnosis, language: str) -> None:
        self.handed.append((call.call_id, diagnosis, language))
        await call.channel.continue_in_dialplan("agents", "s")




@lru_cache(maxsize=4)
def load_prompts() -> dict[str, dict[str, str]]:
    """Every prompt source (callflow/prompts.py): prompt id → {language: text}."""
    return prompts_source.load_prompts()


class FakeCall:
    """One scripted call wired to the silent-call flow with recording fakes."""

    def __init__(self, script: CallerScript | None = None, *, timers=None, refuse=None, prompt_seconds=4.0,
                 call_id: str = "call-1", agent_name: str = "Jean") -> None:
        from callflow.flows.silent_call import SilentCallDeps
        from callflow.flows.timers import SilentCallTimers

        self.channel = FakeChannel(script, prompt_seconds=prompt_seconds, prompts=load_prompts())
        self.clock = self.channel.clock
        self.recorder = MemoryRecorder()
        self.handoffs = FakeHandoffs(refuse)
        self.emergency = FakeEmergencyLine()
        self.agents = FakeAgents()
        self.call = Call(call_id=call_id).attach(self.channel)  # what the controller gives the flow
        self.deps = SilentCallDeps(
            recorder=self.recorder,
            handoffs=self.handoffs,
            emergency=self.emergency,
            agents=self.agents,
            timers=(timers or SilentCallTimers()).validate(),
            agent_name=agent_name,
            clock=self.clock,
        )

    async def run(self) -> "FakeCall":
        from callflow.flows.silent_call import run_silent_call

        await run_silent_call(self.call, self.deps)
        return self

    @property
    def record(self):
        return self.recorder.calls[self.call.call_id]
