"""`callflow bench pbx`: arms compared only with the reference of their own round and mix."""

import argparse

import pytest

from callflow.pbx import bench
from callflow.pbx.bench import ArmResult, capacity_ratios, report


def arm(name: str, mix: str, rnd: int, pbx_s: float, controller_s: float = 0.0) -> ArmResult:
    return ArmResult(name, mix, 200, 0, 40.0, pbx_s, controller_s, round=rnd, load_average=3.0)


def test_each_arm_is_compared_with_the_reference_of_its_own_round():
    results = [arm("reference", "silent", 1, 10.0), arm("snoop", "silent", 1, 20.0, 10.0),
               arm("reference", "silent", 2, 8.0), arm("snoop", "silent", 2, 20.0, 12.0)]
    [(mix, name, pbx, total)] = capacity_ratios(results)
    assert (mix, name) == ("silent", "snoop")
    assert pbx == pytest.approx([0.5, 0.4])  # 10/20 then 8/20: never 10/20 against round 2
    assert total == pytest.approx([10 / 30, 8 / 32])  # the reference's PBX cost against PBX + controller


def test_an_arm_without_a_reference_in_its_round_is_not_compared():
    results = [arm("reference", "silent", 1, 10.0), arm("direct", "silent", 2, 12.0),
               arm("direct", "realistic", 1, 12.0)]
    assert capacity_ratios(results) == []


def test_report_gives_the_spread_over_rounds():
    text = report([arm("reference", "silent", 1, 10.0), arm("stasis", "silent", 1, 12.5),
                   arm("reference", "silent", 2, 10.0), arm("stasis", "silent", 2, 11.0)])
    assert "- silent / stasis: PBX CPU only 80%–91%" in text
    assert "| 2 | silent | stasis | 200 | 0 | 3.0 |" in text


def test_unknown_arm_names_the_expected_ones():
    args = argparse.Namespace(mix="silent", arms="reference,snop", concurrent=1, calls=1, length=1.0,
                              rounds=1, json=False, fastagi=False)
    with pytest.raises(SystemExit, match="unknown arm.*snop.*expected reference, callflow, baseline, fastagi, stasis"):
        bench._cli(args)


def test_failed_calls_are_the_calls_placed_minus_the_last_cumulative_successes(tmp_path):
    # the shape of SIPp's screen dumps: periodic column first, cumulative last; several screens per run
    screen = """  Successful call        |        {p}                  |       {c}                 
  Failed call            |        0                  |        {f}                 
"""
    (tmp_path / "sipp.out").write_text(screen.format(p=40, c=40, f=0) + "...\n" + screen.format(p=0, c=89, f=6))
    assert bench._failed_calls(tmp_path, 100) == 11  # 6 failed + 5 cut by the run's timeout
    (tmp_path / "sipp.out").write_text("no statistics at all\n")
    assert bench._failed_calls(tmp_path, 100) == -1
