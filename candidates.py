"""Decide, part: a candidate action and what it is worth, in dollars per tick, and how risky it is.

Pure arithmetic on a snapshot: value of an approval (ticket times the merchants' margin), fees, the
latency or decline sensitivity of the merchants in a slice, and the risk score the guardrails read.
Never decides or executes anything.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from control_plane import ActionType
from guardrails import PolicyConfig
from observer import Snapshot
from reasoner import Hypothesis


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


def value_per_approval(snap: Snapshot, target: dict[str, int]) -> float:
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


def sensitivity(snap: Snapshot, target: dict[str, int], name: str) -> float:
    u = snap.universe
    if "merchant" in target:
        return float(u.merchant_arrays[name][target["merchant"]])
    return float(u.merchant_arrays[name] @ u.merchant_share)


def fee_per_attempt(snap: Snapshot, p: int, approval_rate: float, ticket: float) -> float:
    pct, fixed, per_attempt = snap.universe.fees
    return float(per_attempt[p] + approval_rate * (pct[p] * ticket + fixed[p]))


def risk_of(config: PolicyConfig, action: ActionType | str, traffic_share: float, revenue_share: float,
          merchant_sensitivity: float) -> float:
    return min(1.0, dict(config.base_risk)[getattr(action, "value", action)] + max(traffic_share, revenue_share)
               + 0.1 * merchant_sensitivity)
