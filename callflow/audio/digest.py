"""`callflow audio digest`: one digest of every reading and tap group the classifier gives, to show that a
speed-up changes nothing.

    callflow audio digest DIR...                      # offline, as `callflow audio eval DIR`
    callflow audio digest --replay 300 --clips DIR    # the live receiver's replay (bench.replay), Silero on then off

Prints one SHA-1 per DIR (every clip's readings: state, confidence, time, level, flags; its tap groups;
its speech score) or per second-opinion mode (every call's readings and tap groups in the replay).
Run it before and after a change: equal digests mean identical readings, to the last bit (session 7's
receiver-cost work, docs/benchmarks.md). Not for a split that must stay unlooked-at (holdout4): it prints
nothing per clip, but there is no need.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from callflow.audio import bench, classifier
from callflow.audio.offline import collect, load_audio, run_offline_many


def _reading(r) -> list:
    return [r.state.value, float(r.confidence), float(r.at), float(r.level_dbfs), bool(r.raised_voice), bool(r.distress)]


def offline(root: Path) -> list:
    items = collect(root)
    if not items:  # a digest of nothing would look like a result
        raise ValueError(f"{root}: no labelled clips (expected folders such as speech/, taps_2/)")
    results = run_offline_many([load_audio(p) for p, _ in items])
    return [[str(p.relative_to(root)), [_reading(x) for x in r.readings], [[t.count, float(t.at)] for t in r.taps], float(r.speech_score)]
            for (p, _label), r in zip(items, results)]


def replay(calls: int, seconds: float, mode: str, clips: Path) -> dict:
    classifier.SECOND_OPINION.configure(mode)
    got: dict[str, list] = {}

    def recording(call_id: str) -> dict:
        out = got.setdefault(call_id, [])
        return {"on_reading": lambda r: out.append(_reading(r)),
                "on_taps": lambda t: out.append(["taps", t.count, float(t.at)])}

    print(bench.replay(calls, seconds, clips=clips, observe=recording).line(), file=sys.stderr)
    return got


def digests(dirs: list[Path], replay_calls: int | None, seconds: float, clips: Path | None) -> dict[str, object]:
    data: dict[str, object] = {}
    for root in dirs:  # with the second opinion `callflow run` and `callflow audio eval` use
        data[str(root)] = offline(root)
    if replay_calls:
        for mode in ("silero", "off"):
            data[f"replay {replay_calls} calls, second opinion {mode}"] = replay(replay_calls, seconds, mode, clips)
    return data


def sha1(value: object) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()
