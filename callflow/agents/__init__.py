"""Human agents on SIP desk phones: routing, in-call feature codes, supervisor and emergency hand-offs.

The services (constructed once by the app wiring):
    AgentDesk        implements callflow.core.agents.Agents (desk.py)
    EmergencyBridge  implements callflow.core.handoff.EmergencyLine (emergency.py)
    escalation.py (seed 001), closing.py (seed 002): the desk's procedures
    add_routes(app, desk)  the small local HTTP API (callflow/web/agents_api.py)
"""
