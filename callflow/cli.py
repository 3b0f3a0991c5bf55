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
_PLUGINS = ("callflow.audio.cli", "callflow.store.cli", "callflow.handoff.cli", "callflow.pbx.bench", "callflow.pbx.testcall",
            "callflow.console.cli", "callflow.store.messages_cli")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callflow", description="Asterisk ARI call-flow controller for numi.support")
    parser.add_argument("--config", help="TOML config file (default: $CALLFLOW_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the controller (ARI app + /health and /metrics)")
    run.set_defaults(func=_run)

    pbx = sub.add_parser("pbx", help="the sandbox Asterisk 22 (Debian sid chroot)")
    pbx_sub = pbx.add_subparsers(dest="action", required=True)
    up = pbx_sub.add_parser("up", help="build once, install our config, start, wait for ARI")
    up.set_defaults(func=_pbx_up)
    down = pbx_sub.add_parser("down", help="stop Asterisk (the last instance out unmounts)")
    down.set_defaults(func=_pbx_down)
    status = pbx_sub.add_parser("status", help="is it running, where it listens")
    status.set_defaults(func=_pbx_status)
    cli = pbx_sub.add_parser("cli", help='run an Asterisk CLI command: callflow pbx cli "pjsip show endpoints"')
    cli.add_argument("cli_command")
    cli.set_defaults(func=_pbx_cli)
    for command in (up, down, status, cli):
        command.add_argument("--instance", type=_instance_number, default=None, metavar="K",
                             help="which Asterisk: 0 (default; $CALLFLOW_PBX_INSTANCE) is 127.0.0.1, "
                                  "K >= 1 listens on 127.0.0.(K+1) with its own RTP range and directories")
    for command in (up, down):
        command.add_argument("--instances", type=int, default=1, metavar="N",
                             help="N instances from --instance on (K, K+1, … K+N-1)")

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


def _instance_number(text: str) -> int:
    from callflow.pbx.sandbox import MAX_INSTANCE

    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to {MAX_INSTANCE} (got {text!r})") from None
    if not 0 <= number <= MAX_INSTANCE:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to {MAX_INSTANCE} (got {text!r})")
    return number


def _sandboxes(args: argparse.Namespace) -> list:
    """The instances a `pbx` command is about: --instance (else $CALLFLOW_PBX_INSTANCE, else 0), --instances."""
    from callflow.pbx.sandbox import Instance, Sandbox, SandboxError

    first = args.instance if args.instance is not None else Instance.from_env().number
    count = getattr(args, "instances", 1)
    if count < 1:
        raise SandboxError(f"--instances: expected a whole number of at least 1 (got {count})")
    return [Sandbox(instance=Instance(n)) for n in range(first, first + count)]


def _sandbox(args: argparse.Namespace):
    return _sandboxes(args)[0]


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
    for sandbox in _sandboxes(args):
        endpoints = sandbox.up()
        print(f"sandbox Asterisk (instance {sandbox.instance.number}) is up")
        for key, value in endpoints.items():
            print(f"  {key:4} {value}")
    return 0


@_pbx_error
def _pbx_down(args: argparse.Namespace) -> int:
    for sandbox in _sandboxes(args):
        sandbox.down()
        print(f"sandbox Asterisk (instance {sandbox.instance.number}) stopped")
    return 0


@_pbx_error
def _pbx_status(args: argparse.Namespace) -> int:
    status = _sandbox(args).status()
    print(json.dumps(status, indent=2))
    return 0 if status["running"] else 3


@_pbx_error
def _pbx_cli(args: argparse.Namespace) -> int:
    sandbox = _sandbox(args)
    if not sandbox.running():
        n = sandbox.instance.number
        print(f"callflow pbx: the sandbox (instance {n}) is not running (callflow pbx up{f' --instance {n}' if n else ''})",
              file=sys.stderr)
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
