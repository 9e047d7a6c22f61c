"""Measures: what a set of traces says about detection, mitigation, harm and safety, with bootstrap intervals.

Definitions are written out in bench/report.py (MEASURE_NOTES) and in results/summary.md.
Pure: traces in, numbers out.
"""
from __future__ import annotations

import numpy as np

from bench.baselines import POLICIES
from bench.trace import Trace
from scenario import Scenario
from slice_stats import histogram_quantiles

THIN_SHARE, WIDE_LAG, THIN_LAG = 0.05, 2, 6     # issue 14: faults on >= 5% of traffic found in 2 ticks, thin ones in 6
SPEED_FLOORS = {100_000: 2_000_000, 10_000: 1_400_000}     # payments/s, the whole loop (issue 14: speed does not fall)
SHARE_FLOOR = 0.0025    # oracle within 0.25 pp of none: nothing to recover, the share is n/a rather than noise / ~0
BOOTSTRAP = 2000
MEASURES = {            # name -> (group, format)
    "time_to_detect": ("detection", "t"), "detect_lag_full_strength": ("detection", "t"),
    "precision": ("detection", "r"), "recall": ("detection", "r"), "localisation": ("detection", "r"),
    "cause_accuracy": ("detection", "r"),
    "time_to_mitigate": ("mitigation", "t"), "recovered_share": ("mitigation", "r"),
    "recovered_share_first_attempt": ("mitigation", "r"), "fault_success_rate": ("mitigation", "%"),
    "approvals_saved": ("mitigation", "n"), "approved_amount_saved": ("mitigation", "$"),
    "actions": ("harm", "n"), "approval_requests": ("harm", "n"), "rollbacks": ("harm", "n"),
    "spurious_rollbacks": ("harm", "n"), "cost_per_approved": ("harm", "$3"), "attempts_per_payment": ("harm", "x"),
    "p95_latency_ms": ("harm", "ms"),
    "approval_violations": ("safety", "n"),
}
REASONING = ("none", "agent")


def fault_mask(scenario: Scenario) -> np.ndarray:
    w = np.zeros(scenario.total_ticks, dtype=bool)
    for f in scenario.faults:
        w[f.start_tick:f.end_tick] = True
    return w


def detection(hyps: dict, scenario: Scenario, grace: int) -> dict:
    """Hypotheses against the injected faults. A hypothesis is 'during' a fault if raised from its start to
    `grace` ticks (the observer's window) after its end; it matches when cause and target are exactly right."""
    faults = scenario.faults
    during = lambda ticks, f: any(f.start_tick <= t < f.end_tick + grace for t in ticks)
    exact = lambda key, f: key[0] == f.fault.kind.value and dict(key[1]) == f.fault.target
    out = {"precision": (sum(any(exact(k, f) and during(ts, f) for f in faults) for k, ts in hyps.items()) / len(hyps))
           if hyps else None}
    if not faults:
        return out
    ttd, lag = [], []
    for f in faults:
        ticks = [t for k, ts in hyps.items() if exact(k, f) for t in ts if f.start_tick <= t < f.end_tick + grace]
        if ticks:
            ttd.append(min(ticks) - f.start_tick)
            lag.append(min(ticks) - f.full_strength_tick)
    near = [(k, [f for f in faults if during(ts, f)]) for k, ts in hyps.items()]
    near = [(k, fs) for k, fs in near if fs]
    local = [(k, [f for f in fs if f.fault.target.items() <= dict(k[1]).items()]) for k, fs in near]
    local = [(k, fs) for k, fs in local if fs]
    out.update(time_to_detect=float(np.mean(ttd)) if ttd else None, detect_lag_full_strength=float(max(lag)) if lag else None,
               recall=len(ttd) / len(faults), localisation=len(local) / len(near) if near else None,
               cause_accuracy=sum(any(k[0] == f.fault.kind.value for f in fs) for k, fs in local) / len(local) if local else None)
    return out


def run_measures(tr: Trace, none: Trace, scenario: Scenario, grace: int) -> dict[str, float | None]:
    """Per-run measures; None where a measure does not apply (the reason is na_reason's)."""
    m: dict[str, float | None] = dict.fromkeys(MEASURES)
    w = fault_mask(scenario)
    if tr.policy in REASONING:
        m.update(detection(tr.hypotheses, scenario, grace))
    ttm = [float(np.argmax(row[f.start_tick:f.end_tick])) for row, f in zip(tr.mitigated, scenario.faults) if row.any()]
    m["time_to_mitigate"] = float(np.mean(ttm)) if ttm else None
    if w.any():
        m["fault_success_rate"] = float(tr.approved[w].sum() / tr.payments[w].sum())
    m["approvals_saved"] = float(tr.approved.sum() - none.approved.sum())
    m["approved_amount_saved"] = float(tr.amount.sum() - none.amount.sum())
    m["actions"], m["approval_requests"] = float(tr.actions), float(tr.approval_requests)
    if tr.rollbacks is not None:
        m["rollbacks"], m["spurious_rollbacks"] = float(len(tr.rollbacks)), float(sum(tr.rollbacks))
    m["cost_per_approved"] = float(tr.fees.sum() / max(tr.approved.sum(), 1))
    m["attempts_per_payment"] = float(tr.attempts.sum() / tr.payments.sum())
    m["p95_latency_ms"] = histogram_quantiles(tr.latency_hist, (0.95,))[0]
    m["approval_violations"] = None if tr.violations is None else float(tr.violations)
    return m


def na_reason(measure: str, policy: str, scenario: Scenario) -> str:
    group = MEASURES[measure][0]
    if group == "detection" and policy not in REASONING:
        return "does not form hypotheses"
    if not scenario.faults and measure != "precision" and group in ("detection", "mitigation"):
        return "no fault"
    return {"precision": "no hypotheses", "time_to_detect": "never detected", "detect_lag_full_strength": "never detected",
            "localisation": "no hypothesis during a fault", "cause_accuracy": "no hypothesis on the faulty entity",
            "time_to_mitigate": "never acts" if policy == "none" else "never addressed",
            "recovered_share": "oracle within 0.25 pp of none", "recovered_share_first_attempt": "oracle within 0.25 pp of none",
            "rollbacks": "no discrete actions to roll back", "spurious_rollbacks": "no discrete actions to roll back",
            "approval_violations": "not subject to approval"}.get(measure, "not measured")


def _resample(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, n, (BOOTSTRAP, n))


def summarise(values: list) -> dict:
    """Mean over seeds with a percentile bootstrap 95% interval; runs where the measure is None are left out."""
    v = np.array([x for x in values if x is not None], dtype=float)
    if not len(v):
        return {}
    means = v[_resample(len(v))].mean(axis=1)
    return {"mean": float(v.mean()), "lo": float(np.percentile(means, 2.5)), "hi": float(np.percentile(means, 97.5)),
            "n": int(len(v))}


def share_draws(gain: np.ndarray, gap: np.ndarray) -> tuple[float | None, np.ndarray | None]:
    """Ratio of means over seeds, (policy - none) / (oracle - none), and its bootstrap draws (seeds resampled jointly)."""
    if gap.mean() < SHARE_FLOOR:
        return None, None
    idx = _resample(len(gap))
    g = gap[idx].mean(axis=1)
    return float(gain.mean() / gap.mean()), gain[idx].mean(axis=1) / np.where(g > 0, g, np.nan)


def interval(value: float, draws: np.ndarray, n: int) -> dict:
    return {"mean": value, "lo": float(np.nanpercentile(draws, 2.5)), "hi": float(np.nanpercentile(draws, 97.5)), "n": n}


def scenario_kind(s: Scenario) -> str:
    return "control" if not s.faults else "single" if len(s.faults) == 1 else "compound"


def evaluate_scenario(scenario: Scenario, traces: dict[tuple[str, int], Trace], seeds: list[int], grace: int):
    """All measures of one scenario: {policy: {measure: summary or {"na": reason}}}, plus bootstrap draws of shares."""
    out, draws = {}, {}
    w = fault_mask(scenario)
    rate = lambda tr, ok: float(ok[w].sum() / max(tr.payments[w].sum(), 1))
    for policy in POLICIES:
        runs = [run_measures(traces[policy, s], traces["none", s], scenario, grace) for s in seeds]
        res = {k: summarise([r[k] for r in runs]) for k in MEASURES}
        if w.any():
            for key, col in (("recovered_share", "approved"), ("recovered_share_first_attempt", "first_ok")):
                sr = {p: np.array([rate(traces[p, s], getattr(traces[p, s], col)) for s in seeds]) for p in ("none", "oracle", policy)}
                value, d = share_draws(sr[policy] - sr["none"], sr["oracle"] - sr["none"])
                res[key] = {} if value is None else interval(value, d, len(seeds))
                draws[policy, key] = d
        out[policy] = {k: v if v else {"na": na_reason(k, policy, scenario)} for k, v in res.items()}
    return out, draws


def _lag(hyps: dict, f, grace: int) -> int | None:
    """Ticks from full strength to the first exactly right hypothesis (None: never detected)."""
    ticks = [t for k, ts in hyps.items() if k[0] == f.fault.kind.value and dict(k[1]) == f.fault.target
             for t in ts if f.start_tick <= t < f.end_tick + grace]
    return min(ticks) - f.full_strength_tick if ticks else None


def _mean_over(results: dict, draws: dict, policy: str, key: str, kinds: tuple[str, ...]) -> dict:
    """Average of per-scenario ratio-of-means shares where defined; bootstrap draws averaged draw by draw."""
    paths = [p for p, r in results.items() if r["kind"] in kinds and "mean" in r["policies"][policy][key]]
    if not paths:
        return {"na": "no scenario with something to recover"}
    value = float(np.mean([results[p]["policies"][policy][key]["mean"] for p in paths]))
    stacked = np.nanmean(np.vstack([draws[p][policy, key] for p in paths]), axis=0)
    return interval(value, stacked, len(paths)) | {"scenarios": len(paths)}


def _mean_measure(results: dict, policy: str, key: str, kinds: tuple[str, ...]) -> dict:
    vals = [r["policies"][policy][key]["mean"] for r in results.values()
            if r["kind"] in kinds and "mean" in r["policies"][policy][key]]
    return {"mean": float(np.mean(vals)), "n": len(vals)} if vals else {"na": "not measured in any scenario"}


def headline(results: dict, draws: dict) -> dict:
    faulty = ("single", "compound")
    out = {}
    for p in POLICIES:
        out[p] = {
            "recovered_share": _mean_over(results, draws, p, "recovered_share", faulty),
            "recovered_share_single": _mean_over(results, draws, p, "recovered_share", ("single",)),
            "recovered_share_first_attempt": _mean_over(results, draws, p, "recovered_share_first_attempt", faulty),
            "approvals_saved": _mean_measure(results, p, "approvals_saved", faulty + ("control",)),
            "time_to_detect": _mean_measure(results, p, "time_to_detect", faulty),
            "time_to_mitigate": _mean_measure(results, p, "time_to_mitigate", faulty),
            "actions_on_controls": _mean_measure(results, p, "actions", ("control",)),
            "requests_on_controls": _mean_measure(results, p, "approval_requests", ("control",)),
            "approval_violations": _mean_measure(results, p, "approval_violations", faulty + ("control",)),
            "cost_per_approved": _mean_measure(results, p, "cost_per_approved", faulty + ("control",)),
            "attempts_per_payment": _mean_measure(results, p, "attempts_per_payment", faulty + ("control",)),
            "p95_latency_ms": _mean_measure(results, p, "p95_latency_ms", faulty + ("control",)),
        }
    return out


def targets(bench: dict, speed: dict | None) -> list[dict]:
    """The issue's targets, each with the measured value and whether it is met."""
    h, sc = bench["headline"], bench["scenarios"]
    val = lambda d: d.get("mean")
    agent, router = val(h["agent"]["recovered_share"]), val(h["sr_router"]["recovered_share"])
    single = val(h["agent"]["recovered_share_single"])
    below = [f"{r['file']} {r['policies']['agent']['recovered_share']['mean']:.2f}" for r in sc.values()
             if r["kind"] == "single" and r["policies"]["agent"]["recovered_share"].get("mean", 1.0) < 0.9]
    controls = [r for r in sc.values() if r["kind"] == "control"]
    acts = sum(r["policies"]["agent"]["actions"]["mean"] * len(r["seeds"]) for r in controls)
    reqs = sum(r["policies"]["agent"]["approval_requests"]["mean"] * len(r["seeds"]) for r in controls)
    detection = []
    for wide, limit, label in ((True, WIDE_LAG, f"on >= {100 * THIN_SHARE:.0f}% of traffic"),
                               (False, THIN_LAG, f"on under {100 * THIN_SHARE:.0f}% of traffic (thin)")):
        lags = [(name, start, lag) for name, start, lag, share in bench["detection_lags"]
                if (share >= THIN_SHARE) == wide]
        if not lags:
            continue
        within = sum(1 for _, _, lag in lags if lag is not None and lag <= limit)
        late = sorted({f"{name}@{start}" for name, start, lag in lags if lag is None or lag > limit})
        detection.append({"target": f"agent detects faults {label} within {limit} ticks of full strength",
                          "value": f"{within}/{len(lags)} faults x seeds" + (f"; late or missed: {', '.join(late)}"
                                                                             if late else ""),
                          "met": within == len(lags)})
    out = [
        {"target": "agent >= sr_router on recovered share, averaged over fault scenarios",
         "value": f"agent {_f(agent, 3)} vs sr_router {_f(router, 3)}",
         "met": agent is not None and router is not None and agent >= router},
        {"target": "agent reaches >= 0.9 of oracle on single-fault scenarios (mean recovered share)",
         "value": f"{_f(single)}" + (f"; under 0.9: {', '.join(below)}" if below else ""), "met": single is not None and single >= 0.9},
        {"target": "agent takes no action on the fault-free controls",
         "value": f"{acts:.0f} executed, {reqs:.0f} approval requests over {sum(len(r['seeds']) for r in controls)} control runs",
         "met": acts == 0 and reqs == 0},
        *detection,
        {"target": "agent never executes an action that needed approval without one",
         "value": f"{bench['approval_violations_total']} violations", "met": bench["approval_violations_total"] == 0},
    ]
    for row in (speed or {}).get("batches", []):
        floor = SPEED_FLOORS.get(row["batch"])
        if floor is not None:
            out.append({"target": f"whole loop (simulator + agent, heuristic) >= {floor:,.0f} payments/s on one core "
                                  f"at {row['batch']:,} payments per tick",
                        "value": f"{row['loop']:,.0f}/s", "met": row["loop"] >= floor})
    return [t | {"met": bool(t["met"])} for t in out]


def _f(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"
