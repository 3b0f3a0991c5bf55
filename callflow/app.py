"""Wiring: builds the controller, its flow and its services from the config."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from callflow.config import Config
from callflow.controller import Controller
from callflow.core.agents import DialplanAgents
from callflow.core.channel import CallContext
from callflow.flows.silent_call import SilentCallDeps, run_silent_call
from callflow.handoff.config import HandoffConfig
from callflow.handoff.service import HandoffService
from callflow.handoff.web import add_routes as add_handoff_routes
from callflow.store.records import Records

log = logging.getLogger(__name__)


class LoggedEmergencyLine:
    """Stand-in until the emergency bridge exists: record and log loudly, never hang up."""

    def __init__(self, records: Records):
        self.records = records

    async def start(self, call_id: str, *, caller_number: str | None, situation: str, answers: dict[str, str]) -> None:
        log.critical("EMERGENCY requested", extra={"call": call_id, "caller": caller_number, "situation": situation})


async def build_controller(config: Config, services: AsyncExitStack) -> Controller:
    """The controller with every service started; `services` closes them in reverse order."""
    records = await Records.open(config.store.database)
    services.push_async_callback(records.close)

    deps: SilentCallDeps | None = None  # built below: the services need the controller's ARI client

    async def silent_call(ctx: CallContext) -> None:
        assert deps is not None
        await handoffs.note_call(ctx.call_id, ctx.caller.number)
        await run_silent_call(ctx, deps)

    controller = Controller(config, flow=silent_call)
    handoffs = HandoffService(
        HandoffConfig(sms=config.sms, smtp=config.smtp, outbox=config.outbox, callbacks=config.callbacks),
        ari_post=lambda path, params: controller.client.request("PUT", path, params),  # sendMessage is a PUT
        originate=controller.place_callback, records=records, find_recent_call=records.find_recent_call,
    )
    await handoffs.start()
    services.push_async_callback(handoffs.stop)
    add_handoff_routes(controller.web_app, handoffs)

    deps = SilentCallDeps(
        recorder=records, handoffs=handoffs, emergency=LoggedEmergencyLine(records),
        agents=DialplanAgents(config.routing.agents_context, "s"), timers=config.silent_call,
        agent_name=config.prompts.agent_name,
    )
    return controller
