"""Caller numbers: E.164 normalisation and who may get an SMS."""

import pytest

from callflow.core.phone import check_for_call, check_for_sms


@pytest.mark.parametrize(
    "raw",
    ["0612345678", "06 12 34 56 78", "+33612345678", "33612345678", "0033612345678", "sip:0612345678@trunk", "07.81.23.45.67"],
)
def test_french_mobile_forms_normalise_to_e164(raw):
    check = check_for_sms(raw)
    assert check.sms_ok
    assert check.e164 in ("+33612345678", "+33781234567")
    assert check.kind == "mobile"


@pytest.mark.parametrize("raw", [None, "", "anonymous", "Anonymous", "unknown", "restricted", "private", "withheld"])
def test_withheld_caller_ids_are_anonymous(raw):
    check = check_for_sms(raw)
    assert not check.sms_ok
    assert check.reason == "anonymous"
    assert check.e164 is None


@pytest.mark.parametrize("raw", ["1" * 40, "+3361234567812345678901234567", "{{ 7*7 }}", "0612", "abc", "+33 6 12"])
def test_garbage_and_overlong_numbers_are_invalid(raw):
    check = check_for_sms(raw)
    assert check.reason == "invalid_number"
    assert check.e164 is None


def test_landline_gets_no_sms_but_can_be_called_back():
    assert check_for_sms("0145678901").reason == "landline"
    assert check_for_call("0145678901").e164 == "+33145678901"


def test_voip_numbers_are_not_sms_capable():
    assert check_for_sms("0912345678").reason == "not_sms_capable"


def test_fixed_line_or_mobile_is_a_configurable_decision():
    us = "+14155550123"  # the US plan cannot tell mobiles from landlines
    assert check_for_sms(us).sms_ok
    assert check_for_sms(us, accept_fixed_or_mobile=False).reason == "landline"


def test_foreign_mobile_keeps_its_country():
    assert check_for_sms("+32470123456").e164 == "+32470123456"
