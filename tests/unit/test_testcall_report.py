"""callflow test-call's pure parts: scenarios, SIPp's message trace, what the caller heard."""

from __future__ import annotations

from pathlib import Path

import pytest

from callflow.pbx import testcall

TRACE = Path(__file__).parent / "data" / "sipp_messages.log"  # SIPp 3.6.1 -trace_msg of two calls to a SIPp phone


def test_the_message_trace_gives_answer_time_the_pbx_media_and_who_hung_up():
    calls = testcall.parse_messages(TRACE.read_text())
    first = calls["1-4897@127.0.0.1"]
    assert first["pbx_media"] == ("127.0.0.1", 46000)  # the answering side's SDP
    assert 0 < first["answered"] - first["invite"] < 2
    assert "bye_sent" in first and "bye_received" not in first
    second = calls["2-4897@127.0.0.1"]
    assert "answered" not in second  # that phone took only one call


def test_reports_pair_the_pbx_audio_with_its_call_by_media_port():
    calls = testcall.parse_messages(TRACE.read_text())
    answered = calls["1-4897@127.0.0.1"]["answered"]
    packets = [(answered + 0.5 + i * 0.02, ("127.0.0.1", 46000), -20.0) for i in range(100)]  # 2 s of prompt
    packets += [(answered + 0.5 + i * 0.02, ("127.0.0.1", 46010), -20.0) for i in range(100)]  # another stream
    (first, second) = sorted(testcall.reports(calls, packets), key=lambda r: r.call_id)
    assert first.hung_up_by == "caller" and first.heard == [(0.5, 2.5)]
    assert second.answered_after is None and second.heard == []
    summary = testcall.summary([first, second], 1)
    assert summary["answered"] == 1 and summary["failed"] == 1 and summary["heard_audio"] == 1


def test_heard_segments_merge_short_gaps_and_drop_silence_and_clicks():
    t0 = 100.0
    packets = [(t0 + i * 0.02, -20.0) for i in range(50)]  # 0–1 s sound
    packets += [(t0 + 1.2 + i * 0.02, -20.0) for i in range(50)]  # a 0.2 s gap: one prompt
    packets += [(t0 + 3 + i * 0.02, -70.0) for i in range(50)]  # comfort noise: not heard
    packets += [(t0 + 5, -10.0)]  # one loud packet: a click, not a prompt
    assert testcall.heard_segments(packets, t0) == [(0.0, 2.2)]


@pytest.mark.parametrize("name", [s for s in testcall.SCENARIOS if s != "speech"])
def test_every_scenario_builds_a_caller_with_real_audio(name, tmp_path):
    scenario = testcall.build_scenario(name, tmp_path)
    xml = scenario.caller.xml(hang_up=scenario.hang_up)
    assert "<scenario" in xml and scenario.max_seconds > 0
    if name != "dead-line":
        assert "rtp_stream=" in xml
        streamed = [p for p in tmp_path.glob("*.ulaw")]
        assert streamed and all(p.stat().st_size > 8000 * 20 for p in streamed)
    if name in ("seed-example", "language", "emergency"):
        assert xml.count("play_pcap_audio=") == {"seed-example": 5, "language": 2, "emergency": 1}[name]
        assert len(set(tmp_path.glob("dtmf-*.pcap"))) == xml.count("play_pcap_audio=")  # a fresh capture per press


def test_an_unknown_scenario_is_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="one of dead-line"):
        testcall.build_scenario("nope", tmp_path)


def test_audio_stamped_before_sipps_late_answer_stamp_counts_from_the_first_packet():
    calls = {"c": {"invite": 10.0, "answered": 12.0, "bye_sent": 30.0, "pbx_media": ("10.0.0.1", 4000)}}
    packets = [(10.9 + i * 0.02, ("10.0.0.1", 4000), -20.0) for i in range(100)]  # before SIPp's 200 stamp
    (report,) = testcall.reports(calls, packets)
    assert report.heard == [(0.0, 2.0)]
