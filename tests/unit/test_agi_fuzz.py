"""Property tests: whatever bytes arrive on a FastAGI socket, a clear error, never a hang or a crash."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callflow.core.channel import CallerHungUp
from callflow.telephony.agi.channel import AgiConnection
from callflow.telephony.agi.protocol import AgiProtocolError, classify_line, parse_reply, read_headers
from callflow.telephony.agi.server import AgiServer

GOOD_HEADERS = b"agi_network: yes\nagi_network_script: flow\nagi_uniqueid: 1.1\nagi_callerid: 0612345678\n\n"

header_lines = st.lists(
    st.one_of(
        st.builds(lambda k, v: f"agi_{k}: {v}\n".encode(), st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
                  st.text(max_size=40).map(lambda t: t.replace("\n", ""))),
        st.binary(max_size=200),
        st.just(b"\n"),
    ),
    max_size=30,
).map(b"".join)
garbage = st.one_of(st.binary(max_size=4000), header_lines, st.binary(min_size=20_000, max_size=40_000))


def feed(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=8 * 1024)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(garbage)
def test_headers_parse_or_fail_clearly(data):
    async def main():
        try:
            headers = await asyncio.wait_for(read_headers(feed(data), timeout=1.0), 2.0)
        except AgiProtocolError as exc:
            assert str(exc)
            return
        assert headers and all(k.startswith("agi_") for k in headers)

    asyncio.run(main())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_reply_lines_parse_or_fail_clearly(line):
    try:
        kind = classify_line(line)
    except AgiProtocolError:
        return
    if kind == "reply":
        reply = parse_reply(line)
        assert 0 <= reply.code <= 999


class _Writer:
    def __init__(self):
        self.data = bytearray()

    def write(self, data: bytes):
        self.data += data

    async def drain(self):
        return None

    def close(self):
        pass

    async def wait_closed(self):
        return None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=3000), st.binary(min_size=9000, max_size=20000),
                 st.lists(st.sampled_from([b"HANGUP\n", b"100 result=0 Trying...\n", b"520-Invalid\n",
                                           b"200 result=0\n", b"511 dead\n", b"xx\n", b"200 result=49 endpos=1\n"]),
                          max_size=8).map(b"".join)))
def test_a_command_gets_a_reply_or_a_clear_error_whatever_asterisk_writes(data):
    async def main():
        conn = AgiConnection(None, {"agi_uniqueid": "1.1"}, feed(data), _Writer())
        conn.start()
        try:
            reply = await asyncio.wait_for(conn.send_command("CHANNEL STATUS", 1.0), 3.0)
            assert 100 <= reply.code <= 999
        except (AgiProtocolError, CallerHungUp) as exc:
            assert str(exc)
        finally:
            await conn.close()

    asyncio.run(main())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage)
def test_the_server_keeps_serving_after_any_bad_connection(data):
    async def main():
        served: asyncio.Queue = asyncio.Queue()
        server = AgiServer("127.0.0.1", 0, header_timeout=0.5)

        async def flow(ctx):
            served.put_nowait(ctx.call_id)

        server.add_flow("flow", flow)
        await server.start()
        try:
            _, bad = await asyncio.open_connection("127.0.0.1", server.port)
            bad.write(data)
            await bad.drain()
            bad.close()
            reader, good = await asyncio.open_connection("127.0.0.1", server.port)
            good.write(GOOD_HEADERS)
            await good.drain()
            assert (await asyncio.wait_for(reader.readline(), 3)) == b"CHANNEL STATUS\n"
            good.write(b"200 result=6\n")
            await good.drain()
            call_id = await asyncio.wait_for(served.get(), 3)
            assert call_id == "1.1"
            good.close()
        finally:
            await server.stop()

    asyncio.run(main())
