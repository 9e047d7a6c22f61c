"""Speed: payments per second of the simulator, the observer and the agent, and the whole loop's peak memory.

A benchmark that prints measured figures (python evaluate.py bench); no test asserts a time.
"""
from __future__ import annotations

import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np

from agent import Agent
from merchant_profiles import DEFAULT_UNIVERSE
from observer import Observer
from simulator import Fault, FaultKind, Simulator


def bench_batch(size: int, ticks: int, seed: int = 1) -> dict:
    """Payments per second of the simulator, the observer and the agent, timed separately on the same
    batches; the loop is simulator plus agent. A degradation in the middle third exercises decide and act."""
    u = DEFAULT_UNIVERSE
    sim, observer, agent = Simulator(u, seed, size), Observer(u), Agent(u)
    fault = (Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="chase", processor="atlas"),)
    spent = np.zeros(3)
    n = 0
    for t in range(ticks):
        t0 = time.perf_counter()
        batch = sim.step(agent.control, fault if ticks // 3 <= t < 2 * ticks // 3 else ())
        t1 = time.perf_counter()
        observer.observe(batch)
        t2 = time.perf_counter()
        agent.step(batch)
        spent += (t1 - t0, t2 - t1, time.perf_counter() - t2)
        n += batch.new_payments
    return {"batch": size, "ticks": ticks, "payments": n, "simulator": n / spent[0], "observer": n / spent[1],
            "agent": n / spent[2], "loop": n / (spent[0] + spent[2])}


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (reset by exec, unlike ru_maxrss, which a spawned child
    inherits from its parent on Linux), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _loop_child(size: int, payments: int) -> dict:
    """Whole loop in a fresh process: seconds and peak resident memory."""
    base = peak_rss_mb()
    u = DEFAULT_UNIVERSE
    sim, agent = Simulator(u, 2, size), Agent(u)
    started, n = time.perf_counter(), 0
    while n < payments:
        n += agent.step(sim.step(agent.control)).snapshot.last.total.payments
    return {"batch": size, "payments": n, "seconds": time.perf_counter() - started,
            "payments_per_s": n / (time.perf_counter() - started),
            "peak_rss_mb": peak_rss_mb(), "rss_before_mb": base}


def run_speed(quick: bool = False, progress=sys.stderr) -> dict:
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    per_size = 150_000 if quick else 1_000_000
    rows = []
    for size in sizes:
        if progress is not None:
            print(f"\r  speed: batch {size:,} payments per tick ...", end="", file=progress, flush=True)
        rows.append(bench_batch(size, max(150, per_size // size)))
    scale = [(10_000, n) for n in ((250_000, 500_000, 1_000_000) if quick else (500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000))]
    scale += [] if quick else [(100_000, 10_000_000)]
    scaling = []
    ctx = mp.get_context("spawn")          # a fresh process per row, so peak memory is that run's alone
    for size, n in scale:
        if progress is not None:
            print(f"\r  speed: whole loop, {n:,} payments at {size:,} per tick ...", end="", file=progress, flush=True)
        with ctx.Pool(1) as pool:
            scaling.append(pool.apply(_loop_child, (size, n)))
    if progress is not None:
        print(file=progress)
    return {"batches": rows, "scaling": scaling, "quick": quick,
            "note": "one process, one core; wall-clock perf_counter; payments are new payments (retries are extra attempts)"}
