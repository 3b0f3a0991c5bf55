"""The FastAGI adapter against a scripted Asterisk on a real local socket.

The server under test is the real one (callflow.telephony.agi.server); the test
plays Asterisk's side of the FastAGI protocol line by line. Each of panoramisk's
four weak points has its own test here.
"""

from __future__ import annotations

import asyncio

import pytest

from callflow.core.channel import CallerHungUp, TapInput
from callflow.telephony.agi import channel as agi_channel
from callflow.telephony.agi.channel import AgiChannel, AgiTimeout
from callflow.telephony.agi.server import AgiServer

HEADERS = (
    "agi_network: yes\nagi_network_script: {script}\nagi_request: agi://127.0.0.1/{script}\n"
    "agi_channel: PJSIP/trunk-00000001\nagi_language: fr\nagi_type: PJSIP\nagi_uniqueid: 1700000000.1\n"
    "agi_callerid: 0612345678\nagi_calleridname: Caller\nagi_dnid: agi\nagi_context: hotline-agi\n"
    "agi_extension: s\nagi_priority: 3\nagi_enhanced: 0.0\n\n"
)


class FakeAsterisk:
    """Asterisk's end of one FastAGI connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, server: AgiServer, script: str = "flow", headers: str | None = None) -> "FakeAsterisk":
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write((HEADERS.format(script=script) if headers is None else headers).encode())
        await writer.drain()
        return cls(reader, writer)

    async def command(self, timeout: float = 3.0) -> str:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        assert line, "the controller closed the connection"
        return line.decode().rstrip("\n")

    async def reply(self, *lines: str) -> None:
        self.writer.write("".join(f"{line}\n" for line in lines).encode())
        await self.writer.drain()

    async def expect(self, command: str, *reply: str) -> None:
        got = await self.command()
        assert got == command, got
        await self.reply(*reply)

    async def closed_by_controller(self, timeout: float = 3.0) -> bool:
        data = await asyncio.wait_for(self.reader.read(), timeout)
        return data == b"" or not data.strip()

    async def answer_status(self) -> None:
        await self.expect("CHANNEL STATUS", "200 result=6")


@pytest.fixture
async def server():
    srv = AgiServer("127.0.0.1", 0, header_timeout=1.0)
    await srv.start()
    yield srv
    await srv.stop()


def run_flow(srv: AgiServer, flow, script: str = "flow") -> asyncio.Queue:
    """Register `flow`; the queue receives what it returned or raised."""
    outcome: asyncio.Queue = asyncio.Queue()

    async def route(ctx):
        try:
            outcome.put_nowait(await flow(ctx.channel))
        except BaseException as exc:
            outcome.put_nowait(exc)
            raise

    srv.add_flow(script, route)
    return outcome


# -- weak point 1: plain-function routes --------------------------------------------------

def test_a_plain_function_route_is_refused_at_start_up_not_at_the_first_call():
    async def main():
        srv = AgiServer("127.0.0.1", 0)

        def plain(request):  # panoramisk would wrap it with asyncio.coroutine (gone in 3.11)
            return None

        with pytest.raises(TypeError, match="async def"):
            srv.add_route("plain", plain)

        async def coroutine_route(request):
            return None

        srv.add_route("fine", coroutine_route)
        assert "fine" in srv._route

    asyncio.run(main())


# -- weak point 2: headers cut short ------------------------------------------------------

async def test_asterisk_closing_inside_the_headers_ends_the_connection_at_once(server):
    called = run_flow(server, lambda ch: asyncio.sleep(0))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\nagi_network_script: flow\n")  # no blank line
    await writer.drain()
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 2.0) == b""  # the server closed its side promptly
    writer.close()
    await asyncio.sleep(0.05)
    assert server.bad_connections == 1 and called.empty()


async def test_headers_that_never_end_time_out(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\n")  # and then nothing: header_timeout is 1 s
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 3.0) == b""
    assert server.bad_connections == 1
    writer.close()


# -- weak point 3: an unsolicited HANGUP is not a reply ------------------------------------

async def test_a_hangup_notice_is_not_taken_as_the_reply_of_the_command_in_flight(server):
    async def flow(channel: AgiChannel):
        reply = await channel.conn.send_command("GET VARIABLE CALLFLOW_X")
        return reply, channel.hung_up

    outcome = run_flow(server, flow)
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    # the caller hangs up while the command runs: the notice comes first, then the real reply
    await ast.expect("GET VARIABLE CALLFLOW_X", "HANGUP", "200 result=1 (kept)")
    reply, hung_up = await asyncio.wait_for(outcome.get(), 2)
    assert reply.value == 1 and reply.data == "kept"
    assert hung_up  # and the notice was not lost either


async def test_a_hangup_during_a_prompt_ends_the_flow_with_caller_hung_up(server):
    outcome = run_flow(server, lambda ch: ch.play("greeting"))
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    await ast.expect('STREAM FILE callflow/fr/greeting "0123456789*#"', "HANGUP", "200 result=-1 endpos=1200")
    assert isinstance(await asyncio.wait_for(outcome.get(), 2), CallerHungUp)
    assert await ast.closed_by_controller()


# -- weak point 4: timeouts ---------------------------------------------------------------

async def test_a_command_without_reply_times_out_and_the_connection_closes(server, monkeypatch):
    monkeypatch.setattr(agi_channel, "COMMAND_TIMEOUT", 0.5)
    outcome = run_flow(server, lambda ch: ch.answer())
    ast = await FakeAsterisk.connect(server)
    await ast.expect("CHANNEL STATUS", "200 result=4")  # ringing: the flow answers
    assert await ast.command() == "ANSWER"  # … and Asterisk never replies
    assert isinstance(await asyncio.wait_for(outcome.get(), 3), AgiTimeout)
    assert await ast.closed_by_controller()  # the dialplan's next line (agents) takes the caller


# -- prompts, keys, barge-in --------------------------------------------------------------

async def test_a_key_during_a_prompt_stops_it_and_stays_queued(server):
    async def flow(channel):
        played = await channel.play("q_hears")
        return played, await channel.next_input(1.0)

    outcome = run_flow(server, flow)
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    await ast.expect('STREAM FILE callflow/fr/q_hears "0123456789*#"', "200 result=49 endpos=4000")
    played, key = await asyncio.wait_for(outcome.get(), 2)
    assert not played.completed and played.interrupted_by.digit == "1"
    assert key.digit == "1"


async def test_a_tap_group_stops_the_prompt_by_writing_the_next_command(server):
    async def flow(channel):
        task = asyncio.get_running_loop().create_task(channel.play("q_hears"))
        await asyncio.sleep(0.2)
        channel.push_input(TapInput(count=1, at=channel.now()))
        return await task

    outcome = run_flow(server, flow)
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    assert await ast.command() == 'STREAM FILE callflow/fr/q_hears "0123456789*#"'
    # res_agi ends STREAM FILE without a reply line when a new command arrives; only NOOP answers
    await ast.expect("NOOP barge-in", "200 result=0")
    played = await asyncio.wait_for(outcome.get(), 2)
    assert not played.completed and played.interrupted_by.count == 1


async def test_a_prompt_that_ended_just_before_the_barge_in_reads_both_replies(server):
    async def flow(channel):
        task = asyncio.get_running_loop().create_task(channel.play("q_hears"))
        await asyncio.sleep(0.2)
        channel.push_input(TapInput(count=2, at=channel.now()))
        played = await task
        status = await channel.conn.send_command("CHANNEL STATUS")
        return played, status

    outcome = run_flow(server, flow)
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    assert await ast.command() == 'STREAM FILE callflow/fr/q_hears "0123456789*#"'
    assert await ast.command() == "NOOP barge-in"
    await ast.reply("200 result=0 endpos=8000", "200 result=0")  # the prompt's end, then NOOP's reply
    await ast.expect("CHANNEL STATUS", "200 result=6")
    played, status = await asyncio.wait_for(outcome.get(), 2)
    assert played.completed and status.value == 6  # replies stayed paired with their commands


async def test_keys_are_read_in_short_slices_and_a_prompt_without_barge_in_has_no_escape_digits(server):
    async def flow(channel):
        await channel.play("to_agent", barge_in=False)
        return await channel.next_input(2.0)

    outcome = run_flow(server, flow)
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    await ast.expect('STREAM FILE callflow/fr/to_agent ""', "200 result=0 endpos=9000")
    await ast.expect("WAIT FOR DIGIT 250", "200 result=0")
    await ast.expect("WAIT FOR DIGIT 250", "200 result=51")
    assert (await asyncio.wait_for(outcome.get(), 2)).digit == "3"


# -- the hand-off and the fail-safe ------------------------------------------------------

async def test_continue_in_dialplan_sets_the_destination_then_ends_the_agi(server):
    outcome = run_flow(server, lambda ch: ch.continue_in_dialplan("hotline-agents"))
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    await ast.expect('SET CONTEXT "hotline-agents"', "200 result=0")
    await ast.expect('SET EXTENSION "s"', "200 result=0")
    await ast.expect("SET PRIORITY 1", "200 result=0")
    await asyncio.wait_for(outcome.get(), 2)
    assert await ast.closed_by_controller()


async def test_a_failing_flow_closes_the_connection_and_the_server_keeps_serving(server):
    async def broken(channel):
        raise RuntimeError("bug")

    outcome = run_flow(server, broken)
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    assert isinstance(await asyncio.wait_for(outcome.get(), 2), RuntimeError)
    assert await ast.closed_by_controller()
    second = await FakeAsterisk.connect(server)
    await second.answer_status()
    assert isinstance(await asyncio.wait_for(outcome.get(), 2), RuntimeError)


async def test_an_unknown_route_is_closed_so_the_dialplan_sends_the_caller_on(server):
    ast = await FakeAsterisk.connect(server, script="nope")
    assert await ast.closed_by_controller()


async def test_the_caller_comes_from_the_headers(server):
    outcome = run_flow(server, lambda ch: asyncio.sleep(0, ch))
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    channel = await asyncio.wait_for(outcome.get(), 2)
    assert channel.id == "1700000000.1" and channel.caller.number == "0612345678"
    assert channel.caller.language == "fr" and channel.caller.dialed == "agi" and channel.is_up


# -- cas F over FastAGI: the dialplan places the emergency line ----------------------------------

class _Notes:
    def __init__(self):
        self.kinds: list[str] = []

    async def note(self, call_id, kind, detail="", *, at):
        self.kinds.append(kind)


async def test_the_emergency_line_is_handed_to_the_dialplan_with_the_briefing(server):
    from callflow.agents import latch
    from callflow.agents.config import EmergencyConfig
    from callflow.telephony.agi.emergency import DialplanEmergencyLine

    notes = _Notes()
    line = DialplanEmergencyLine(EmergencyConfig(), recorder=notes, channels=lambda call_id: server.channels.get(call_id))

    async def flow(channel):
        await line.start(channel.id, caller_number="0612345678", situation="détresse",
                         answers={"urgence_medicale": "oui"})

    outcome = run_flow(server, flow)
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    brief = await ast.command()
    assert brief.startswith('SET VARIABLE "CALLFLOW_EMERGENCY_BRIEF" "callflow/fr/emergency_announce_intro&')
    assert "callflow/fr/emergency_answer_medical" in brief and "em_digit_6&callflow/fr/em_digit_1" in brief
    await ast.reply("200 result=1")
    await ast.expect('SET VARIABLE "CALLFLOW_EMERGENCY_DEST" "PJSIP/emergency-test"', "200 result=1")
    await ast.expect('SET VARIABLE "CALLFLOW_EMERGENCY_RING" "30"', "200 result=1")
    await ast.expect('SET VARIABLE "CALLFLOW_EMERGENCY_SPACING" "3"', "200 result=1")
    await ast.expect('SET VARIABLE "CALLFLOW_EMERGENCY_PERSON_AFTER" "30"', "200 result=1")  # a person within 30 s
    await ast.expect('SET CONTEXT "hotline-emergency"', "200 result=0")
    await ast.expect('SET EXTENSION "s"', "200 result=0")
    await ast.expect("SET PRIORITY 1", "200 result=0")
    assert (await asyncio.wait_for(outcome.get(), 2)) is None
    assert latch.is_latched("1700000000.1")
    assert notes.kinds == ["emergency_latched", "emergency_dial", "moved"]  # the move went through the guard
    assert await ast.closed_by_controller()


async def test_a_real_emergency_number_is_refused_in_test_mode_before_any_dial(server):
    from callflow.agents.config import EmergencyConfig
    from callflow.core.errors import ConfigError
    from callflow.telephony.agi.emergency import DialplanEmergencyLine

    notes = _Notes()
    config = EmergencyConfig(destination="PJSIP/112@trunk")
    line = DialplanEmergencyLine(config, recorder=notes, channels=lambda call_id: server.channels.get(call_id))
    outcome = run_flow(server, lambda ch: line.start(ch.id, caller_number=None, situation="x", answers={}))
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    assert isinstance(await asyncio.wait_for(outcome.get(), 2), ConfigError)
    assert notes.kinds == ["emergency_latched", "emergency_refused"]
    assert await ast.closed_by_controller()  # the dialplan's fail-safe: a person


async def test_listen_on_voice_arms_talk_detect_only_when_its_events_can_reach_us(server):
    watched: list[str] = []

    async def watch(channel):
        watched.append(channel.id)

    async def flow(channel):
        channel._watch_voice = watch
        await channel.listen_on_voice()
        await channel.listen_on_voice()  # idempotent
        return channel.voice_watched

    outcome = run_flow(server, flow)
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    await ast.expect('SET VARIABLE "TALK_DETECT(set)" ""', "200 result=1")
    assert await asyncio.wait_for(outcome.get(), 2) is True
    assert watched == ["1700000000.1"]


async def test_listen_on_voice_without_ari_leaves_listening_to_the_flow(server):
    async def broken_watch(channel):
        raise ConnectionError("ARI is away")

    async def flow(channel):
        channel._watch_voice = broken_watch
        await channel.listen_on_voice()
        return await channel.conn.send_command("NOOP after")

    outcome = run_flow(server, flow)
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    await ast.expect("NOOP after", "200 result=0")  # no TALK_DETECT was set, the call went on
    assert (await asyncio.wait_for(outcome.get(), 2)).code == 200


# -- keys AGI throws away between two commands (res_agi reads and drops frames while idle) -----------------

async def test_a_key_lost_between_two_commands_still_comes_through_ari_and_each_key_counts_once(server):
    """The FastAGI emergency tests' lost « 1 »: pressed as a prompt ended, before the next WAIT FOR DIGIT,
    res_agi read and dropped it; our ARI app, which watches the channel, got its ChannelDtmfReceived."""
    got: list[str] = []

    async def flow(channel):
        await channel.play("q_emergency")  # ends; the caller presses 1 before our next command
        channel.on_ari_digit("1")  # only ARI saw it
        got.append((await channel.next_input(1.0)).digit)
        # a key both saw, AGI first: counted once
        got.append((await channel.next_input(1.0)).digit)
        channel.on_ari_digit("2")
        # a key both saw, ARI first: counted once
        channel.on_ari_digit("3")
        got.append((await channel.next_input(1.0)).digit)
        return await channel.next_input(0.5)

    outcome = run_flow(server, flow)
    ast = await FakeAsterisk.connect(server)
    await ast.answer_status()
    await ast.expect('STREAM FILE callflow/fr/q_emergency "0123456789*#"', "200 result=0 endpos=8000")
    await ast.expect("WAIT FOR DIGIT 250", "200 result=50")  # « 2 », read by AGI (ARI reports it after)
    await ast.expect("WAIT FOR DIGIT 250", "200 result=51")  # « 3 », which ARI reported first
    while outcome.empty():  # then nothing more is pressed
        try:
            line = (await asyncio.wait_for(ast.reader.readline(), 0.5)).decode()
        except asyncio.TimeoutError:
            continue
        if not line:
            break  # the flow ended: the controller closed the connection
        assert line.startswith("WAIT FOR DIGIT"), line
        await ast.reply("200 result=0")
    rest = await asyncio.wait_for(outcome.get(), 3)
    assert got == ["1", "2", "3"] and rest is None, (got, rest)
