"""Live mode: the endless loop behind the dashboard, paced in real time.

Each tick: inject whatever the seeded random fault schedule says into the
simulator, step the agent, write state/. The agent never sees the schedule;
state/simulator.json shows it to people as ground truth. Ctrl-C or SIGTERM
finish the current tick, write state and exit 0.

    python worker.py [--tps N] [--tick-seconds S] [--seed N] [--state-dir DIR] [--max-ticks N] [--no-llm]
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

import llm_reasoner
from agent import Agent, AgentSettings
from merchant_profiles import DEFAULT_UNIVERSE, Universe
from simulator import Fault, FaultKind, ScheduledFault, Simulator
from state_writer import StateWriter


SUMMARY_EVERY_S = 300.0  # the learner's LLM summary is refreshed at most this often, and only when outcomes changed


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class RandomFaultSchedule:
    """A seeded stream of faults: quiet gaps, then one fault of a random kind, target and severity."""
    universe: Universe
    seed: int
    quiet: tuple[int, int] = (60, 150)
    length: tuple[int, int] = (40, 100)
    _rng: np.random.Generator = field(init=False)
    _current: ScheduledFault | None = field(init=False, default=None)
    _next_start: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng([self.seed, 7919])
        self._next_start = int(self._rng.integers(*self.quiet))

    def _draw(self, start: int) -> ScheduledFault:
        u, rng = self.universe, self._rng
        kind = FaultKind(rng.choice([k.value for k in FaultKind]))
        pick = lambda names: str(rng.choice(names))
        fields = {
            FaultKind.ISSUER_DEGRADATION: lambda: {"issuer": (i := pick(u.issuer_names)),
                                                   "processor": next(x.primary for x in u.issuers if x.name == i)},
            FaultKind.ISSUER_OUTAGE: lambda: {"issuer": pick(u.issuer_names)},
            FaultKind.RETRY_STORM: lambda: {"merchant": pick(u.merchant_names)},
            FaultKind.LATENCY_SPIKE: lambda: {"processor": pick(u.processor_names)},
        }[kind]()
        severity = round(float(rng.uniform(0.4, 0.9)), 2)
        end = start + int(rng.integers(*self.length))
        ramp = int(rng.integers(0, 10)) if rng.random() < 0.3 else 0
        return ScheduledFault(Fault(kind, severity, **fields), start, end, ramp)

    def faults_at(self, tick: int) -> tuple[Fault, ...]:
        if self._current is None and tick >= self._next_start:
            self._current = self._draw(tick)
        if self._current is not None and tick >= self._current.end_tick:
            self._next_start = self._current.end_tick + int(self._rng.integers(*self.quiet))
            self._current = None
        if self._current is None:
            return ()
        f = self._current
        return (Fault(f.fault.kind, f.severity_at(tick), f.fault.issuer, f.fault.processor, f.fault.merchant),)

    def describe(self) -> dict:
        f = self._current
        return {"active_fault": None if f is None else {
            "kind": f.fault.kind.value, "target": f.fault.target, "severity": f.fault.severity,
            "start_tick": f.start_tick, "end_tick": f.end_tick}, "next_fault_not_before": self._next_start}


class Stopper:
    """Turns SIGINT/SIGTERM into a flag the loop checks between ticks."""

    def __init__(self) -> None:
        self.stop = False
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        self.stop = True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run the payment-ops agent live, forever, writing state/ each tick.")
    ap.add_argument("--tps", type=float, default=2000.0, help="payments per second of simulated traffic")
    ap.add_argument("--tick-seconds", type=float, default=1.0, help="real seconds per tick")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--state-dir", default="state")
    ap.add_argument("--max-ticks", type=int, default=None, help="stop after this many ticks (tests, soak runs)")
    ap.add_argument("--no-llm", action="store_true", help="heuristics only, even with GEMINI_API_KEY set")
    args = ap.parse_args(argv)
    if args.tps <= 0 or args.tick_seconds <= 0:
        print("worker.py: --tps and --tick-seconds must be positive", file=sys.stderr)
        return 2
    universe = DEFAULT_UNIVERSE
    start_hour = datetime.now(timezone.utc).hour
    sim = Simulator(universe, args.seed, args.tps * args.tick_seconds, args.tick_seconds, start_hour)
    llm = llm_reasoner.from_env(os.environ, disabled=args.no_llm, clock=lambda _tick: time.monotonic())
    agent = Agent(universe, AgentSettings(), llm=llm, summarizer=llm)
    summary_every = max(1, round(SUMMARY_EVERY_S / args.tick_seconds))
    schedule = RandomFaultSchedule(universe, args.seed)
    writer = StateWriter(args.state_dir, utc_now)
    stopper = Stopper()
    started = utc_now()
    next_at = time.monotonic()
    print(f"worker: {args.tps:,.0f} payments/s, a tick every {args.tick_seconds:g} s, seed {args.seed}, "
          f"state in {args.state_dir}/, LLM {llm.settings.model if llm.enabled else 'off (' + llm.off_reason.value + ')'} "
          f"(Ctrl-C to stop)", file=sys.stderr)
    tick = 0
    while not stopper.stop and (args.max_ticks is None or tick < args.max_ticks):
        batch = sim.step(agent.control, schedule.faults_at(tick))
        agent.step(batch)
        if tick % summary_every == summary_every - 1:
            agent.learner.summarize()
        status = {"state": "paused" if agent.executor.paused else "running", "mode": "live", "started_at": started,
                  "tick_seconds": args.tick_seconds, "tps": args.tps, "seed": args.seed}
        for name, doc in agent.state_documents(status).items():
            writer.write(name, doc)
        writer.write("simulator.json", {"tick": tick, **schedule.describe()})
        tick += 1
        next_at += args.tick_seconds
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()
    if agent.last is not None:
        for name, doc in agent.state_documents({"state": "stopped", "mode": "live", "started_at": started}).items():
            writer.write(name, doc)
    print(f"worker: stopped after {tick} ticks", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
