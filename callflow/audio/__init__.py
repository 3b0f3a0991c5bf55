"""Caller audio: RTP in, audio states and tap groups out. Pure: no ARI, no flows.

What the ARI adapter uses (see docs/benchmarks.md for costs):

    receiver = RtpReceiver()                        # one per process
    host, port = await receiver.start("127.0.0.1")  # externalMedia external_host
    audio = CallAudio(answered_at=t_answer)         # one per call, same clock (time.monotonic)
    stream = receiver.register(call_id, audio)      # may come before the source is known
    receiver.set_source(call_id, ip, port)          # UNICASTRTP_LOCAL_ADDRESS / _PORT
    receiver.caller_rtp_active(call_id, True/False) # from CHANNEL(rtcp,rxcount) polling
    await audio.next_reading(timeout)               # AudioReading, at least every 0.5 s
    await audio.next_taps(timeout)                  # TapInput(count) after a ~1.3 s pause
    audio.reset_taps()                              # at the start of an answer window
    receiver.unregister(call_id)                    # fork torn down; register(call_id, audio) resumes
    audio.timeline                                  # [(start, end, state, confidence)] for the record
    receiver.stats()                                # flat counters + lag, for Prometheus

Modules: g711 (codecs), rtp (parser, sequence tracking), receiver (shared
socket), features (batched per-frame features; whitening filters for the
tap blocks), taps (tap detector),
classifier (CallAudio, analyse_calls, verdict), offline/cli/bench (tools).
"""

from callflow.audio.classifier import CallAudio, ClassifierConfig, analyse_calls, verdict
from callflow.audio.receiver import RtpReceiver, RtpStream

__all__ = ["CallAudio", "ClassifierConfig", "RtpReceiver", "RtpStream", "analyse_calls", "verdict"]
