"""The dashboard shows a replay (mode `shadow`): the data's own timestamps and the incidents, each explained."""
from __future__ import annotations

import contextlib
import io

import pytest

pytestmark = pytest.mark.slow      # a whole replay behind the page
from shadow_logs import Planted, hourly_counts
from streamlit.testing.v1 import AppTest

import dashboard_charts as charts
import dashboard_text as text
import run


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    d = tmp_path_factory.mktemp("shadow")
    hourly_counts(days=2, per_hour=8_000, banks=40,
                  planted=(Planted({"gateway": "payu", "method_subtype": "upi_collect"}, 30, 3),)).to_csv(
        d / "log.csv", index=False)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert run.main(["--replay", str(d / "log.csv"), "--quiet", "--state-dir", str(d / "state")]) == 0
    return d / "state"


def test_the_page_shows_the_incidents_and_explains_one(replayed, monkeypatch):
    monkeypatch.setenv("PAYOPS_STATE_DIR", str(replayed))
    at = AppTest.from_file("../dashboard.py", default_timeout=60).run()
    assert not at.exception
    assert any(h.value.startswith("Incidents") for h in at.subheader)
    assert at.selectbox(key="incident").options                               # a drill-down per incident
    explained = at.text[0].value
    assert "upi_collect" in explained and "payu" in explained and "approvals lost" in explained
    assert not [b for b in at.button if b.key and b.key.startswith("approve-")]   # nothing to approve: advice only


def test_a_replay_trend_uses_the_data_time_axis():
    trend = [{"tick": k, "time": f"2026-11-23T0{k}:00:00Z", "success_rate": 0.8, "first_attempt_success_rate": 0.85,
              "baseline_success_rate": 0.8} for k in range(3)]
    spec = charts.success_trend_chart(trend, None, [{"id": "I001", "start": "2026-11-23T01:00:00Z", "end": None,
                                                     "cause": "segment_degradation", "target": {"processor": "payu"}}])
    assert spec.layer[0].encoding.x.shorthand == "time:T"
    assert charts._x([{"tick": 1}]) == ("tick:Q", "tick")                      # live mode keeps ticks


@pytest.mark.parametrize("rec, expected", [
    (None, "none"),                                                                            # nothing to do
    ({"action": "reroute", "params": {"to_processor": "beacon"}, "requires_human_approval": False, "risk": 0.41},
     "reroute to beacon (automatic, risk 0.41)"),                                              # the agent's own call
    ({"action": "retry_policy", "params": {}, "requires_human_approval": True, "risk": 0.52},
     "retry_policy (needs approval, risk 0.52)"),                                              # a human's call
])
def test_advice_text(rec, expected):
    assert text.advice_text(rec) == expected
