"""Caller numbers: normalise to E.164 and decide whether an SMS makes sense.

Asterisk hands us whatever the network gave: "+33612345678", "0612345678",
"33612345678", "anonymous", "" … Only a valid mobile number gets an SMS.

FIXED_LINE_OR_MOBILE: some numbering plans (US, CA, …) cannot tell a mobile
from a landline. We accept those by default (`sms.accept_fixed_or_mobile`):
a wasted SMS costs less than a caller who cannot speak and never hears back.
French numbers are never ambiguous (06/07 mobile, 01–05 fixed, 09 VoIP).
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

#: What Asterisk / SIP trunks put in the caller ID when the number is withheld.
WITHHELD_MARKERS = frozenset(
    {"", "anonymous", "unknown", "restricted", "private", "withheld", "unavailable", "asterisk", "blocked", "0"}
)
#: Longer raw input is refused before parsing: hostile or broken caller IDs.
MAX_RAW_LENGTH = 32

_SMS_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.PAGER}


@dataclass(frozen=True)
class NumberCheck:
    e164: str | None  # normalised number, None when unusable
    kind: str  # "mobile", "fixed_line_or_mobile", "fixed_line", "voip", … or "anonymous" / "invalid"
    reason: str = ""  # empty when an SMS may be sent; else the HandoffResult reason

    @property
    def sms_ok(self) -> bool:
        return self.e164 is not None and not self.reason


def parse_number(raw: str | None, region: str = "FR") -> tuple[str | None, str]:
    """(E.164, kind) for any valid number, or (None, "anonymous" | "invalid")."""
    text = (raw or "").strip()
    if text.lower() in WITHHELD_MARKERS:
        return None, "anonymous"
    if len(text) > MAX_RAW_LENGTH:
        return None, "invalid"
    # SIP-style caller IDs ("sip:0612345678@trunk") keep only the user part.
    if text.lower().startswith(("sip:", "sips:", "tel:")):
        text = text.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]
    # "0033…" is dialled as an international prefix from France; "33…" without "+" is common on trunks.
    if text.isdigit() and len(text) > 10 and not text.startswith("0"):
        text = "+" + text
    try:
        parsed = phonenumbers.parse(text, region)
    except NumberParseException:
        return None, "invalid"
    if not phonenumbers.is_valid_number(parsed):
        return None, "invalid"
    kind = _kind_name(phonenumbers.number_type(parsed))
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164), kind


def check_for_sms(raw: str | None, region: str = "FR", *, accept_fixed_or_mobile: bool = True) -> NumberCheck:
    e164, kind = parse_number(raw, region)
    if e164 is None:
        return NumberCheck(None, kind, "anonymous" if kind == "anonymous" else "invalid_number")
    if kind == "mobile" or kind == "pager":
        return NumberCheck(e164, kind)
    if kind == "fixed_line_or_mobile" and accept_fixed_or_mobile:
        return NumberCheck(e164, kind)
    if kind in ("fixed_line", "fixed_line_or_mobile"):
        return NumberCheck(e164, kind, "landline")
    return NumberCheck(e164, kind, "not_sms_capable")  # VoIP, toll free, premium rate, …


def check_for_call(raw: str | None, region: str = "FR") -> NumberCheck:
    """Any valid number can be called back (landlines included)."""
    e164, kind = parse_number(raw, region)
    if e164 is None:
        return NumberCheck(None, kind, "anonymous" if kind == "anonymous" else "invalid_number")
    return NumberCheck(e164, kind)


def _kind_name(number_type: int) -> str:
    for name in dir(PhoneNumberType):
        if name.isupper() and getattr(PhoneNumberType, name) == number_type:
            return name.lower()
    return "unknown"


def number_variants(e164: str) -> list[str]:
    """Forms a caller ID of this number may have been stored under: +33612345678, 33612345678, 0612345678."""
    forms = [e164, e164.lstrip("+")]
    try:
        parsed = phonenumbers.parse(e164, None)
        national = phonenumbers.format_number(parsed, PhoneNumberFormat.NATIONAL)
        forms.append("".join(ch for ch in national if ch.isdigit()))
    except NumberParseException:
        pass
    return list(dict.fromkeys(forms))
