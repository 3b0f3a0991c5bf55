"""Agents' configuration, the pool's routing order and states, and the feature-code reader."""

from __future__ import annotations

import pytest

from callflow.agents.config import AgentsConfig, EscalationConfig, FeatureCodes, dials_real_emergency
from callflow.agents.features import KeySequence
from callflow.agents.pool import AgentPool, AgentState
from callflow.core.errors import ConfigError


def test_defaults_validate():
    AgentsConfig().validate()
    EscalationConfig().validate()
    FeatureCodes().validate()


@pytest.mark.parametrize("timeout", [31, 45, 5])
def test_supervisor_wait_is_the_seeds_30_seconds_at_most(timeout):
    with pytest.raises(ConfigError) as err:
        EscalationConfig(supervisor_answer_timeout=timeout).validate()
    assert err.value.key == "escalation.supervisor_answer_timeout"


@pytest.mark.parametrize("key,value", [("hold_max_wait", 3600), ("hold_max_wait", 5), ("aggressive_pause", 60),
                                       ("extensions", []), ("extensions", ["2001", "2001"]), ("ring_timeout", 1)])
def test_agents_config_refuses(key, value):
    cfg = AgentsConfig(**{key: value})
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert err.value.key == f"agents.{key}"


def test_feature_codes_must_not_shadow_each_other():
    with pytest.raises(ConfigError):
        FeatureCodes(escalate="*1", transfer="*12").validate()
    with pytest.raises(ConfigError):
        FeatureCodes(escalate="*1", transfer="*1").validate()
    with pytest.raises(ConfigError):
        FeatureCodes(close="*x").validate()


def test_real_emergency_numbers_are_recognised():
    assert dials_real_emergency("PJSIP/112@trunk")
    assert dials_real_emergency("PJSIP/trunk/sip:15@1.2.3.4")
    assert not dials_real_emergency("PJSIP/emergency-test")
    assert not dials_real_emergency("PJSIP/0612345678@trunk")


def test_keys_make_codes():
    keys = KeySequence(FeatureCodes())
    assert [keys.feed(d, t) for d, t in (("*", 0), ("1", 0.5))] == [None, "escalate"]
    assert [keys.feed(d, t) for d, t in (("*", 1), ("*", 1.05), ("*", 1.1), ("0", 1.3))] == [None, None, None, "close"]
    assert [keys.feed(d, t) for d, t in (("5", 2), ("*", 3), ("9", 9))] == [None, None, None]  # too slow
    assert [keys.feed(d, t) for d, t in (("*", 10), ("7", 10.2), ("7", 10.3))] == [None, "flag_aggressive", None]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_pool_longest_idle_first_and_wrap_up():
    clock = Clock()
    pool = AgentPool(AgentsConfig(wrap_up_seconds=10, aggressive_pause=300), clock=clock)
    assert [a.extension for a in await pool.candidates()] == ["2001", "2002", "2003"]
    a1 = pool.get("2001")
    assert pool.claim(a1, "c1") and not pool.claim(a1, "c2")  # never offered twice
    pool.answered(a1, "c1")
    clock.t += 60
    pool.call_ended(a1)
    assert a1.state is AgentState.WRAP_UP
    clock.t += 11
    assert [a.extension for a in await pool.candidates()] == ["2002", "2003", "2001"]
    pool.answered(pool.get("2002"), "c3")
    pool.flag_aggressive(pool.get("2002"))
    pool.call_ended(pool.get("2002"), aggressive=True)
    clock.t += 299
    assert "2002" not in [a.extension for a in await pool.candidates()]
    clock.t += 2
    assert "2002" in [a.extension for a in await pool.candidates()]
    pool.pause(pool.get("2003"), "formation")
    assert "2003" not in [a.extension for a in await pool.candidates()]
    pool.resume(pool.get("2003"))
    assert "2003" in [a.extension for a in await pool.candidates()]
