"""Live mode: the endless loop behind the dashboard, paced in real time.

Each tick: apply the operator's commands from state/commands/ (approve, reject,
pause, resume; see process_commands), inject whatever the fault schedule says
into the simulator (seeded random, or a scenario file's phases), step the agent,
write state/. The agent never sees the schedule; state/simulator.json shows it to
people as ground truth. Ctrl-C or SIGTERM finish the current tick, write state
and exit 0.

    python worker.py [--tps N] [--tick-seconds S] [--seed N] [--state-dir DIR] [--max-ticks N]
                     [--scenario FILE]
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from agent import Agent, AgentSettings
from executor import ApprovalError
from merchant_profiles import DEFAULT_UNIVERSE, Universe
from simulator import Fault, FaultKind, Scenario, ScenarioError, ScheduledFault, Simulator, load_scenario
from state_writer import COMMANDS, COMMANDS_DIR, StateWriter, read_json

COMMAND_MAX_AGE_S = 15 * 60   # an approval older than 15 min was given for traffic that has moved on
COMMAND_MAX_SKEW_S = 60       # a command dated more than a minute ahead is refused (clock skew or a forged date)
COMMAND_LOG = 100             # entries kept in state/commands.json
SEEN_IDS = 10_000             # command ids remembered against replays (a bounded memory in endless runs)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return iso(datetime.now(timezone.utc))


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


@dataclass
class ScenarioSchedule:
    """A scenario file's fault schedule replayed in real time; quiet after its last phase."""
    scenario: Scenario
    _tick: int = field(init=False, default=0)

    def faults_at(self, tick: int) -> tuple[Fault, ...]:
        self._tick = tick
        return self.scenario.faults_at(tick)

    def describe(self) -> dict:
        t = self._tick
        phase = next((p.name for p in self.scenario.phases if p.start_tick <= t < p.end_tick), None)
        active = [{"kind": f.fault.kind.value, "target": f.fault.target, "severity": f.fault.severity,
                   "start_tick": f.start_tick, "end_tick": f.end_tick}
                  for f in self.scenario.faults if f.severity_at(t) > 0]
        return {"scenario": self.scenario.name, "phase": phase, "active_fault": active[0] if active else None,
                "active_faults": active}


# -- operator commands -----------------------------------------------------------------

def _parse_time(value) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def apply_command(agent: Agent, cmd: dict | None, tick: int, now: datetime, seen) -> tuple[bool, str]:
    """Validate one operator command and apply it through the executor: (accepted, message). Never raises."""
    if not isinstance(cmd, dict):
        return False, "refused: not a JSON object (malformed file)"
    if not isinstance(cmd.get("id"), str) or not cmd["id"]:
        return False, "refused: the command has no id"
    if cmd["id"] in seen:
        return False, f"refused: command {cmd.get('id')} was already processed (replayed)"
    kind = cmd.get("command")
    if kind not in COMMANDS:
        return False, f"refused: unknown command {kind!r}; valid: {', '.join(COMMANDS)}"
    issued = _parse_time(cmd.get("issued_at"))
    if issued is None:
        return False, "refused: issued_at is missing or not an ISO time"
    age = (now - issued).total_seconds()
    if age > COMMAND_MAX_AGE_S:
        return False, f"refused: stale, issued {age / 60:.0f} min ago (limit {COMMAND_MAX_AGE_S // 60} min)"
    if age < -COMMAND_MAX_SKEW_S:
        return False, "refused: issued_at is in the future"
    by = cmd.get("by")
    if not isinstance(by, str) or not by.strip():
        return False, "refused: 'by' (who issued the command) is missing"
    ex = agent.executor
    if kind in ("pause", "resume"):
        if ex.paused == (kind == "pause"):
            return False, f"refused: already {'paused' if ex.paused else 'running'}"
        ex.paused = kind == "pause"
        return True, ("paused: the agent observes and reasons, nothing runs without approval" if ex.paused
                      else "resumed: the agent acts on its own again within its guardrails")
    action_id = cmd.get("action_id")
    if not isinstance(action_id, str):
        return False, f"refused: {kind} needs an action_id"
    if kind == "reject":
        msg = ex.reject(action_id, by.strip(), tick, iso(now))
        return msg.startswith("rejected"), msg
    if not isinstance(cmd.get("params_hash"), str):
        return False, "refused: approve needs the params_hash of the action as shown"
    try:
        msg = ex.approve(action_id, by.strip(), tick, iso(now), cmd["params_hash"])
    except ApprovalError as e:
        return False, f"refused: {e}"
    return msg.startswith("approved"), msg


@dataclass
class CommandLog:
    """The processed commands (state/commands.json) and the ids already seen, both bounded."""
    entries: deque = field(default_factory=lambda: deque(maxlen=COMMAND_LOG))
    seen: dict = field(default_factory=dict)     # insertion-ordered: the oldest ids fall off first

    def add(self, entry: dict) -> None:
        self.entries.append(entry)
        if entry.get("id"):
            self.seen[entry["id"]] = True
            while len(self.seen) > SEEN_IDS:
                self.seen.pop(next(iter(self.seen)))

    @classmethod
    def load(cls, doc: dict | None) -> "CommandLog":
        """Resume from a previous commands.json, so a restart does not forget recent ids."""
        log = cls()
        for e in (doc or {}).get("log", []):
            if isinstance(e, dict):
                log.add(e)
        return log

    def to_dict(self, tick: int) -> dict:
        return {"tick": tick, "max_age_seconds": COMMAND_MAX_AGE_S, "log": list(self.entries)}


def process_commands(state_dir: str | Path, agent: Agent, tick: int, now: datetime, log: CommandLog) -> list[dict]:
    """Apply every command file in state_dir/commands/, oldest first, log the result, delete the file."""
    folder = Path(state_dir) / COMMANDS_DIR
    docs = [(read_json(f), f) for f in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    docs.sort(key=lambda d: (str(d[0].get("issued_at", "")) if d[0] else "", d[1].name))
    done = []
    for cmd, path in docs:
        accepted, message = apply_command(agent, cmd, tick, now, log.seen)
        c = cmd if isinstance(cmd, dict) else {}
        entry = {"id": c.get("id") if isinstance(c.get("id"), str) else path.stem, "file": path.name,
                 "command": c.get("command"), "action_id": c.get("action_id"), "by": c.get("by"),
                 "issued_at": c.get("issued_at"), "processed_at": iso(now), "tick": tick,
                 "result": "accepted" if accepted else "refused", "message": message}
        log.add(entry)
        done.append(entry)
        path.unlink(missing_ok=True)
        print(f"worker: command {entry['id']} ({entry['command']} {entry['action_id'] or ''}) by {entry['by']}: "
              f"{message}", file=sys.stderr)
    return done


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
    ap.add_argument("--seed", type=int, default=None, help="random seed (default 1, or the scenario's)")
    ap.add_argument("--state-dir", default="state")
    ap.add_argument("--max-ticks", type=int, default=None, help="stop after this many ticks (tests, soak runs)")
    ap.add_argument("--scenario", default=None,
                    help="replay this scenario file's fault schedule instead of the random one (its seed unless --seed)")
    args = ap.parse_args(argv)
    if args.tps <= 0 or args.tick_seconds <= 0:
        print("worker.py: --tps and --tick-seconds must be positive", file=sys.stderr)
        return 2
    universe = DEFAULT_UNIVERSE
    start_hour = datetime.now(timezone.utc).hour
    if args.scenario:
        try:
            schedule = ScenarioSchedule(load_scenario(args.scenario, universe))
        except ScenarioError as e:
            print(f"worker.py: {e}", file=sys.stderr)
            return 2
        args.seed = schedule.scenario.seed if args.seed is None else args.seed
        start_hour = schedule.scenario.start_hour      # the same daily traffic shape as run.py's replay
    else:
        args.seed = 1 if args.seed is None else args.seed
        schedule = RandomFaultSchedule(universe, args.seed)
    sim = Simulator(universe, args.seed, args.tps * args.tick_seconds, args.tick_seconds, start_hour)
    agent = Agent(universe, AgentSettings())
    writer = StateWriter(args.state_dir, utc_now)
    commands = CommandLog.load(writer.read("commands.json"))
    stopper = Stopper()
    run = {"mode": "live", "started_at": utc_now(), "tick_seconds": args.tick_seconds, "tps": args.tps, "seed": args.seed}
    next_at = time.monotonic()
    print(f"worker: {args.tps:,.0f} payments/s, a tick every {args.tick_seconds:g} s, seed {args.seed}, "
          f"state in {args.state_dir}/ (Ctrl-C to stop)", file=sys.stderr)
    tick = 0
    while not stopper.stop and (args.max_ticks is None or tick < args.max_ticks):
        process_commands(args.state_dir, agent, tick, datetime.now(timezone.utc), commands)
        batch = sim.step(agent.control, schedule.faults_at(tick))
        agent.step(batch)
        status = {"state": "paused" if agent.executor.paused else "running", "paused": agent.executor.paused, **run}
        for name, doc in agent.state_documents(status).items():
            writer.write(name, doc)
        writer.write("simulator.json", {"tick": tick, **schedule.describe()})
        writer.write("commands.json", commands.to_dict(tick))
        tick += 1
        next_at += args.tick_seconds
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()
    if agent.last is not None:
        for name, doc in agent.state_documents({"state": "stopped", "paused": agent.executor.paused, **run}).items():
            writer.write(name, doc)
    print(f"worker: stopped after {tick} ticks", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
