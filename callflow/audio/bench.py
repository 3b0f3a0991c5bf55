"""`callflow bench audio`: many synthetic RTP streams into one receiver over loopback.

A sender process plays N calls at 50 packets/s each (one UDP socket per call,
127.0.0.1 only, 20 ms cadence split in four bursts); this process runs the
real RtpReceiver + classifier on one asyncio loop (one core) and measures its
own CPU time, packet loss, the delay from a packet's arrival (when the
receiver reads it from the socket) to the end of the analysis tick that used
it, the gap between readings, and RSS per call.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import resource
import socket
import time
from dataclasses import dataclass

import numpy as np

from callflow.audio.g711 import ulaw_encode
from callflow.audio.receiver import RtpReceiver
from callflow.audio.rtp import build_rtp

PACKETS_PER_SECOND = 50
LAG_TARGET_MS = 60.0  # packet arrival → end of the analysis that used it, p99
SR = 8000


@dataclass
class BenchResult:
    calls: int
    seconds: float
    cpu_fraction: float  # of one core, receiver process
    received: int  # audio packets accepted in the measured window
    lost: int  # sequence-number gaps in the window: packets the kernel or the sender dropped
    sender_rate: float  # packets/s the sender actually achieved (over its whole run)
    lag_p50_ms: float
    lag_p99_ms: float
    max_reading_gap_ms: float
    rss_per_call_kb: float  # RSS growth / calls: rough (the heap is reused between runs)

    load_average: float = 0.0  # 1-minute load when the run ended: other work on the machine

    @property
    def loss(self) -> float:
        total = self.received + self.lost
        return self.lost / total if total else 0.0

    @property
    def cpu_per_call_pct(self) -> float:
        return 100.0 * self.cpu_fraction / self.calls

    @property
    def real_time(self) -> bool:
        """Kept up: < 90 % of the core, < 1 % loss, p99 lag < 60 ms (issue 3's target), readings ≤ 550 ms apart."""
        return (
            self.cpu_fraction < 0.9
            and self.loss < 0.01
            and self.lag_p99_ms < LAG_TARGET_MS
            and self.max_reading_gap_ms <= 550
        )

    def line(self) -> str:
        return (
            f"calls={self.calls:5d} cpu={100 * self.cpu_fraction:5.1f}% of a core "
            f"({self.cpu_per_call_pct:.3f}%/call) loss={100 * self.loss:.2f}% "
            f"(sender {self.sender_rate / self.calls:.1f} pkt/s/call) "
            f"lag p50={self.lag_p50_ms:.0f} ms p99={self.lag_p99_ms:.0f} ms "
            f"max reading gap={self.max_reading_gap_ms:.0f} ms "
            f"load={self.load_average:.1f} {'real-time' if self.real_time else 'NOT real-time'}"
        )


def synthetic_payloads(seed: int = 7, seconds: float = 4.0) -> list[bytes]:
    """A few 4 s μ-law loops (voice-like, noise, near-silence) cut into 160-byte payloads."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    clips = [voice * 0.2, rng.standard_normal(n) * 0.03, rng.standard_normal(n) * 0.0005]
    loops = []
    for clip in clips:
        data = ulaw_encode(np.clip(clip * 32767, -32768, 32767).astype(np.int16))
        loops.append([data[i : i + 160] for i in range(0, len(data) - 159, 160)])
    return loops


def _sender(target: tuple[str, int], calls: int, seconds: float, conn) -> None:
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    socks = []
    for _ in range(calls):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    conn.send([s.getsockname()[1] for s in socks])
    conn.recv()  # go
    loops = synthetic_payloads()
    headers = [(i * 7919) & 0xFFFF for i in range(calls)]
    sent = 0
    start = time.monotonic()
    tick = 0
    quarter = max(calls // 4, 1)
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        part = tick % 4
        for i in range(part * quarter, calls if part == 3 else (part + 1) * quarter):
            seq = headers[i] + tick // 4
            loop = loops[i % len(loops)]
            packet = build_rtp(loop[(tick // 4) % len(loop)], sequence=seq, timestamp=seq * 160, ssrc=i + 1)
            try:
                socks[i].sendto(packet, target)
                sent += 1
            except BlockingIOError:
                pass
        tick += 1
        delay = start + tick / (4 * PACKETS_PER_SECOND) - time.monotonic()  # four bursts per 20 ms
        if delay > 0:
            time.sleep(delay)
    conn.send((sent, time.monotonic() - start))
    for s in socks:
        s.close()


def memory_per_call_kb(calls: int = 200, seconds: float = 10.0) -> float:
    """Python + numpy heap held per CallAudio after `seconds` of audio (tracemalloc)."""
    import tracemalloc

    from callflow.audio.classifier import CallAudio, analyse_calls

    loops = synthetic_payloads()
    now = [0.0]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    audios = [CallAudio(clock=lambda: now[0], queue_size=64) for _ in range(calls)]
    for tick in range(int(seconds * 10)):
        for i, audio in enumerate(audios):
            loop = loops[i % len(loops)]
            for k in range(5):
                audio.push_payload_fast(loop[(tick * 5 + k) % len(loop)])
        now[0] += 0.1
        analyse_calls(audios)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del audios
    return held / calls / 1024


def _rss_kb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


async def _run(calls: int, seconds: float, warmup: float) -> BenchResult:
    receiver = RtpReceiver()
    host, port = await receiver.start("127.0.0.1", 0)
    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(target=_sender, args=((host, port), calls, warmup + seconds, child), daemon=True)
    proc.start()
    loop = asyncio.get_running_loop()
    ports = await loop.run_in_executor(None, parent.recv)
    rss0 = _rss_kb()
    gaps: list[float] = []
    last_seen: dict[int, float] = {}

    def watch(index: int):
        def on_reading(_reading) -> None:
            now = time.monotonic()
            if index in last_seen:
                gaps.append(now - last_seen[index])
            last_seen[index] = now

        return on_reading

    for i, p in enumerate(ports):
        receiver.register(f"bench-{i}", source=("127.0.0.1", p), on_reading=watch(i) if i < 20 else None, queue_size=4)
    parent.send("go")
    await asyncio.sleep(warmup)
    rss1 = _rss_kb()
    receiver.lags.clear()
    gaps.clear()
    accepted0, lost0 = receiver.counters["accepted"], receiver.counters["lost"]
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, wall1 = time.process_time(), time.monotonic()
    accepted1, lost1 = receiver.counters["accepted"], receiver.counters["lost"]
    lags = np.array(receiver.lags) * 1000 if receiver.lags else np.array([float("nan")])
    sent, sent_seconds = await loop.run_in_executor(None, parent.recv)
    proc.join(5)
    await receiver.stop()
    elapsed = wall1 - wall0
    return BenchResult(
        calls=calls,
        seconds=elapsed,
        cpu_fraction=(cpu1 - cpu0) / elapsed,
        received=accepted1 - accepted0,
        lost=lost1 - lost0,
        load_average=os.getloadavg()[0],
        sender_rate=sent / sent_seconds,
        lag_p50_ms=float(np.percentile(lags, 50)),
        lag_p99_ms=float(np.percentile(lags, 99)),
        max_reading_gap_ms=1000 * max(gaps) if gaps else float("nan"),
        rss_per_call_kb=(rss1 - rss0) / calls,
    )


def run_bench(calls: int, seconds: float = 10.0, warmup: float = 2.0) -> BenchResult:
    return asyncio.run(_run(calls, seconds, warmup))
