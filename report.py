"""The demo's report: per-phase numbers, faults, hypotheses, incidents (with their notes), actions, learning and
the counterfactual, and the post-run analysis printed from it (run.py --report FILE writes the same document as JSON).

Pure: a finished run in, a JSON-ready dict and text out; never runs anything.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

from agent import Agent
from formatting import target_text, text_table
from llm_bounds import describe_llm
from observer import Stats
from scenario import Scenario, fault_dict
from slice_stats import SliceStats

REPORT_SCHEMA_VERSION = 1


@dataclass
class RunResult:
    scenario: Scenario
    seed: int
    policy: str
    agent: Agent
    phase_stats: list[Stats] = field(default_factory=list)
    approved_payments: int = 0
    approved_amount: float = 0.0


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
        "faults": [fault_dict(f) for f in res.scenario.faults],
        "hypotheses": sorted(({"tick": h["tick"], "cause": h["cause"], "target": h["target"],
                               "confidence": h["confidence"], "source": h["source"]}
                              for h in agent.first_seen.values()), key=lambda h: (h["tick"], h["cause"])),
        "incidents": agent.incident_docs(),
        "actions": [{"id": a.id, "tick": a.tick, "action": a.action, "target": a.target, "params": a.params,
                     "risk": round(a.risk, 3), "requires_human_approval": a.requires_human_approval,
                     "status": a.status.value, "ended_tick": a.ended_tick, "outcome": a.outcome.value,
                     "explanation": a.explanation, "end_reason": a.end_reason}
                    for a in agent.executor.actions.values()],
        "learning": agent.learner.get_action_effectiveness_stats(),
        "totals": {"approved_payments": res.approved_payments, "approved_amount": round(res.approved_amount, 2)},
        "llm": agent.llm_status,
    }
    if agent.controller is not None:       # a baseline: what it changed, instead of agent actions
        report["policy_actions"] = {"count": len(agent.controller.changes), "first": agent.controller.changes[:20]}
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


def print_incidents(incidents: list[dict], p) -> None:
    p("\nIncidents:")
    if not incidents:
        p("  none")
    for i in incidents:
        r = i.get("recommendation")
        rec = (f"{r.get('action_id')} {r['action']} ({r.get('status')})" if r else
               f"no action: {i.get('no_recommendation_reason') or 'none'}")
        p(f"  {i['id']} {i['cause'].replace('_', ' ')} at {target_text(i['target'])}, {i['start']} to {i['end'] or 'open'}: "
          f"{i['affected_attempts']:,} first attempts, ~{i['approvals_lost_est']:,.0f} approvals lost; {rec}")
        if i.get("note"):
            p(f"      note ({i['note'].get('source')}): {i['note'].get('text')}")


PHASE_COLS = [("name", "phase", "s"), ("payments", "payments", "n"), ("attempts", "attempts", "n"),
              ("success_rate", "success", "pct"), ("first_attempt_success_rate", "1st-attempt", "pct"),
              ("attempts_per_payment", "att/pay", "x"), ("p95_latency_ms", "p95 ms", "ms"),
              ("cost_per_approved", "cost/approved", "$")]


def print_analysis(report: dict, out=None) -> None:
    p = lambda *a: print(*a, file=out or sys.stdout)   # sys.stdout at call time, so that a capture sees it
    p(f"\n=== Post-run analysis: {report['scenario']} (seed {report['seed']}, policy {report['policy']}) ===\n")
    p(f"Per phase, policy {report['policy']}:")
    p(text_table(report["phases"], PHASE_COLS))
    cf = report.get("counterfactual")
    if cf:
        p(f"\nSame traffic with the agent off (policy {cf['policy']}):")
        p(text_table(cf["phases"], PHASE_COLS))
    p("\nActions:")
    if report["actions"]:
        rows = [{"id": a["id"], "tick": a["tick"], "action": a["action"],
                 "target": ",".join(f"{v}" for v in a["target"].values()),
                 "params": ",".join(f"{k}={v}" for k, v in a["params"].items()),
                 "risk": f"{a['risk']:.2f}", "status": a["status"], "ended": a["ended_tick"], "outcome": a["outcome"]}
                for a in report["actions"]]
        p(text_table(rows, [(c, c, "s") for c in ("id", "tick", "action", "target", "params", "risk", "status", "ended", "outcome")]))
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
    print_incidents(report.get("incidents") or [], p)
    p("\nLearner statistics:")
    if report["learning"]:
        rows = [{"action": k, **v} for k, v in report["learning"].items()]
        p(text_table(rows, [(c, c, "s") for c in ("action", "count", "helped", "hurt", "neutral", "inconclusive",
                                             "helped_rate", "rolled_back", "mean_success_gain")]))
    else:
        p("  no judged actions")
    p("\nLLM:")
    for line in describe_llm(report.get("llm", {}), report.get("learning_summary")):
        p(line)
    if cf:
        p(f"\nAgainst the same traffic with the agent off: approvals saved {cf['approvals_saved']:+,}, "
          f"approved amount saved ${cf['approved_amount_saved']:+,.2f} "
          f"({report['totals']['approved_payments']:,} vs {cf['approved_payments']:,} approved payments)")
