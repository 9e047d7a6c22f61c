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
    python worker.py --accept-audit-break "REASON" [--state-dir DIR]

On start the audit chain is verified before it is replayed (audit_trust.py): a broken chain is set
aside untouched, a new chain begins, automation pauses and status.json says "audit": {"ok": false}
until an operator accepts the break. State files are checked against their schemas and bounds
(state_load.py); one that fails is moved aside (name.invalid-<time>) and that part starts fresh.
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import llm_reasoner
from agent import Agent, AgentSettings
from audit_trust import HEAD_FILE, accept_break, check, open_log
from clock import utc_now
from commands import CommandLog, process_commands, short
from merchant_profiles import DEFAULT_UNIVERSE
from scenario import (
    MAX_PAYMENTS_PER_TICK,
    MAX_SEED,
    MAX_TICK_SECONDS,
    MIN_TICK_SECONDS,
    RandomFaultSchedule,
    ScenarioError,
    ScenarioSchedule,
    load_scenario,
)
from simulator import Simulator
from state_load import control_doc_reason, is_int, learning_reason, status_reason
from state_writer import (AUDIT_FILE, STATE_FILES, StateLocked, StateWriter, acquire_lock, open_audit, read_audit,
                          read_json)

KILL_FILE = "KILL"            # touch state/KILL to stop every execution, automatic or approved
ERROR_LOG = "errors.log"      # a failed tick's traceback, appended
SUMMARY_EVERY_S = 300.0       # the learner's LLM summary is refreshed at most this often
PAUSE_AFTER_FAILURES = 3      # failing ticks in a row after which automation pauses until an operator resumes it
AUDIT_PAUSE = "automation paused, the audit log is broken"
SCHEDULE_REPLAY_TICKS = 2_000_000   # a restart replays the random fault schedule exactly up to here (well under 1 s)

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


CHECKED = {"status.json": status_reason, "control_plane.json": control_doc_reason, "learning.json": learning_reason}


def load_checked(state_dir: Path, stamp: str) -> tuple[dict[str, dict | None], list[str]]:
    """The documents a restart resumes from, each through its schema and bounds; one that fails is moved aside
    (name.invalid-<stamp>) and reads as None, so that part starts fresh."""
    docs, notes = {}, []
    for name, reason in CHECKED.items():
        doc = read_json(state_dir / name)
        why = None if doc is None else reason(doc)
        if why is not None:
            aside = state_dir / f"{name}.invalid-{stamp}"
            (state_dir / name).rename(aside)
            notes.append(f"{name} failed its schema ({why}): moved to {aside.name}, starting that part fresh")
            doc = None
        docs[name] = doc
    return docs, notes


def resume_tick(status: dict | None, control: dict | None) -> int:
    """The tick after the last one written (status.json, else control_plane.json), else 0; bounded by MAX_TICK."""
    for doc in (status, control):
        if doc is not None and is_int(doc.get("tick")):
            return doc["tick"] + 1
    return 0


def replay_schedule(schedule, tick: int) -> bool:
    """Bring the fault schedule to `tick` as if it had run every tick before: it changes only where a fault
    starts or ends, so step from one such tick to the next (O(faults), not O(ticks): 10^6 ticks in ~0.2 s).
    Beyond SCHEDULE_REPLAY_TICKS it is not replayed (False): the random stream goes on from the restart.
    A schedule without next_fault_not_before (a scenario file's) holds no state between ticks."""
    if tick > SCHEDULE_REPLAY_TICKS:
        return False
    t = 0
    while t < tick:
        schedule.faults_at(t)
        d = schedule.describe()
        if "next_fault_not_before" not in d:
            return True
        active = d.get("active_fault")
        t = max(t + 1, min(tick, active["end_tick"] if active else d["next_fault_not_before"]))
    return True


def verify(state_dir: Path) -> int:
    trust = check(state_dir)
    print(f"audit log {'OK' if trust.ok else 'BROKEN'}: {trust.message}")
    return 0 if trust.ok else 1


def lock_or_say(state_dir: Path, who: str):
    """The state folder's lock, or None after saying in one line who holds it."""
    try:
        return acquire_lock(state_dir, who)
    except StateLocked as e:
        print(f"worker.py: {e}", file=sys.stderr)
        return None


def accept(state_dir: Path, reason: str) -> int:
    if (lock := lock_or_say(state_dir, "worker.py --accept-audit-break")) is None:
        return 2
    try:
        code, message = accept_break(state_dir, reason, utc_now().replace(":", "").replace("-", ""), utc_now)
    finally:
        lock.close()
    print(f"worker.py: {message}", file=sys.stderr if code else sys.stdout)
    return code


def stopper_sleep(stopper: "Stopper", seconds: float) -> None:
    """Sleep in short steps so a stop signal is honoured within a tenth of a second."""
    end = time.monotonic() + seconds
    while not stopper.stop and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))


@dataclass
class TickGuard:
    """The tick boundary: a tick that raises is logged with its traceback (state/errors.log), counted and
    skipped; after PAUSE_AFTER_FAILURES in a row automation pauses, and status.json says why."""
    log_path: Path
    total: int = 0
    consecutive: int = 0
    last: str | None = None

    def failed(self, tick: int, exc: BaseException) -> bool:
        """Record a failed tick; True when automation should pause now."""
        self.total += 1
        self.consecutive += 1
        self.last = f"tick {tick}: {type(exc).__name__}: {str(exc)[:200]}"
        try:                                       # never through a link, never blocking on a FIFO, never raising
            with open_audit(self.log_path, append=True) as f:
                f.write(f"{utc_now()} {self.last}\n{''.join(traceback.format_exception(exc))}\n".encode(errors="replace"))
        except OSError as e:
            print(f"worker: warning: cannot append to {self.log_path} ({e.strerror})", file=sys.stderr)
        print(f"worker: error: {self.last} (traceback in {self.log_path})", file=sys.stderr)
        return self.consecutive == PAUSE_AFTER_FAILURES

    def ok(self) -> None:
        self.consecutive = 0

    def to_dict(self) -> dict:
        return {"total": self.total, "consecutive": self.consecutive, "last": self.last, "log": self.log_path.name}


def live_args_problem(args) -> str | None:
    """One line naming what is wrong with the live loop's numbers, or None (the same bounds as a scenario file)."""
    if not (math.isfinite(args.tps) and math.isfinite(args.tick_seconds) and args.tps > 0 and args.tick_seconds > 0):
        return "--tps and --tick-seconds must be positive finite numbers"
    if not MIN_TICK_SECONDS <= args.tick_seconds <= MAX_TICK_SECONDS:
        return f"--tick-seconds must be between {MIN_TICK_SECONDS:g} and {MAX_TICK_SECONDS:,.0f}"
    if args.tps * args.tick_seconds > MAX_PAYMENTS_PER_TICK:
        return f"--tps x --tick-seconds is over {MAX_PAYMENTS_PER_TICK:,} payments per tick"
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        return f"--seed must be between 0 and {MAX_SEED:,}"
    return None


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
    ap.add_argument("--verify-audit", action="store_true",
                    help="check the audit log's hash chain and exit (1 while a break waits for an operator)")
    ap.add_argument("--accept-audit-break", metavar="REASON", default=None,
                    help="an operator accepts a broken audit log: the broken file stays aside, the new chain records "
                         "the acceptance, automation may be resumed (the worker must be stopped)")
    args = ap.parse_args(argv)
    state_dir = Path(args.state_dir)
    if args.verify_audit:
        return verify(state_dir)
    if args.accept_audit_break is not None:
        return accept(state_dir, args.accept_audit_break)
    problem = live_args_problem(args)
    if problem:
        print(f"worker.py: {problem}", file=sys.stderr)
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
    if (lock := lock_or_say(state_dir, "worker.py")) is None:
        return 2
    try:
        return LiveLoop(args, state_dir, schedule, start_hour).run()
    finally:
        lock.close()


class LiveLoop:
    """The worker's state for one process life: resume, tick, write, stop."""

    def __init__(self, args, state_dir: Path, schedule, start_hour: float):
        self.args, self.state_dir, self.schedule = args, state_dir, schedule
        self.started = utc_now()
        stamp = self.started.replace(":", "").replace("-", "")
        notes = quarantine_corrupt(state_dir, stamp)
        docs, more = load_checked(state_dir, stamp)
        notes += more
        self.audit, self.trust, replay = open_log(state_dir, stamp, utc_now, "worker.py", docs["control_plane.json"])
        self.kill_file = state_dir / KILL_FILE
        # Gemini in the background: a tick never waits for it; budgets and the breaker run in wall time
        self.llm = llm_reasoner.from_env(os.environ, disabled=args.no_llm, clock=lambda _tick: time.monotonic(),
                                         background=True)
        self.agent = Agent(DEFAULT_UNIVERSE, AgentSettings(), llm=self.llm, summarizer=self.llm, clock=time.time,
                           audit=self.audit.append, kill_switch=self.kill_file.exists, note_writer=self.llm,
                           stamp=utc_now)
        previous = docs["status.json"] or {}
        notes += self.agent.restore(docs["control_plane.json"], docs["learning.json"],
                                    read_audit(state_dir / AUDIT_FILE) if replay else None)
        if previous.get("paused") and not self.agent.paused:
            self.agent.executor.paused = True           # the operator's pause survives a restart
        self.tick = resume_tick(docs["status.json"], docs["control_plane.json"])
        self.paused_reason = previous.get("paused_reason") if self.agent.paused else None
        if self.trust.ok and str(self.paused_reason).startswith(AUDIT_PAUSE):
            self.paused_reason = "paused since the audit log broke; the break was accepted: resume when ready"
        if not self.trust.ok:
            notes.append(self.trust.message)
        for note in notes:
            print(f"worker: warning: {note}", file=sys.stderr)
            self.audit.append({"event": "state_repaired", "reason": note})
        self.hold_while_untrusted()
        self.audit.append({"event": "worker_start", "reason": f"starting at tick {self.tick}, seed {args.seed}"})
        self.sim = Simulator(DEFAULT_UNIVERSE, args.seed, args.tps * args.tick_seconds, args.tick_seconds, start_hour,
                             tick=self.tick)
        if not replay_schedule(schedule, self.tick):     # the same schedule as before the restart
            print(f"worker: warning: tick {self.tick} is past {SCHEDULE_REPLAY_TICKS:,}: the random fault schedule "
                  "starts afresh instead of being replayed", file=sys.stderr)
        self.writer = StateWriter(state_dir, utc_now)
        self.commands = CommandLog.open(state_dir, self.writer.read("commands.json"))   # the secret, seen ids
        self.guard = TickGuard(state_dir / ERROR_LOG)
        self.status = {"mode": "live", "started_at": self.started, "tick_seconds": args.tick_seconds, "tps": args.tps,
                       "seed": args.seed, "pid": os.getpid()}

    def hold_while_untrusted(self) -> None:
        """A broken audit log pauses automation until an operator accepts the break (a resume does not lift it)."""
        if not self.trust.ok:
            self.paused_reason = f"{AUDIT_PAUSE}: {self.trust.message}"
            if not self.agent.paused:
                self.agent.set_paused(True, "worker", self.paused_reason)

    def step(self, summarize: bool) -> None:
        """One tick: operator commands, traffic with the scheduled faults, the agent's step, bounded memory."""
        held = None if self.trust.ok else "the audit log is broken: automation stays paused until an operator runs " \
                                           "python worker.py --accept-audit-break"
        process_commands(self.state_dir, self.agent, self.tick, datetime.now(timezone.utc), self.commands, held)
        self.hold_while_untrusted()
        self.agent.step(self.sim.step(self.agent.control, self.schedule.faults_at(self.tick)))
        self.agent.prune()
        if summarize:
            self.agent.learner.summarize()

    def guarded_step(self, summarize: bool = False) -> None:
        try:
            self.step(summarize)
        except Exception as e:                       # the edge: one failing tick never ends the live loop
            if self.guard.failed(self.tick, e) and not self.agent.paused:
                self.paused_reason = (f"{PAUSE_AFTER_FAILURES} ticks in a row failed (last: {self.guard.last}); "
                                      f"see {self.guard.log_path.name}; resume once it is fixed")
                self.agent.set_paused(True, "worker", self.paused_reason)
            self.sim.tick = self.tick + 1             # the failed tick's traffic is skipped, not retried forever
        else:
            self.guard.ok()

    def write_state(self, state: str) -> None:
        if self.agent.last is None:
            return
        if not self.agent.paused:
            self.paused_reason = None
        status = {**self.status, "state": state, "paused": self.agent.paused, "paused_reason": self.paused_reason,
                  "kill_switch": self.kill_file.exists(), "tick_errors": self.guard.to_dict(),
                  "audit": self.trust.to_dict()}
        self.writer.write_all(self.agent.state_documents(status), self.audit.head)
        self.writer.write(HEAD_FILE, self.audit.head)
        self.writer.write("simulator.json", {"tick": self.agent.last.tick, **self.schedule.describe()})
        self.writer.write("commands.json", self.commands.to_dict(self.agent.last.tick))

    def run(self) -> int:
        args = self.args
        stopper = Stopper()
        summary_every = max(1, round(SUMMARY_EVERY_S / args.tick_seconds))
        llm_text = self.llm.settings.model if self.llm.enabled else f"off ({self.llm.off_reason.value})"
        print(f"worker: {args.tps:,.0f} payments/s, a tick every {args.tick_seconds:g} s, seed {args.seed}, "
              f"state in {self.state_dir}/, LLM {llm_text} (Ctrl-C to stop)", file=sys.stderr)
        next_at, ran = time.monotonic(), 0
        while not stopper.stop and (args.max_ticks is None or ran < args.max_ticks):
            self.guarded_step(summarize=ran % summary_every == summary_every - 1)
            try:
                self.write_state("paused" if self.agent.paused else "running")
            except OSError as e:                      # a full disk costs this tick's snapshot, not the loop
                self.guard.failed(self.tick, e)
            self.tick, ran = self.tick + 1, ran + 1
            next_at += args.tick_seconds
            delay = next_at - time.monotonic()
            if delay > 0 and not stopper.stop:
                stopper_sleep(stopper, delay)
            elif delay <= 0:
                next_at = time.monotonic()
        try:
            self.write_state("stopped")
            self.audit.append({"event": "worker_stop", "reason": f"stopped after {ran} ticks at tick {self.tick - 1}"})
        except OSError as e:                          # audit.jsonl swapped for a link or FIFO, a full disk: one line
            print(f"worker: stopped after {ran} ticks, but the stop could not be recorded: {e.strerror} "
                  f"({short(getattr(e, 'filename', None) or '')})", file=sys.stderr)
            return 1
        print(f"worker: stopped after {ran} ticks", file=sys.stderr)
        return 0


if __name__ == "__main__":
    sys.exit(main())
