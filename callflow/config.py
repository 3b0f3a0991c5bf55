"""callflow's configuration: one TOML file plus environment variables, validated.

Every key can come from the file (section `[ari]`, key `url`) or from the
environment (`CALLFLOW_ARI_URL`), the environment winning. A wrong value is
refused with a message naming the key and the expected form; timers can never
be set below the seed procedure's minimums (each section's `validate`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callflow.agents.config import AgentsConfig, EmergencyConfig, EscalationConfig, FeatureCodes
from callflow.console.config import ConsoleConfig
from callflow.core.errors import ConfigError
from callflow.core.hours import HoursConfig
from callflow.flows.timers import SilentCallTimers
from callflow.handoff.config import CallbackConfig, OutboxConfig, SmsConfig, SmtpConfig
from callflow.paths import DEFAULT_DB, STATE_DIR as DEFAULT_STATE_DIR


@dataclass
class AriConfig:
    url: str = "http://127.0.0.1:8088/ari"
    user: str = ""
    password: str = ""
    app: str = "callflow"
    # seconds; a dead socket is noticed within ~1.5× this. 5 s: the pong may take up to 2.5 s, which a
    # controller stalled by load (2 cores, load ≥ 30) needs; 2 s (1 s for the pong) dropped live sockets
    ping_interval: float = 5.0

    def validate(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError("ari.url", "an http(s) URL such as http://127.0.0.1:8088/ari", self.url)
        if not self.user or not self.password:
            raise ConfigError("ari.user/ari.password", "ARI credentials (CALLFLOW_ARI_USER / CALLFLOW_ARI_PASSWORD, "
                              "or run `callflow pbx up` which generates them)")
        if not 0.5 <= self.ping_interval <= 30:
            raise ConfigError("ari.ping_interval", "seconds between 0.5 and 30", self.ping_interval)


@dataclass
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8090

    def validate(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError("http.port", "a TCP port between 1 and 65535", self.port)


@dataclass
class LogConfig:
    format: str = "text"  # "text" or "json" (one JSON object per line)
    level: str = "INFO"

    def validate(self) -> None:
        if self.format not in ("text", "json"):
            raise ConfigError("log.format", '"text" or "json"', self.format)
        if self.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("log.level", "DEBUG, INFO, WARNING or ERROR", self.level)


@dataclass
class PromptsConfig:
    agent_name: str = "Camille"  # the [PRENOM_HOTLINER] of the seed's greeting
    # seed 002: « l'annonce que le téléphone est enregistré … a fait baisser les dérapages »
    recorded_call_notice: bool = False
    sounds_prefix: str = "callflow"  # Asterisk sounds/<prefix>/<lang>/<prompt>

    def validate(self) -> None:
        if not self.agent_name.strip() or len(self.agent_name) > 40:
            raise ConfigError("prompts.agent_name", "a first name of 1 to 40 characters", self.agent_name)


@dataclass
class RoutingConfig:
    agents_context: str = "hotline-agents"  # where calls go to reach a person (and the fail-safe)
    # who takes a caller to a person: "desk" (callflow's agent desk: hold, hunt, whisper, card) or
    # "dialplan" (continue in agents_context, for a PBX whose own Queue() does it; `bench pbx` too)
    agents_via: str = "desk"
    # how a callback reaches a number (E.164); the sandbox's test line is a SIPp phone
    callback_dial: str = "PJSIP/{number}@callbacks-test"
    callback_caller_id: str = "numi.support <0100000000>"

    def validate(self) -> None:
        if not self.agents_context:
            raise ConfigError("routing.agents_context", "a dialplan context name")
        if self.agents_via not in ("desk", "dialplan"):
            raise ConfigError("routing.agents_via", '"desk" or "dialplan"', self.agents_via)
        if "{number}" not in self.callback_dial:
            raise ConfigError("routing.callback_dial", 'a dial string with {number}, e.g. "PJSIP/{number}@trunk"', self.callback_dial)


@dataclass
class MediaConfig:
    rtp_host: str = "127.0.0.1"  # where Asterisk's externalMedia sends the caller's audio
    rtp_port: int = 0  # 0: any free port

    def validate(self) -> None:
        if not 0 <= self.rtp_port <= 65535:
            raise ConfigError("media.rtp_port", "a UDP port between 0 (any) and 65535", self.rtp_port)


@dataclass
class AgiConfig:
    """The FastAGI server `callflow run` starts beside the ARI app (dialplan: AGI(agi://host:port/silent_call))."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4573  # FastAGI's registered port

    def validate(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError("agi.port", "a TCP port between 1 and 65535", self.port)
        if not self.host:
            raise ConfigError("agi.host", "an address to listen on, e.g. 127.0.0.1")


@dataclass
class AmiConfig:
    """The AMI feed (agents' device states and queue members, for a PBX whose own Queue() takes callers)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 5038
    user: str = ""  # empty: the ARI user (the sandbox's manager.conf uses the ARI credentials)
    password: str = ""
    ping_interval: float = 5.0  # a Ping this often; no Pong within pong_timeout: reconnect
    pong_timeout: float = 3.0

    def validate(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError("ami.port", "a TCP port between 1 and 65535", self.port)
        if not 0.2 <= self.ping_interval <= 60:
            raise ConfigError("ami.ping_interval", "seconds between 0.2 and 60", self.ping_interval)
        if not 0.2 <= self.pong_timeout <= 30:
            raise ConfigError("ami.pong_timeout", "seconds between 0.2 and 30", self.pong_timeout)


@dataclass
class StoreConfig:
    database: str = DEFAULT_DB  # the SQLite file of records, outbox and callbacks

    def validate(self) -> None:
        if not self.database:
            raise ConfigError("store.database", "a SQLite file path")


SECTIONS: dict[str, type] = {
    "ari": AriConfig,
    "http": HttpConfig,
    "log": LogConfig,
    "prompts": PromptsConfig,
    "routing": RoutingConfig,
    "media": MediaConfig,
    "store": StoreConfig,
    "silent_call": SilentCallTimers,
    "sms": SmsConfig,
    "smtp": SmtpConfig,
    "outbox": OutboxConfig,
    "callbacks": CallbackConfig,
    "agents": AgentsConfig,
    "escalation": EscalationConfig,
    "emergency": EmergencyConfig,
    "feature_codes": FeatureCodes,
    "agi": AgiConfig,
    "ami": AmiConfig,
    "hours": HoursConfig,
    "console": ConsoleConfig,
}


@dataclass
class Config:
    ari: AriConfig = field(default_factory=AriConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    silent_call: SilentCallTimers = field(default_factory=SilentCallTimers)
    sms: SmsConfig = field(default_factory=SmsConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)
    agents: AgentsConfig = field(default_factory=AgentsConfig)
    escalation: EscalationConfig = field(default_factory=EscalationConfig)
    emergency: EmergencyConfig = field(default_factory=EmergencyConfig)
    feature_codes: FeatureCodes = field(default_factory=FeatureCodes)
    agi: AgiConfig = field(default_factory=AgiConfig)
    ami: AmiConfig = field(default_factory=AmiConfig)
    hours: HoursConfig = field(default_factory=HoursConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)

    def validate(self) -> None:
        self.outbox.db_path = self.store.database  # one database for every room
        for name in SECTIONS:
            getattr(self, name).validate()


def load(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Read the file (if any), apply CALLFLOW_* environment variables, validate."""
    env = dict(os.environ if env is None else env)
    path = path or env.get("CALLFLOW_CONFIG")
    data: dict[str, Any] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError("CALLFLOW_CONFIG", f"an existing TOML file (not found: {path})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("CALLFLOW_CONFIG", f"valid TOML ({exc})") from None
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise ConfigError(sorted(unknown)[0], f"one of the sections {', '.join(sorted(SECTIONS))}")
    sections = {}
    for name, cls in SECTIONS.items():
        sections[name] = _build_section(name, cls, data.get(name, {}), env)
    config = Config(**sections)
    if "CALLFLOW_ARI_URL" not in env and "url" not in data.get("ari", {}):
        _fill_sandbox_instance(config.ari, env)
    _fill_sandbox_instance_listeners(config, env)
    _fill_sandbox_credentials(config.ari, env)
    _fill_sandbox_defaults(config, env)
    config.validate()
    return config


def _build_section(name: str, cls: type, values: Any, env: dict[str, str]) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(name, "a table of keys")
    # fields marked internal are derived by the loader, never set by hand
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = set(values) - set(fields)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"{name}.{key}", f"one of the keys {', '.join(sorted(fields))}")
    kwargs: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for key, f in fields.items():
        env_key = f"CALLFLOW_{name.upper()}_{key.upper()}"
        if env_key in env:
            kwargs[key] = _coerce(f"{name}.{key} ({env_key})", hints[key], env[env_key])
        elif key in values:
            kwargs[key] = _coerce(f"{name}.{key}", hints[key], values[key])
    return cls(**kwargs)


def _coerce(key: str, kind: Any, value: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
        origin = typing.get_origin(kind)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
        if origin is list:
            if isinstance(value, str):
                value = json.loads(value) if value.strip().startswith("[") else [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list):
                raise ValueError
            (item,) = typing.get_args(kind) or (str,)
            return [_coerce(key, item, v) for v in value]
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ConfigError(key, _expected(kind), value) from None
    return value


def _expected(kind: Any) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(kind, str(kind))


def _fill_sandbox_instance(ari: AriConfig, env: dict[str, str]) -> None:
    """CALLFLOW_PBX_INSTANCE=K (a sandbox instance of `callflow pbx up --instance K`) points the
    controller at that instance's ARI unless ari.url is given."""
    if not env.get("CALLFLOW_PBX_INSTANCE"):
        return
    from callflow.pbx.sandbox import Instance, SandboxError

    try:
        ari.url = Instance.from_env(env).ari_url
    except SandboxError as exc:
        raise ConfigError("CALLFLOW_PBX_INSTANCE", "a sandbox instance number from 0 to 59", env["CALLFLOW_PBX_INSTANCE"]) from exc


def _fill_sandbox_instance_listeners(config: Config, env: dict[str, str]) -> None:
    """On sandbox instance K, FastAGI listens on (and AMI is read from) the instance's own address,
    as its dialplan and manager.conf say (@ADDR@), unless agi.host / ami.host are given."""
    if not env.get("CALLFLOW_PBX_INSTANCE"):
        return
    from callflow.pbx.sandbox import Instance

    address = Instance.from_env(env).address
    if config.agi.host == AgiConfig.host and "CALLFLOW_AGI_HOST" not in env:
        config.agi.host = address
    if config.ami.host == AmiConfig.host and "CALLFLOW_AMI_HOST" not in env:
        config.ami.host = address


def _fill_sandbox_defaults(config: Config, env: dict[str, str]) -> None:
    """On the sandbox PBX's machine, the controller shares its sounds folder for runtime speech."""
    state_dir = Path(env.get("CALLFLOW_STATE_DIR", str(DEFAULT_STATE_DIR)))
    sounds = Path(env.get("CALLFLOW_SANDBOX_ROOT", str(state_dir / "sid-root"))) / "usr/share/asterisk/sounds"
    if not config.agents.runtime_sounds_dir and sounds.is_dir() and "://127.0.0." in config.ari.url:
        config.agents.runtime_sounds_dir = str(sounds / config.prompts.sounds_prefix)


def _fill_sandbox_credentials(ari: AriConfig, env: dict[str, str]) -> None:
    """With no credentials given, use those `callflow pbx up` generated for the sandbox."""
    if ari.user and ari.password:
        return
    secrets_file = Path(env.get("CALLFLOW_STATE_DIR", str(DEFAULT_STATE_DIR))) / "secrets.json"
    try:
        stored = json.loads(secrets_file.read_text())
    except (OSError, ValueError):
        return
    ari.user = ari.user or stored.get("ari_user", "")
    ari.password = ari.password or stored.get("ari_password", "")
