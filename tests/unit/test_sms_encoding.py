"""GSM-7 / UCS-2 detection, segmentation with UDH, and the seed's SMS text."""

from callflow.handoff import templates
from callflow.handoff.sms.encoding import GSM7, UCS2, encode


def test_plain_french_fits_gsm7():
    assert encode("Répondez à ce SMS, c'est noté").encoding == GSM7  # é, à are in GSM 03.38


def test_characters_outside_gsm_force_ucs2():
    for text in ("ç", "Jean – numi.support", "Merci 😊", "« bonjour »"):
        assert encode(text).encoding == UCS2, text


def test_single_part_limits():
    assert encode("a" * 160).parts == 1
    assert encode("a" * 161).parts == 2
    assert encode("ç" * 70).parts == 1
    assert encode("ç" * 71).parts == 2


def test_multipart_uses_153_and_67_with_udh():
    gsm = encode("a" * 400, reference=0x2A)
    assert [len(s.text) for s in gsm.segments] == [153, 153, 94]
    assert [s.udh for s in gsm.segments] == [bytes([5, 0, 3, 0x2A, 3, i]) for i in (1, 2, 3)]
    ucs = encode("ç" * 140)
    assert [len(s.text) for s in ucs.segments] == [67, 67, 6]
    assert "".join(s.text for s in ucs.segments) == "ç" * 140


def test_extension_characters_cost_two_septets_and_are_not_split():
    enc = encode("€" * 100)  # 200 septets
    assert enc.encoding == GSM7 and enc.units == 200
    assert [len(s.text) for s in enc.segments] == [76, 24]


def test_surrogate_pairs_count_twice_and_stay_whole():
    enc = encode("😊" * 40)  # 80 UTF-16 units
    assert enc.units == 80 and enc.parts == 2
    assert "".join(s.text for s in enc.segments) == "😊" * 40


def test_seed_sms_text():
    text = templates.sms_callback_by_text("Jean")
    assert text.startswith("Bonjour,\nC'est Jean de numi. On vient de se parler par téléphone.\n")
    assert "Répondez à ce SMS pour me dire :\n1. Quel est votre besoin ?\n2. Votre nom / prénom" in text
    assert text.endswith("Prenez votre temps, je vous réponds rapidement.\nJean – numi.support")
    assert encode(text).encoding == UCS2  # the seed's « – » is not in GSM 03.38


def test_caller_data_never_becomes_template_source():
    hostile = "{{ ''.__class__.__mro__ }}{% for i in range(99999999) %}x{% endfor %}"
    text = templates.sms_callback_by_text(hostile)
    assert "{{ ''.__class__.__mro__ }}" in text  # printed verbatim, not evaluated
    assert "xxxx" not in text


def test_agent_name_is_one_bounded_line():
    text = templates.sms_callback_by_text("Jean\n\nURGENT: call 0899\x07" + "x" * 500)
    first = text.splitlines()[1]
    assert first.startswith("C'est Jean URGENT: call 0899x")
    assert "\x07" not in text and len(first) < 140
