"""Replay reading speed: a synthetic per-attempt log of N rows, read into LogTicks; rows/s and peak memory.

    python -m bench.replay_speed [--rows 10000000] [--dir DIR]

Makes one week of attempts (300 issuers, 12 processors, 40 merchants, 6 methods, two extra
dims, a day-night volume curve, retries sharing a payment id) as Parquet and CSV, then reads
each file in a fresh child process pinned to one core with DuckDB threads=1 (and again with
DuckDB's default threads), into the observer, and through the whole shadow replay (1-minute
ticks: 10,080 of them). Each child reports its wall time from open_log to the last tick and
its peak RSS (VmHWM), so no allocation of the generator or of another run is counted.
Prints measured figures; asserts nothing about speed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
START_US = 1_717_200_000_000_000          # 2024-06-01 00:00 UTC
DAY_MINUTES = 24 * 60
STATUS = np.array(["approved", "declined", "failed"], dtype=object)
CODES = np.array(["00", "05", "51", "54", "14", "91", "96", "timeout", "57"], dtype=object)


def make_log(n: int, seed: int = 1, days: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    minutes = days * DAY_MINUTES
    minute_hour = (np.arange(minutes) / 60.0) % 24
    weight = 1.0 + 0.8 * np.cos(2 * np.pi * (minute_hour - 20.0) / 24.0)        # peak 20 h, trough 8 h apart: 9x
    minute = rng.choice(minutes, size=n, p=weight / weight.sum())
    t_us = np.sort(START_US + minute * 60_000_000 + rng.integers(0, 60_000_000, n))
    retry = rng.random(n) < 0.12                                                 # 12% of rows retry a payment
    pid = np.cumsum(~retry) - 1
    issuer = rng.zipf(1.3, n) % 320
    approved = rng.random(n) < 0.88
    code = np.where(approved, 0, rng.integers(1, len(CODES), n))
    status = np.where(approved, 0, np.where(np.isin(code, [5, 6, 7]), 2, 1))

    def dictionary(values: np.ndarray, names: list[str]) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(pa.array(values.astype(np.int32)), pa.array(names))

    return pa.table({
        "time": pa.array(t_us, pa.timestamp("us", tz="UTC")),
        "payment_id": pa.array(np.char.add("pay_", pid.astype(str)).astype(object)),
        "issuer": dictionary(issuer, [f"issuer_{i:03d}" for i in range(320)]),
        "processor": dictionary(rng.integers(0, 12, n), [f"psp_{i:02d}" for i in range(12)]),
        "merchant": dictionary(rng.integers(0, 40, n), [f"merchant_{i:02d}" for i in range(40)]),
        "method": dictionary(rng.integers(0, 6, n), ["card", "apple_pay", "google_pay", "upi", "sepa", "ideal"]),
        "card_network": dictionary(rng.integers(0, 4, n), ["visa", "mastercard", "amex", "rupay"]),
        "three_ds": dictionary(rng.integers(0, 3, n), ["frictionless", "challenge", "none"]),
        "status": dictionary(status, list(STATUS)),
        "code": dictionary(code, list(CODES)),
        "latency_ms": pa.array(rng.lognormal(7.2, 0.4, n).astype(np.float32)),
        "amount": pa.array(np.round(rng.lognormal(4.0, 1.0, n), 2)),
        "currency": dictionary(np.zeros(n), ["USD"]),
        "fee": pa.array(np.round(rng.lognormal(0.0, 0.5, n), 4)),
    })


def write_logs(folder: Path, n: int, days: int = 7) -> dict[str, Path]:
    table = make_log(n, days=days)
    paths = {"parquet": folder / "attempts.parquet", "csv": folder / "attempts.csv"}
    pq.write_table(table, paths["parquet"], row_group_size=1_000_000, compression="zstd")
    plain = pa.table({name: (col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col)
                      for name, col in zip(table.column_names, table.columns)})
    pacsv.write_csv(plain, paths["csv"])
    return paths


def _child(path: str, threads: int, stage: str = "read") -> None:
    """Read one log in this fresh process and print one JSON line: rows, seconds, ticks, peak RSS.

    stage: read (into LogTicks), observe (and into the observer), replay (the whole shadow run)."""
    sys.path.insert(0, str(ROOT))
    if threads == 1:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})          # one core, for every library
        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)
    from log_reader import LogSpec, ReaderSettings, open_log
    t0 = time.perf_counter()
    source = open_log(LogSpec(path, dims=(("card_network", "card_network"), ("three_ds", "three_ds"))),
                      ReaderSettings(threads=threads or None))
    t_open = time.perf_counter() - t0
    rows = ticks = 0
    run = luts = None
    if stage != "read":
        from data_universe import DataUniverse
        from shadow import ShadowRun, to_attempts
        universe = DataUniverse.from_volumes(source.volumes())
        run = ShadowRun(universe, source.tick_seconds, source.n_ticks)
        luts = {}
    for tick in source.ticks():
        rows += len(tick)
        ticks += 1
        if stage == "observe":
            run.observer.observe(to_attempts(tick, run.universe, luts, source.vocab))
        elif stage == "replay":
            run.step(tick, source.vocab, str)
    seconds = time.perf_counter() - t0
    used, read = source.rows.used, source.rows.read
    source.close()
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({"rows": rows, "read": read, "used": used, "ticks": ticks, "open_s": round(t_open, 3),
                      "seconds": round(seconds, 3), "peak_rss_mb": round(hwm / 1024, 1)}))


def measure(path: Path, threads: int, stage: str = "read") -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.replay_speed", "--child", str(path), "--threads",
                          str(threads), "--stage", stage], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=7, help="the log's span (1-minute ticks: 1,440 a day)")
    parser.add_argument("--dir", default=None, help="where to write the logs (default: a temporary folder)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--stage", default="read", choices=("read", "observe", "replay"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.threads, args.stage)
        return []
    with tempfile.TemporaryDirectory(prefix="replay-bench-", dir=args.dir) as tmp:
        t0 = time.perf_counter()
        paths = write_logs(Path(tmp), args.rows, args.days)
        print(f"generated {args.rows:,} attempts in {time.perf_counter() - t0:.1f} s: "
              + ", ".join(f"{k} {p.stat().st_size / 1e6:,.0f} MB" for k, p in paths.items()), flush=True)
        results = []
        print(f"{'file':8} {'stage':8} {'threads':>8} {'rows':>12} {'ticks':>7} {'open s':>8} {'total s':>8} "
              f"{'rows/s':>11} {'peak RSS MB':>12}")
        for kind, path in paths.items():
            for stage, threads in (("read", 1), ("read", 0), ("observe", 1), ("replay", 1)):
                r = measure(path, threads, stage) | {"file": kind, "stage": stage, "threads": threads or "default"}
                r["rows_per_s"] = round(r["rows"] / r["seconds"]) if r["seconds"] else 0
                results.append(r)
                print(f"{kind:8} {stage:8} {str(r['threads']):>8} {r['rows']:>12,} {r['ticks']:>7,} {r['open_s']:>8.2f} "
                      f"{r['seconds']:>8.2f} {r['rows_per_s']:>11,} {r['peak_rss_mb']:>12,.0f}", flush=True)
        return results


if __name__ == "__main__":
    main()
