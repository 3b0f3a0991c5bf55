"""`callflow audio digest`: equal digests for equal readings, a different one when a clip's readings change."""

from __future__ import annotations

import numpy as np

from callflow.audio.digest import digests, sha1
from callflow.audio.g711 import ulaw_encode


def _clip(path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).normal(0, 400, 8000 * 3).astype(np.int16)
    path.write_bytes(ulaw_encode(noise))


def test_the_digest_is_the_same_for_the_same_audio_and_changes_with_it(tmp_path):
    _clip(tmp_path / "background_noise" / "a.ulaw", 1)
    first = sha1(digests([tmp_path], None, 8.0, None)[str(tmp_path)])
    assert sha1(digests([tmp_path], None, 8.0, None)[str(tmp_path)]) == first
    _clip(tmp_path / "background_noise" / "a.ulaw", 2)
    assert sha1(digests([tmp_path], None, 8.0, None)[str(tmp_path)]) != first
