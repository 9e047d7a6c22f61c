"""Decide: turn hypotheses into one Decision (an action with its risk, or NO_OP with the reason).

decide() is a pure function of (hypotheses, snapshot, learning signal, control
view, policy config): no files, network, clock or randomness; same inputs, same
decision. Each candidate is scored in dollars per tick (approvals won times the
merchants' margin, minus fee and latency costs, plus attempts saved) and gated by
confidence, risk, blast radius and capacity. Learning may raise the confidence
needed; it never changes these rules. Never executes anything.
"""
from __future__ import annotations

from dataclasses import dataclass

from candidates import Candidate, risk_of, value_per_approval
from control_plane import ActionType
from guardrails import ControlView, PolicyConfig, approval_reasons, automation_reasons
from learning_policy import LearningSignal
from observer import Snapshot
from reasoner import Cause, Hypothesis
from reroute_candidates import latency_candidates, reroute_candidates


@dataclass(frozen=True)
class Decision:
    action: ActionType
    reason: str
    target: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, object], ...] = ()
    cause: str | None = None
    confidence: float = 0.0
    risk: float = 0.0
    requires_human_approval: bool = False
    expected: tuple[tuple[str, float], ...] = ()
    guardrails: tuple[str, ...] = ()
    alternatives: tuple[Candidate, ...] = ()
    needed_confidence: float = 0.0
    escalation: "Decision | None" = None      # a stronger fix for the same hypothesis, queued for a human

    @property
    def is_no_op(self) -> bool:
        return self.action is ActionType.NO_OP

    def to_dict(self) -> dict:
        return {"action": self.action.value, "reason": self.reason, "target": dict(self.target),
                "params": dict(self.params), "cause": self.cause, "confidence": round(self.confidence, 3),
                "needed_confidence": round(self.needed_confidence, 3), "risk": round(self.risk, 3),
                "requires_human_approval": self.requires_human_approval,
                "expected": {k: round(v, 4) for k, v in self.expected}, "guardrails": list(self.guardrails),
                "alternatives": [c.to_dict() for c in self.alternatives],
                **({"escalation": self.escalation.to_dict()} if self.escalation else {})}


def _retry_candidates(h: Hypothesis, snap: Snapshot, config: PolicyConfig) -> list[Candidate]:
    u = snap.universe
    t = h.target_dict
    m = u.index("merchant", t["merchant"])
    now, base = snap.window.slice({"merchant": m}), snap.baseline.slice({"merchant": m})
    total = snap.window.total
    per_tick = 1.0 / max(snap.window.ticks, 1)
    excess = max(0.0, now.attempts - (base.attempts_per_payment or 1.0) * now.payments) * per_tick
    lost = now.late_retry_approvals * per_tick
    value = value_per_approval(snap, {"merchant": m})
    fee = now.fees / max(now.attempts, 1)
    share = now.attempts / max(total.attempts, 1)
    revenue_share = now.approved_amount / max(total.approved_amount, 1.0)
    dec_sens = float(u.merchant_arrays["decline_sensitivity"][m])
    out = []
    retry = Candidate(ActionType.RETRY_POLICY, h.target,
                      (("max_attempts", min(config.retry_cap_attempts, config.max_auto_attempts)),
                       ("min_backoff_ticks", config.retry_min_backoff_ticks), ("retry_hard_declines", False)),
                      h, excess * (fee + config.excess_attempt_cost) - lost * value,
                      risk_of(config, ActionType.RETRY_POLICY, share, revenue_share, dec_sens), share,
                      (("attempts_saved_per_tick", excess), ("approvals_lost_per_tick", lost)))
    profile = u.merchants[m]
    if hasattr(profile, "max_attempts"):          # a merchant whose own retry behaviour is known (not in a replay)
        # back to its own usual attempts, and no hard-decline retries, which network rules forbid anyway; the
        # backoff is left alone (a longer one only moves retries later). It saves the hard declines a storm
        # retries and, for a merchant that usually stops at two, the attempts past two; not every extra attempt.
        usual = min(profile.max_attempts, config.max_auto_attempts)
        expect = now.payments / max(base.payments, 1)
        hard = max(0.0, int(snap.window.hard_retries[m]) - int(snap.baseline.hard_retries[m]) * expect)
        late = max(0.0, now.late_retries - base.late_retries * expect) if usual <= 2 else 0.0
        saved = (hard + late) * per_tick
        out.append(Candidate(ActionType.RETRY_POLICY, h.target,
                             (("max_attempts", usual), ("min_backoff_ticks", 1), ("retry_hard_declines", False)), h,
                             saved * (fee + config.excess_attempt_cost),
                             risk_of(config, "retry_to_usual", share, revenue_share, dec_sens), share,
                             (("attempts_saved_per_tick", saved), ("approvals_lost_per_tick", 0.0))))
        if usual == dict(retry.params)["max_attempts"] and profile.backoff_ticks >= config.retry_min_backoff_ticks:
            retry = None                              # the cap is the merchant's own usual: one fix, the safer
    if retry is not None:
        out.append(retry)
    saved, lost = now.retries * per_tick * (fee + config.excess_attempt_cost), now.retry_approvals * per_tick * value
    suppress = Candidate(ActionType.SUPPRESS, h.target, (("scope", "retries"),), h, saved - lost,
                         risk_of(config, ActionType.SUPPRESS, share, revenue_share, dec_sens), share,
                         (("attempts_saved_per_tick", now.retries * per_tick),
                          ("approvals_lost_per_tick", now.retry_approvals * per_tick)))
    out.append(suppress)
    return out


def _outage_candidates(h: Hypothesis, snap: Snapshot, config: PolicyConfig, min_payments: int,
                       view: ControlView, min_holdout: float = 0.0) -> list[Candidate]:
    """During an issuer outage rerouting rarely helps; stopping retries to the issuer saves fees."""
    u = snap.universe
    i = u.index("issuer", h.target_dict["issuer"])
    now = snap.window.slice({"issuer": i})
    total = snap.window.total
    per_tick = 1.0 / max(snap.window.ticks, 1)
    value = value_per_approval(snap, {"issuer": i})
    fee = now.fees / max(now.attempts, 1)
    share = now.attempts / max(total.attempts, 1)
    revenue_share = now.approved_amount / max(total.approved_amount, 1.0)
    suppress = Candidate(ActionType.SUPPRESS, h.target, (("scope", "retries"),), h,
                         now.retries * per_tick * fee - now.retry_approvals * per_tick * value,
                         risk_of(config, ActionType.SUPPRESS, share, revenue_share, 0.5), share,
                         (("attempts_saved_per_tick", now.retries * per_tick),
                          ("approvals_lost_per_tick", now.retry_approvals * per_tick)))
    return reroute_candidates(h, snap, config, min_payments, view, False, min_holdout) + [suppress]


def _needs_human(c: Candidate, config: PolicyConfig) -> list[str]:
    return approval_reasons(c.action.value, dict(c.params), c.risk, c.traffic_share, config,
                            llm_only=not c.hypothesis.supported_by_heuristic)


def decide(hypotheses: tuple[Hypothesis, ...], snap: Snapshot, signal: LearningSignal, view: ControlView,
           config: PolicyConfig = PolicyConfig(), min_payments: int = 200, min_holdout: float = 0.0) -> Decision:
    """Pick the best candidate that clears every gate, or NO_OP with the reason. Pure.

    min_holdout: holdout payments per guard window below which the executor could never judge a reroute
    (its minimum spread over its windows); such a path is too thin to act on.
    """
    if not hypotheses:
        return Decision(ActionType.NO_OP, "no anomaly: every measured slice is within its baseline")
    candidates: list[Candidate] = []
    for h in hypotheses:
        if h.cause is Cause.LATENCY_SPIKE and "issuer" not in h.target_dict:
            candidates += latency_candidates(h, snap, config, min_payments, view, min_holdout)
        elif h.cause is Cause.ISSUER_DEGRADATION or h.cause is Cause.LATENCY_SPIKE:
            candidates += reroute_candidates(h, snap, config, min_payments, view, min_holdout=min_holdout)
        elif h.cause is Cause.ISSUER_OUTAGE:
            candidates += _outage_candidates(h, snap, config, min_payments, view, min_holdout)
        elif h.cause is Cause.RETRY_STORM:
            candidates += _retry_candidates(h, snap, config)

    viable, rejected, guardrails = [], [], []
    for c in candidates:
        needed = signal.needed(config.min_confidence, c.action.value, c.target)
        reason = c.reject_reason
        if reason is None and not c.target:
            reason = "empty target: an action must name the slice it touches"
        if reason is None and c.hypothesis.confidence < needed:
            reason = f"confidence {c.hypothesis.confidence:.3f} below the {needed:.3f} needed for {c.action.value}"
        if reason is None and c.target in view.busy_targets:
            reason = "an action on this target is already active or awaiting approval"
        if reason is None and c.utility <= 0:
            reason = f"expected value ${c.utility:.2f}/tick is not positive"
        if reason is None:
            viable.append(c)
        else:
            rejected.append(Candidate(**{**c.__dict__, "reject_reason": reason}))

    if not viable:
        best_h = max(hypotheses, key=lambda h: h.confidence)
        why = next((c.reject_reason for c in rejected if c.hypothesis == best_h), None) or "no action addresses it"
        return Decision(ActionType.NO_OP, f"{best_h.cause.value} on {dict(best_h.target)}: {why}",
                        cause=best_h.cause.value, confidence=best_h.confidence,
                        alternatives=tuple(sorted(rejected, key=lambda c: -c.utility)[:8]))

    # risk-adjusted value: of two fixes for the same problem, the less invasive one wins unless it is worth much less
    viable.sort(key=lambda c: (-c.utility * (1 - c.risk), c.action.value, c.target, c.params))
    best = viable[0]
    # mitigate now, escalate the rest: when the best fix needs a human and one within the agent's own authority
    # addresses the same hypothesis, the safe one runs now and the stronger one waits for approval to replace it
    automation = automation_reasons(view.recent_auto_actions, view.paused, config)
    own = next((c for c in viable if not _needs_human(c, config) and c.hypothesis == best.hypothesis), None)
    escalation = None
    if _needs_human(best, config) and own is not None and not automation:
        best, escalation = own, best
    elif not _needs_human(best, config) and not automation:      # a stronger fix worth more, which needs a human
        escalation = max((c for c in viable if c.hypothesis == best.hypothesis and c.utility > best.utility
                          and _needs_human(c, config)), key=lambda c: c.utility, default=None)
    if escalation is not None:
        guardrails.append(f"mitigating now with {best.action.value} {dict(best.params)} within the agent's authority; "
                          f"{escalation.action.value} {dict(escalation.params)} (${escalation.utility:.2f}/tick) "
                          "waits for a human and replaces it on approval")
    needs_human = _needs_human(best, config) or automation
    guardrails += needs_human
    alternatives = [c for c in viable if c is not best and c is not escalation] + rejected
    reason = (f"{best.hypothesis.cause.value}: {best.action.value} expected to win ${best.utility:.2f}/tick")
    return Decision(best.action, reason, best.target, best.params, best.hypothesis.cause.value,
                    best.hypothesis.confidence, best.risk, bool(needs_human), best.expected, tuple(guardrails),
                    tuple(sorted(alternatives, key=lambda c: -c.utility)[:8]),
                    signal.needed(config.min_confidence, best.action.value, best.target),
                    None if escalation is None else _escalate(escalation, config, signal))


def _escalate(c: Candidate, config: PolicyConfig, signal: LearningSignal) -> "Decision":
    """The stronger fix, queued for a human, to replace the safe one when approved."""
    why = _needs_human(c, config)
    return Decision(c.action, f"{c.hypothesis.cause.value}: {c.action.value} expected to win ${c.utility:.2f}/tick; "
                    "queued for approval while a safer fix runs", c.target, c.params, c.hypothesis.cause.value,
                    c.hypothesis.confidence, c.risk, True, c.expected, tuple(why), (),
                    signal.needed(config.min_confidence, c.action.value, c.target))
