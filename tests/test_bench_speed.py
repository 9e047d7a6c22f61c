"""bench/speed.py: payments per second of each stage and peak memory (figures are printed, never asserted)."""
from __future__ import annotations

import math

from bench.speed import bench_batch, peak_rss_mb


def test_bench_batch_times_each_stage_on_the_same_payments():
    row = bench_batch(300, 9)
    assert (row["batch"], row["ticks"]) == (300, 9) and 0 < row["payments"] < 300 * 9 * 2
    for k in ("simulator", "observer", "agent", "loop"):
        assert math.isfinite(row[k]) and row[k] > 0
    assert row["loop"] < min(row["simulator"], row["agent"])     # the loop is both stages, slower than either


def test_peak_rss_is_this_processes_high_water_mark_in_mib():
    import psutil
    first = peak_rss_mb()
    grown = bytearray(32 * 2**20)
    grown[:: 4096] = b"x" * len(grown[:: 4096])                 # touch every page
    rss_now = psutil.Process().memory_info().rss / 2**20
    peak = peak_rss_mb()
    assert peak >= first and peak >= rss_now * 0.99 and peak < rss_now * 20     # MiB, not KiB or bytes
    del grown
