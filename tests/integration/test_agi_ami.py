"""The AMI feed of `callflow run` against the sandbox's real AMI: device states, a silent
connection noticed (Ping without Pong), reconnected, and the states read again."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from callflow.pbx.sipp import pbx_instance
from conftest import unregister_desk_phones

from polling import poll

AMI_PORT = 5038


class FreezingProxy:
    """TCP proxy to Asterisk's AMI; `freeze()` makes the open connections silent (nothing passes
    either way, the sockets stay open: a frozen PBX or a dead NAT), new connections pass."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.frozen: set[int] = set()
        self.connections = 0
        self._live: list[int] = []
        self._tasks: list[asyncio.Task] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def freeze(self) -> None:
        self.frozen.update(self._live)

    async def _serve(self, reader, writer):
        self.connections += 1
        ident = self.connections
        self._live.append(ident)
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    if ident in self.frozen:
                        continue  # swallowed: the peer hears nothing, nothing is closed
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        self._tasks += [asyncio.create_task(pipe(reader, up_writer)), asyncio.create_task(pipe(up_reader, writer))]

    async def stop(self):
        self.server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def pbx_agents(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/pbx/agents", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except OSError:
        return 0, {}


@pytest.fixture
async def proxy():
    p = FreezingProxy((pbx_instance().address, AMI_PORT))
    await p.start()
    yield p
    await p.stop()


async def test_ami_feed_reads_agents_then_survives_a_silent_connection(pbx, controller_process, proxy, phones):
    await unregister_desk_phones(pbx, "2001")  # the test's starting point: 2001 not registered
    ctl = controller_process
    ctl.env.update({"CALLFLOW_AMI_ENABLED": "true", "CALLFLOW_AMI_HOST": "127.0.0.1",
                    "CALLFLOW_AMI_PORT": str(proxy.server.sockets[0].getsockname()[1]),
                    "CALLFLOW_AMI_PING_INTERVAL": "0.5", "CALLFLOW_AMI_PONG_TIMEOUT": "1.0"})
    ctl.start(wait=False)
    ctl.wait_healthy(timeout=60)  # a loaded 2-core machine: the start alone measured 12–17 s
    port = ctl.http_port

    status, body = await poll(lambda: (lambda r: r if r[0] == 200 and "PJSIP/2001" in r[1]["devices"] else None)(
        pbx_agents(port)), "AMI connected with the desk phones' device states", timeout=20)
    assert body["devices"]["PJSIP/2001"] != "NOT_INUSE"  # not registered yet
    members = {(m["queue"], m["interface"]): m for m in body["queue_members"]}
    assert members[("hotline", "PJSIP/2001")]["status"] != "NOT_INUSE"  # the PBX's own queue (queues.conf)
    assert body["reconnects"] == 0

    proxy.freeze()  # AMI goes silent; meanwhile agent 2001 comes online (its event is lost)
    await phones("2001")
    status, body = await poll(lambda: (lambda r: r if r[1].get("silent_detected", 0) >= 1 else None)(pbx_agents(port)),
                              "the silent AMI connection noticed", timeout=10)

    status, body = await poll(
        lambda: (lambda r: r if r[0] == 200 and r[1]["reconnects"] >= 1 else None)(pbx_agents(port)),
        "AMI reconnected", timeout=30)
    assert body["devices"]["PJSIP/2001"] == "NOT_INUSE", body  # read again after the reconnection
    assert body["rereads"] >= 2
    members = {(m["queue"], m["interface"]): m for m in body["queue_members"]}
    assert members[("hotline", "PJSIP/2001")]["status"] == "NOT_INUSE", body["queue_members"]
    assert proxy.connections >= 2
