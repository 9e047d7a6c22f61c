"""Explain: plain-language text for what the agent saw, believed, chose, and undid.

Pure string building from values the loop already produced, for run.py and the state
files (the operator page's own texts are in dashboard_text.py). No execution, no I/O,
no clock. Example: explain_outcome({"id": "A0002", "status": "rolled_back", "action":
"reroute", "target": {"issuer": "barclays"}, "end_reason": "did not help"}) ->
"Rolled back A0002 (reroute issuer barclays): did not help."
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from formatting import pct, target_text

if TYPE_CHECKING:   # types only: the operator page imports this module and must not reach the agent
    from decision import Decision
    from reasoner import Hypothesis


def explain_observation(summary: dict) -> str:
    return (f"Success rate {pct(summary.get('success_rate'))} (baseline {pct(summary.get('baseline_success_rate'))}), "
            f"first attempt {pct(summary.get('first_attempt_success_rate'))}, "
            f"{summary.get('attempts_per_payment') or 0:.2f} attempts per payment, "
            f"p95 {summary.get('p95_latency_ms') or 0:.0f} ms.")


def explain_hypothesis(h: Hypothesis) -> str:
    return (f"{h.cause.value.replace('_', ' ')} at {target_text(h.target_dict)} "
            f"(confidence {h.confidence:.2f}, {h.source.value}): " + "; ".join(h.evidence))


def explain_decision(d: Decision) -> str:
    if d.is_no_op:
        return f"No action: {d.reason}."
    lines = [f"{d.action.value.replace('_', ' ').capitalize()} {target_text(dict(d.target))} "
             f"with {dict(d.params)} because of {d.cause} (confidence {d.confidence:.2f}, "
             f"needed {d.needed_confidence:.2f}, risk {d.risk:.2f})."]
    exp = dict(d.expected)
    if "success_rate_gain" in exp:
        lines.append(f"Expected success-rate gain {100 * exp['success_rate_gain']:+.1f} pp on "
                     f"{exp.get('attempts_moved_per_tick', 0):.0f} attempts/tick, fee change "
                     f"${exp.get('fee_delta_per_attempt', 0):+.3f} per attempt.")
    if "attempts_saved_per_tick" in exp:
        lines.append(f"Expected to save {exp['attempts_saved_per_tick']:.0f} attempts/tick for "
                     f"{exp.get('approvals_lost_per_tick', 0):.1f} approvals/tick.")
    if d.requires_human_approval:
        lines.append("Waiting for a human: " + "; ".join(d.guardrails) + ".")
    else:
        lines.append("Executed automatically: within risk, traffic and rate limits.")
    return " ".join(lines)


def explain_tradeoffs(d: Decision) -> list[str]:
    """One line per alternative weighed and why it lost."""
    return [f"{c.action.value} {target_text(dict(c.target))}"
            + (f" -> {dict(c.params).get('to_processor')}" if dict(c.params).get("to_processor") else "")
            + f": {c.reject_reason or f'lower value (${c.utility:.2f}/tick)'}" for c in d.alternatives]


def explain_outcome(action: dict) -> str:
    status = action["status"]
    if status == "rolled_back":
        return f"Rolled back {action['id']} ({action['action']} {target_text(action['target'])}): {action.get('end_reason')}."
    if status == "restored":
        return f"Restored the default route for {action['id']}: {action.get('end_reason')}."
    if status == "pending_approval":
        return f"{action['id']} ({action['action']} {target_text(action['target'])}) awaits approval."
    return f"{action['id']} {status}, outcome {action.get('outcome')}."
