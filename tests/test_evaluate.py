"""evaluate.py: one `--quick` benchmark end to end, in a subprocess (slow; no test asserts a time).

The baselines, measures and trace have their own files: test_bench_baselines.py, test_bench_measures.py,
test_bench_trace.py."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.baselines import POLICIES
from bench.measures import MEASURES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, proc


@pytest.mark.slow
def test_quick_runs_every_policy_and_every_measure_is_finite_or_marked(quick):
    out, proc = quick
    doc = json.loads((out / "summary.json").read_text())
    assert doc["policies"] == list(POLICIES)
    assert doc["scenarios"], "no scenario ran"
    for name, sc in doc["scenarios"].items():
        assert set(sc["policies"]) == set(POLICIES), name
        for policy, measures in sc["policies"].items():
            assert set(measures) == set(MEASURES), (name, policy)
            for m, v in measures.items():
                if "na" in v:                                   # n/a is explicit, with a reason
                    assert isinstance(v["na"], str) and v["na"], (name, policy, m)
                else:
                    assert all(math.isfinite(v[k]) for k in ("mean", "lo", "hi")), (name, policy, m, v)
                    assert v["n"] >= 1
    for policy in POLICIES:
        assert set(doc["headline"][policy]) >= {"recovered_share", "time_to_detect", "approval_violations"}
    assert all(isinstance(t["met"], bool) for t in doc["targets"])
    speed = doc["speed"]
    for row in speed["batches"]:
        assert all(math.isfinite(row[k]) and row[k] > 0 for k in ("simulator", "observer", "agent", "loop"))
    assert all(r["peak_rss_mb"] > 0 for r in speed["scaling"])


@pytest.mark.slow
def test_quick_writes_the_report_and_a_chart(quick):
    out, proc = quick
    text = (out / "summary.md").read_text()
    for heading in ("## Targets", "## Headline", "### Recovered share", "## Speed", "## Definitions"):
        assert heading in text
    assert "## Targets" in proc.stdout                       # the tables are printed too
    assert (out / "recovered_share.png").stat().st_size > 1000
    assert "runs" in proc.stderr                              # progress


@pytest.mark.slow
def test_the_agent_never_runs_an_action_that_needed_approval(quick):
    doc = json.loads((quick[0] / "summary.json").read_text())
    for sc in doc["scenarios"].values():
        assert sc["policies"]["agent"]["approval_violations"]["mean"] == 0


