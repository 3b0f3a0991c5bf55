"""The FastAGI wire protocol, read defensively (no sockets here: StreamReader in, values out).

panoramisk 1.4 parses AGI result lines well (`parse_agi_result`, reused below) but
its reading has four known weak points; this module is where they are closed:

* its header loop (`while b'\\n\\n' not in buffer`) spins forever when Asterisk
  closes the socket before the blank line: `read_headers` stops at EOF, after a
  timeout and past a size limit;
* an unsolicited ``HANGUP`` line (Asterisk's AGISIGHUP) is taken as the reply of
  the command in flight: `classify_line` tells a notice from a reply;
* nothing has a timeout: every read here takes one;
* (plain-function routes: see `server.AgiServer.add_route`).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from panoramisk.utils import parse_agi_result

#: Asterisk sends ~25 headers of < 100 bytes; far more is not Asterisk.
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 200
#: One reply line: AGI replies are short ("200 result=49 endpos=12345"); GET VARIABLE may be longer.
MAX_LINE_BYTES = 8 * 1024
HEADER_TIMEOUT = 5.0

_RESULT = re.compile(r"^(\d{3})[ -]")
_KV = re.compile(r"(\w+)=(\S*)")


class AgiProtocolError(Exception):
    """What came from the socket is not FastAGI (truncated, malformed, oversized or too slow)."""


async def read_headers(reader: asyncio.StreamReader, *, timeout: float = HEADER_TIMEOUT,
                       max_bytes: int = MAX_HEADER_BYTES) -> dict[str, str]:
    """The `agi_*: value` block Asterisk sends first, up to its blank line."""
    headers: dict[str, str] = {}
    total = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AgiProtocolError(f"no end of the AGI headers within {timeout:.0f} s")
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\n"), remaining)
        except asyncio.IncompleteReadError as exc:
            raise AgiProtocolError(f"connection closed inside the AGI headers ({len(exc.partial)} bytes pending)") from None
        except asyncio.LimitOverrunError:
            raise AgiProtocolError("an AGI header line longer than the reader's limit") from None
        except asyncio.TimeoutError:
            raise AgiProtocolError(f"no end of the AGI headers within {timeout:.0f} s") from None
        total += len(raw)
        if total > max_bytes:
            raise AgiProtocolError(f"AGI headers larger than {max_bytes} bytes")
        line = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        if not line:
            if not headers:
                raise AgiProtocolError("empty AGI header block")
            return headers
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_") or not key.replace("_", "").isalnum():
            raise AgiProtocolError(f"not an AGI header line: {line[:60]!r}")
        if len(headers) >= MAX_HEADERS:
            raise AgiProtocolError(f"more than {MAX_HEADERS} AGI headers")
        headers[key] = value.strip()


@dataclass(frozen=True)
class AgiReply:
    """One reply to one command: `200 result=49 endpos=1234`, `510 …`, `511 …`, `520 …`."""

    code: int
    result: str = ""  # the value of result= ("" when absent)
    data: str = ""  # what follows in parentheses, e.g. "timeout" or a variable's value
    extra: dict[str, str] = field(default_factory=dict)  # endpos=…
    line: str = ""

    @property
    def value(self) -> int | None:
        try:
            return int(self.result)
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        return self.code == 200


#: Kinds of lines Asterisk writes to a FastAGI socket once the headers are read.
HANGUP_NOTICE = "hangup"  # AGISIGHUP: the channel hung up (not a reply)
TRYING = "trying"  # "100 result=0 Trying...": a reply follows
USAGE_START = "usage"  # "520-Invalid command syntax…": lines follow until "520 End of proper usage."
REPLY = "reply"


def classify_line(line: str) -> str:
    if line.strip() == "HANGUP":
        return HANGUP_NOTICE
    if line.startswith("100"):
        return TRYING
    if line.startswith("520-"):
        return USAGE_START
    if _RESULT.match(line + " "):
        return REPLY
    raise AgiProtocolError(f"not an AGI reply line: {line[:60]!r}")


def parse_reply(line: str) -> AgiReply:
    """An AGI reply line; panoramisk's parser reads the code and result, we keep the rest."""
    match = _RESULT.match(line + " ")
    if match is None:
        raise AgiProtocolError(f"not an AGI reply line: {line[:60]!r}")
    code = int(match.group(1))
    parsed = parse_agi_result(line)  # raises nothing for a well-formed code; keeps result/(data)
    result, data = "", ""
    if isinstance(parsed.get("result"), tuple):
        result, data = parsed["result"]
    extra = {k: v for k, v in _KV.findall(line[4:]) if k != "result"}
    if code == 200 and not result:
        # panoramisk folds result=-1 into an error dict: read it from the line
        m = re.search(r"result=(-?\d*)", line)
        result = m.group(1) if m else ""
        d = re.search(r"\((.*)\)", line)
        data = d.group(1) if d else data
    return AgiReply(code=code, result=result, data=data, extra=extra, line=line)
