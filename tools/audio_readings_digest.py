#!/usr/bin/env python3
"""A digest of every reading and tap group the classifier gives, to show a speed-up changes nothing.

    python tools/audio_readings_digest.py [--json OUT] DIR...        # offline, as `callflow audio eval DIR`
    python tools/audio_readings_digest.py --replay 300 [--json OUT]  # the live receiver's replay (bench.replay),
                                                                     # real dev clips, Silero on then off

Prints one SHA-1 per DIR (every clip's readings: state, confidence, time, level, flags; its tap groups;
its speech score) or per second-opinion mode (every call's readings and tap groups in the replay).
Run it before and after a change: equal digests mean identical readings, to the last bit. Used for
the receiver's cost work of session 7 (docs/benchmarks.md). Do not point it at a split that must stay
unlooked-at (holdout4): it prints nothing per clip, but there is no need.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callflow.audio import bench, classifier  # noqa: E402
from callflow.audio.offline import collect, load_audio, run_offline_many  # noqa: E402

REAL_DEV = Path(__file__).resolve().parents[1] / "tests" / "audio" / "real" / "dev"


def _reading(r) -> list:
    return [r.state.value, float(r.confidence), float(r.at), float(r.level_dbfs), bool(r.raised_voice), bool(r.distress)]


def offline(root: Path) -> list:
    items = collect(root)
    results = run_offline_many([load_audio(p) for p, _ in items])
    return [[str(p.relative_to(root)), [_reading(x) for x in r.readings], [[t.count, float(t.at)] for t in r.taps], float(r.speech_score)]
            for (p, _label), r in zip(items, results)]


def replay(calls: int, seconds: float, mode: str) -> dict:
    classifier.SECOND_OPINION.configure(mode)
    got: dict[str, list] = {}
    register = bench.RtpReceiver.register

    def recording(self, call_id, *args, **kwargs):
        out = got.setdefault(call_id, [])
        kwargs["on_reading"] = lambda r: out.append(_reading(r))
        kwargs["on_taps"] = lambda t: out.append(["taps", t.count, float(t.at)])
        return register(self, call_id, *args, **kwargs)

    bench.RtpReceiver.register = recording
    try:
        print(bench.replay(calls, seconds, clips=REAL_DEV).line(), file=sys.stderr)
    finally:
        bench.RtpReceiver.register = register
    return got


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", type=Path)
    parser.add_argument("--replay", type=int, metavar="CALLS", help="digest the receiver's replay of CALLS calls instead")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--json", type=Path, help="also write everything digested here (to diff two runs)")
    args = parser.parse_args()
    data = {}
    for root in args.dirs:  # with the second opinion `callflow run` and `callflow audio eval` use
        data[str(root)] = offline(root)
    if args.replay:
        for mode in ("silero", "off"):
            data[f"replay {args.replay} calls, second opinion {mode}"] = replay(args.replay, args.seconds, mode)
    if not data:
        parser.error("give DIRs or --replay CALLS")
    for name, value in data.items():
        print(hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest(), name)
    if args.json:
        args.json.write_text(json.dumps(data, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
