"""Live mode: the endless loop behind the dashboard, paced in real time.

Each tick: inject whatever the seeded random fault schedule says into the
simulator, step the agent, write state/. The agent never sees the schedule;
state/simulator.json shows it to people as ground truth. Ctrl-C or SIGTERM
finish the current tick, write state, audit the stop and exit 0.

The worker is the only writer of its state folder (a lock), appends every change
to the hash-chained state/audit.jsonl before making it, and resumes after a crash
from its state files reconciled with that log. state/KILL stops all execution.

    python worker.py [--tps N] [--tick-seconds S] [--seed N] [--state-dir DIR] [--max-ticks N] [--no-llm]
    python worker.py --verify-audit [--state-dir DIR]
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import llm_reasoner
from agent import Agent, AgentSettings
from merchant_profiles import DEFAULT_UNIVERSE, Universe
from simulator import Fault, FaultKind, ScheduledFault, Simulator
from state_writer import (AUDIT_FILE, STATE_FILES, AuditLog, StateLocked, StateWriter, acquire_lock, read_audit,
                          read_json, verify_audit)

KILL_FILE = "KILL"   # touch state/KILL to stop every execution, automatic or approved


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


def quarantine_corrupt(state_dir: Path, stamp: str) -> list[str]:
    """Move unreadable state files aside (name.corrupt-<stamp>) and drop stale temporary files."""
    notes = []
    for tmp in state_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    for name in STATE_FILES:
        path = state_dir / name
        if path.exists() and read_json(path) is None:
            aside = path.with_name(f"{name}.corrupt-{stamp}")
            path.rename(aside)
            notes.append(f"{name} was unreadable: moved to {aside.name}, starting that part fresh")
    return notes


def verify(state_dir: Path) -> int:
    anchor = (read_json(state_dir / "control_plane.json") or {}).get("audit_head")
    ok, message = verify_audit(state_dir / AUDIT_FILE, anchor)
    print(f"audit log {'OK' if ok else 'BROKEN'}: {message}")
    return 0 if ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run the payment-ops agent live, forever, writing state/ each tick.")
    ap.add_argument("--tps", type=float, default=2000.0, help="payments per second of simulated traffic")
    ap.add_argument("--tick-seconds", type=float, default=1.0, help="real seconds per tick")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--state-dir", default="state")
    ap.add_argument("--max-ticks", type=int, default=None, help="stop after this many ticks (tests, soak runs)")
    ap.add_argument("--verify-audit", action="store_true", help="check the audit log's hash chain and exit")
    ap.add_argument("--no-llm", action="store_true", help="heuristics only, even with GEMINI_API_KEY set")
    args = ap.parse_args(argv)
    state_dir = Path(args.state_dir)
    if args.verify_audit:
        return verify(state_dir)
    if args.tps <= 0 or args.tick_seconds <= 0:
        print("worker.py: --tps and --tick-seconds must be positive", file=sys.stderr)
        return 2
    try:
        lock = acquire_lock(state_dir, "worker.py")
    except StateLocked as e:
        print(f"worker.py: {e}", file=sys.stderr)
        return 2
    started = utc_now()
    notes = quarantine_corrupt(state_dir, started.replace(":", "").replace("-", ""))
    universe = DEFAULT_UNIVERSE
    audit = AuditLog(state_dir, utc_now, "worker.py")
    kill_file = state_dir / KILL_FILE
    llm = llm_reasoner.from_env(os.environ, disabled=args.no_llm, clock=lambda _tick: time.monotonic())
    agent = Agent(universe, AgentSettings(), llm=llm, summarizer=llm, clock=time.time, audit=audit.append,
                  kill_switch=kill_file.exists)
    summary_every = max(1, round(SUMMARY_EVERY_S / args.tick_seconds))
    previous = read_json(state_dir / "status.json") or {}
    notes += agent.restore(read_json(state_dir / "control_plane.json"), read_json(state_dir / "learning.json"),
                           read_audit(state_dir / AUDIT_FILE))
    agent.executor.paused = previous.get("state") == "paused" or agent.executor.paused
    tick = int(previous["tick"]) + 1 if isinstance(previous.get("tick"), int) else 0
    for note in notes:
        print(f"worker: warning: {note}", file=sys.stderr)
        audit.append({"event": "state_repaired", "reason": note})
    audit.append({"event": "worker_start", "reason": f"starting at tick {tick}, seed {args.seed}"})
    start_hour = datetime.now(timezone.utc).hour
    sim = Simulator(universe, args.seed, args.tps * args.tick_seconds, args.tick_seconds, start_hour, tick=tick)
    schedule = RandomFaultSchedule(universe, args.seed)
    for t in range(tick):                      # the same schedule as before the restart
        schedule.faults_at(t)
    writer = StateWriter(state_dir, utc_now)
    stopper = Stopper()
    status = {"mode": "live", "started_at": started, "tick_seconds": args.tick_seconds, "tps": args.tps,
              "seed": args.seed, "pid": os.getpid()}

    def write_state(state: str) -> None:
        docs = agent.state_documents({**status, "state": state, "kill_switch": kill_file.exists()})
        docs["control_plane.json"]["audit_head"] = audit.head
        for name, doc in docs.items():
            writer.write(name, doc)
        writer.write("simulator.json", {"tick": agent.last.tick, **schedule.describe()})

    print(f"worker: {args.tps:,.0f} payments/s, a tick every {args.tick_seconds:g} s, seed {args.seed}, "
          f"state in {state_dir}/, LLM {llm.settings.model if llm.enabled else 'off (' + llm.off_reason.value + ')'} "
          f"(Ctrl-C to stop)", file=sys.stderr)
    next_at, ran = time.monotonic(), 0
    while not stopper.stop and (args.max_ticks is None or ran < args.max_ticks):
        batch = sim.step(agent.control, schedule.faults_at(tick))
        agent.step(batch)
        agent.executor.prune()
        if ran % summary_every == summary_every - 1:
            agent.learner.summarize()
        write_state("paused" if agent.executor.paused else "running")
        tick, ran = tick + 1, ran + 1
        next_at += args.tick_seconds
        delay = next_at - time.monotonic()
        if delay > 0 and not stopper.stop:
            stopper_sleep(stopper, delay)
        elif delay <= 0:
            next_at = time.monotonic()
    if agent.last is not None:
        write_state("stopped")
    audit.append({"event": "worker_stop", "reason": f"stopped after {ran} ticks at tick {tick - 1}"})
    lock.close()
    print(f"worker: stopped after {ran} ticks", file=sys.stderr)
    return 0


def stopper_sleep(stopper: Stopper, seconds: float) -> None:
    """Sleep in short steps so a stop signal is honoured within a tenth of a second."""
    end = time.monotonic() + seconds
    while not stopper.stop and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))


if __name__ == "__main__":
    sys.exit(main())
