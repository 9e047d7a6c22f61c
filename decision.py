"""Decide: turn hypotheses into one Decision (an action with its risk, or NO_OP with the reason).

decide() is a pure function of (hypotheses, snapshot, learning signal, control
view, policy config): no files, network, clock or randomness; same inputs, same
decision. Each candidate is scored in dollars per tick (approvals won times the
merchants' margin, minus fee and latency costs, plus attempts saved) and gated by
confidence, risk, blast radius and capacity. Learning may raise the confidence
needed; it never changes these rules. Never executes anything.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from control_plane import ActionType
from guardrails import ControlView, PolicyConfig, approval_reasons, automation_reasons, capacity_reason
from learning_policy import LearningSignal
from observer import Snapshot
from reasoner import Cause, Hypothesis
from slice_stats import SliceStats


@dataclass(frozen=True)
class Candidate:
    action: ActionType
    target: tuple[tuple[str, str], ...]
    params: tuple[tuple[str, object], ...]
    hypothesis: Hypothesis
    utility: float                       # $ per tick
    risk: float
    traffic_share: float
    expected: tuple[tuple[str, float], ...] = ()
    reject_reason: str | None = None

    def to_dict(self) -> dict:
        d = {"action": self.action.value, "target": dict(self.target), "params": dict(self.params),
             "cause": self.hypothesis.cause.value, "utility_per_tick": round(self.utility, 2),
             "risk": round(self.risk, 3), "traffic_share": round(self.traffic_share, 4),
             "expected": {k: round(v, 4) for k, v in self.expected}}
        if self.reject_reason:
            d["reason"] = self.reject_reason
        return d


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


def _value_per_approval(snap: Snapshot, target: dict[str, int]) -> float:
    """Average approved ticket times the blended margin of the merchants in the slice ($)."""
    u = snap.universe
    per_merchant = np.zeros(0)
    if snap.window.view_for(tuple(target) + ("merchant",)) is not None:      # a replay may not keep that view
        per_merchant = np.array([snap.window.slice({**target, "merchant": m}).payments
                                 for m in range(len(u.merchants))], dtype=float)
    share = per_merchant / per_merchant.sum() if per_merchant.sum() else u.merchant_share
    s = snap.window.slice(target)
    ticket = s.approved_amount / s.approvals if s.approvals else float(u.merchant_arrays["mean_ticket"] @ share)
    return ticket * float(u.merchant_arrays["margin"] @ share)


def _sensitivity(snap: Snapshot, target: dict[str, int], name: str) -> float:
    u = snap.universe
    if "merchant" in target:
        return float(u.merchant_arrays[name][target["merchant"]])
    return float(u.merchant_arrays[name] @ u.merchant_share)


def _fee_per_attempt(snap: Snapshot, p: int, approval_rate: float, ticket: float) -> float:
    pct, fixed, per_attempt = snap.universe.fees
    return float(per_attempt[p] + approval_rate * (pct[p] * ticket + fixed[p]))


def _rate(s: SliceStats, fallback: SliceStats, min_payments: int, baseline_ok: bool) -> tuple[float | None, str]:
    if s.payments >= min_payments:
        return s.first_attempt_rate, "measured now"
    if baseline_ok and fallback.payments >= min_payments:
        return fallback.first_attempt_rate, "baseline only (too thin now)"
    return None, "unmeasured"


def _inferred_rate(snap: Snapshot, i: int, p: int, q: int, min_payments: int) -> tuple[float | None, str]:
    """An issuer never seen on processor q: assume it would approve there as it did on p before the
    fault, scaled by how healthy q is now for everyone else. A guess; the guard window checks it."""
    own = snap.baseline.slice({"issuer": i, "processor": p})
    q_now, q_base = snap.window.slice({"processor": q}), snap.baseline.slice({"processor": q})
    if own.payments < min_payments or q_now.payments < min_payments or q_base.payments < min_payments:
        return None, "unmeasured"
    return own.first_attempt_rate * q_now.first_attempt_rate / q_base.first_attempt_rate, \
        "inferred: never measured for this issuer, processor healthy for others"


def _risk(config: PolicyConfig, action: ActionType | str, traffic_share: float, revenue_share: float,
          sensitivity: float) -> float:
    return min(1.0, dict(config.base_risk)[getattr(action, "value", action)] + max(traffic_share, revenue_share)
               + 0.1 * sensitivity)


def _route_conflict(view: ControlView, issuer: str | None, src: str, dst: str) -> str | None:
    """A new reroute must not fight an active one: no moving traffic back, no judging a path twice."""
    for r_issuer, r_from, r_to in view.rerouted:
        if issuer is None and r_issuer is not None and r_from == src:
            return f"issuers are being moved off {src} one by one; their guard windows decide"
        if r_issuer in (issuer, None) and r_from == src and (r_issuer, issuer) != (None, None):
            return f"an active reroute already moves this traffic off {src}; what is left there is its holdout"
        if r_issuer in (issuer, None) and r_from == dst:
            return f"traffic was moved off {dst} by an active reroute; its guard window decides"
        if r_issuer in (issuer, None) and r_to == src:
            return f"{src} carries traffic of an active reroute; its guard window decides"
    return None


def _unhealthy_for(snap: Snapshot, p: int, q: int, min_payments: int, tolerance: float = 0.05) -> str | None:
    """A reroute never leaves an issuer without a healthy route: no issuer it moves may be
    significantly (z > 3) more than 5 pp below its baseline on the destination now."""
    u = snap.universe
    for i in range(len(u.issuers)):
        if snap.window.slice({"issuer": i, "processor": p}).payments < min_payments // 4:
            continue                                             # this move carries little of issuer i
        now, base = snap.window.slice({"issuer": i, "processor": q}), snap.baseline.slice({"issuer": i, "processor": q})
        if now.payments < 30 or base.payments < min_payments:
            continue
        drop = base.first_attempt_rate - now.first_attempt_rate
        se = (max(base.first_attempt_rate * (1 - base.first_attempt_rate), 0.01) / now.payments) ** 0.5
        if drop > tolerance and drop / se > 3:   # a safety check: significant beats plentiful
            return (f"would leave {u.issuer_names[i]} without a healthy route: {u.processor_names[q]} approves "
                    f"{100 * now.first_attempt_rate:.1f}% vs {100 * base.first_attempt_rate:.1f}% baseline")
    return None


@dataclass(frozen=True)
class _Move:
    """One path (an issuer on a processor, or a whole processor) that a reroute would move, as the window sees it."""
    issuer: int | None
    src: str
    p: int
    scope: dict
    now: SliceStats
    value: float              # $ per approval won
    ticket: float
    holdout: float
    moved: float              # attempts per tick that leave the path
    share: float              # of all traffic
    revenue_share: float
    lat_sens: float
    p50_src: float


def _moves(h: Hypothesis, snap: Snapshot, config: PolicyConfig, min_payments: int) -> list[_Move]:
    """The paths a hypothesis asks to move: its issuer's path, each measured path of an issuer that is down
    everywhere, or a whole processor."""
    u, t = snap.universe, h.target_dict
    if "issuer" in t:
        i = u.index("issuer", t["issuer"])
        sources = [t["processor"]] if "processor" in t else [
            pn for p, pn in enumerate(u.processor_names)
            if snap.window.slice({"issuer": i, "processor": p}).payments >= min_payments]
    else:
        i, sources = None, [t["processor"]]
    total, per_tick = snap.window.total, 1.0 / max(snap.window.ticks, 1)
    out = []
    for src in sources:
        p = u.index("processor", src)
        scope = {"processor": p} if i is None else {"issuer": i, "processor": p}
        now = snap.window.slice(scope)
        holdout = round(min(config.max_holdout, max(config.holdout, config.holdout_payments / max(now.payments, 1))), 2)
        out.append(_Move(i, src, p, scope, now, _value_per_approval(snap, scope),
                         now.approved_amount / now.approvals if now.approvals else 100.0, holdout,
                         now.attempts * per_tick * (1 - holdout), now.attempts / max(total.attempts, 1),
                         now.approved_amount / max(total.approved_amount, 1.0),
                         _sensitivity(snap, scope, "latency_sensitivity"), snap.window.latency_quantiles(p)[1] or 0.0))
    return out


def _settling(view: ControlView, issuer: str | None, src: str, whole_processor: bool) -> str | None:
    if ((issuer, src) in view.settling or (None, src) in view.settling
            or (whole_processor and any(path[1] == src for path in view.settling))):
        return f"routing of {src} changed within the last window; its numbers do not show it yet"
    return None


def _too_thin(m: _Move, target: tuple, view: ControlView, min_holdout: float) -> str | None:
    if target not in view.busy_targets and m.now.payments * m.holdout < min_holdout:
        return (f"{m.src} too thin to judge: its holdout would see ~{m.now.payments * m.holdout:.0f} payments "
                f"per window, under the {min_holdout:.0f} a verdict needs")
    return None


def _not_worth_it(qn: str, how: str, est: float, cur: float, gain: float, utility: float) -> str | None:
    if utility > 0:
        return None
    return (f"{qn} is not measured healthier ({how}: {100 * est:.1f}% vs {100 * cur:.1f}% now)"
            if gain <= 0.005 else f"{qn} costs more than it wins (${utility:.2f}/tick)")


def _reroute_candidates(h: Hypothesis, snap: Snapshot, config: PolicyConfig, min_payments: int,
                        view: ControlView, baseline_ok: bool = True, min_holdout: float = 0.0) -> list[Candidate]:
    """Move an issuer's path (issuer_degradation/outage) or a whole processor (latency_spike) elsewhere.

    A destination too thin to measure now is estimated from its baseline, except when the issuer
    is believed down everywhere: then only a path measured healthy now counts. The first gate
    that fails names the reason a candidate is rejected.
    """
    u, t = snap.universe, h.target_dict
    out = []
    for m in _moves(h, snap, config, min_payments):
        target = h.target if m.issuer is None else tuple(sorted({"issuer": t["issuer"], "processor": m.src}.items()))
        params = (("from_processor", m.src), ("holdout", m.holdout),
                  ("holdout_first_only", config.holdout_first_attempts_only))
        for q, qn in enumerate(u.processor_names):
            if q == m.p:
                continue
            dest = {"processor": q} if m.issuer is None else {"issuer": m.issuer, "processor": q}
            est, how = _rate(snap.window.slice(dest), snap.baseline.slice(dest), min_payments, baseline_ok)
            if est is None and m.issuer is not None and baseline_ok:
                est, how = _inferred_rate(snap, m.issuer, m.p, q, min_payments)
            qparams = params + (("to_processor", qn),)
            if est is None:
                out.append(Candidate(ActionType.REROUTE, target, qparams, h, 0.0, 0.0, m.share,
                                     reject_reason=f"{qn}: not measured now for this issuer"))
                continue
            cur = m.now.first_attempt_rate or 0.0
            gain = est - cur
            p95_dest = snap.window.latency_quantiles(q)[1] or m.p50_src
            fee_delta = _fee_per_attempt(snap, q, est, m.ticket) - _fee_per_attempt(snap, m.p, cur, m.ticket)
            latency_gain = (m.p50_src - p95_dest) / 1000.0 * config.latency_cost_per_s * m.lat_sens
            utility = m.moved * (gain * m.value - fee_delta + latency_gain)
            risk = _risk(config, ActionType.REROUTE, m.share, m.revenue_share, m.lat_sens)
            expected = (("success_rate_gain", gain), ("fee_delta_per_attempt", fee_delta),
                        ("p95_delta_ms", p95_dest - m.p50_src), ("attempts_moved_per_tick", m.moved),
                        ("estimate_from_baseline", float(how.startswith("baseline"))))
            gates = (lambda: _route_conflict(view, t.get("issuer"), m.src, qn),
                     lambda: _unhealthy_for(snap, m.p, q, min_payments) if m.issuer is None else None,
                     lambda: _settling(view, t.get("issuer"), m.src, m.issuer is None),
                     lambda: _too_thin(m, target, view, min_holdout),
                     lambda: capacity_reason(snap, m.scope, q, m.holdout),
                     lambda: _not_worth_it(qn, how, est, cur, gain, utility))
            reason = next((r for r in (gate() for gate in gates) if r), None)
            out.append(Candidate(ActionType.REROUTE, target, qparams, h, utility, risk, m.share, expected, reason))
    return out


def _retry_candidates(h: Hypothesis, snap: Snapshot, config: PolicyConfig) -> list[Candidate]:
    u = snap.universe
    t = h.target_dict
    m = u.index("merchant", t["merchant"])
    now, base = snap.window.slice({"merchant": m}), snap.baseline.slice({"merchant": m})
    total = snap.window.total
    per_tick = 1.0 / max(snap.window.ticks, 1)
    excess = max(0.0, now.attempts - (base.attempts_per_payment or 1.0) * now.payments) * per_tick
    lost = now.late_retry_approvals * per_tick
    value = _value_per_approval(snap, {"merchant": m})
    fee = now.fees / max(now.attempts, 1)
    share = now.attempts / max(total.attempts, 1)
    revenue_share = now.approved_amount / max(total.approved_amount, 1.0)
    dec_sens = float(u.merchant_arrays["decline_sensitivity"][m])
    out = []
    retry = Candidate(ActionType.RETRY_POLICY, h.target,
                      (("max_attempts", min(config.retry_cap_attempts, config.max_auto_attempts)),
                       ("min_backoff_ticks", config.retry_min_backoff_ticks), ("retry_hard_declines", False)),
                      h, excess * (fee + config.excess_attempt_cost) - lost * value,
                      _risk(config, ActionType.RETRY_POLICY, share, revenue_share, dec_sens), share,
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
                             _risk(config, "retry_to_usual", share, revenue_share, dec_sens), share,
                             (("attempts_saved_per_tick", saved), ("approvals_lost_per_tick", 0.0))))
        if usual == dict(retry.params)["max_attempts"] and profile.backoff_ticks >= config.retry_min_backoff_ticks:
            retry = None                              # the cap is the merchant's own usual: one fix, the safer
    if retry is not None:
        out.append(retry)
    suppress = Candidate(ActionType.SUPPRESS, h.target, (("scope", "retries"),), h,
                         now.retries * per_tick * (fee + config.excess_attempt_cost) - now.retry_approvals * per_tick * value,
                         _risk(config, ActionType.SUPPRESS, share, revenue_share, dec_sens), share,
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
    value = _value_per_approval(snap, {"issuer": i})
    fee = now.fees / max(now.attempts, 1)
    share = now.attempts / max(total.attempts, 1)
    revenue_share = now.approved_amount / max(total.approved_amount, 1.0)
    suppress = Candidate(ActionType.SUPPRESS, h.target, (("scope", "retries"),), h,
                         now.retries * per_tick * fee - now.retry_approvals * per_tick * value,
                         _risk(config, ActionType.SUPPRESS, share, revenue_share, 0.5), share,
                         (("attempts_saved_per_tick", now.retries * per_tick),
                          ("approvals_lost_per_tick", now.retry_approvals * per_tick)))
    return _reroute_candidates(h, snap, config, min_payments, view, False, min_holdout) + [suppress]


def _needs_human(c: Candidate, config: PolicyConfig) -> list[str]:
    return approval_reasons(c.action.value, dict(c.params), c.risk, c.traffic_share, config,
                            llm_only=not c.hypothesis.supported_by_heuristic)


def _latency_candidates(h: Hypothesis, snap: Snapshot, config: PolicyConfig, min_payments: int,
                        view: ControlView, min_holdout: float) -> list[Candidate]:
    """Move a slow processor's traffic away whole, or, when that is more than an automatic action may
    move, issuer by issuer (each move within the cap, at most a few per rate-limit window)."""
    whole = _reroute_candidates(h, snap, config, min_payments, view, min_holdout=min_holdout)
    started = any(r_issuer is not None and r_from == h.target_dict["processor"] for r_issuer, r_from, _ in view.rerouted)
    if not started and not any(c.traffic_share > config.max_auto_traffic_share for c in whole):
        return whole
    u, p = snap.universe, snap.universe.index("processor", h.target_dict["processor"])
    split = []
    for i, iname in enumerate(u.issuer_names):
        if snap.window.slice({"issuer": i, "processor": p}).payments >= min_payments:
            split += _reroute_candidates(replace(h, target=tuple(sorted({**h.target_dict, "issuer": iname}.items()))),
                                         snap, config, min_payments, view, min_holdout=min_holdout)
    note = (f"moves {100 * whole[0].traffic_share:.0f}% of traffic, over the automatic cap "
            f"{100 * config.max_auto_traffic_share:.0f}%: moving it issuer by issuer instead")
    return split + [c if c.reject_reason or not split else replace(c, reject_reason=note) for c in whole]


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
            candidates += _latency_candidates(h, snap, config, min_payments, view, min_holdout)
        elif h.cause is Cause.ISSUER_DEGRADATION or h.cause is Cause.LATENCY_SPIKE:
            candidates += _reroute_candidates(h, snap, config, min_payments, view, min_holdout=min_holdout)
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
