"""The one-shot demo: run a scenario phase by phase, then a post-run analysis.

run.py builds the simulator and the agent, injects the scenario's faults into the
simulator tick by tick, and reports. It never tells the agent what to do or when:
the agent learns of faults from the traffic alone. The same seed runs again with
the agent switched off (policy "none") for the counterfactual: same payments,
same luck per attempt (common random numbers).

    python run.py [--seed N] [--scenario FILE] [--report FILE] [--state-dir DIR]
                  [--policy none|static|sr_router|agent|oracle] [--quiet] [--no-llm]

The baselines (static, sr_router, oracle) come from evaluate.py; they observe like policy
"none" and change routing themselves, and their changes are listed under "Policy actions".
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import llm_reasoner
from actions import Outcome
from agent import Agent, AgentSettings
from evaluate import POLICIES, make_policy
from merchant_profiles import DEFAULT_UNIVERSE, Universe
from observer import LAT_EDGES, SliceStats, Stats, sum_stats
from scenario import Scenario, ScenarioError, load_scenario
from simulator import Simulator
from state_writer import (
    AUDIT_FILE,
    AuditLog,
    StateLocked,
    StateWriter,
    acquire_lock,
    dumps,
)

DEFAULT_SCENARIO = Path(__file__).parent / "scenarios" / "demo.json"
REPORT_SCHEMA_VERSION = 1
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def sim_clock(scenario: Scenario, tick_ref: list[int]):
    """Simulated wall time, so that state files are reproducible to the byte for a seed."""
    def now() -> str:
        t = EPOCH + timedelta(hours=scenario.start_hour, seconds=tick_ref[0] * scenario.tick_seconds)
        return t.isoformat().replace("+00:00", "Z")
    return now


@dataclass
class RunResult:
    scenario: Scenario
    seed: int
    policy: str
    agent: Agent
    phase_stats: list[Stats] = field(default_factory=list)
    approved_payments: int = 0
    approved_amount: float = 0.0


def run_scenario(scenario: Scenario, seed: int, policy: str = "agent", universe: Universe = DEFAULT_UNIVERSE,
                 settings: AgentSettings = AgentSettings(), state_dir: str | Path | None = None,
                 write_every: int = 10, on_tick=None, llm=None, summarizer=None) -> RunResult:
    sim = Simulator(universe, seed, scenario.payments_per_tick, scenario.tick_seconds, scenario.start_hour)
    tick_ref = [0]
    clock = sim_clock(scenario, tick_ref)
    audit = None
    if state_dir:
        archive_audit(Path(state_dir), clock().replace(":", "").replace("-", ""))
        audit = AuditLog(state_dir, clock, "run.py")
    agent = make_policy(policy, universe, settings, scenario, llm=llm, summarizer=summarizer,
                        clock=lambda: tick_ref[0] * scenario.tick_seconds, audit=audit.append if audit else None)
    writer = StateWriter(state_dir, clock) if state_dir else None
    if audit:
        audit.append({"event": "run_start", "reason": f"scenario {scenario.name!r}, seed {seed}, policy {policy}"})
    result = RunResult(scenario, seed, policy, agent)
    shape = agent.observer.shape
    run_status = {"mode": "run", "tick_seconds": scenario.tick_seconds}
    for phase in scenario.phases:
        parts = []
        for tick in range(phase.start_tick, phase.end_tick):
            tick_ref[0] = tick
            batch = sim.step(agent.control, scenario.faults_at(tick))
            step = agent.step(batch)
            parts.append(step.snapshot.last)
            result.approved_amount += float(batch.amount[batch.approved].sum())
            if writer and (tick % write_every == 0 or tick == scenario.total_ticks - 1):
                for name, doc in agent.state_documents({"state": "running", **run_status}).items():
                    writer.write(name, doc)
            if on_tick:
                on_tick(phase, tick, step)
        result.phase_stats.append(sum_stats(parts, shape, len(LAT_EDGES) - 1))
    result.approved_payments = sum(int(s.total.approvals) for s in result.phase_stats)
    if writer:
        agent.learner.summarize()
        if llm is not None and llm.enabled:      # the summary's call belongs in the accounting too
            agent.llm_status = {**agent.llm_status, "accounting": llm.accounting()}
        docs = agent.state_documents({"state": "finished", **run_status})
        docs["control_plane.json"]["audit_head"] = audit.head
        for name, doc in docs.items():
            writer.write(name, doc)
        audit.append({"event": "run_end", "reason": f"{scenario.total_ticks} ticks"})
    return result


def archive_audit(state_dir: Path, stamp: str) -> None:
    """A one-shot run starts its own audit chain; an earlier log is kept beside it, never deleted."""
    old = state_dir / AUDIT_FILE
    if old.exists():
        old.rename(state_dir / f"{AUDIT_FILE}.{stamp}.{os.getpid()}")


# -- report ---------------------------------------------------------------------------

def phase_rows(res: RunResult) -> list[dict]:
    rows = []
    for phase, st in zip(res.scenario.phases, res.phase_stats):
        s: SliceStats = st.total
        rows.append({"name": phase.name, "start_tick": phase.start_tick, "end_tick": phase.end_tick,
                     "payments": s.payments, "attempts": s.attempts, "success_rate": s.success_rate,
                     "first_attempt_success_rate": s.first_attempt_rate, "attempts_per_payment": s.attempts_per_payment,
                     "p95_latency_ms": st.latency_quantiles()[1], "cost_per_approved": s.cost_per_approved,
                     "approved_amount": round(s.approved_amount, 2), "approvals": s.approvals})
    return rows


def build_report(res: RunResult, baseline: RunResult | None) -> dict:
    agent = res.agent
    report = {
        "schema_version": REPORT_SCHEMA_VERSION, "scenario": res.scenario.name, "seed": res.seed,
        "policy": res.policy,
        "universe": {k: v for k, v in agent.universe.describe().items() if k != "methods"},
        "phases": phase_rows(res),
        "faults": [{"kind": f.fault.kind.value, "target": f.fault.target, "severity": f.fault.severity,
                    "start_tick": f.start_tick, "end_tick": f.end_tick} for f in res.scenario.faults],
        "hypotheses": sorted(({"tick": h["tick"], "cause": h["cause"], "target": h["target"],
                               "confidence": h["confidence"], "source": h["source"]}
                              for h in agent.first_seen.values()), key=lambda h: (h["tick"], h["cause"])),
        "actions": [{"id": a.id, "tick": a.tick, "action": a.action, "target": a.target, "params": a.params,
                     "risk": round(a.risk, 3), "requires_human_approval": a.requires_human_approval,
                     "status": a.status.value, "ended_tick": a.ended_tick, "outcome": a.outcome.value,
                     "explanation": a.explanation, "end_reason": a.end_reason}
                    for a in agent.executor.actions.values()],
        "learning": agent.learner.get_action_effectiveness_stats(),
        "totals": {"approved_payments": res.approved_payments, "approved_amount": round(res.approved_amount, 2)},
        "llm": agent.llm_status,
    }
    if getattr(agent, "log", None) is not None:       # a baseline: what it changed, instead of agent actions
        report["policy_actions"] = {"count": len(agent.log), "first": agent.log[:20]}
    if agent.learner.summary:
        report["learning_summary"] = agent.learner.summary
    if baseline is not None:
        report["counterfactual"] = {
            "policy": baseline.policy, "approved_payments": baseline.approved_payments,
            "approved_amount": round(baseline.approved_amount, 2),
            "approvals_saved": res.approved_payments - baseline.approved_payments,
            "approved_amount_saved": round(res.approved_amount - baseline.approved_amount, 2),
            "phases": phase_rows(baseline)}
    return report


def _fmt(v, kind: str) -> str:
    if v is None:
        return "-"
    return {"pct": f"{100 * v:.1f}%", "x": f"{v:.2f}", "ms": f"{v:,.0f}", "$": f"${v:.3f}", "n": f"{v:,}"}[kind]


def table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    head = [c[1] for c in cols]
    body = [[_fmt(r.get(c[0]), c[2]) if c[2] != "s" else str(r.get(c[0])) for c in cols] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


PHASE_COLS = [("name", "phase", "s"), ("payments", "payments", "n"), ("attempts", "attempts", "n"),
              ("success_rate", "success", "pct"), ("first_attempt_success_rate", "1st-attempt", "pct"),
              ("attempts_per_payment", "att/pay", "x"), ("p95_latency_ms", "p95 ms", "ms"),
              ("cost_per_approved", "cost/approved", "$")]


def print_analysis(report: dict, out=None) -> None:
    p = lambda *a: print(*a, file=out or sys.stdout)   # sys.stdout at call time, so that a capture sees it
    p(f"\n=== Post-run analysis: {report['scenario']} (seed {report['seed']}, policy {report['policy']}) ===\n")
    p(f"Per phase, policy {report['policy']}:")
    p(table(report["phases"], PHASE_COLS))
    cf = report.get("counterfactual")
    if cf:
        p(f"\nSame traffic with the agent off (policy {cf['policy']}):")
        p(table(cf["phases"], PHASE_COLS))
    p("\nActions:")
    if report["actions"]:
        rows = [{"id": a["id"], "tick": a["tick"], "action": a["action"],
                 "target": ",".join(f"{v}" for v in a["target"].values()),
                 "params": ",".join(f"{k}={v}" for k, v in a["params"].items()),
                 "risk": f"{a['risk']:.2f}", "status": a["status"], "ended": a["ended_tick"], "outcome": a["outcome"]}
                for a in report["actions"]]
        p(table(rows, [(c, c, "s") for c in ("id", "tick", "action", "target", "params", "risk", "status", "ended", "outcome")]))
        for a in report["actions"]:
            if a["end_reason"]:
                p(f"  {a['id']} {a['status']}: {a['end_reason']}")
    else:
        p("  none")
    if "policy_actions" in report:
        pa = report["policy_actions"]
        p(f"\nPolicy actions ({report['policy']}): {pa['count']}" + (", first ones:" if pa["first"] else ""))
        for a in pa["first"]:
            p(f"  t={a['tick']} {a['action']} {a['target']} {a['params']}")
    p("\nLearner statistics:")
    if report["learning"]:
        rows = [{"action": k, **v} for k, v in report["learning"].items()]
        p(table(rows, [(c, c, "s") for c in ("action", "count", "helped", "hurt", "neutral", "inconclusive",
                                             "helped_rate", "rolled_back", "mean_success_gain")]))
    else:
        p("  no judged actions")
    p("\nLLM:")
    for line in llm_reasoner.describe(report.get("llm", {}), report.get("learning_summary")):
        p(line)
    if cf:
        p(f"\nAgainst the same traffic with the agent off: approvals saved {cf['approvals_saved']:+,}, "
          f"approved amount saved ${cf['approved_amount_saved']:+,.2f} "
          f"({report['totals']['approved_payments']:,} vs {cf['approved_payments']:,} approved payments)")


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
        for rec in step.changed:
            if rec.status.value in ("rolled_back", "restored"):
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
    ap = argparse.ArgumentParser(description="Run a scenario through the payment-ops agent and analyse it.")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's)")
    ap.add_argument("--scenario", default=str(DEFAULT_SCENARIO), help="scenario JSON file")
    ap.add_argument("--report", default=None, help="write the JSON report here")
    ap.add_argument("--state-dir", default="state", help="folder for the dashboard's state files")
    ap.add_argument("--policy", default="agent", choices=POLICIES)
    ap.add_argument("--quiet", action="store_true", help="print only the post-run analysis")
    ap.add_argument("--no-llm", action="store_true", help="heuristics only, even with GEMINI_API_KEY set")
    args = ap.parse_args(argv)
    universe = DEFAULT_UNIVERSE
    try:
        scenario = load_scenario(args.scenario, universe)
    except ScenarioError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    seed = scenario.seed if args.seed is None else args.seed
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
    res = run_scenario(scenario, seed, args.policy, universe, state_dir=args.state_dir, on_tick=printer,
                       llm=llm, summarizer=llm)
    base = None
    if args.policy != "none":
        if not args.quiet:
            print("\n\nCounterfactual: the same seed with the agent switched off ...", file=sys.stderr)
        base = run_scenario(scenario, seed, "none", universe)
    lock.close()
    report = build_report(res, base)
    print_analysis(report)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(dumps(report) + "\n")
    if not args.quiet:
        print(f"\nFinished in {time.perf_counter() - started:.1f} s; state in {args.state_dir}/"
              + (f", report in {args.report}" if args.report else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
