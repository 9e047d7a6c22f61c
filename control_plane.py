"""The control plane: the routing and retry rules the simulator follows, and the one mapping from an action to them.

The executor owns a ControlPlane and changes it only through apply_action and
remove_action; a baseline policy (bench/) builds its own. The simulator reads it
each tick. Example: apply_action(ControlPlane(), ActionType.RETRY_POLICY,
{"merchant": "pixelforge"}, {"max_attempts": 2, "min_backoff_ticks": 3,
"retry_hard_declines": False}, "A0004") caps pixelforge at two attempts.

Pure values: no I/O, no clock; knows neither the agent nor the faults.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

import numpy as np


class ActionType(str, Enum):
    REROUTE = "reroute"
    RETRY_POLICY = "retry_policy"
    SUPPRESS = "suppress"
    NO_OP = "no_op"


@dataclass(frozen=True)
class RouteOverride:
    """Send matching attempts from one processor to another; a holdout share stays put.

    With holdout_first_only, only the holdout's first attempts stay: its retries move too, so a
    concurrent control measured on first attempts does not make a payment fail twice on a bad path.
    With retries_only, first attempts stay and only retries move (a payment that failed on a slow or
    failing processor gets its second chance elsewhere, as a router's fallback list does).
    """
    to_processor: str
    from_processor: str | None = None
    issuer: str | None = None
    merchant: str | None = None
    holdout: float = 0.0
    action_id: str = ""
    holdout_first_only: bool = False
    retries_only: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    min_backoff_ticks: int = 1
    retry_hard_declines: bool = False


@dataclass(frozen=True)
class Suppression:
    """Stop retries to a slice (issuer and method, or merchant); first attempts still go out."""
    issuer: str | None = None
    method: str | None = None
    merchant: str | None = None
    action_id: str = ""


@dataclass(frozen=True, eq=False)
class RouteSplit:
    """A per-payment router's choice: per-issuer processor probabilities replacing the default split.

    cdf[issuer, processor] is cumulative (rows end at 1): each payment's pre-drawn route_u picks
    its processor, so exploration is part of the split. retry_order[issuer, k], when given, lists
    processors best first: a retry goes to the best one other than the processor that just failed
    (Hyperswitch's connector fallback list). Route overrides still apply on top.
    """
    cdf: np.ndarray
    retry_order: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"cdf": np.round(self.cdf, 6).tolist(),
                "retry_order": None if self.retry_order is None else self.retry_order.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "RouteSplit":
        order = d.get("retry_order")
        return cls(np.array(d["cdf"], dtype=float), None if order is None else np.array(order, dtype=np.int16))


@dataclass(frozen=True)
class ControlPlane:
    route_overrides: tuple[RouteOverride, ...] = ()
    retry_policies: tuple[tuple[str, RetryPolicy], ...] = ()
    suppressions: tuple[Suppression, ...] = ()
    route_split: RouteSplit | None = None      # None: the universe's default split (BIN routing)

    def retry_policy(self, merchant: str) -> RetryPolicy | None:
        return dict(self.retry_policies).get(merchant)

    def to_dict(self) -> dict:
        d = {
            "route_overrides": [vars(o) | {} for o in self.route_overrides],
            "retry_policies": {m: vars(p) | {} for m, p in self.retry_policies},
            "suppressions": [vars(s) | {} for s in self.suppressions],
        }
        if self.route_split is not None:     # only per-payment routers set one; the agent's shape is unchanged
            d["route_split"] = self.route_split.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ControlPlane":
        return cls(tuple(RouteOverride(**o) for o in d.get("route_overrides", [])),
                   tuple(sorted((m, RetryPolicy(**p)) for m, p in d.get("retry_policies", {}).items())),
                   tuple(Suppression(**s) for s in d.get("suppressions", [])),
                   RouteSplit.from_dict(d["route_split"]) if d.get("route_split") else None)


def apply_action(c: ControlPlane, action: str, target: dict, params: dict, action_id: str) -> ControlPlane:
    """The control plane with one action's effect added; also used to replay the audit log and by the benchmark."""
    if action == ActionType.REROUTE:
        ov = RouteOverride(to_processor=params["to_processor"], from_processor=params.get("from_processor"),
                           issuer=target.get("issuer"), merchant=target.get("merchant"),
                           holdout=params.get("holdout", 0.0), action_id=action_id,
                           holdout_first_only=bool(params.get("holdout_first_only", False)),
                           retries_only=params.get("attempts") == "retries")
        return replace(c, route_overrides=c.route_overrides + (ov,))
    if action == ActionType.RETRY_POLICY:
        pol = RetryPolicy(params["max_attempts"], params.get("min_backoff_ticks", 1), params.get("retry_hard_declines", False))
        rest = tuple(x for x in c.retry_policies if x[0] != target["merchant"])
        return replace(c, retry_policies=tuple(sorted(rest + ((target["merchant"], pol),))))
    if action == ActionType.SUPPRESS:
        sup = Suppression(target.get("issuer"), target.get("method"), target.get("merchant"), action_id)
        return replace(c, suppressions=c.suppressions + (sup,))
    raise ValueError(f"unknown action type {action!r}")


def remove_action(c: ControlPlane, action: str, target: dict, action_id: str) -> ControlPlane:
    """The control plane without that action's effect (a retry policy is keyed by its merchant)."""
    if action == ActionType.RETRY_POLICY:
        return replace(c, retry_policies=tuple(x for x in c.retry_policies if x[0] != target["merchant"]))
    return replace(c, route_overrides=tuple(o for o in c.route_overrides if o.action_id != action_id),
                   suppressions=tuple(s for s in c.suppressions if s.action_id != action_id))
