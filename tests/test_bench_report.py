"""bench/report.py: the benchmark's summary.md (targets, shortfalls, tables, definitions) and summary.json."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow      # a small benchmark run behind every table

from bench.baselines import POLICIES
from bench.measures import MEASURES
from bench.report import fmt, render, scenario_table, shortfalls, to_json


@pytest.mark.parametrize("d, kind, ci, text", [
    ({}, "r", True, "n/a"),                                                 # a measure that does not apply
    ({"na": "never acts"}, "t", True, "n/a"),
    ({"mean": 0.8123, "lo": 0.7, "hi": 0.9}, "r", True, "0.81 [0.70, 0.90]"),
    ({"mean": 0.8123, "lo": 0.7, "hi": 0.9}, "r", False, "0.81"),
    ({"mean": 2.0, "lo": 2.0, "hi": 2.0}, "t", True, "2.0"),                 # a point interval is not printed
    ({"mean": 0.123456}, "%", True, "12.35%"),
    ({"mean": 1234.5}, "$", True, "$1,234"),
    ({"mean": 0.1234}, "$3", True, "$0.123"),
])
def test_fmt(d, kind, ci, text):
    assert fmt(d, kind, ci) == text


def test_scenario_table_has_a_row_per_scenario_of_the_kinds_asked(tiny_bench):
    _, bench = tiny_bench
    table = scenario_table(bench, "actions").splitlines()
    assert table[0] == "| scenario | " + " | ".join(POLICIES) + " |" and len(table) == 4
    faults_only = scenario_table(bench, "recovered_share", kinds=("single",)).splitlines()
    assert len(faults_only) == 3 and faults_only[2].startswith("| b_degradation |")


def test_render_has_every_section_and_the_command(tiny_bench):
    _, bench = tiny_bench
    text = render(bench, None, "python evaluate.py --tiny")
    assert text.startswith("# Evaluation results\n\n`python evaluate.py --tiny`: 2 scenarios x 1 seeds")
    for heading in ("## Targets", "## Where the agent falls short", "## Headline", "### Recovered share",
                    "### Detection, policy agent", "## Baselines", "## Definitions"):
        assert heading in text
    assert "## Speed" not in text                                        # no speed figures, no section


def test_shortfalls_list_every_unmet_target(tiny_bench):
    _, bench = tiny_bench
    tg = [{"target": "t1", "value": "v1", "met": False}, {"target": "t2", "value": "v2", "met": True}]
    out = shortfalls(bench, tg)
    assert out[0] == "t1: v1" and not any(x.startswith("t2") for x in out)


def test_to_json_is_plain_json_with_the_policies_measures_and_lags(tiny_bench):
    _, bench = tiny_bench
    doc = json.loads(json.dumps(to_json(bench, None, "cmd")))
    assert doc["policies"] == list(POLICIES) and set(doc["measures"]) == set(MEASURES)
    assert set(doc["scenarios"]) == {"a_control.json", "b_degradation.json"} and doc["runs"] == 2 * len(POLICIES)
    assert all(isinstance(t["met"], bool) for t in doc["targets"])
    (lag,) = doc["detection_lags"]
    assert lag["scenario"] == "b_degradation.json" and lag["fault_start"] == 20
