"""Live mode: the endless loop behind the dashboard, paced in real time.

Each tick: apply the operator's commands from state/commands/ (approve, reject,
pause, resume; see process_commands), inject whatever the fault schedule says
into the simulator (seeded random, or a scenario file's phases), step the agent,
write state/. The agent never sees the schedule; state/simulator.json shows it to
people as ground truth. Ctrl-C or SIGTERM finish the current tick, write state,
audit the stop and exit 0.

The worker is the only writer of its state folder (a lock), appends every change
to the hash-chained state/audit.jsonl before making it, and resumes after a crash
from its state files reconciled with that log. state/KILL stops all execution.

    python worker.py [--tps N] [--tick-seconds S] [--seed N] [--state-dir DIR] [--max-ticks N]
                     [--scenario FILE] [--no-llm]
    python worker.py --verify-audit [--state-dir DIR]
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import llm_reasoner
from agent import Agent, AgentSettings
from executor import ApprovalError
from merchant_profiles import DEFAULT_UNIVERSE
from scenario import RandomFaultSchedule, ScenarioError, ScenarioSchedule, load_scenario
from simulator import Simulator
from state_writer import (
    AUDIT_FILE,
    COMMANDS,
    COMMANDS_DIR,
    STATE_FILES,
    AuditLog,
    StateLocked,
    StateWriter,
    acquire_lock,
    read_audit,
    read_json,
    verify_audit,
)

KILL_FILE = "KILL"            # touch state/KILL to stop every execution, automatic or approved
SUMMARY_EVERY_S = 300.0       # the learner's LLM summary is refreshed at most this often

COMMAND_MAX_AGE_S = 15 * 60   # an approval older than 15 min was given for traffic that has moved on
COMMAND_MAX_SKEW_S = 60       # a command dated more than a minute ahead is refused (clock skew or a forged date)
COMMAND_LOG = 100             # entries kept in state/commands.json
SEEN_IDS = 10_000             # command ids remembered against replays (a bounded memory in endless runs)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return iso(datetime.now(timezone.utc))


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
        ex.audit({"event": kind, "who": "operator", "reason": f"{kind} by {by.strip()}", "approver": by.strip()})
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
        msg = ex.approve(action_id, by.strip(), tick, iso(now), cmd["params_hash"], now=agent.clock(),
                         ref=cmd["id"])
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


def quarantine_corrupt(state_dir: Path, stamp: str) -> list[str]:
    """Move unreadable state files aside (name.corrupt-<stamp>) and drop stale temporary files."""
    notes = []
    for tmp in state_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    for name in STATE_FILES + ("commands.json",):
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


def stopper_sleep(stopper: "Stopper", seconds: float) -> None:
    """Sleep in short steps so a stop signal is honoured within a tenth of a second."""
    end = time.monotonic() + seconds
    while not stopper.stop and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run the payment-ops agent live, forever, writing state/ each tick.")
    ap.add_argument("--tps", type=float, default=2000.0, help="payments per second of simulated traffic")
    ap.add_argument("--tick-seconds", type=float, default=1.0, help="real seconds per tick")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default 1, or the scenario's)")
    ap.add_argument("--state-dir", default="state")
    ap.add_argument("--max-ticks", type=int, default=None, help="stop after this many ticks (tests, soak runs)")
    ap.add_argument("--scenario", default=None,
                    help="replay this scenario file's fault schedule instead of the random one (its seed unless --seed)")
    ap.add_argument("--no-llm", action="store_true", help="heuristics only, even with GEMINI_API_KEY set")
    ap.add_argument("--verify-audit", action="store_true", help="check the audit log's hash chain and exit")
    args = ap.parse_args(argv)
    state_dir = Path(args.state_dir)
    if args.verify_audit:
        return verify(state_dir)
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
    try:
        lock = acquire_lock(state_dir, "worker.py")
    except StateLocked as e:
        print(f"worker.py: {e}", file=sys.stderr)
        return 2
    started = utc_now()
    notes = quarantine_corrupt(state_dir, started.replace(":", "").replace("-", ""))
    audit = AuditLog(state_dir, utc_now, "worker.py")
    kill_file = state_dir / KILL_FILE
    llm = llm_reasoner.from_env(os.environ, disabled=args.no_llm, clock=lambda _tick: time.monotonic())
    agent = Agent(universe, AgentSettings(), llm=llm, summarizer=llm, clock=time.time, audit=audit.append,
                  kill_switch=kill_file.exists)
    previous = read_json(state_dir / "status.json") or {}
    notes += agent.restore(read_json(state_dir / "control_plane.json"), read_json(state_dir / "learning.json"),
                           read_audit(state_dir / AUDIT_FILE))
    agent.executor.paused = bool(previous.get("paused")) or agent.executor.paused
    tick = int(previous["tick"]) + 1 if isinstance(previous.get("tick"), int) else 0
    for note in notes:
        print(f"worker: warning: {note}", file=sys.stderr)
        audit.append({"event": "state_repaired", "reason": note})
    audit.append({"event": "worker_start", "reason": f"starting at tick {tick}, seed {args.seed}"})
    sim = Simulator(universe, args.seed, args.tps * args.tick_seconds, args.tick_seconds, start_hour, tick=tick)
    for t in range(tick):                      # the same schedule as before the restart
        schedule.faults_at(t)
    writer = StateWriter(state_dir, utc_now)
    commands = CommandLog.load(writer.read("commands.json"))
    stopper = Stopper()
    summary_every = max(1, round(SUMMARY_EVERY_S / args.tick_seconds))
    run = {"mode": "live", "started_at": started, "tick_seconds": args.tick_seconds, "tps": args.tps,
           "seed": args.seed, "pid": os.getpid()}

    def write_state(state: str) -> None:
        docs = agent.state_documents({**run, "state": state, "paused": agent.executor.paused,
                                      "kill_switch": kill_file.exists()})
        docs["control_plane.json"]["audit_head"] = audit.head
        for name, doc in docs.items():
            writer.write(name, doc)
        writer.write("simulator.json", {"tick": agent.last.tick, **schedule.describe()})
        writer.write("commands.json", commands.to_dict(agent.last.tick))

    llm_text = llm.settings.model if llm.enabled else f"off ({llm.off_reason.value})"
    print(f"worker: {args.tps:,.0f} payments/s, a tick every {args.tick_seconds:g} s, seed {args.seed}, "
          f"state in {state_dir}/, LLM {llm_text} (Ctrl-C to stop)", file=sys.stderr)
    next_at, ran = time.monotonic(), 0
    while not stopper.stop and (args.max_ticks is None or ran < args.max_ticks):
        process_commands(state_dir, agent, tick, datetime.now(timezone.utc), commands)
        agent.step(sim.step(agent.control, schedule.faults_at(tick)))
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


if __name__ == "__main__":
    sys.exit(main())
