"""Run the benchmark: every scenario x seed x policy, in worker processes, then the measures per scenario."""
from __future__ import annotations

import multiprocessing as mp
import sys
import time
from pathlib import Path

from agent import AgentSettings
from bench.baselines import POLICIES
from bench.measures import _lag, evaluate_scenario, headline, scenario_kind
from bench.trace import Trace, fault_share, run_policy
from merchant_profiles import DEFAULT_UNIVERSE
from scenario import Scenario, ScenarioError, fault_dict, load_scenario
from simulator import FaultKind


def _run_task(task: tuple[str, int, str]) -> tuple[tuple[str, int, str], Trace]:
    path, seed, policy = task
    return task, run_policy(load_scenario(path, DEFAULT_UNIVERSE), seed, policy)


def _pool(workers: int):
    """Worker processes forked from a clean server that has imported the benchmark once, never from the caller:
    forking a process whose other threads hold locks (a test run's, a Gemini lane's) can deadlock the child."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn").Pool(workers)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["bench.runner"])
    return ctx.Pool(workers)


def pick_quick(scenarios: dict[str, Scenario]) -> dict[str, Scenario]:
    """A small cross-section by content, never by name: a control and one single fault of three kinds."""
    want = [(), (FaultKind.ISSUER_DEGRADATION,), (FaultKind.LATENCY_SPIKE,), (FaultKind.RETRY_STORM,)]
    out = {}
    for kinds in want:
        for path, s in scenarios.items():
            if tuple(f.fault.kind for f in s.faults) == kinds and all(f.flap_ticks == 0 == f.ramp_ticks for f in s.faults):
                out[path] = s
                break
    return out or dict(list(scenarios.items())[:2])


def run_benchmark(scenarios: dict[str, Scenario], n_seeds: int, workers: int, progress=sys.stderr) -> dict:
    seeds = {path: [s.seed + k for k in range(n_seeds)] for path, s in scenarios.items()}
    tasks = [(path, seed, policy) for path in scenarios for seed in seeds[path] for policy in POLICIES]
    tasks.sort(key=lambda t: -scenarios[t[0]].total_ticks * scenarios[t[0]].payments_per_tick)   # long runs first
    traces: dict[str, dict] = {path: {} for path in scenarios}
    started = time.perf_counter()
    with _pool(workers) as pool:
        for done, ((path, seed, policy), tr) in enumerate(pool.imap_unordered(_run_task, tasks), 1):
            traces[path][policy, seed] = tr
            if progress is not None:
                print(f"\r  runs {done}/{len(tasks)}  {time.perf_counter() - started:5.1f} s  last: "
                      f"{scenarios[path].name[:40]:40s} {policy:9s} seed {seed}", end="", file=progress, flush=True)
    if progress is not None:
        print(file=progress)
    grace = AgentSettings().observer.window_ticks
    results, draws = {}, {}
    for path, s in scenarios.items():
        res, d = evaluate_scenario(s, traces[path], seeds[path], grace)
        results[path] = {"name": s.name, "file": Path(path).name, "kind": scenario_kind(s), "seeds": seeds[path],
                         "faults": [fault_dict(f) | {"ramp_ticks": f.ramp_ticks, "flap_ticks": f.flap_ticks}
                                    for f in s.faults],
                         "policies": res}
        draws[path] = d
    lags = [(Path(path).name, f.start_tick, _lag(traces[path]["agent", seed].hypotheses, f, grace),
             fault_share(f.fault, DEFAULT_UNIVERSE))
            for path, s in scenarios.items() for seed in seeds[path] for f in s.faults]
    agent_runs = [tr for per in traces.values() for (policy, _), tr in per.items() if policy == "agent"]
    return {"scenarios": results, "headline": headline(results, draws), "detection_lags": lags,
            "approval_violations_total": sum(tr.violations for tr in agent_runs),
            "runs": len(tasks), "seconds": time.perf_counter() - started,
            "run_seconds": sum(tr.seconds for per in traces.values() for tr in per.values())}


def load_dir(folder: Path) -> dict[str, Scenario]:
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise ScenarioError(f"no scenario files (*.json) in {folder}")
    return {str(f): load_scenario(f, DEFAULT_UNIVERSE) for f in files}
