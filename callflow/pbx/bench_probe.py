"""Throw-away arms of `callflow bench pbx`: one way of getting a caller's audio, nothing else.

A minimal Stasis app (run as its own process, so its CPU is read like the
controller's) that answers, plays the greeting and then gives the caller's
audio to a do-nothing sink for the rest of the call, through one of the media
paths Asterisk 22 offers (issue 15). Beside the reference dialplan in the same
run, the arms separate what each path costs the PBX per call-second:

- ``stasis``: answer + greeting, then nothing (what Stasis itself costs);
- ``stasis-filtered``: the same with `PUT /applications/{app}/eventFilter`;
- ``talkdetect``: the same with TALK_DETECT on the caller (Asterisk's loudness events);
- ``snoop``: today's fork: snoop spy=in + externalMedia RTP + a mixing bridge;
- ``direct``: externalMedia RTP bridged straight with the caller (no snoop);
- ``websocket``: externalMedia over chan_websocket (server mode, ``d(in)``), bridged with the caller;
- ``audiosocket``: `continue` into a dialplan context that runs AudioSocket() to a TCP sink;
- ``snoop-prompts``: ``snoop`` while two prompts are played to the caller by ARI (what a silent
  caller gets: the procedure speaks while it listens);
- ``direct-spoken``: ``direct`` with the same two prompts sent by the probe itself as RTP into the
  externalMedia channel (an ARI playback would suspend the caller's bridge, bridge_channel.c
  BRIDGE_CHANNEL_ACTION_PLAY_FILE, and the fork would hear nothing while we speak).

Not the product: no classifier, no flow, no safety; the sinks only count what arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import struct
import uuid
from pathlib import Path

import aiohttp

from callflow.telephony.ari.client import AriClient, AriError
from callflow.telephony.ari.events import AriEvent

log = logging.getLogger("bench-probe")

OPTIONS = ("stasis", "stasis-filtered", "talkdetect", "snoop", "direct", "websocket", "audiosocket", "snoop-prompts",
           "direct-spoken")
APP = "bench-probe"
GREETING = "sound:callflow/fr/greeting"
#: the prompts arms speak twice while listening (9.4 s of the silent-call procedure's audio check)
PROMPT = "audio_check"
PROMPT_FILE = Path(__file__).resolve().parents[2] / "sounds/fr" / f"{PROMPT}.ulaw"
#: what the filtered arm still needs: the call's start and end and its playbacks
FILTER_ALLOWED = ("StasisStart", "StasisEnd", "PlaybackFinished", "ChannelDtmfReceived", "ChannelHangupRequest")


class Sinks:
    """Where the caller's audio lands: one UDP socket (RTP), one TCP server (AudioSocket)."""

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.udp_address: tuple[str, int] = ("127.0.0.1", 0)
        self.tcp_port = 0

    async def start(self, host: str) -> None:
        loop = asyncio.get_running_loop()
        sinks = self

        class Udp(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr) -> None:
                sinks.packets += 1
                sinks.bytes += len(data)

        transport, _ = await loop.create_datagram_endpoint(Udp, local_addr=(host, 0))
        self.udp = transport
        self.udp_address = transport.get_extra_info("sockname")[:2]
        server = await asyncio.start_server(self._audiosocket, host, 0)
        self.tcp_port = server.sockets[0].getsockname()[1]

    async def _audiosocket(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # AudioSocket frames: kind (1 byte), length (2 bytes, big-endian), payload
        try:
            while True:
                head = await reader.readexactly(3)
                size = int.from_bytes(head[1:], "big")
                if size:
                    await reader.readexactly(size)
                self.packets += 1
                self.bytes += size
                if head[0] == 0x00:  # hang-up
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


class Probe:
    def __init__(self, client: AriClient, option: str, sinks: Sinks):
        self.client = client
        self.option = option
        self.sinks = sinks
        self.forks: dict[str, list[str]] = {}  # caller id → the fork's channels and bridge
        self.entering: dict[str, asyncio.Future[None]] = {}
        self.playbacks: dict[str, asyncio.Future[None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.ws_sessions: dict[str, aiohttp.ClientWebSocketResponse] = {}

    async def on_event(self, event: AriEvent) -> None:
        cid = event.channel_id or ""
        if event.type == "StasisStart":
            if cid in self.entering:
                self.entering.pop(cid).set_result(None)
            elif not event.args or event.args[0] != "media":
                if event.args and event.args[0] == "back":
                    return  # back from AudioSocket: the caller hangs up soon
                task = asyncio.create_task(self.call(cid))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        elif event.type == "PlaybackFinished" and event.playback_id in self.playbacks:
            self.playbacks.pop(event.playback_id).set_result(None)
        elif event.type in ("StasisEnd", "ChannelHangupRequest") and cid in self.forks:
            await self.release(cid)

    async def call(self, cid: str) -> None:
        try:
            if self.option == "talkdetect":
                await self.client.post(f"channels/{cid}/variable", variable="TALK_DETECT(set)", value="")
            await self.client.post(f"channels/{cid}/answer")
            playback = f"pb-{uuid.uuid4().hex[:12]}"
            done = asyncio.get_running_loop().create_future()
            self.playbacks[playback] = done
            await self.client.post(f"channels/{cid}/play", media=GREETING, playbackId=playback)
            await asyncio.wait_for(done, 30)
            self.forks[cid] = []
            await getattr(self, "fork_" + self.option.replace("-", "_"), self.fork_none)(cid)
        except (AriError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
            log.debug("call %s: %s", cid, exc)

    async def fork_none(self, cid: str) -> None:
        pass

    async def _enter(self, channel_id: str) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        self.entering[channel_id] = future
        return future

    async def _external_rtp(self, media_id: str) -> dict[str, str]:
        host, port = self.sinks.udp_address
        reply = await self.client.post("channels/externalMedia", app=APP, appArgs="media", channelId=media_id,
                               external_host=f"{host}:{port}", format="ulaw", encapsulation="rtp",
                               transport="udp", direction="both")
        return reply.get("channelvars") or {}

    async def fork_snoop(self, cid: str) -> None:
        tag = uuid.uuid4().hex[:12]
        snoop, media, bridge = f"snoop-{tag}", f"media-{tag}", f"fork-{tag}"
        self.forks[cid] = [bridge, snoop, media]
        entered = [await self._enter(snoop), await self._enter(media)]
        await self.client.post(f"channels/{cid}/snoop", spy="in", whisper="none", app=APP, appArgs="media",
                               snoopId=snoop)
        await self._external_rtp(media)
        await self.client.post("bridges", type="mixing", bridgeId=bridge, name=bridge)
        await asyncio.wait_for(asyncio.gather(*entered), 5)
        await self.client.post(f"bridges/{bridge}/addChannel", channel=f"{snoop},{media}")

    async def fork_snoop_prompts(self, cid: str) -> None:
        await self.fork_snoop(cid)
        for _ in range(2):
            playback = f"pb-{uuid.uuid4().hex[:12]}"
            done = asyncio.get_running_loop().create_future()
            self.playbacks[playback] = done
            await self.client.post(f"channels/{cid}/play", media=f"sound:callflow/fr/{PROMPT}", playbackId=playback)
            await asyncio.wait_for(done, 30)

    async def fork_direct_spoken(self, cid: str) -> None:
        media_address = await self.fork_direct(cid)
        audio = PROMPT_FILE.read_bytes()
        loop = asyncio.get_running_loop()
        ssrc = uuid.uuid4().int & 0xFFFFFFFF
        seq = 0
        for _ in range(2):
            start = loop.time()
            for n, offset in enumerate(range(0, len(audio) - 159, 160)):
                if cid not in self.forks:
                    return
                header = struct.pack("!BBHII", 0x80, 0x80 if seq == 0 else 0x00, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc)
                self.sinks.udp.sendto(header + audio[offset:offset + 160], media_address)
                seq += 1
                # paced on the clock, not on sleep's drift: packet n leaves at start + n * 20 ms
                await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))

    async def fork_direct(self, cid: str) -> tuple[str, int]:
        tag = uuid.uuid4().hex[:12]
        media, bridge = f"media-{tag}", f"fork-{tag}"
        self.forks[cid] = [bridge, media]
        entered = await self._enter(media)
        variables = await self._external_rtp(media)
        await self.client.post("bridges", type="mixing", bridgeId=bridge, name=bridge)
        await asyncio.wait_for(entered, 5)
        await self.client.post(f"bridges/{bridge}/addChannel", channel=f"{cid},{media}")
        return variables["UNICASTRTP_LOCAL_ADDRESS"], int(variables["UNICASTRTP_LOCAL_PORT"])

    async def fork_websocket(self, cid: str) -> None:
        tag = uuid.uuid4().hex[:12]
        media, bridge = f"media-{tag}", f"fork-{tag}"
        self.forks[cid] = [bridge, media]
        entered = await self._enter(media)
        reply = await self.client.post("channels/externalMedia", app=APP, appArgs="media", channelId=media,
                                       format="ulaw", encapsulation="none", transport="websocket",
                                       connection_type="server", direction="in")
        connection = (reply.get("channelvars") or {})["MEDIA_WEBSOCKET_CONNECTION_ID"]
        url = self.client.base_url.replace("http", "ws", 1).rsplit("/ari", 1)[0] + f"/media/{connection}"
        ws = await self.client.session.ws_connect(url, protocols=("media",))
        self.ws_sessions[cid] = ws
        task = asyncio.create_task(self._drain_ws(ws))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        await self.client.post("bridges", type="mixing", bridgeId=bridge, name=bridge)
        await asyncio.wait_for(entered, 5)
        await self.client.post(f"bridges/{bridge}/addChannel", channel=f"{cid},{media}")

    async def _drain_ws(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                self.sinks.packets += 1
                self.sinks.bytes += len(msg.data)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                break

    async def fork_audiosocket(self, cid: str) -> None:
        await self.client.post(f"channels/{cid}/variable", variable="AUDIOSOCKET_ID", value=str(uuid.uuid4()))
        await self.client.post(f"channels/{cid}/variable", variable="AUDIOSOCKET_SERVER",
                               value=f"{self.sinks.udp_address[0]}:{self.sinks.tcp_port}")
        await self.client.post(f"channels/{cid}/continue", context="bench-audiosocket", extension="s", priority=1)

    async def release(self, cid: str) -> None:
        ws = self.ws_sessions.pop(cid, None)
        if ws is not None:
            await ws.close()
        for object_id in self.forks.pop(cid, []):
            kind = "bridges" if object_id.startswith("fork-") else "channels"
            try:
                await self.client.delete(f"{kind}/{object_id}")
            except AriError:
                pass


async def main(args: argparse.Namespace) -> None:
    sinks = Sinks()
    await sinks.start(args.host)
    # credentials from the environment, not the command line (other users can read `ps`)
    # a long ping: on a machine loaded far beyond its cores the 2 s default dropped the socket (calls failed)
    client = AriClient(args.ari_url, os.environ["BENCH_ARI_USER"], os.environ["BENCH_ARI_PASSWORD"], APP,
                       ping_interval=30.0)
    probe = Probe(client, args.option, sinks)
    ready = asyncio.Event()

    async def on_connect() -> None:
        if args.option == "stasis-filtered":
            await client.request("PUT", f"applications/{APP}/eventFilter",
                                 body={"allowed": [{"type": t} for t in FILTER_ALLOWED]})
        ready.set()

    events = asyncio.create_task(client.run_events(probe.on_event, on_connect))
    await ready.wait()
    print("ready", flush=True)
    # the bench stops us with SIGTERM; print what arrived on the way out (stdin closes first)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(json.dumps({"packets": sinks.packets, "bytes": sinks.bytes}), flush=True)
    events.cancel()
    await asyncio.gather(events, return_exceptions=True)
    await client.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--option", choices=OPTIONS, required=True)
    parser.add_argument("--ari-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
