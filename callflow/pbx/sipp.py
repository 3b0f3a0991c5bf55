"""SIPp as real SIP peers: callers, desk phones and test lines (tests, ops checks, benchmarks).

Scenarios are generated as XML per test (steps: stream audio, pause, press a
key, hang up or wait for our BYE) so each test says exactly what its caller
does. RFC 2833 key presses replay sip-tester's captures with fresh sequence
numbers, timestamps and SSRC for every press (replaying one capture twice makes
Asterisk see a burst of duplicates; see ../shared/notes/platform.md).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from callflow.pbx.sandbox import Instance

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
STOCK_DTMF = Path("/usr/share/sip-tester")  # Debian's sip-tester ships one RFC 2833 capture per key
_ports = itertools.count(0)
_presses = itertools.count(1)



def pbx_instance() -> Instance:
    """The sandbox instance SIPp talks to ($CALLFLOW_PBX_INSTANCE; 0 is 127.0.0.1:5060). Each
    instance has its own loopback address, so SIPp peers of parallel test workers never meet."""
    return Instance.from_env()


def next_ports() -> tuple[int, int]:
    """A SIP port and an RTP port no other SIPp of this test run uses."""
    n = next(_ports)
    return 25060 + n * 2, 26000 + n * 4


# -- RFC 2833 key presses as pcap ----------------------------------------------------------

def dtmf_pcap(digit: str, path: Path) -> Path:
    """Write one key press as a pcap SIPp can play: sip-tester's own RFC 2833 capture of
    that key, with a fresh sequence number, timestamp and SSRC for every press.

    The packets are otherwise left exactly as captured (marker, durations, the three
    identical end packets): hand-made variants made Asterisk report one press 2–3 times.
    """
    press = next(_presses)
    name = {"*": "star", "#": "pound"}.get(digit, digit)
    data = bytearray((STOCK_DTMF / f"dtmf_2833_{name}.pcap").read_bytes())
    offset, first_seq = 24, None
    while offset + 16 <= len(data):
        length = struct.unpack_from("<I", data, offset + 8)[0]
        rtp_at = offset + 16 + length - 16  # 12-byte RTP header + 4-byte telephone-event payload
        seq = struct.unpack_from("!H", data, rtp_at + 2)[0]
        first_seq = seq if first_seq is None else first_seq
        struct.pack_into("!HII", data, rtp_at + 2, ((press * 97) + seq - first_seq) & 0xFFFF,
                         (press * 160_000) & 0xFFFFFFFF, 0x5EED0000 + press)
        offset += 16 + length
    path.write_bytes(bytes(data))
    return path


# -- scenario building ---------------------------------------------------------------------------

@dataclass
class Caller:
    """What the SIPp caller does after the call is answered, in order."""

    steps: list[str] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sipp-")))

    def audio(self, ulaw_file: Path | str, loops: int = 1) -> "Caller":
        """Stream a raw 8 kHz μ-law file as RTP (in the background: add a pause to let it play)."""
        self.steps.append(f'<nop><action><exec rtp_stream="{ulaw_file},{loops},0"/></action></nop>')
        return self

    def stop_audio(self) -> "Caller":
        self.steps.append('<nop><action><exec rtp_stream="pause"/></action></nop>')
        return self

    def pause(self, seconds: float) -> "Caller":
        self.steps.append(f'<pause milliseconds="{int(seconds * 1000)}"/>')
        return self

    def press(self, digits: str, gap: float = 0.6) -> "Caller":
        for digit in digits:
            pcap = dtmf_pcap(digit, self.workdir / f"dtmf-{next(_presses)}.pcap")
            self.steps.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
            self.steps.append(f'<pause milliseconds="{int(gap * 1000)}"/>')
        return self

    def wait_cue(self, within: float = 120.0) -> "Caller":
        """Wait until told to go on (an in-dialog NOTIFY: `pjsip send notify callflow-test-cue channel …`),
        like a caller who presses once they hear the question, whatever the PBX's pace. The audio goes on
        meanwhile; no cue within `within` seconds fails the scenario."""
        self.steps.append(f'<recv request="NOTIFY" timeout="{int(within * 1000)}"/>' + OK_TO_LAST_REQUEST)
        return self

    def xml(self, *, caller_number: str = "0612345678", hang_up: bool = True, answer_within: float = 30.0) -> str:
        """hang_up: the caller ends the call; otherwise it waits for our BYE right after the
        last step (a BYE that arrives during a pause fails the scenario as unexpected).
        answer_within: seconds the call may ring before the caller gives up (the scenario fails)."""
        ending = _BYE_FROM_US if hang_up else _BYE_FROM_THEM
        head = _CALLER_HEAD.replace("@CALLER@", caller_number).replace("@ANSWER_MS@", str(int(answer_within * 1000)))
        return head + "\n".join(self.steps) + ending


#: A 200 OK to the request just received (an in-dialog NOTIFY: the tests' cues)
OK_TO_LAST_REQUEST = """
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"""


# The SDP both ends offer: μ-law and RFC 2833 keys, 20 ms packets.
def _sdp(origin: str) -> str:
    return f"""      v=0
      o={origin} 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
"""


_CALLER_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callflow caller">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:@CALLER@@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:@CALLER@@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

@SDP_CALLER@      a=sendrecv

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" timeout="@ANSWER_MS@"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:@CALLER@@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:@CALLER@@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
""".replace("@SDP_CALLER@", _sdp("caller"))

_BYE_FROM_US = """
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""

# the system ends the call: wait (up to the call's timeout) for Asterisk's BYE
_BYE_FROM_THEM = '\n  <recv request="BYE" timeout="600000"/>' + OK_TO_LAST_REQUEST + "</scenario>\n"


def registration_xml(user: str, password: str, expires: int = 300) -> str:
    """REGISTER, the 401 challenge, REGISTER again with the digest, 200."""
    return (f'<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="register {user}">\n'
            + _register(user, expires, cseq=1) + '  <recv response="401" auth="true"/>\n'
            + _register(user, expires, cseq=2, password=password) + '  <recv response="200"/>\n'
            # Linger a second: on a loaded PBX the REGISTER was retransmitted and its answer's twin comes
            # late. SIPp absorbs it as a retransmission here; gone, the phone that takes the port next got
            # it as a « call » expecting INVITE, aborted it and exited (an agent that never answered).
            + '  <pause milliseconds="1000"/>\n</scenario>\n')


def _register(user: str, expires: int, *, cseq: int, password: str | None = None) -> str:
    auth = f"      [authentication username={user} password={password}]\n" if password is not None else ""
    return f"""  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:{user}@[remote_ip]>
      Call-ID: [call_id]
      CSeq: {cseq} REGISTER
      Contact: <sip:{user}@[local_ip]:[local_port]>
{auth}      Expires: {expires}
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""


def _uas_reply(status: str, *, new_tag: bool = True, contact: bool = False) -> str:
    """A bodiless SIPp <send> answering the last request (a new To tag when we open the dialog)."""
    to_tag = ";tag=[pid]SIPpTag01[call_number]" if new_tag else ""
    contact_line = "      Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n" if contact else ""
    return (f"  <send>\n    <![CDATA[\n      SIP/2.0 {status}\n      [last_Via:]\n      [last_From:]\n"
            f"      [last_To:]{to_tag}\n      [last_Call-ID:]\n      [last_CSeq:]\n{contact_line}"
            "      Content-Length: 0\n\n    ]]>\n  </send>\n")


def answering_phone_xml(*, ring_seconds: float = 0.5, reject_with: int | None = None, talk_audio: str | None = None) -> str:
    """A desk phone / test line (UAS): rings, answers (or rejects), waits for BYE."""
    ring = f'<pause milliseconds="{int(ring_seconds * 1000)}"/>'
    if reject_with is not None:
        answer = "\n" + _uas_reply(f"{reject_with} Busy Here") + '  <recv request="ACK"/>\n</scenario>\n'
        return _UAS_HEAD + ring + answer
    media = f'<nop><action><exec rtp_stream="{talk_audio},-1,0"/></action></nop>' if talk_audio else ""
    return _UAS_HEAD + ring + _UAS_ANSWER + media + WAIT_FOR_BYE


#: The end of a UAS scenario: the other side hangs up, we say OK.
WAIT_FOR_BYE = "\n  <recv request=\"BYE\" timeout=\"600000\"/>\n" + _uas_reply("200 OK", new_tag=False) + "</scenario>\n"


def message_receiver_xml() -> str:
    """A phone that receives one SIP MESSAGE (SMS over SIP) and accepts it."""
    return ("""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="SIP MESSAGE receiver">
  <recv request="MESSAGE" crlf="true"/>
""" + _uas_reply("200 OK") + "</scenario>\n")


_UAS_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="answering phone">
  <recv request="INVITE" crlf="true"/>
""" + _uas_reply("180 Ringing", contact=True)

_UAS_ANSWER = """
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

@SDP_PHONE@
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
""".replace("@SDP_PHONE@", _sdp("phone"))


# -- running SIPp -------------------------------------------------------------------------------------

@dataclass
class SippRun:
    proc: asyncio.subprocess.Process
    workdir: Path
    name: str

    async def wait(self, timeout: float) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.kill()
            await self.proc.wait()
            raise AssertionError(f"SIPp {self.name} did not finish within {timeout} s\n{self.errors()}")

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()

    def errors(self) -> str:
        texts = []
        for f in sorted(self.workdir.glob("*errors.log")) + sorted(self.workdir.glob("*.out")):
            texts.append(f.read_text(errors="replace")[-3000:])
        return "\n".join(texts)


async def start_sipp(xml: str, *, name: str, service: str = "3000", sip_port: int | None = None,
                     media_port: int | None = None, timeout_s: int = 120, extra: list[str] | None = None,
                     remote: str | None = None, uas: bool = False, calls: int = 1, concurrent: int = 1,
                     rate: float | None = None, local: str | None = None) -> SippRun:
    """local: the address SIPp binds (default: the sandbox instance's; test-call against another PBX)."""
    sp, mp = next_ports()
    sip_port = sip_port or sp
    media_port = media_port or mp
    workdir = Path(tempfile.mkdtemp(prefix=f"sipp-{name}-"))
    scenario = workdir / "scenario.xml"
    scenario.write_text(xml)
    instance = pbx_instance()
    args = [SIPP, "-sf", str(scenario), "-i", local or instance.address, "-p", str(sip_port), "-mp", str(media_port),
            "-m", str(calls), "-l", str(concurrent), "-s", service, "-timeout", f"{timeout_s}s", "-timeout_error", "-trace_err",
            "-nostdin", *(extra or [])]
    if rate is not None:
        args += ["-r", str(rate)]
    if not uas:
        args.insert(1, remote or instance.sip_target)
    out = open(workdir / "sipp.out", "wb")
    proc = await asyncio.create_subprocess_exec(*args, cwd=workdir, stdout=out, stderr=asyncio.subprocess.STDOUT,
                                                stdin=asyncio.subprocess.DEVNULL)
    return SippRun(proc, workdir, name)


async def register(user: str, password: str, sip_port: int, *, expires: int = 300) -> None:
    # A loaded PBX answers a retransmitted REGISTER twice: the late twin of the 401 comes while the
    # scenario waits for the 200. SIPp's default aborts the registration on it; here it is ignored.
    run = await start_sipp(registration_xml(user, password, expires), name=f"register-{user}", sip_port=sip_port,
                           extra=["-default_behaviors", "all,-abortunexp"])
    code = await run.wait(15)
    assert code == 0, f"SIPp could not register {user} (exit {code})\n{run.errors()}"


# -- the emergency test line's behaviours (issue 11's fault campaign) ------------------------------

EMERGENCY_BEHAVIOURS = ("answers", "busy", "never_answers", "answers_then_hangs_up")

def _uas_head_remembering(**headers: str) -> str:
    """A UAS head that keeps INVITE headers in SIPp variables (SIPp refuses a variable never used)."""
    actions = "".join(f'      <ereg regexp="{regexp}" search_in="hdr" header="{header}:" assign_to="{name}"/>\n'
                      for name, (header, regexp) in headers.items())
    return ("""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="emergency line">
  <recv request="INVITE" crlf="true">
    <action>
""" + actions + """    </action>
  </recv>
""" + _uas_reply("180 Ringing", contact=True))


def emergency_line_xml(behaviour: str = "answers", *, ring_seconds: float = 0.5, talk_audio: str | None = None,
                       talk_seconds: float = 10.0) -> str:
    """The SIPp UAS standing in for 15/17/18/112, one call:

    - "answers": rings, answers, waits for our BYE;
    - "busy": rejects with 486 Busy Here;
    - "never_answers": rings until Asterisk gives up (CANCEL → 200, 487 Request Terminated);
    - "answers_then_hangs_up": answers, talks for `talk_seconds`, then sends its own BYE.
    """
    if behaviour not in EMERGENCY_BEHAVIOURS:
        raise ValueError(f"emergency line behaviour: expected one of {EMERGENCY_BEHAVIOURS} (got {behaviour!r})")
    if behaviour == "busy":
        return answering_phone_xml(ring_seconds=ring_seconds, reject_with=486)
    ring = f'<pause milliseconds="{int(ring_seconds * 1000)}"/>'
    if behaviour == "never_answers":
        return (_uas_head_remembering(invite_cseq=("CSeq", ".*")) + '  <recv request="CANCEL" timeout="600000"/>\n' + _uas_reply("200 OK", new_tag=False)
                + "  <send>\n    <![CDATA[\n      SIP/2.0 487 Request Terminated\n      [last_Via:]\n      [last_From:]\n"
                "      [last_To:];tag=[pid]SIPpTag01[call_number]\n      [last_Call-ID:]\n      CSeq:[$invite_cseq]\n"
                "      Content-Length: 0\n\n    ]]>\n  </send>\n"
                '  <recv request="ACK"/>\n</scenario>\n')
    if behaviour == "answers":
        return answering_phone_xml(ring_seconds=ring_seconds, talk_audio=talk_audio)
    media = f'<nop><action><exec rtp_stream="{talk_audio},-1,0"/></action></nop>' if talk_audio else ""
    head = _uas_head_remembering(remote_from=("From", ".*"), local_to=("To", ".*"),
                                 remote_contact=("Contact", "sip:[^>;]*")) + ring + _UAS_ANSWER + media
    return head + f"""
  <pause milliseconds="{int(talk_seconds * 1000)}"/>
  <send retrans="500">
    <![CDATA[
      BYE [$remote_contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From:[$local_to];tag=[pid]SIPpTag01[call_number]
      To:[$remote_from]
      [last_Call-ID:]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""
