"""G.711 tables against ITU-T G.711 reference values (as in Sun's g711.c / audioop)."""

import numpy as np
import pytest

from callflow.audio.g711 import (
    ALAW_DECODE,
    ULAW_DECODE,
    alaw_decode,
    alaw_encode,
    decode,
    ulaw_decode,
    ulaw_encode,
)


@pytest.mark.parametrize(
    "code, value",
    [(0x00, -32124), (0x80, 32124), (0xFF, 0), (0x7F, 0), (0xFE, 8), (0x7E, -8), (0xF0, 120), (0x8F, 16764), (0x0F, -16764), (0x01, -31100)],
)
def test_ulaw_decode_reference_values(code, value):
    assert ULAW_DECODE[code] == value


@pytest.mark.parametrize(
    "code, value",
    [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0x80, 5504), (0x00, -5504), (0xD4, 24), (0x54, -24)],
)
def test_alaw_decode_reference_values(code, value):
    assert ALAW_DECODE[code] == value


@pytest.mark.parametrize(
    "pcm, ulaw, alaw",
    [(0, 0xFF, 0xD5), (-1, 0x7F, 0x55), (32767, 0x80, 0xAA), (-32768, 0x00, 0x2A), (1000, 0xCE, 0xFA)],
)
def test_encode_reference_values(pcm, ulaw, alaw):
    assert ulaw_encode(np.array([pcm], np.int16)) == bytes([ulaw])
    assert alaw_encode(np.array([pcm], np.int16)) == bytes([alaw])


def test_every_code_survives_decode_then_encode():
    codes = np.arange(256, dtype=np.uint8)
    # μ-law has two zeros (0x7F, 0xFF): both decode to 0, which encodes to 0xFF.
    assert np.array_equal(ulaw_decode(np.frombuffer(ulaw_encode(ulaw_decode(codes)), np.uint8)), ulaw_decode(codes))
    assert np.frombuffer(alaw_encode(alaw_decode(codes)), np.uint8).tolist() == codes.tolist()


def test_tables_are_odd_symmetric_and_monotonic():
    positive_u = ULAW_DECODE[0x80:][::-1]  # 0xFF..0x80: 0 .. 32124
    assert np.all(np.diff(positive_u.astype(int)) > 0)
    assert np.array_equal(ULAW_DECODE[:0x80].astype(int), -ULAW_DECODE[0x80:].astype(int))
    assert np.array_equal(ALAW_DECODE[:0x80].astype(int), -ALAW_DECODE[0x80:].astype(int))


def test_quantisation_error_is_small_relative_to_the_signal():
    pcm = np.arange(-32000, 32000, 37, dtype=np.int16)
    for enc, dec in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        back = dec(enc(pcm)).astype(float)
        big = np.abs(pcm) > 256
        assert np.max(np.abs(back[big] - pcm[big]) / np.abs(pcm[big])) < 0.07


def test_decode_by_name_and_shape_preserved():
    frame = bytes(range(160))
    assert decode(frame, "ulaw").shape == (160,)
    assert decode(np.zeros((3, 160), np.uint8), "alaw").shape == (3, 160)
    with pytest.raises(ValueError):
        decode(frame, "g722")
