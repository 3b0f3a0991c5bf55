"""A scripted SIPp caller that waits for a cue (callflow.pbx.sipp.Caller.wait_cue): the scenario's shape."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from callflow.pbx.sipp import Caller


def test_a_cue_is_an_in_dialog_notify_answered_200_before_the_next_keys(tmp_path):
    xml = Caller(workdir=tmp_path).audio("/tmp/a.ulaw").wait_cue(within=7.5).press("1").xml()
    steps = list(ET.fromstring(xml.encode("iso-8859-1")))
    kinds = [(s.tag, s.get("request") or s.get("response") or "") for s in steps]
    cue = kinds.index(("recv", "NOTIFY"))
    assert steps[cue].get("timeout") == "7500"  # no cue in time fails the scenario (no ontimeout jump)
    assert steps[cue + 1].tag == "send" and "SIP/2.0 200 OK" in steps[cue + 1].text
    audio = next(i for i, s in enumerate(steps) if s.tag == "nop" and "rtp_stream" in ET.tostring(s, encoding="unicode"))
    key = next(i for i, s in enumerate(steps) if s.tag == "nop" and "play_pcap_audio" in ET.tostring(s, encoding="unicode"))
    assert audio < cue < key
