"""One shared asyncio UDP socket receiving externalMedia RTP for many calls.

Each call registers a stream; the adapter tells us the address Asterisk sends
from (UNICASTRTP_LOCAL_ADDRESS / UNICASTRTP_LOCAL_PORT of the externalMedia
channel). Packets from any other address are dropped and counted: we never
"learn" a source from its first packet, since anyone on the network could
then feed audio into a call. A stream may be registered before its source is
known; it simply receives nothing until `set_source` is called.

Per packet we only parse the header, check order and append the packet to
the analysis pool (a plain 20 ms μ-law packet, by far the usual one) or the
payload to the call's own buffer. A periodic task (every `tick` seconds,
25 ms: the delay from a packet to the state it updates stays well under
60 ms) analyses all calls in batches of `batch_calls` (see
classifier.analyse_calls), yielding to the loop between batches so the
socket keeps being drained; readings of calls answered together are spread
over ticks (`max_readings`).

The socket is read with a drain loop (`loop.add_reader` + recvfrom until the
kernel queue is empty) rather than asyncio's datagram transport, which costs
one event-loop iteration per datagram: at 50 packets/s × 1,000 calls that
alone would take most of a core. `datagram_received` keeps the
DatagramProtocol signature, so the class also works behind
`loop.create_datagram_endpoint` if ever needed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from callflow.audio import classifier
from callflow.audio.classifier import DEFAULT_CONFIG, CallAudio, analyse_calls
from callflow.audio.features import FRAME_SAMPLES
from callflow.audio.rtp import (
    MAX_DATAGRAM,
    RTP_HEADER_LEN,
    PT_CN,
    PT_PCMA,
    PT_PCMU,
    PT_TELEPHONE_EVENT,
    RtpError,
    SequenceTracker,
    Verdict,
    parse_header,
)

log = logging.getLogger(__name__)

Address = tuple[str, int]
_SEQ_TS_SSRC = struct.Struct("!HII")
_CODECS = {PT_PCMU: "ulaw", PT_PCMA: "alaw"}
_POOLED_LEN = RTP_HEADER_LEN + FRAME_SAMPLES  # a header without CSRC/extension/padding and 20 ms of audio

#: Counter names, all present from the start (zero) so exporters see every series.
COUNTERS = (
    "packets",  # datagrams received, any source
    "accepted",  # audio or CN payloads handed to a call
    "unknown_source",
    "truncated",
    "oversize",
    "bad_version",
    "bad_padding",
    "bad_payload_type",
    "telephone_event",
    "comfort_noise",
    "duplicate",
    "late",
    "ssrc_change",
    "lost",  # gaps in sequence numbers
)


@dataclass(eq=False)
class RtpStream:
    """One call's side of the receiver."""

    call_id: str
    audio: CallAudio
    source: Address | None = None
    telephone_event_pt: int = PT_TELEPHONE_EVENT
    tracker: SequenceTracker = field(default_factory=SequenceTracker)
    counters: collections.Counter = field(default_factory=collections.Counter)  # drops by reason
    accepted: int = 0  # audio and CN packets handed to the call
    on_telephone_event: Callable[[bytes], None] | None = None


def _normalise(host: str, port: int) -> Address:
    if host.startswith("::ffff:"):
        host = host[7:]
    return host, int(port)


class RtpReceiver(asyncio.DatagramProtocol):
    """Shared RTP socket. Create, `await start()`, then `register()` calls."""

    def __init__(
        self,
        *,
        tick: float = 0.025,
        telephone_event_pt: int = PT_TELEPHONE_EVENT,
        clock: Callable[[], float] = time.monotonic,
        lag_samples: int = 2048,
        recv_buffer: int = 4 * 1024 * 1024,
        batch_calls: int = 1000,
    ) -> None:
        self.tick = tick  # analysis period: lag vs per-tick overhead (see docs/benchmarks.md)
        self.recv_buffer = recv_buffer  # capped by net.core.rmem_max
        self.batch_calls = batch_calls
        self.telephone_event_pt = telephone_event_pt
        self.clock = clock
        self._counters: collections.Counter = collections.Counter({name: 0 for name in COUNTERS})
        # The fast path's two counts as plain ints (a Counter's += costs ~4x a plain int's, per
        # packet), folded into `counters` whenever it is read.
        self._fast_packets = 0
        self._fast_accepted = 0
        self.streams: dict[str, RtpStream] = {}
        self._by_source: dict[Address, RtpStream] = {}
        self._sock: socket.socket | None = None
        self._task: asyncio.Task | None = None
        self._oldest_pending: float | None = None
        #: Recent packet-arrival → analysed delays (seconds), for benchmarks and metrics.
        self.lags: collections.deque[float] = collections.deque(maxlen=lag_samples)

    # ---- lifecycle ---------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Address:
        """Bind the shared socket (port 0: any free port) and start analysing."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.recv_buffer)
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        loop.add_reader(sock.fileno(), self._drain)
        self._task = asyncio.create_task(self._analysis_loop(), name="rtp-analysis")
        return self.local_address

    @property
    def counters(self) -> collections.Counter:
        """Datagrams by outcome (COUNTERS), up to date."""
        counters = self._counters
        if self._fast_packets:
            counters["packets"] += self._fast_packets
            counters["accepted"] += self._fast_accepted
            self._fast_packets = self._fast_accepted = 0
        return counters

    @property
    def local_address(self) -> Address:
        if self._sock is None:
            raise RuntimeError("receiver not started")
        return self._sock.getsockname()[:2]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _drain(self, limit: int = 2000) -> None:
        """Read every queued datagram (bounded, so analysis ticks still get their turn).

        The common packet (plain header, μ-law, 20 ms, the next sequence number of a
        known source) is handled inline, with counters summed after the loop; every
        other datagram goes through `datagram_received`.
        """
        recv = self._sock.recvfrom
        handle = self.datagram_received
        by_source = self._by_source
        unpack = _SEQ_TS_SSRC.unpack_from
        accepted = 0
        try:
            for _ in range(limit):
                try:
                    data, addr = recv(MAX_DATAGRAM + 1)  # one byte more: bigger datagrams show as oversize
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:  # e.g. ICMP errors surfacing on the socket
                    self.error_received(exc)
                    return
                if len(data) == _POOLED_LEN and data[0] == 0x80 and data[1] & 0x7F == PT_PCMU:
                    stream = by_source.get(addr)
                    if stream is not None:
                        audio = stream.audio
                        tracker = stream.tracker
                        sequence, _ts, ssrc = unpack(data, 2)
                        if (
                            ssrc == tracker.ssrc
                            and sequence == (tracker.highest + 1) & 0xFFFF
                            and audio.codec == "ulaw"
                            and not audio._raw
                            and not audio._pcm
                        ):
                            if sequence == 0:
                                tracker.cycles += 1
                            tracker.highest = sequence
                            pool = audio._pool
                            pool.packets.append(data)
                            pool.owners.append(audio._slot)
                            stream.accepted += 1
                            if not accepted and self._oldest_pending is None:
                                self._oldest_pending = self.clock()
                            accepted += 1
                            continue
                handle(data, addr)
        finally:
            self._fast_packets += accepted
            self._fast_accepted += accepted

    # ---- calls -------------------------------------------------------------------------
    def register(
        self,
        call_id: str,
        audio: CallAudio | None = None,
        *,
        source: Address | None = None,
        telephone_event_pt: int | None = None,
        **audio_options,
    ) -> RtpStream:
        """Start receiving for a call; `source` may come later via `set_source`."""
        if call_id in self.streams:
            self.unregister(call_id)
        if audio is not None and audio.closed:
            audio.resume()  # the same call listening again: one timeline for the whole call
        stream = RtpStream(
            call_id=call_id,
            audio=audio if audio is not None else CallAudio(**audio_options),
            telephone_event_pt=self.telephone_event_pt if telephone_event_pt is None else telephone_event_pt,
        )
        self.streams[call_id] = stream
        if source is not None:
            self.set_source(call_id, *source)
        return stream

    def set_source(self, call_id: str, host: str, port: int) -> None:
        """The address Asterisk sends this call's RTP from. Replaces any earlier one."""
        stream = self.streams[call_id]
        if stream.source is not None:
            self._by_source.pop(stream.source, None)
        address = _normalise(host, port)
        previous = self._by_source.get(address)
        if previous is not None and previous is not stream:
            log.warning("rtp source %s moved from call %s to %s", address, previous.call_id, call_id)
            previous.source = None
        stream.source = address
        stream.tracker = SequenceTracker()
        self._by_source[address] = stream

    def unregister(self, call_id: str) -> RtpStream | None:
        stream = self.streams.pop(call_id, None)
        if stream is not None:
            if stream.source is not None and self._by_source.get(stream.source) is stream:
                del self._by_source[stream.source]
            stream.audio.close()
        return stream

    def caller_rtp_active(self, call_id: str, active: bool | None) -> None:
        """Adapter hint (e.g. CHANNEL(rtcp,rxcount) polling) forwarded to the call."""
        stream = self.streams.get(call_id)
        if stream is not None:
            stream.audio.caller_rtp_active(active)

    def stats(self) -> dict[str, float]:
        """Flat numbers for a metrics exporter: counters, streams, recent lag."""
        out: dict[str, float] = {f"rtp_{name}_total": float(value) for name, value in self.counters.items()}
        out["rtp_streams"] = float(len(self.streams))
        out["rtp_streams_without_source"] = float(sum(1 for s in self.streams.values() if s.source is None))
        # The stated fallback: 0 when speech readings are the classifier's alone (off, or Silero missing).
        opinion = classifier.SECOND_OPINION
        out["audio_second_opinion_active"] = float(opinion.running)
        out["audio_second_opinion_vetoes_total"] = float(opinion.vetoes)
        if self.lags:
            lags = sorted(self.lags)
            out["audio_analysis_lag_p99_seconds"] = lags[min(int(0.99 * len(lags)), len(lags) - 1)]
        return out

    # ---- hot path ----------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr) -> None:
        stream = self._by_source.get(addr if len(addr) == 2 else _normalise(addr[0], addr[1]))
        if stream is None:
            self._counters["packets"] += 1
            self._counters["unknown_source"] += 1
            return
        audio = stream.audio
        tracker = stream.tracker
        # Fast path, ~all packets (as in _drain): a plain v2 header and 20 ms of μ-law, the next
        # sequence number of the call's source, nothing of the call waiting before it: straight
        # to the analysis pool (decoded with all calls' packets at the next tick). One unpack,
        # no per-packet object.
        if len(data) == _POOLED_LEN and data[0] == 0x80 and data[1] & 0x7F == PT_PCMU:
            sequence, _ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
            if ssrc == tracker.ssrc and sequence == (tracker.highest + 1) & 0xFFFF and audio.codec == "ulaw":
                if sequence == 0:
                    tracker.cycles += 1
                tracker.highest = sequence
                if audio._raw or audio._pcm:  # audio of the call waits before it: after that audio
                    audio.push_payload_fast(data[RTP_HEADER_LEN:])
                else:
                    pool = audio._pool
                    pool.packets.append(data)
                    pool.owners.append(audio._slot)
                self._fast_packets += 1
                self._fast_accepted += 1
                stream.accepted += 1
                if self._oldest_pending is None:
                    self._oldest_pending = self.clock()
                return
        # Then any other in-order packet of the call's codec (A-law, other lengths). The bookkeeping is
        # the fast path's, written out again on purpose: a helper call per packet costs more than it does.
        if RTP_HEADER_LEN < len(data) <= MAX_DATAGRAM and data[0] == 0x80 and _CODECS.get(data[1] & 0x7F) == audio.codec:
            sequence, _ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
            if ssrc == tracker.ssrc and sequence == (tracker.highest + 1) & 0xFFFF:
                if sequence == 0:
                    tracker.cycles += 1
                tracker.highest = sequence
                audio.push_payload_fast(data[RTP_HEADER_LEN:])
                self._fast_packets += 1
                self._fast_accepted += 1
                stream.accepted += 1
                if self._oldest_pending is None:
                    self._oldest_pending = self.clock()
                return
        self._counters["packets"] += 1
        self._general_path(stream, data)

    def _general_path(self, stream: RtpStream, data: bytes) -> None:  # noqa: C901 - flat on purpose
        """Every other packet: unusual headers, other payload types, loss, reordering, SSRC change."""
        counters = self._counters
        try:
            payload_type, sequence, _ts, ssrc, _marker, start, end = parse_header(data)
        except RtpError as exc:
            counters[exc.reason] += 1
            stream.counters[exc.reason] += 1
            return
        codec = _CODECS.get(payload_type)
        if codec is None and payload_type != PT_CN and payload_type != stream.telephone_event_pt:
            counters["bad_payload_type"] += 1
            stream.counters["bad_payload_type"] += 1
            return
        tracker = stream.tracker
        lost_before = tracker.lost
        verdict = tracker.check(ssrc, sequence)
        if verdict is Verdict.DUPLICATE or verdict is Verdict.LATE:
            name = "duplicate" if verdict is Verdict.DUPLICATE else "late"
            counters[name] += 1
            stream.counters[name] += 1
            return
        if verdict is Verdict.NEW_SOURCE and stream.accepted:
            counters["ssrc_change"] += 1
            stream.counters["ssrc_change"] += 1
        if tracker.lost != lost_before:
            counters["lost"] += tracker.lost - lost_before
        if codec is not None:
            stream.audio.push_payload(data[start:end], codec)
        elif payload_type == PT_CN:
            counters["comfort_noise"] += 1
            stream.audio.push_comfort_noise()
        else:
            counters["telephone_event"] += 1
            stream.counters["telephone_event"] += 1
            if stream.on_telephone_event is not None:
                stream.on_telephone_event(data[start:end])
            return
        counters["accepted"] += 1
        stream.accepted += 1
        if self._oldest_pending is None:
            self._oldest_pending = self.clock()

    def error_received(self, exc: Exception) -> None:
        log.debug("rtp socket error: %s", exc)
        self._counters["socket_error"] += 1

    # ---- analysis ----------------------------------------------------------------------
    def analyse(self) -> None:
        """One analysis tick over every registered call, in one go (tests, tools)."""
        oldest, self._oldest_pending = self._oldest_pending, None
        if self.streams:
            analyse_calls([s.audio for s in self.streams.values()], max_readings=self._reading_budget(len(self.streams)))
        if oldest is not None:
            self.lags.append(self.clock() - oldest)

    async def _analyse_in_batches(self) -> None:
        """Every call, also the idle ones ("no packets for N ms" and tap groups
        closing need time to pass), `batch_calls` at a time, draining the socket between."""
        # Read what the kernel holds first: after a stall of this loop the packets that waited
        # there are the calls' audio of that time, and must be analysed before anything is
        # decided from the absence of audio (media stopped, a tap group closing on the clock).
        if self._sock is not None:
            self._drain()
        oldest, self._oldest_pending = self._oldest_pending, None
        calls = [s.audio for s in self.streams.values()]
        for start in range(0, len(calls), self.batch_calls):
            if start:
                if self._sock is not None:
                    self._drain()
                await asyncio.sleep(0)
            try:
                batch = calls[start : start + self.batch_calls]
                analyse_calls(batch, max_readings=self._reading_budget(len(batch)))
            except Exception:  # one bad call must not stop everyone's audio
                log.exception("audio analysis batch failed")
        if oldest is not None:
            self.lags.append(self.clock() - oldest)

    def _reading_budget(self, calls: int) -> int:
        """Readings per tick for this many calls: a quarter more than the steady rate (see analyse_calls)."""
        return int(1.25 * calls * self.tick / DEFAULT_CONFIG.reading_interval) + 4

    async def _analysis_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.tick
            await asyncio.sleep(max(next_at - loop.time(), 0.0))
            await self._analyse_in_batches()
            if loop.time() - next_at > 5 * self.tick:
                next_at = loop.time()  # overloaded: do not try to catch up in a burst
