"""The `callflow` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import sys
from contextlib import AsyncExitStack

from callflow.core.errors import ConfigError

# Rooms that add their own subcommands: module → register functions it offers.
_PLUGINS = ("callflow.audio.cli", "callflow.store.cli", "callflow.handoff.cli", "callflow.pbx.bench", "callflow.console.cli")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callflow", description="Asterisk ARI call-flow controller for numi.support")
    parser.add_argument("--config", help="TOML config file (default: $CALLFLOW_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the controller (ARI app + /health and /metrics)")
    run.set_defaults(func=_run)

    pbx = sub.add_parser("pbx", help="the sandbox Asterisk 22 (Debian sid chroot)")
    pbx_sub = pbx.add_subparsers(dest="action", required=True)
    pbx_sub.add_parser("up", help="build once, install our config, start, wait for ARI").set_defaults(func=_pbx_up)
    pbx_sub.add_parser("down", help="stop Asterisk and unmount").set_defaults(func=_pbx_down)
    pbx_sub.add_parser("status", help="is it running, where it listens").set_defaults(func=_pbx_status)
    cli = pbx_sub.add_parser("cli", help='run an Asterisk CLI command: callflow pbx cli "pjsip show endpoints"')
    cli.add_argument("cli_command")
    cli.set_defaults(func=_pbx_cli)

    prompts = sub.add_parser("prompts", help="prompt sounds")
    prompts_sub = prompts.add_subparsers(dest="action", required=True)
    render = prompts_sub.add_parser("render", help="render sounds/prompts.yaml with espeak-ng into sounds/<lang>/")
    render.add_argument("--force", action="store_true", help="render again even if unchanged")
    render.set_defaults(func=_prompts_render)

    bench = sub.add_parser("bench", help="benchmarks (results go to docs/benchmarks.md)")
    bench_sub = bench.add_subparsers(dest="what", required=True)

    for name in _PLUGINS:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if exc.name and exc.name.startswith(name):
                continue  # that room has no command yet
            raise
        if hasattr(module, "register_cli"):
            module.register_cli(sub)
        if hasattr(module, "register_bench"):
            module.register_bench(bench_sub)

    args = parser.parse_args(argv)
    try:
        result = args.func(args)
        return int(result or 0)
    except ConfigError as exc:
        print(f"callflow: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _load_config(args: argparse.Namespace):
    from callflow import config

    return config.load(args.config)


def _run(args: argparse.Namespace) -> int:
    from callflow import logs
    from callflow.app import build_controller

    cfg = _load_config(args)
    logs.setup(cfg.log.format, cfg.log.level)
    logging.getLogger(__name__).info("callflow starting", extra={"ari": cfg.ari.url, "app": cfg.ari.app})

    async def main_async() -> None:
        async with AsyncExitStack() as services:
            controller = await build_controller(cfg, services)
            await controller.run()

    asyncio.run(main_async())
    return 0


def _sandbox():
    from callflow.pbx.sandbox import Sandbox

    return Sandbox()


def _pbx_error(fn):
    def wrapper(args: argparse.Namespace) -> int:
        from callflow.pbx.sandbox import SandboxError

        try:
            return fn(args) or 0
        except SandboxError as exc:
            print(f"callflow pbx: {exc}", file=sys.stderr)
            return 1

    return wrapper


@_pbx_error
def _pbx_up(args: argparse.Namespace) -> int:
    from callflow import prompts
    from callflow.config import PromptsConfig

    try:
        agent_name = _load_config(args).prompts.agent_name
    except ConfigError:
        agent_name = PromptsConfig().agent_name  # no ARI credentials yet: `up` is what makes them
    prompts.render(agent_name)
    endpoints = _sandbox().up()
    print("sandbox Asterisk is up")
    for key, value in endpoints.items():
        print(f"  {key:4} {value}")
    return 0


@_pbx_error
def _pbx_down(args: argparse.Namespace) -> int:
    _sandbox().down()
    print("sandbox Asterisk stopped")
    return 0


@_pbx_error
def _pbx_status(args: argparse.Namespace) -> int:
    status = _sandbox().status()
    print(json.dumps(status, indent=2))
    return 0 if status["running"] else 3


@_pbx_error
def _pbx_cli(args: argparse.Namespace) -> int:
    sandbox = _sandbox()
    if not sandbox.running():
        print("callflow pbx: the sandbox is not running (callflow pbx up)", file=sys.stderr)
        return 1
    print(sandbox.cli(args.cli_command), end="")
    return 0


def _prompts_render(args: argparse.Namespace) -> int:
    from callflow import prompts

    cfg_name = _load_config_or_default(args).prompts.agent_name
    written = prompts.render(cfg_name, force=args.force)
    print(f"{len(written)} prompt file(s) rendered")
    return 0


def _load_config_or_default(args: argparse.Namespace):
    from callflow.config import Config

    try:
        return _load_config(args)
    except ConfigError:
        return Config()


if __name__ == "__main__":
    sys.exit(main())
