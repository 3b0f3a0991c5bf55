"""Wiring: builds the controller with its flows and services from the config."""

from __future__ import annotations

from callflow.config import Config
from callflow.controller import Controller


async def build_controller(config: Config) -> Controller:
    return Controller(config)
