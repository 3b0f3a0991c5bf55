"""Wiring: builds the controller, its flow and its services from the config."""

from __future__ import annotations

import dataclasses
import logging
import time
from contextlib import AsyncExitStack
from datetime import datetime, timezone

from callflow.agents.bridges import AriBridges
from callflow.agents.legs import CallNotes
from callflow.agents.desk import AgentDesk
from callflow.agents.pool import AgentPool, AriPresence
from callflow.agents.speech import RuntimeSpeech
from callflow.config import Config
from callflow.controller import Controller
from callflow.core.agents import DialplanAgents, Diagnosis
from callflow.core.call import REGISTRY, Call, CallState
from callflow.core.recorder import HungUpBy
from callflow.agents.closing import recorded_call_notice
from callflow.agents.emergency import EmergencyBridge
from callflow.agents.after_hours import HoursHandoffs, MessageDesk, MessageSettings
from callflow.faults import FaultInjection
from callflow.flows.silent_call import SilentCallDeps, run_silent_call
from callflow.handoff.config import HandoffConfig
from callflow.handoff.service import HandoffService
from callflow.handoff.web import add_routes as add_handoff_routes
from callflow.store.db import Database
from callflow.store.desk_state import DeskState, attach as attach_desk_state
from callflow.store.messages import Messages
from callflow.store.records import Records
from callflow.web.agents_api import add_routes as add_agents_routes
from callflow.web.procedures_api import add_routes as add_procedures_routes

log = logging.getLogger(__name__)


async def build_controller(config: Config, services: AsyncExitStack) -> Controller:
    """The controller with every service started; `services` closes them in reverse order."""
    # one store for every room (SQLite file or PostgreSQL, callflow/store/db.py), shared, closed last
    database = await Database.open(config.store.database, password=config.store.password or None)
    services.push_async_callback(database.close)
    log.info("store: %s", database.description)
    records = await Records.open(database)
    services.push_async_callback(records.close)
    # each call's one state: rebuilt from the store after a restart, then written through as it changes
    for snapshot in await records.live_call_states():
        REGISTRY.adopt(Call.from_snapshot(snapshot))
    REGISTRY.add_sink(records.save_call_state)
    services.push_async_callback(REGISTRY.flush)

    messages = await Messages.open(database)
    services.push_async_callback(messages.close)
    calendar = config.hours.calendar()
    message_settings = MessageSettings(max_seconds=config.hours.message_max_seconds,
                                       max_silence=config.hours.message_silence_seconds)

    deps: SilentCallDeps | None = None  # built below: the services need the controller's ARI client

    async def inbound_call(call: Call) -> None:
        assert deps is not None
        await answer_call(call, deps)

    async def answer_call(call: Call, open_deps: SilentCallDeps) -> None:
        """Seed 000 for one call, behind the closed line's message when seed 003 says the line is closed
        (the ARI and the FastAGI entries alike)."""
        await handoffs.note_call(call.call_id, call.caller.number)
        # seed 003: the calendar and the supervisor's override (`callflow hours close|open|auto`), read for every call
        override = await messages.override()
        now = datetime.fromtimestamp(time.time(), timezone.utc)
        call_deps = open_deps if calendar.is_open(now, override) else closed_line(open_deps, override)
        if config.prompts.recorded_call_notice:
            await call.channel.answer()
            await recorded_call_notice(call.channel, language=call.caller.language)
        await run_silent_call(call, call_deps)

    def closed_line(open_deps: SilentCallDeps, override: str) -> SilentCallDeps:
        """Seed 000's procedure behind the closed line's message; messages instead of agents."""

        def until_opening() -> float | None:
            return calendar.seconds_until_opening(datetime.fromtimestamp(time.time(), timezone.utc), override)

        line_handoffs = HoursHandoffs(handoffs, until_opening)
        desk = MessageDesk(tickets=messages, recorder=records, handoffs=line_handoffs,
                           seconds_until_opening=until_opening, settings=message_settings, source="closed")
        return dataclasses.replace(open_deps, agents=desk, handoffs=line_handoffs, closed_line=True)

    async def resume_call(call: Call) -> None:
        """A call found after a restart: a person takes it, urgent, with the diagnosis; an emergency carries on."""
        assert deps is not None
        if call.emergency and call.bridge_id:
            # in a conversation with a person: the line is dialled into it (as the agent's *9 does)
            await emergency.run(call.channel, call.call_id, caller_number=call.caller.number,
                                situation=call.summary or "urgence signalée, reprise après redémarrage",
                                answers={}, notes=CallNotes(records, call.call_id, call.channel),
                                bridge_id=call.bridge_id, by_agent=True)
            return
        if call.emergency:
            await emergency.start(call.call_id, caller_number=call.caller.number,
                                  situation=call.summary or "urgence, reprise après redémarrage du serveur vocal",
                                  answers={})
            return
        diagnosis = Diagnosis(summary=call.summary or "repris après redémarrage", urgent=True)
        await deps.agents.hand_to_agent(call, diagnosis, call.caller.language or "fr")

    async def close_interrupted(call: Call, reason: str) -> None:
        await records.close_interrupted(call.call_id, reason=reason)

    async def close_left(call: Call, reason: str) -> None:  # the caller hung up in a conversation we only watched
        await records.close_interrupted(call.call_id, hung_up_by=HungUpBy.CALLER, reason=reason)

    # TEST-ONLY (issue 11's fault campaign): None, and nothing changes, unless CALLFLOW_FAULT_INJECT is set
    injection = FaultInjection.from_env()
    if injection is not None:
        injection.watch(records)
        inbound_call = injection.wrap(inbound_call)

    controller = Controller(config, flow=inbound_call, resume=resume_call, close_interrupted=close_interrupted,
                            close_left=close_left)
    client = controller.client

    handoffs = HandoffService(
        HandoffConfig(sms=config.sms, smtp=config.smtp, outbox=config.outbox, callbacks=config.callbacks),
        ari_post=lambda path, params: client.request("PUT", path, params),  # sendMessage is a PUT
        originate=controller.place_callback, records=records, find_recent_call=records.find_recent_call,
        database=database,
    )
    await handoffs.start()
    services.push_async_callback(handoffs.stop)
    add_handoff_routes(controller.web_app, handoffs)

    # people: agents' desk phones, the supervisor, the emergency line (seeds 000 cas F, 001, 002, 004)
    presence, bridges = AriPresence(client), AriBridges(client)
    if config.ami.enabled:
        presence = await start_ami_feed(config, controller, presence, services)
    speech = RuntimeSpeech(config.agents.runtime_sounds_dir) if config.agents.runtime_sounds_dir else None

    def channel_of(call_id: str):
        session = controller.calls.get(call_id)
        return session.channel if session else None

    emergency = EmergencyBridge(config.emergency, recorder=records, bridges=bridges, channels=channel_of,
                                agents_context=config.routing.agents_context, speech=speech)
    def next_opening_after_today() -> float | None:  # overflow slot 3 « à l'ouverture »
        return calendar.seconds_until_opening(datetime.fromtimestamp(time.time(), timezone.utc), "closed")

    # seed 003 overflow key 4: a message; an urgent one is called back after the usual callback delay
    overflow_messages = MessageDesk(tickets=messages, recorder=records, handoffs=handoffs,
                                    seconds_until_opening=lambda: config.agents.callback_delay,
                                    settings=message_settings, source="overflow")
    # the desk's own state (agents, pauses, escalations, notifications) is durable too: callflow/store/desk_state.py
    desk_state = await DeskState.open(database)
    services.push_async_callback(desk_state.close)
    desk = AgentDesk(pool=AgentPool(config.agents, presence=presence), recorder=records, handoffs=handoffs,
                     bridges=bridges, escalation=config.escalation, codes=config.feature_codes,
                     emergency=emergency, presence=presence, speech=speech, messages=overflow_messages,
                     until_next_opening=next_opening_after_today, queue=desk_state.supervisor_queue())
    await attach_desk_state(desk, desk_state, live_call_ids=[c.call_id for c in REGISTRY.calls.values()
                                                             if c.state is not CallState.ENDED])
    emergency.agents = desk  # no operator within 30 s, or after the emergency line hangs up: a person takes the caller
    emergency.notify = desk.notify  # the supervisor is alerted when no operator answers
    add_agents_routes(controller.web_app, desk, emergency)
    add_procedures_routes(controller.web_app, desk, messages)

    if config.console.enabled:  # the agent and supervisor console in the browser, under /console
        from callflow.console.web import attach as attach_console

        try:
            await attach_console(controller.web_app, config, services=services, controller=controller, desk=desk,
                                 emergency=emergency, records=records, handoffs=handoffs)
        except Exception:  # the console is for people watching; callers must not lose the controller over it
            log.exception("console could not start; the controller runs without it")

    agents = desk if config.routing.agents_via == "desk" else DialplanAgents(config.routing.agents_context)
    if config.routing.agents_via == "desk":  # a callback answered rings an agent with the original call's card
        from callflow.agents.callback_leg import callback_to_agent

        async def callback_call(call: Call) -> None:
            await callback_to_agent(call, agents=desk, records=records)

        controller.callback_flow = callback_call
    deps = SilentCallDeps(
        recorder=records, handoffs=handoffs, emergency=emergency, agents=agents, timers=config.silent_call,
        agent_name=config.prompts.agent_name,
    )
    if config.agi.enabled:
        await start_fastagi(config, controller, deps, answer_call, services)
    return controller


async def start_ami_feed(config: Config, controller: Controller, fallback, services: AsyncExitStack):
    """Agents' device states from AMI (GET /api/pbx/agents); the desk's presence reads them."""
    from callflow.telephony.ami import AmiFeed, AmiPresence, add_routes

    feed = AmiFeed(config.ami.host, config.ami.port, config.ami.user or config.ari.user,
                   config.ami.password or config.ari.password, ping_interval=config.ami.ping_interval,
                   pong_timeout=config.ami.pong_timeout)
    feed.start()
    services.push_async_callback(feed.stop)
    add_routes(controller.web_app, feed)
    return AmiPresence(feed, fallback=fallback)


async def start_fastagi(config: Config, controller: Controller, deps: SilentCallDeps, answer_call,
                        services: AsyncExitStack) -> None:
    """The same flows from a classic dialplan: AGI(agi://host:port/silent_call) (dialplans/agi.conf)."""
    import dataclasses

    from callflow.telephony.agi.emergency import DialplanEmergencyLine
    from callflow.telephony.agi.server import AgiServer

    # a FastAGI caller is not in our ARI app: people are reached through the dialplan
    agi_deps = dataclasses.replace(deps, agents=DialplanAgents(config.routing.agents_context),
                                   emergency=DialplanEmergencyLine(config.emergency, recorder=deps.recorder,
                                                                   channels=lambda call_id: server.channels.get(call_id)))

    async def silent_call(call: Call) -> None:
        await answer_call(call, agi_deps)  # the opening hours as for an ARI call (seed 003)

    server = AgiServer(config.agi.host, config.agi.port, controller=controller,
                       sounds_prefix=config.prompts.sounds_prefix)
    server.add_flow("silent_call", silent_call)
    try:
        await server.start()
    except OSError as exc:
        from callflow.core.errors import ConfigError

        raise ConfigError("agi.host/agi.port", f"an address and port free to listen on ({exc.strerror})",
                          f"{config.agi.host}:{config.agi.port}") from None
    services.push_async_callback(server.stop)
    controller.agi = server  # type: ignore[attr-defined]  # for /health readers and tests
