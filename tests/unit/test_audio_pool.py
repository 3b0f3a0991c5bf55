"""Many calls analysed together (pooled state, one numpy batch) behave as each call alone."""

import gc
import importlib.util
from pathlib import Path

import numpy as np

from callflow.audio.classifier import CallAudio, analyse_calls
from callflow.audio.g711 import ulaw_encode
from callflow.audio.offline import ManualClock
from callflow.audio.rtp import build_rtp

_spec = importlib.util.spec_from_file_location("audio_synth", Path(__file__).resolve().parents[1] / "audio" / "synth.py")
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)


def clips():
    return [
        synth.to_pcm(synth.taps(31, 2, 9.0) + synth.hiss(31, 9.0)),
        synth.to_pcm(synth.talk(32, 9.0, -20.0)),
        synth.to_pcm(synth.breathing(33, 9.0) + synth.hiss(33, 9.0)),
        synth.to_pcm(synth.noise(34, 9.0, "pink", -35.0)),
        np.zeros(9 * 8000, dtype=np.int16),  # digital silence
    ]


def run(calls, pcms, clock, together: bool, step: int = 800):
    """Feed all calls 100 ms at a time (staggered starts), analysed together or one by one."""
    out = {id(c): [] for c in calls}
    for start in range(0, 9 * 8000 + 2 * 8000, step):
        for k, (call, pcm) in enumerate(zip(calls, pcms)):
            at = start - k * 160  # calls start 20 ms apart
            if 0 <= at < len(pcm):
                call.push_pcm(pcm[at : at + step])
        clock.now += step / 8000
        if together:
            for call, readings in analyse_calls(calls).items():
                out[id(call)] += readings
        else:
            for call in calls:
                out[id(call)] += call.process()
    return [out[id(c)] for c in calls]


def test_batched_calls_read_exactly_as_single_calls():
    pcms = clips()
    results, taps = [], []
    for together in (False, True):
        clock = ManualClock()
        got: list[list] = [[] for _ in pcms]
        calls = [CallAudio(clock=clock, on_taps=got[k].append, queue_size=0) for k in range(len(pcms))]
        results.append(run(calls, pcms, clock, together))
        taps.append(got)
    assert results[0] == results[1]
    assert taps[0] == taps[1]
    assert [t.count for t in taps[1][0]] == [2]
    assert any(r.state.value == "speech" for r in results[1][1])


def test_a_released_slot_starts_clean():
    clock = ManualClock()
    pcm = synth.to_pcm(synth.talk(35, 3.0, -20.0))
    first = CallAudio(clock=clock, queue_size=0)
    slot = first._slot
    for i in range(0, len(pcm), 800):
        first.push_pcm(pcm[i : i + 800])
        clock.now += 0.1
        first.process()
    del first
    gc.collect()
    again = CallAudio(clock=clock, queue_size=0)
    assert again._slot == slot
    assert again._filled == 0 and again._last_packet is None and again._pool.taps.group[slot] == 0
    assert again.process()[0].state.value == "silence"


def test_pooled_packets_and_own_buffer_keep_arrival_order():
    """Receiver path: whole packets go to the pool; a short payload makes the next ones queue
    behind it in the call's own buffer, so frames are never reordered."""
    clock = ManualClock()
    pcm = synth.to_pcm(synth.talk(36, 1.0, -20.0))
    reference = CallAudio(clock=clock, queue_size=0)
    call = CallAudio(clock=clock, queue_size=0)
    data = ulaw_encode(pcm)
    pool = call._pool
    for i, start in enumerate(range(0, len(data), 160)):
        payload = data[start : start + 160]
        reference.push_payload_fast(payload)
        if i == 3:
            call.push_payload_fast(payload[:80])  # odd packet: to the call's buffer
            call.push_payload_fast(payload[80:])
        elif not call._raw:
            pool.packets.append(build_rtp(payload, sequence=i, timestamp=160 * i, ssrc=1))
            pool.owners.append(call._slot)
        else:
            call.push_payload_fast(payload)
        if i % 5 == 4:
            clock.now += 0.1
            analyse_calls([reference, call])
    clock.now += 0.1
    analyse_calls([reference, call])
    assert call.pending_bytes() == 0
    np.testing.assert_array_equal(call._window(50), reference._window(50))


def test_readings_spread_when_many_calls_are_due_together():
    clock = ManualClock()
    calls = [CallAudio(clock=clock, queue_size=0) for _ in range(200)]
    noise = synth.to_pcm(synth.noise(37, 0.025, "pink", -35.0))
    times: dict[int, list[float]] = {id(c): [] for c in calls}
    per_tick = []
    for _ in range(200):  # 5 s of 25 ms ticks
        for c in calls:
            c.push_pcm(noise)
        clock.now += 0.025
        got = analyse_calls(calls, max_readings=int(1.25 * 200 * 0.025 / 0.25) + 4)
        per_tick.append(len(got))
        for c, readings in got.items():
            times[id(c)] += [r.at for r in readings]
    gaps = [b - a for t in times.values() for a, b in zip(t, t[1:])]
    assert max(gaps) < 0.5  # the flows' contract
    assert max(per_tick[40:]) <= 29  # spread over the ticks, not all 200 at once
    assert min(len(t) for t in times.values()) >= 5 / 0.5
