"""Shadow mode end to end: synthetic logs with planted incidents replayed by `run.py --replay`.

Every log here is made by tests/shadow_logs.py (seeded): an hourly export of counts per merchant, method,
method sub-type, gateway and bank over a day-and-night curve with a long tail of 320 banks, and per-attempt
events with extra dimensions. The report must name the planted segment, early, and little else.
"""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from shadow_logs import Planted, events, hourly_counts

import run

ROOT = Path(__file__).resolve().parents[1]


def replay(tmp_path: Path, df, *extra: str, name: str = "log.csv") -> dict:
    path = tmp_path / name
    df.to_csv(path, index=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = run.main(["--replay", str(path), "--report", str(tmp_path / "report.json"), "--state-dir",
                         str(tmp_path / "state"), "--quiet", *extra])
    assert code == 0, out.getvalue()
    report = json.loads((tmp_path / "report.json").read_text())
    report["_printed"] = out.getvalue()
    return report


def named(report: dict, cause: str, target: dict) -> list[dict]:
    return [i for i in report["incidents"] if i["cause"] == cause and i["target"] == target]


def hours_after(report: dict, inc: dict, planted_hour: int) -> float:
    from datetime import datetime
    t0 = datetime.fromisoformat(report["period"]["start"].replace("Z", "+00:00"))
    t = datetime.fromisoformat(inc["start"].replace("Z", "+00:00"))
    return (t - t0).total_seconds() / 3600 - planted_hour


@pytest.mark.slow
@pytest.mark.parametrize("planted, cause, target", [
    # one gateway fails one method sub-type: a pair of a named dimension and a carried one
    (Planted({"gateway": "payu", "method_subtype": "upi_collect"}, 34, 4), "segment_degradation",
     {"processor": "payu", "method_subtype": "upi_collect"}),
    # one bank on one gateway
    (Planted({"bank": "bank002", "gateway": "razorpay"}, 30, 4, rate=0.3), "issuer_degradation",
     {"issuer": "bank002", "processor": "razorpay"}),
    # one bank down on every gateway
    (Planted({"bank": "bank004"}, 40, 3, rate=0.1), "issuer_outage", {"issuer": "bank004"}),
])
def test_hourly_export_names_the_planted_segment_within_two_hours(tmp_path, planted, cause, target):
    report = replay(tmp_path, hourly_counts(days=2, per_hour=20_000, planted=(planted,)))
    assert report["source"]["format"] == "counts" and report["period"]["tick_seconds"] == 3600
    hits = named(report, cause, target)
    assert hits, [(i["cause"], i["target"]) for i in report["incidents"]]
    assert 0 <= hours_after(report, hits[0], planted.start_hour) <= 2
    assert len(report["incidents"]) <= 4                      # a handful of others at most
    assert hits[0]["affected_attempts"] > 0 and hits[0]["approvals_lost_est"] > 0


@pytest.mark.slow
def test_a_day_and_night_with_no_fault_raises_no_incident(tmp_path):
    report = replay(tmp_path, hourly_counts(days=2, per_hour=20_000))
    assert report["incidents"] == [], [(i["cause"], i["target"], i["start"]) for i in report["incidents"]]
    assert report["universe"]["issuer"]["pooled"] and report["universe"]["issuer"]["values"] == 41   # long tail


@pytest.mark.slow
def test_a_failure_only_a_dim_column_explains_is_named_with_that_dim(tmp_path):
    extra = {"card_network": (["visa", "mastercard", "rupay", "amex"], [0.45, 0.30, 0.17, 0.08])}
    log = events(minutes=20 * 60, per_minute=300, planted=(Planted({"card_network": "amex"}, 17 * 60, 90, 0.3),),
                 extra=extra)
    without = replay(tmp_path, log)
    assert not any("card_network" in i["target"] or "network" in i["target"] for i in without["incidents"])
    with_dim = replay(tmp_path, log, "--dim", "network=card_network")
    hits = named(with_dim, "segment_degradation", {"network": "amex"})
    assert hits and hours_after(with_dim, hits[0], 17) * 60 <= 6          # within six minute-ticks
    assert len(with_dim["incidents"]) <= 3


@pytest.mark.slow
def test_a_thin_bank_on_one_gateway_failing_hard_is_found_by_sequential_evidence(tmp_path):
    # bank005 on payu: about 15 first attempts a minute at this hour, never 200 in a one-minute window
    log = events(minutes=4 * 60, per_minute=1500, planted=(Planted({"issuer": "bank005", "processor": "payu"},
                                                                   3 * 60, 30, 0.1),))
    report = replay(tmp_path, log)
    hits = named(report, "issuer_degradation", {"issuer": "bank005", "processor": "payu"})
    assert hits, [(i["cause"], i["target"]) for i in report["incidents"]]
    assert hours_after(report, hits[0], 3) * 60 <= 6                      # within six ticks
    assert any("sequential evidence" in e for e in hits[0]["evidence"])


@pytest.mark.slow
def test_round_trip_the_demo_exported_and_replayed_names_each_fault_as_the_live_run(tmp_path):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert run.main(["--quiet", "--no-llm", "--policy", "none", "--export-events", str(tmp_path / "demo.parquet"),
                         "--report", str(tmp_path / "live.json"), "--state-dir", str(tmp_path / "s1")]) == 0
        assert run.main(["--replay", str(tmp_path / "demo.parquet"), "--tick", "10s", "--quiet", "--report",
                         str(tmp_path / "replay.json"), "--state-dir", str(tmp_path / "s2")]) == 0
    live = json.loads((tmp_path / "live.json").read_text())
    replayed = json.loads((tmp_path / "replay.json").read_text())
    first = lambda r, f: min((h["tick"] for h in r["hypotheses"] if h["cause"] == f["kind"]      # noqa: E731
                              and h["target"] == f["target"]), default=None)
    for fault in live["faults"]:
        if fault["kind"] == "issuer_outage":
            fault = {**fault, "kind": "issuer_degradation", "target": {**fault["target"], "processor": "beacon"}}
        a, b = first(live, fault), first(replayed, fault)
        assert a is not None and b is not None and abs(a - b) <= 1, (fault, a, b)


def test_the_report_has_the_documented_shape(tmp_path):
    report = replay(tmp_path, hourly_counts(days=1, per_hour=2_000, banks=30))
    assert set(report["period"]) == {"start", "end", "tick_seconds"} and report["period"]["start"].endswith("Z")
    assert set(report["rows"]) == {"read", "used", "rejected"} and report["rows"]["used"] == report["rows"]["read"]
    assert {"mode", "source", "universe", "incidents", "hypotheses", "totals", "llm"} <= set(report)


@pytest.mark.slow     # run.py in a process per bad log
@pytest.mark.parametrize("content, fragment", [
    ("hour,gateway,count\n2026-01-01 00:00:00,payu,5\n", "cannot tell the format"),      # half a row shape
    ("", "is empty"),                                                                      # an empty file
    ("when,result\n1,2\n", "cannot tell the format"),                                      # nothing known
])
def test_bad_logs_exit_2_with_one_line(tmp_path, content, fragment):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    p = subprocess.run([sys.executable, "run.py", "--replay", str(f), "--state-dir", str(tmp_path / "s")], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and fragment in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("content, options, fragment", [
    ("hour,gateway,count\n2026-01-01 00:00:00,payu,5\n", ["--format", "counts"],
     "missing required column 'count' and 'approved'"),                                   # names what is missing
    ("when,status\n2026-01-01 00:00:00,approved\n", ["--format", "events"],
     "missing required column 'time'"),                                                    # ... and what was found
])
def test_a_missing_required_column_is_named_with_the_columns_found(tmp_path, content, options, fragment):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    p = subprocess.run([sys.executable, "run.py", "--replay", str(f), *options, "--state-dir", str(tmp_path / "s")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and fragment in p.stderr and "columns found" in p.stderr and "Traceback" not in p.stderr


def test_policy_does_not_apply_to_a_replay(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("hour,count,approved\n2026-01-01 00:00:00,5,4\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert run.main(["--replay", str(f), "--policy", "agent", "--state-dir", str(tmp_path)]) == 2
    assert "--policy does not apply" in err.getvalue()


def test_rejected_rows_are_counted_by_reason_and_the_run_goes_on(tmp_path):
    df = hourly_counts(days=1, per_hour=1_000, banks=20)
    df.loc[3, "hour"] = "not a time"
    df.loc[5, "count"] = -4
    df.loc[7, "approved"] = df.loc[7, "count"] + 3
    report = replay(tmp_path, df)
    assert report["rows"]["rejected"] == {"unparsable time": 1, "negative count": 1, "approved above count": 1}
    assert report["rows"]["used"] == len(df) - 3


@pytest.mark.slow     # run.py --replay in a process per preset
@pytest.mark.parametrize("fixture", ["hyperswitch_payment_attempt.csv", "stripe_unified_payments.csv",
                                     "adyen_received_payment_details.csv", "events.csv.gz", "counts_hourly.csv"])
def test_each_preset_replays_end_to_end(tmp_path, fixture):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert run.main(["--replay", str(ROOT / "tests" / "fixtures" / fixture), "--quiet", "--report",
                         str(tmp_path / "r.json"), "--state-dir", str(tmp_path / "s")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["rows"]["used"] > 0 and "Shadow mode" in out.getvalue()
    status = json.loads((tmp_path / "s" / "status.json").read_text())
    assert status["mode"] == "shadow" and status["state"] == "finished"
