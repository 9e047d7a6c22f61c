"""event_export: simulated ticks written as an events log read back, tick for tick, by the replay reader."""
import csv
import gzip
from datetime import datetime, timezone

import numpy as np
import pyarrow.parquet as pq
import pytest

import simulator
from decline_codes import CODE_LABELS, Code
from event_export import EVENT_COLUMNS, EventWriter
from log_reader import LogSpec, open_log
from merchant_profiles import DEFAULT_UNIVERSE as U

try:
    from control_plane import ControlPlane
except ImportError:
    from simulator import ControlPlane

START = datetime(2024, 5, 6, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def batches():
    sim = simulator.Simulator(U, 7, 400)
    return [sim.step(ControlPlane()) for _ in range(12)]


def _grid(issuer, processor, weights):
    g = np.zeros((len(U.issuer_names), len(U.processor_names)), np.int64)
    np.add.at(g, (issuer, processor), weights)
    return g


@pytest.mark.parametrize("name", [
    "week.parquet",       # pyarrow row groups
    "week.csv",           # plain CSV
    "week.csv.gz",        # gzipped CSV
])
def test_round_trip_gives_back_the_same_ticks(tmp_path, batches, name):
    path = tmp_path / name
    with EventWriter(path, U.describe(), START, 10.0) as w:
        for b in batches:
            w.write(b)
    assert w.rows == sum(len(b) for b in batches)
    source = open_log(LogSpec(str(path), format="auto", tick="10s"))
    with source:
        assert source.format == "events" and source.start == START
        ticks = list(source.ticks())
        # the reader's codes -> the universe's codes
        issuer = np.array([U.issuer_names.index(n) for n in source.vocab["issuer"]])
        processor = np.array([U.processor_names.index(n) for n in source.vocab["processor"]])
        code_class = source.code_class
    assert len(ticks) == len(batches)
    for b, t in zip(batches, ticks):
        assert t.start == START + (t.index * (ticks[1].start - ticks[0].start))
        got_i, got_p = issuer[t.dims["issuer"]], processor[t.dims["processor"]]
        assert (_grid(got_i, got_p, t.count) == _grid(b.issuer, b.processor, 1)).all()
        assert (_grid(got_i, got_p, t.approved) == _grid(b.issuer, b.processor, b.approved.astype(int))).all()
        assert sorted(t.attempt.tolist()) == sorted(b.attempt.tolist())
        assert np.isclose(np.sort(t.amount), np.sort(b.amount)).all()
    declined = [c for c in Code if c is not Code.APPROVED]
    assert all(code_class[i].value != "unknown" for i in range(len(code_class)))      # every label is in the table
    assert {CODE_LABELS[c] for c in declined} >= set(source.code_vocab) - {"00"}


def test_columns_and_status_words(tmp_path, batches):
    path = tmp_path / "e.csv.gz"
    with EventWriter(path, U.describe(), START, 10.0) as w:
        w.write(batches[3])
    with gzip.open(path, "rt") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == EVENT_COLUMNS
    b = batches[3]
    status = [r["status"] for r in rows]
    assert status.count("approved") == int(b.approved.sum())
    failed = np.isin(b.code, [Code.ISSUER_UNAVAILABLE, Code.SYSTEM_MALFUNCTION, Code.TIMEOUT])
    assert status.count("failed") == int(failed.sum())                          # failed = technical
    assert {r["code"] for r in rows if r["status"] == "approved"} == {"00"}
    stamps = [datetime.fromisoformat(r["time"].replace("Z", "+00:00")) for r in rows]
    tick_start, tick_end = START.replace(second=30), START.replace(second=40)          # batch 3 of 10 s ticks
    assert all(tick_start <= s < tick_end for s in stamps) and stamps == sorted(stamps)


def test_parquet_is_streamed_in_row_groups(tmp_path, batches):
    path = tmp_path / "e.parquet"
    with EventWriter(path, U.describe(), START, 10.0) as w:
        for b in batches[:4]:
            w.write(b)
    assert pq.ParquetFile(path).num_row_groups == 4


def test_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(ValueError, match=".parquet, .csv or .csv.gz"):
        EventWriter(tmp_path / "e.xlsx", U.describe(), START, 10.0)
