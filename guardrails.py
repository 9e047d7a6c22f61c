"""Guardrails: the one gate that says whether an action may run on its own, and the limits it checks.

decision.py asks it while choosing, and executor.py asks it again, with its own
measurements, before anything runs: an action waits for a human when its risk is
over the threshold, its type always needs one, it moves more traffic than an
automatic action may, a retry policy allows too many attempts, or only the LLM
believes in its hypothesis; automation also stops when the operator paused it or
the automatic-action budget is spent. A reroute never pushes its destination past
capacity.

Pure: numbers in, reasons out (an empty list means "may run on its own"); no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass

from control_plane import ActionType
from observer import Snapshot


@dataclass(frozen=True)
class PolicyConfig:
    min_confidence: float = 0.6          # below this a hypothesis is too weak to act on
    risk_threshold: float = 0.5          # above this an action waits for a human
    max_auto_traffic_share: float = 0.35  # an automatic action may move at most this share of traffic
    holdout: float = 0.1                 # share left on the old path as a concurrent control (canary analysis)
    max_holdout: float = 0.3             # a thin slice keeps a larger holdout so that its guard window can judge
    holdout_payments: int = 150          # first attempts the holdout should see per window (the judge needs 100)
    holdout_first_attempts_only: bool = True  # the control is judged on first attempts, so its retries may leave the old path
    retry_cap_attempts: int = 2          # automatic retry policy: first attempt + one retry
    retry_min_backoff_ticks: int = 3
    max_auto_attempts: int = 3           # no automatic retry policy may allow more attempts than this
    max_auto_actions: int = 3            # automatic actions per auto_action_window_ticks
    auto_action_window_ticks: int = 60   # 10 minutes at 10 s ticks
    approval_ttl_seconds: float = 900.0   # a pending approval expires after 15 minutes
    excess_attempt_cost: float = 0.25    # $ per avoidable retry: Visa/MC excessive-reattempt fines $0.10–0.25 and issuer trust
    latency_cost_per_s: float = 0.02     # $ per attempt per second of extra latency at full merchant sensitivity
    base_risk: tuple[tuple[str, float], ...] = (("reroute", 0.15), ("retry_policy", 0.25), ("suppress", 0.6),
                                                # back to the merchant's own retry habits, minus the hard-decline
                                                # retries network rules forbid anyway: the least a fix can change
                                                ("retry_to_usual", 0.05))
    always_approve: tuple[str, ...] = ("suppress",)


@dataclass(frozen=True)
class ControlView:
    """What the decision needs to know of the executor's state, as plain values."""
    busy_targets: frozenset = frozenset()      # targets with an active or pending action
    rerouted: frozenset = frozenset()          # (issuer or None, from_processor, to_processor) of active reroutes
    recent_auto_actions: int = 0               # automatic executions inside the rate-limit window
    paused: bool = False
    settling: frozenset = frozenset()          # (issuer or None, processor) paths whose routing changed within a window


def approval_reasons(action: str, params: dict, risk: float, traffic_share: float, config: PolicyConfig,
                     llm_only: bool = False) -> list[str]:
    """Why this action needs a human, whoever proposes it; empty when it may run on its own."""
    why = []
    if risk > config.risk_threshold:
        why.append(f"risk {risk:.3f} above {config.risk_threshold:.2f}")
    if action in config.always_approve:
        why.append(f"{action} always needs a human")
    if traffic_share > config.max_auto_traffic_share:
        why.append(f"moves {100 * traffic_share:.0f}% of traffic, over the automatic cap "
                   f"{100 * config.max_auto_traffic_share:.0f}%")
    if action == ActionType.RETRY_POLICY and params.get("max_attempts", 99) > config.max_auto_attempts:
        why.append(f"retry policy allows more than {config.max_auto_attempts} attempts")
    if llm_only:
        why.append("only the LLM supports this hypothesis")
    return why


def automation_reasons(recent_auto_actions: int, paused: bool, config: PolicyConfig) -> list[str]:
    """Why no action may run on its own right now, whatever it is."""
    if recent_auto_actions >= config.max_auto_actions:
        return [f"automatic action budget spent ({recent_auto_actions} in the last "
                f"{config.auto_action_window_ticks} ticks)"]
    if paused:
        return ["agent paused by the operator"]
    return []


def traffic_share(snap: Snapshot, scope: dict[str, int]) -> float:
    """Share of the window's attempts that a slice carries (the traffic an action on it touches)."""
    return snap.window.slice(scope).attempts / max(snap.window.total.attempts, 1)


def capacity_reason(snap: Snapshot, source: dict[str, int], destination: int, holdout: float,
                    retries_only: bool = False) -> str | None:
    """A reroute must not push its destination processor past capacity (measured load plus what it moves)."""
    w = snap.window
    per_tick = 1.0 / max(w.ticks, 1)
    moving = w.slice(source)
    moved = (moving.retries if retries_only else moving.attempts) * per_tick * (1 - holdout)
    load = w.slice({"processor": destination}).attempts * per_tick
    capacity = snap.universe.processors[destination].capacity_share * w.total.attempts * per_tick
    if load + moved > capacity:
        return (f"{snap.universe.processor_names[destination]} would run at {load + moved:.0f} attempts/tick, "
                f"over its capacity {capacity:.0f}")
    return None
