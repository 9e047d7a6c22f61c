"""Decide, part: reroute candidates. Move an issuer's path, or a slow processor's traffic, elsewhere.

Each candidate is scored in dollars per tick and gated: no fight with an active reroute, no issuer
left without a healthy route, no move of a path whose routing just changed, none too thin for its
holdout to be judged, none over the destination's capacity, none not worth it. Pure; never executes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from candidates import Candidate, fee_per_attempt, risk_of, sensitivity, value_per_approval
from control_plane import ActionType
from guardrails import ControlView, PolicyConfig, capacity_reason
from observer import Snapshot
from reasoner import Hypothesis
from slice_stats import SliceStats


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
        out.append(_Move(i, src, p, scope, now, value_per_approval(snap, scope),
                         now.approved_amount / now.approvals if now.approvals else 100.0, holdout,
                         now.attempts * per_tick * (1 - holdout), now.attempts / max(total.attempts, 1),
                         now.approved_amount / max(total.approved_amount, 1.0),
                         sensitivity(snap, scope, "latency_sensitivity"), snap.window.latency_quantiles(p)[1] or 0.0))
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


def reroute_candidates(h: Hypothesis, snap: Snapshot, config: PolicyConfig, min_payments: int,
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
            fee_delta = fee_per_attempt(snap, q, est, m.ticket) - fee_per_attempt(snap, m.p, cur, m.ticket)
            latency_gain = (m.p50_src - p95_dest) / 1000.0 * config.latency_cost_per_s * m.lat_sens
            utility = m.moved * (gain * m.value - fee_delta + latency_gain)
            risk = risk_of(config, ActionType.REROUTE, m.share, m.revenue_share, m.lat_sens)
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


def latency_candidates(h: Hypothesis, snap: Snapshot, config: PolicyConfig, min_payments: int,
                        view: ControlView, min_holdout: float) -> list[Candidate]:
    """Move a slow processor's traffic away whole, or, when that is more than an automatic action may
    move, issuer by issuer (each move within the cap, at most a few per rate-limit window)."""
    whole = reroute_candidates(h, snap, config, min_payments, view, min_holdout=min_holdout)
    src = h.target_dict["processor"]
    started = any(r_issuer is not None and r_from == src for r_issuer, r_from, _ in view.rerouted)
    if not started and not any(c.traffic_share > config.max_auto_traffic_share for c in whole):
        return whole
    u, p = snap.universe, snap.universe.index("processor", h.target_dict["processor"])
    split = []
    for i, iname in enumerate(u.issuer_names):
        if snap.window.slice({"issuer": i, "processor": p}).payments >= min_payments:
            split += reroute_candidates(replace(h, target=tuple(sorted({**h.target_dict, "issuer": iname}.items()))),
                                         snap, config, min_payments, view, min_holdout=min_holdout)
    note = (f"moves {100 * whole[0].traffic_share:.0f}% of traffic, over the automatic cap "
            f"{100 * config.max_auto_traffic_share:.0f}%: moving it issuer by issuer instead")
    return split + [c if c.reject_reason or not split else replace(c, reject_reason=note) for c in whole]
