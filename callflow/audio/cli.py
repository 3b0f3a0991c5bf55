"""`callflow audio classify|eval|digest` and `callflow bench audio`.

The main CLI (callflow/cli.py) calls `register_cli(sub)` and
`register_bench(bench_sub)`; handlers return the process exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register_cli(subparsers) -> None:
    audio = subparsers.add_parser("audio", help="offline audio classifier tools")
    sub = audio.add_subparsers(dest="audio_command", required=True)

    classify = sub.add_parser("classify", help="print the state timeline of a .wav or raw μ-law (.ulaw/.raw) file")
    classify.add_argument("file", type=Path)
    classify.add_argument("--plot", type=Path, metavar="OUT.png", help="also draw level and state over time")
    classify.add_argument("--readings", action="store_true", help="print every reading, not only the timeline")
    classify.set_defaults(func=_classify)

    evaluate = sub.add_parser("eval", help="score the classifier on folders named by label (speech/, taps_2/, …)")
    evaluate.add_argument("dir", type=Path)
    evaluate.add_argument("-v", "--verbose", action="store_true", help="one line per clip")
    evaluate.add_argument("--workers", type=int, default=1, help="clips analysed in this many processes (classifier backend)")
    evaluate.add_argument(
        "--backend",
        choices=["classifier", "silero"],
        default="classifier",
        help="classifier (default: webrtcvad + features, all states) or silero (Silero VAD via onnxruntime: speech vs non-speech only)",
    )
    evaluate.set_defaults(func=_eval)

    digest = sub.add_parser("digest", help="one SHA-1 of every reading and tap group (before/after a speed-up: equal = identical)")
    digest.add_argument("dirs", nargs="*", type=Path, help="labelled clip folders, read as `audio eval` reads them")
    digest.add_argument("--replay", type=int, metavar="CALLS", help="also digest the receiver's replay of CALLS calls")
    digest.add_argument("--seconds", type=float, default=8.0)
    digest.add_argument("--clips", type=Path, help="with --replay: the clips the calls play (default: synthetic)")
    digest.add_argument("--json", type=Path, help="also write everything digested here (to diff two runs)")
    digest.set_defaults(func=_digest)


def register_bench(subparsers) -> None:
    bench = subparsers.add_parser("audio", help="N concurrent synthetic RTP calls into the receiver on 127.0.0.1")
    bench.add_argument("--calls", type=int, default=200)
    bench.add_argument("--seconds", type=float, default=10.0)
    bench.add_argument("--find-max", action="store_true", help="also search the largest N kept in real time")
    bench.add_argument(
        "--replay", action="store_true",
        help="no sockets, no wall clock: the receiver's CPU per call-second, Silero on then off (holds on a busy machine)",
    )
    bench.add_argument("--clips", type=Path, help="with --replay: calls play these labelled clips (e.g. tests/audio/real/dev); default synthetic")
    bench.add_argument("--speaking", type=float, default=1 / 3, help="with --replay --clips: share of calls playing speech")
    bench.set_defaults(func=_bench)


def _classify(args: argparse.Namespace) -> int:
    from callflow.audio.offline import load_audio, run_offline

    pcm = load_audio(args.file)
    result = run_offline(pcm)
    print(f"{args.file}: {len(pcm) / 8000:.1f} s, verdict {result.verdict.value}")
    for start, end, state, confidence in result.timeline:
        print(f"  {start:7.2f} – {end:7.2f} s  {state.value:<17} {confidence:.2f}")
    for tap in result.taps:
        print(f"  taps: {tap.count} (group closed at {tap.at:.2f} s)")
    if args.readings:
        for r in result.readings:
            flags = " raised" * r.raised_voice + " distress" * r.distress
            print(f"  {r.at:7.2f} {r.state.value:<17} {r.confidence:.2f} {r.level_dbfs:6.1f} dBFS{flags}")
    if args.plot:
        _plot(pcm, result, args.plot, str(args.file))
        print(f"plot written to {args.plot}")
    return 0


def _plot(pcm, result, out: Path, title: str) -> None:
    import matplotlib  # lazy: only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from callflow.core.channel import AudioState

    frames = len(pcm) // 160
    x = pcm[: frames * 160].reshape(frames, 160).astype(np.float64) / 32768
    level = 10 * np.log10(np.mean(x * x, axis=1) + 1e-10)
    t = np.arange(frames) * 0.02
    states = list(AudioState)
    colours = dict(zip(states, ["black", "lightgrey", "tab:orange", "tab:green", "tab:blue", "tab:red", "tab:purple"]))
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(11, 5), height_ratios=[3, 1])
    top.plot(t, level, lw=0.8, color="tab:blue")
    top.set_ylabel("level (dBFS)")
    top.set_ylim(-100, 0)
    top.set_title(title)
    for start, end, state, _c in result.timeline:
        top.axvspan(start, end, color=colours[state], alpha=0.15)
        bottom.barh(states.index(state), end - start, left=start, color=colours[state])
    for tap in result.taps:
        top.axvline(tap.at, color="tab:red", ls="--", lw=0.8)
        top.annotate(f"{tap.count} tap(s)", (tap.at, -5), color="tab:red", fontsize=8)
    bottom.set_yticks(range(len(states)), [s.value for s in states], fontsize=7)
    bottom.set_xlabel("seconds since answer")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _eval(args: argparse.Namespace) -> int:
    from callflow.audio.offline import evaluate

    if not args.dir.is_dir():
        print(f"callflow audio eval: {args.dir} is not a directory", file=sys.stderr)
        return 2
    if getattr(args, "backend", "classifier") == "silero":
        from callflow.audio.offline import evaluate_silero
        from callflow.audio.silero import SileroUnavailable

        try:
            evaluation = evaluate_silero(args.dir, verbose=args.verbose)
        except SileroUnavailable as e:
            print(f"callflow audio eval: {e}", file=sys.stderr)
            return 2
    else:
        evaluation = evaluate(args.dir, verbose=args.verbose, workers=max(getattr(args, "workers", 1), 1))
    if not evaluation.rows:
        print(f"no labelled clips under {args.dir} (expected folders such as speech/, taps_2/)", file=sys.stderr)
        return 2
    print(evaluation.report())
    return 0


def _digest(args: argparse.Namespace) -> int:
    import json

    from callflow.audio.digest import digests, sha1

    if not args.dirs and not args.replay:
        print("callflow audio digest: give DIRs or --replay CALLS", file=sys.stderr)
        return 2
    try:
        data = digests(args.dirs, args.replay, args.seconds, args.clips)
    except ValueError as exc:
        print(f"callflow audio digest: {exc}", file=sys.stderr)
        return 2
    for name, value in data.items():
        print(sha1(value), name)
    if args.json:
        args.json.write_text(json.dumps(data, sort_keys=True))
    return 0


def _bench(args: argparse.Namespace) -> int:
    import os

    from callflow.audio.bench import memory_per_call_kb, replay, run_bench
    from callflow.audio.classifier import SECOND_OPINION

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other work competes for the cores)")
    if args.replay:
        # Not counted: the first replay of a process pays once for growing the pool to N calls and
        # touching its pages (+20-40 % on whichever arm ran first, seen in session 9).
        SECOND_OPINION.configure("silero")
        try:
            replay(args.calls, 1.0, args.speaking, args.clips)
        except ValueError as exc:
            print(f"callflow bench audio: {exc}", file=sys.stderr)
            return 2
        for mode in ("silero", "off"):
            SECOND_OPINION.configure(mode)
            print(replay(args.calls, args.seconds, args.speaking, args.clips).line())
        return 0
    SECOND_OPINION.active()  # load the model before the clock starts
    print(f"speech second opinion: {SECOND_OPINION.state} (CALLFLOW_MEDIA_SPEECH_SECOND_OPINION=off to compare)")
    print(f"memory per call (tracemalloc, after 10 s of audio): {memory_per_call_kb():.0f} KB")
    result = run_bench(args.calls, args.seconds)
    print(result.line())
    if args.find_max:
        seconds = min(args.seconds, 6.0)
        good, bad, n = 0, None, 100
        while n <= 4000:  # grow by half until it fails, then bisect twice
            r = run_bench(n, seconds)
            print(r.line())
            if not r.real_time:
                bad = n
                break
            good, n = n, int(n * 1.5)
        for _ in range(2 if bad else 0):
            n = (good + bad) // 2
            r = run_bench(n, seconds)
            print(r.line())
            good, bad = (n, bad) if r.real_time else (good, n)
        print(f"largest N kept in real time on one core: {good or 'none tried passed'}")
    return 0
