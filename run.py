"""The one-shot demo: run a scenario phase by phase, then a post-run analysis.

run.py builds the simulator and the agent, injects the scenario's faults into the
simulator tick by tick, and reports (report.py). It never tells the agent what to do
or when: the agent learns of faults from the traffic alone. The same seed runs again
with the agent switched off (policy "none") for the counterfactual: same payments,
same luck per attempt (common random numbers).

    python run.py [--seed N] [--scenario FILE] [--report FILE] [--state-dir DIR]
                  [--policy none|static|sr_router|agent|oracle] [--quiet] [--no-llm]

The baselines (static, sr_router, oracle) come from bench/baselines.py; they observe like
policy "none" and change routing themselves, and their changes are listed under "Policy actions".
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import llm_reasoner
from actions import Outcome, Status
from agent import AgentSettings
from bench.baselines import POLICIES, make_policy
from clock import SimClock, iso
from data_universe import DataUniverse
from event_export import EventWriter
from incident_notes import NoteKeeper
from llm_bounds import LLMSettings
from log_formats import LogError, add_replay_arguments, spec_from_args
from log_reader import open_log
from merchant_profiles import DEFAULT_UNIVERSE, Universe
from observer import sum_stats
from report import RunResult, build_report, print_analysis
from scenario import MAX_SEED, Scenario, ScenarioError, load_scenario, make_simulator
from shadow import ShadowRun
from shadow_report import build_report as build_shadow_report
from shadow_report import print_report as print_shadow_report
from shadow_report import state_documents as shadow_documents
from state_writer import AUDIT_FILE, AuditLog, StateLocked, StateWriter, acquire_lock, dumps, write_text_atomic

DEFAULT_SCENARIO = Path(__file__).parent / "scenarios" / "demo.json"


def run_scenario(scenario: Scenario, seed: int, policy: str = "agent", universe: Universe = DEFAULT_UNIVERSE,
                 settings: AgentSettings = AgentSettings(), state_dir: str | Path | None = None,
                 write_every: int = 10, on_tick=None, llm=None, summarizer=None, on_batch=None) -> RunResult:
    sim = make_simulator(scenario, universe, seed)
    clock = SimClock(scenario.start_hour, scenario.tick_seconds)
    audit = None
    if state_dir:
        archive_audit(Path(state_dir), clock.iso().replace(":", "").replace("-", ""))
        audit = AuditLog(state_dir, clock.iso, "run.py")
    agent = make_policy(policy, universe, settings, scenario, llm=llm, summarizer=summarizer,
                        clock=clock.seconds, audit=audit.append if audit else None, note_writer=llm, stamp=clock.iso)
    writer = StateWriter(state_dir, clock.iso) if state_dir else None
    if audit:
        audit.append({"event": "run_start", "reason": f"scenario {scenario.name!r}, seed {seed}, policy {policy}"})
    result = RunResult(scenario, seed, policy, agent)
    run_status = {"mode": "run", "tick_seconds": scenario.tick_seconds}
    for phase in scenario.phases:
        total = None                  # the phase's sum so far: memory stays flat however long the phase
        for tick in range(phase.start_tick, phase.end_tick):
            clock.tick = tick
            batch = sim.step(agent.control, scenario.faults_at(tick))
            if on_batch:
                on_batch(batch)
            step = agent.step(batch)
            total = step.snapshot.last if total is None else sum_stats([total, step.snapshot.last])
            result.approved_amount += float(batch.amount[batch.approved].sum())
            if writer and (tick % write_every == 0 or tick == scenario.total_ticks - 1):
                writer.write_all(agent.state_documents({"state": "running", **run_status}), audit.head)
            if on_tick:
                on_tick(phase, tick, step)
        result.phase_stats.append(total)
    result.approved_payments = sum(int(s.total.approvals) for s in result.phase_stats)
    if writer:
        agent.learner.summarize()
        if llm is not None and llm.enabled:      # the summary's call belongs in the accounting too
            agent.llm_status = {**agent.llm_status, "accounting": llm.accounting()}
        writer.write_all(agent.state_documents({"state": "finished", **run_status}), audit.head)
        audit.append({"event": "run_end", "reason": f"{scenario.total_ticks} ticks"})
    return result


def archive_audit(state_dir: Path, stamp: str) -> None:
    """A one-shot run starts its own audit chain; an earlier log is kept beside it, never deleted."""
    old = state_dir / AUDIT_FILE
    if old.exists():
        old.rename(state_dir / f"{AUDIT_FILE}.{stamp}.{os.getpid()}")


def _gist(reason: str) -> str:
    """A NO_OP reason without its numbers, so that a changing figure does not repeat the line."""
    return "".join(ch for ch in reason if not (ch.isdigit() or ch == "."))


class PhasePrinter:
    """Prints, phase by phase, what the agent noticed and did, as it happens."""

    def __init__(self, out=None, progress=sys.stderr, total: int = 0):
        self.out, self.progress, self.total = out, progress, total
        self.phase = None
        self.seen: set = set()
        self.last_no_op = None
        self.said_bound = False

    def __call__(self, phase, tick, step) -> None:
        p = lambda s: print(s, file=self.out or sys.stdout)
        if phase is not self.phase:
            self.phase = phase
            p(f"\n--- phase '{phase.name}' (ticks {phase.start_tick}-{phase.end_tick - 1}) ---")
        for h in step.hypotheses:
            if (h.key, h.source) not in self.seen:
                self.seen.add((h.key, h.source))
                tag = h.source.value + ("" if h.supported_by_heuristic else ", LLM only: actions need a human")
                p(f"  t={tick:4d} hypothesis [{tag}] {h.cause.value} {dict(h.target)} conf {h.confidence:.2f}: {'; '.join(h.evidence)}")
        if step.llm_status.get("reason") == "time_bound" and not self.said_bound:    # said once
            self.said_bound = True
            p(f"  t={tick:4d} LLM: {step.llm_status.get('detail')}; heuristics only from here on")
        for rec in step.changed:
            if rec.status in (Status.ROLLED_BACK, Status.RESTORED):
                p(f"  t={tick:4d} {rec.status.value.upper()} {rec.id}: {rec.end_reason}")
            elif rec.outcome is Outcome.HELPED:
                p(f"  t={tick:4d} judged {rec.id} helped: {rec.verdicts[-1]['reason']}")
        d = step.decision
        if step.action is not None:
            a = step.action
            p(f"  t={tick:4d} {a.status.value.upper()} {a.id} {a.action} {a.target} {a.params} (risk {a.risk:.2f})")
            if a.requires_human_approval:
                p(f"         waiting for a human: {'; '.join(d.guardrails)}")
        elif d is not None and d.is_no_op and _gist(d.reason) != self.last_no_op and (step.hypotheses or tick == phase.start_tick):
            p(f"  t={tick:4d} NO_OP: {d.reason}")
        if d is not None and d.is_no_op:
            self.last_no_op = _gist(d.reason)
        if self.progress is not None and self.total and (tick % 20 == 0 or tick == self.total - 1):
            print(f"\r  progress {tick + 1}/{self.total} ticks", end="", file=self.progress, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run a scenario through the payment-ops agent and analyse it, or replay "
                                             "a payment log in shadow mode (--replay).")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's)")
    ap.add_argument("--scenario", default=str(DEFAULT_SCENARIO), help="scenario JSON file")
    ap.add_argument("--report", default=None, help="write the JSON report here")
    ap.add_argument("--state-dir", default="state", help="folder for the dashboard's state files")
    ap.add_argument("--policy", default=None, choices=POLICIES, help="default agent; not with --replay")
    ap.add_argument("--quiet", action="store_true", help="print only the post-run analysis")
    ap.add_argument("--no-llm", action="store_true", help="heuristics only, even with GEMINI_API_KEY set")
    ap.add_argument("--export-events", default=None, metavar="FILE",
                    help="write the run's simulated attempts in the events format (.parquet, .csv or .csv.gz)")
    ap.add_argument("--replay", default=None, metavar="FILE",
                    help="shadow mode: replay a payment log (.csv, .csv.gz, .parquet, .jsonl(.gz)); advises, never acts")
    add_replay_arguments(ap)
    args = ap.parse_args(argv)
    if args.replay is not None:
        if args.policy is not None:
            print("run.py: --policy does not apply to --replay: shadow mode only advises", file=sys.stderr)
            return 2
        return run_replay(args)
    args.policy = args.policy or "agent"
    universe = DEFAULT_UNIVERSE
    try:
        scenario = load_scenario(args.scenario, universe)
    except ScenarioError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    seed = scenario.seed if args.seed is None else args.seed
    if not 0 <= seed <= MAX_SEED:                 # a scenario's seed is checked when it is read; --seed here
        print(f"run.py: --seed must be at least 0 and at most {MAX_SEED:,}, got {seed}", file=sys.stderr)
        return 2
    try:
        lock = acquire_lock(args.state_dir, "run.py")
    except StateLocked as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    printer = None if args.quiet else PhasePrinter(total=scenario.total_ticks)
    if not args.quiet:
        print(f"Scenario '{scenario.name}': {scenario.total_ticks} ticks of {scenario.tick_seconds:g} s, "
              f"~{scenario.payments_per_tick:,.0f} payments per tick, seed {seed}, policy {args.policy}")
    # simulated time (tick x tick_seconds) for the call budget and circuit breaker, so a seed replays exactly
    llm = llm_reasoner.from_env(os.environ, disabled=args.no_llm, clock=lambda tick: tick * scenario.tick_seconds)
    if not args.quiet:
        print(f"LLM: {llm.settings.model}" if llm.enabled else f"LLM: off ({llm.off_reason.value}), heuristics only")
    try:
        export = open_export(args.export_events, universe, scenario)
    except ValueError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    res = run_scenario(scenario, seed, args.policy, universe, state_dir=args.state_dir, on_tick=printer,
                       llm=llm, summarizer=llm, on_batch=export.write if export else None)
    if export:
        export.close()
    base = None
    if args.policy != "none":
        if not args.quiet:
            print("\n\nCounterfactual: the same seed with the agent switched off ...", file=sys.stderr)
        base = run_scenario(scenario, seed, "none", universe)
    lock.close()
    report = build_report(res, base)
    print_analysis(report)
    write_report(args.report, report)
    if not args.quiet:
        print(f"\nFinished in {time.perf_counter() - started:.1f} s; state in {args.state_dir}/"
              + (f", report in {args.report}" if args.report else "")
              + (f", {export.rows:,} attempts in {args.export_events}" if export else ""), file=sys.stderr)
    return 0


def write_report(path: str | None, report: dict) -> None:
    """The report as one line of strict JSON, when --report names a file."""
    if path:
        write_text_atomic(path, dumps(report) + "\n")


def open_export(path: str | None, universe: Universe, scenario: Scenario):
    """The events file a run's attempts go to, stamped in simulated time from the scenario's start hour."""
    if not path:
        return None
    start = SimClock(scenario.start_hour, scenario.tick_seconds).start()
    try:
        return EventWriter(path, universe.describe(), start, scenario.tick_seconds)
    except OSError as e:
        raise ValueError(f"cannot write {path}: {e.strerror}") from None


def run_replay(args) -> int:
    """Shadow mode: read the log, replay it tick by tick, print and write what the agent would have done."""
    try:
        spec = spec_from_args(args.replay, args)
        source = open_log(spec)
    except LogError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    try:
        lock = acquire_lock(args.state_dir, "run.py --replay")
    except StateLocked as e:
        source.close()
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    # shadow mode asks Gemini for incident notes only, at the end, within the run's wait bound (wall time)
    llm = llm_reasoner.from_env(os.environ, disabled=args.no_llm, clock=lambda _tick: time.monotonic(),
                                settings=LLMSettings(model=os.environ.get("GEMINI_MODEL") or LLMSettings.model,
                                                     calls_per_minute=REPLAY_NOTES))
    with source:
        if not args.quiet:
            print(f"Replaying {args.replay}: {source.format_reason}; {source.rows.summary()}", file=sys.stderr)
        run = replay(source, args.state_dir, quiet=args.quiet, llm=llm)
    lock.close()
    report = build_shadow_report(run, source, replay_llm_status(llm))
    print_shadow_report(report)
    write_report(args.report, report)
    return 0


REPLAY_NOTES = 20     # Gemini writes the notes of the costliest incidents of a replay; the rest come from the template


def replay_llm_status(llm) -> dict:
    if llm is None or not llm.enabled:
        return llm.status("off", llm.off_reason) if llm is not None else {"enabled": False}
    return llm.status("notes")


def replay(source, state_dir: str | Path | None, quiet: bool = True, write_every_s: float = 1.0,
           llm=None) -> ShadowRun:
    """Every tick of the log through the shadow engine; state written at most once a second, and at the end,
    when each incident gets its note (Gemini's for the costliest when llm is on, else the template's)."""
    universe = DataUniverse.from_volumes(source.volumes())
    run = ShadowRun(universe, source.tick_seconds, source.n_ticks, has_latency=source.roles.get("latency_ms") is not None,
                    has_attempts=source.shape == "events" and ("attempt" in source.roles or "payment_id" in source.roles))
    time_of = lambda k: iso(source.tick_start(k))                                # noqa: E731
    writer = StateWriter(state_dir, lambda: time_of(len(run.trend))) if state_dir else None   # stamped in data time
    last_write = time.monotonic()
    for lt in source.ticks():
        run.step(lt, source.vocab, time_of)
        if writer and time.monotonic() - last_write >= write_every_s:
            writer.write_all(shadow_documents(run, source, "running"))
            last_write = time.monotonic()
        if not quiet and (lt.index % 500 == 0 or lt.index == source.n_ticks - 1):
            print(f"\r  replay {lt.index + 1:,}/{source.n_ticks:,} ticks, {len(run.tracker.incidents)} incidents",
                  end="", file=sys.stderr, flush=True)
    if not quiet:
        print(file=sys.stderr)
    NoteKeeper(llm).finish(run.tracker.incidents, run.trend[-1]["time"] if run.trend else "", REPLAY_NOTES)
    if writer:
        writer.write_all(shadow_documents(run, source, "finished", replay_llm_status(llm)))
    return run


if __name__ == "__main__":
    sys.exit(main())
