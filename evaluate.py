"""Evaluate: the agent against doing nothing, a runbook rule, an auth-rate router and an oracle.

    python evaluate.py [--quick] [--scenarios DIR] [--seeds N] [--out DIR] [--workers N] [--no-bench]
    python evaluate.py bench [--quick]         # the speed benchmark alone

Every policy meets the same simulator seed: the same payments and the same luck per attempt
(common random numbers), so differences between policies are the policies'. The baselines live
here because the oracle reads the fault schedule, which nothing in the agent may do:

- none: the agent observes and reasons but never acts;
- static: a runbook rule with fixed thresholds that is never undone;
- sr_router: per-payment success-rate routing per issuer, after Juspay's decision engine (SR_V3)
  and Hyperswitch's success-based routing (../shared/reference-routers.md, section (b));
- agent: the project's agent, heuristic reasoning;
- oracle_path: applies the best path move the tick a fault starts and undoes it the tick it ends;
- oracle: while a fault lasts, routes each issuer's first attempts and retries where, by the simulator's
  truth, they approve the most; the denominator of recovered share.

Measures are defined in MEASURE_NOTES (written into results/summary.md). What this leaves out:
human approvals (nobody approves in a benchmark run, so actions that need one stay pending), the
LLM reasoner, and capacity limits (the simulator has none).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
from pathlib import Path

from bench.baselines import POLICIES
from bench.report import render, render_speed, to_json, write_charts
from bench.runner import load_dir, pick_quick, run_benchmark
from bench.speed import run_speed
from scenario import ScenarioError

DEFAULT_SCENARIOS = Path(__file__).parent / "scenarios"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark the agent against none, static, sr_router and the oracles.")
    ap.add_argument("command", nargs="?", choices=("run", "bench"), default="run", help="bench: speed only")
    ap.add_argument("--quick", action="store_true", help="a small version (4 scenarios, 2 seeds, small speed runs)")
    ap.add_argument("--scenarios", default=str(DEFAULT_SCENARIOS), help="folder of scenario files")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per scenario (default 5, quick 2)")
    ap.add_argument("--out", default="results", help="folder for summary.md, summary.json and charts")
    ap.add_argument("--workers", type=int, default=min(2, mp.cpu_count()), help="processes for the runs")
    ap.add_argument("--bench", action="store_true", help="same as the bench command")
    ap.add_argument("--no-bench", action="store_true", help="skip the speed benchmark")
    args = ap.parse_args(argv)
    if args.command == "bench" or args.bench:
        speed = run_speed(args.quick)
        print(render_speed(speed))
        return 0
    try:
        scenarios = load_dir(Path(args.scenarios))
    except ScenarioError as e:
        print(f"evaluate.py: {e}", file=sys.stderr)
        return 2
    if args.quick:
        scenarios = pick_quick(scenarios)
    n_seeds = args.seeds or (2 if args.quick else 5)
    command = "python evaluate.py" + (" --quick" if args.quick else "") + (f" --seeds {args.seeds}" if args.seeds else "")
    print(f"Evaluating {len(scenarios)} scenarios x {n_seeds} seeds x {len(POLICIES)} policies on {args.workers} workers",
          file=sys.stderr)
    bench = run_benchmark(scenarios, n_seeds, max(1, args.workers))
    speed = None if args.no_bench else run_speed(args.quick)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = render(bench, speed, command)
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(to_json(bench, speed, command), indent=1, allow_nan=False) + "\n")
    charts = write_charts(bench, speed, out)
    print(text)
    print(f"Wrote {out / 'summary.md'}, {out / 'summary.json'}" + "".join(f", {p}" for p in charts), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
