"""GSM 03.38 alphabet detection and SMS segmentation (concatenated SMS with UDH).

One SMS carries 160 GSM-7 characters or 70 UCS-2 code units. A longer text is
cut in parts of 153 / 67 that each start with a 6-byte User Data Header
(IEI 00: 8-bit reference, total, sequence) so the phone rebuilds the message.
Characters of the GSM extension table ({ } [ ] ~ \\ | ^ €) cost two septets;
UCS-2 counts UTF-16 code units (an emoji is two). Parts never split an
escape pair or a surrogate pair.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "\f^{}\\[~]|€"
_BASIC = frozenset(GSM7_BASIC) - {"\x1b"}
_EXTENSION = frozenset(GSM7_EXTENSION)

GSM7 = "gsm7"
UCS2 = "ucs2"

SINGLE_LIMIT = {GSM7: 160, UCS2: 70}
PART_LIMIT = {GSM7: 153, UCS2: 67}


@dataclass(frozen=True)
class Segment:
    text: str
    udh: bytes  # empty for a single-part message

    @property
    def udh_hex(self) -> str:
        return self.udh.hex()


@dataclass(frozen=True)
class Encoded:
    encoding: str  # "gsm7" | "ucs2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: tuple[Segment, ...]

    @property
    def parts(self) -> int:
        return len(self.segments)

    @property
    def kannel_coding(self) -> int:
        return 0 if self.encoding == GSM7 else 2


def detect_encoding(text: str) -> str:
    return GSM7 if all(ch in _BASIC or ch in _EXTENSION for ch in text) else UCS2


def _unit_cost(ch: str, encoding: str) -> int:
    if encoding == GSM7:
        return 2 if ch in _EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def encode(text: str, reference: int = 0) -> Encoded:
    """Pick the alphabet and cut the text in parts; `reference` (0..255) ties the parts together."""
    encoding = detect_encoding(text)
    costs = [_unit_cost(ch, encoding) for ch in text]
    units = sum(costs)
    if units <= SINGLE_LIMIT[encoding]:
        return Encoded(encoding, units, (Segment(text, b""),))
    limit = PART_LIMIT[encoding]
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for ch, cost in zip(text, costs):
        if used + cost > limit:
            chunks.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += cost
    if current:
        chunks.append("".join(current))
    total = len(chunks)
    ref = reference & 0xFF
    segments = tuple(Segment(chunk, bytes([0x05, 0x00, 0x03, ref, total, seq])) for seq, chunk in enumerate(chunks, 1))
    return Encoded(encoding, units, segments)
