"""The benchmark's report: results/summary.md (tables, targets, shortfalls, definitions), summary.json, charts."""
from __future__ import annotations

from pathlib import Path

from agent import AgentSettings
from bench.baselines import POLICIES, SRRouterSettings, StaticSettings
from bench.measures import MEASURES, REASONING, SHARE_FLOOR, _f, targets

MEASURE_NOTES = """\
- **Fault windows**: the ticks from each injected fault's start to its end (flapping faults: the whole span, on and off).
- **recovered_share**: (S_policy - S_none) / (S_oracle - S_none), where S is the *payment* success rate, approved
  payments / payments, over payments that *arrived* in the fault windows (an approval on a later retry counts; attempts
  do not, so cutting retries cannot raise it). Ratio of the means over seeds; the interval resamples seeds jointly.
  n/a when S_oracle - S_none < 0.25 pp (nothing to recover: outages, retry storms). The oracle routes every payment's
  first attempt and retry by the truth while faults last, so no policy should exceed 1 (beyond noise).
  `recovered_share_first_attempt` is the same on first-attempt approvals (where retries hide a fault, as in latency
  spikes that time out); there the oracle, which keeps some first attempts where retries win them back, can be exceeded.
- **Detection targets** split faults by blast radius: the share of first attempts the fault touches under the default
  routing (`traffic_share` in `detection_lags`); on 5% or more it must be found within 2 ticks of full strength, a
  thinner one within 6.
- **time_to_detect**: ticks from fault start to the first hypothesis with exactly the right cause and target (mean
  over detected faults). `detect_lag_full_strength`: ticks from full strength (end of a ramp) to that hypothesis,
  worst fault of the run. Detection is measured for the reasoning policies (none, agent); n/a for the others.
- **precision**: distinct (cause, target) hypotheses raised that exactly match a fault they were raised during (fault
  start to end + 6 ticks, the observer's window) / all distinct hypotheses. **recall**: faults with a matching
  hypothesis / faults. **localisation**: hypotheses raised during a fault whose target contains the fault's target
  (right issuer / processor / merchant) / hypotheses raised during a fault. **cause_accuracy**: localised hypotheses
  with the right cause / localised hypotheses.
- **time_to_mitigate**: ticks from fault start to the first tick whose control plane addresses the fault: half or
  more of the bad path's default traffic moved off it (degradation: that issuer on that processor; latency: the
  processor), the storming merchant capped at its normal attempts, or the outage issuer's retries stopped. Only
  executed actions change the control plane; pending approvals do not.
- **approvals_saved / approved_amount_saved**: approved payments (and their amount) minus policy none's, whole run,
  same seed. **fault_success_rate**: S over the fault windows.
- **actions**: agent: executed actions; static: rules fired; oracle: fault responses applied; sr_router: changes of
  an issuer's top processor. **approval_requests**: agent actions held for a human (nobody approves in the benchmark).
  **rollbacks**: agent actions rolled back; **spurious_rollbacks** those that addressed a fault still active.
- **cost_per_approved**: all fees / approved payments; **attempts_per_payment**; **p95_latency_ms** over all attempts.
- **approval_violations**: executed agent actions that needed approval (the executor's gate, re-checked) without a
  recorded approval of their exact parameters. Must be 0.
- Means over seeds with percentile-bootstrap 95% intervals (2,000 resamples of seeds) in brackets; with 5 seeds the
  intervals are rough. n/a marks a measure that does not apply, never a missing number.
"""


def fmt(d: dict, kind: str, ci: bool = True) -> str:
    if "mean" not in d:
        return "n/a"
    f = {"t": "{:.1f}", "r": "{:.2f}", "%": "{:.2%}", "n": "{:,.1f}", "$": "${:,.0f}", "$3": "${:.3f}", "x": "{:.3f}",
         "ms": "{:,.0f}"}[kind].format
    if not ci or "lo" not in d or f(d["lo"]) == f(d["hi"]):
        return f(d["mean"])
    return f"{f(d['mean'])} [{f(d['lo'])}, {f(d['hi'])}]"


def md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def scenario_table(bench: dict, measure: str, policies=POLICIES, kinds=("control", "single", "compound")) -> str:
    kind = MEASURES[measure][1]
    rows = [[r["file"].removesuffix(".json")] + [fmt(r["policies"][p][measure], kind) for p in policies]
            for r in bench["scenarios"].values() if r["kind"] in kinds]
    return md_table(["scenario"] + list(policies), rows)


def render(bench: dict, speed: dict | None, command: str) -> str:
    h = bench["headline"]
    n_sc = len(bench["scenarios"])
    seeds = len(next(iter(bench["scenarios"].values()))["seeds"]) if n_sc else 0
    parts = [f"# Evaluation results\n\n`{command}`: {n_sc} scenarios x {seeds} seeds x {len(POLICIES)} policies = "
             f"{bench['runs']} runs ({bench['run_seconds']:.0f} s of runs, {bench['seconds']:.0f} s wall). "
             "Same simulator seed, payments and per-attempt luck for every policy. Definitions at the end."]
    tg = targets(bench, speed)
    parts.append("## Targets\n\n" + md_table(["target", "measured", "met"],
                                            [[t["target"], t["value"], "yes" if t["met"] else "**no**"] for t in tg]))
    cols = [("recovered_share", "recovered share, fault scenarios", "r"), ("recovered_share_single", "single-fault", "r"),
            ("recovered_share_first_attempt", "first-attempt share", "r"), ("approvals_saved", "approvals saved / run", "n"),
            ("time_to_detect", "detect (ticks)", "t"), ("time_to_mitigate", "mitigate (ticks)", "t"),
            ("actions_on_controls", "actions / control run", "n"), ("approval_violations", "violations", "n"),
            ("cost_per_approved", "cost / approved", "$3"), ("attempts_per_payment", "attempts / payment", "x"),
            ("p95_latency_ms", "p95 ms", "ms")]
    short = shortfalls(bench, tg)
    parts.append("## Where the agent falls short\n\n" + ("\n".join(f"- {x}" for x in short) if short else "Nowhere."))
    parts.append("## Headline\n\nAverages over scenarios of the per-scenario means.\n\n" + md_table(
        ["policy"] + [c[1] for c in cols], [[p] + [fmt(h[p][c[0]], c[2]) for c in cols] for p in POLICIES]))
    parts.append("## Per scenario\n")
    for measure, title in (("recovered_share", "Recovered share (payment success in fault windows)"),
                           ("recovered_share_first_attempt", "Recovered share, first attempts"),
                           ("time_to_mitigate", "Time to mitigate (ticks)"), ("approvals_saved", "Approvals saved vs none (whole run)"),
                           ("approved_amount_saved", "Approved amount saved vs none (whole run)"),
                           ("fault_success_rate", "Payment success rate in fault windows")):
        parts.append(f"### {title}\n\n" + scenario_table(bench, measure, kinds=("single", "compound")))
    for measure, title in (("actions", "Actions (see definitions per policy)"), ("approval_requests", "Approval requests"),
                           ("rollbacks", "Rollbacks"), ("spurious_rollbacks", "Spurious rollbacks"),
                           ("cost_per_approved", "Cost per approved payment"),
                           ("attempts_per_payment", "Attempts per payment"), ("p95_latency_ms", "p95 latency (ms)"),
                           ("approval_violations", "Approval violations")):
        parts.append(f"### {title}\n\n" + scenario_table(bench, measure))
    det = ["time_to_detect", "detect_lag_full_strength", "precision", "recall", "localisation", "cause_accuracy"]
    for p in REASONING:
        rows = [[r["file"].removesuffix(".json")] + [fmt(r["policies"][p][m], MEASURES[m][1]) for m in det]
                for r in bench["scenarios"].values()]
        parts.append(f"### Detection, policy {p}\n\n" + md_table(["scenario"] + det, rows))
    if speed:
        parts.append(render_speed(speed))
    parts.append("## Baselines\n\n" + baseline_notes())
    parts.append("## Definitions\n\n" + MEASURE_NOTES)
    return "\n\n".join(parts) + "\n"


def shortfalls(bench: dict, tg: list[dict]) -> list[str]:
    """Unmet targets, and the fault scenarios where the agent trails the oracle or the router, with clues from the data."""
    out = [f"{t['target']}: {t['value']}" for t in tg if not t["met"]]
    for r in bench["scenarios"].values():
        a, sr = (r["policies"][p]["recovered_share"].get("mean") for p in ("agent", "sr_router"))
        if a is None or (a >= 0.9 and (sr is None or a >= sr - 0.02)):
            continue
        m = r["policies"]["agent"]
        out.append(f"{r['file']}: agent {a:.2f} vs sr_router {_f(sr)}; agent executed {fmt(m['actions'], 'n', False)} "
                   f"actions, held {fmt(m['approval_requests'], 'n', False)} for approval, "
                   f"{fmt(m['spurious_rollbacks'], 'n', False)} spurious rollbacks, mitigated after "
                   f"{fmt(m['time_to_mitigate'], 't', False)} ticks")
    return out


def baseline_notes() -> str:
    st, sr = StaticSettings(), SRRouterSettings()
    return (f"- **static**: reroutes an issuer whose first-attempt success rate over the last {AgentSettings().observer.window_ticks} "
            f"ticks is under {st.min_first_attempt_rate:.0%} (at least {st.min_payments} payments) to the cheapest processor "
            f"other than its primary; caps a merchant at {st.cap_attempts} attempts when it passes "
            f"{st.max_attempts_per_payment} attempts per payment; never undoes.\n"
            f"- **sr_router** (after juspay/decision-engine SR_V3 and Hyperswitch success-based routing): per issuer x "
            f"processor window of the last N = {sr.window} first-attempt outcomes (HS sends 200, DE defaults to 125), "
            f"optimistic cold start; {sr.hedge:.0%} hedge to the non-top processors; laggards floored at p* - "
            f"{sr.reset_k:g} sigma (variance floor {sr.var_floor}); elimination when path health (x{sr.penalty} per technical "
            f"failure, /{sr.penalty} per approval) falls under {sr.elimination_threshold} (HS sends 0.35, DE defaults to 0.05): "
            f"score / {sr.demote:g}, soft reset after {sr.soft_reset_minutes:g} min; retries go to the best other processor. "
            f"Routing changes once per tick, like every policy here; no hard 150-minute reset.\n"
            "- **oracle_path**: from the fault schedule, at the tick a fault starts, moves each affected issuer's traffic "
            "off every bad path (degraded issuer path, slow processor) to its best healthy path by true approval and "
            "technical-failure rates, caps a storming merchant at 2 attempts without hard-decline retries, does nothing "
            "for an outage; undoes all of it the tick the fault ends: the best the agent's own kind of action can do.\n"
            "- **oracle**: from the fault schedule and the simulator's truth, while any fault lasts, sends each issuer's "
            "first attempts to the processor, and its retries to the processor, that together approve the most of its "
            "payments by the second attempt (a soft decline may be approved on a retry at a processor with a higher "
            "uplift for that issuer), with the same storm cap; outside faults the default split. The denominator of "
            "recovered share: no policy that routes by issuer can expect more approvals in the fault windows.")


def render_speed(speed: dict) -> str:
    rows = [[f"{r['batch']:,}", f"{r['ticks']:,}", f"{r['payments']:,}"] + [f"{r[k]:,.0f}" for k in ("simulator", "observer", "agent", "loop")]
            for r in speed["batches"]]
    scale = [[f"{r['payments']:,}", f"{r['batch']:,}", f"{r['seconds']:.2f}", f"{r['payments_per_s']:,.0f}",
              f"{r['peak_rss_mb']:,.0f}", f"{r['rss_before_mb']:,.0f}"] for r in speed["scaling"]]
    return ("## Speed\n\nPayments per second (" + speed["note"] + "). Agent = observe, reason, decide, act, learn "
            "(heuristic); loop = simulator + agent.\n\n"
            + md_table(["payments / tick", "ticks", "payments", "simulator", "observer", "agent", "loop"], rows)
            + "\n\nWhole loop by run size, each in a fresh process (peak RSS: that process's VmHWM, imports included):\n\n"
            + md_table(["payments", "payments / tick", "seconds", "payments / s", "peak RSS MB", "RSS after imports MB"], scale))


def to_json(bench: dict, speed: dict | None, command: str) -> dict:
    return {"schema_version": 1, "command": command, "policies": list(POLICIES), "measures": {k: v[0] for k, v in MEASURES.items()},
            "share_floor": SHARE_FLOOR, "targets": targets(bench, speed), "headline": bench["headline"],
            "scenarios": {r["file"]: r for r in bench["scenarios"].values()},
            "detection_lags": [{"scenario": n, "fault_start": s, "lag": lag, "traffic_share": round(share, 4)}
                               for n, s, lag, share in bench["detection_lags"]],
            "runs": bench["runs"], "speed": speed}


def write_charts(bench: dict, speed: dict | None, out: Path) -> list[Path]:
    import altair as alt  # only the report needs it
    import pandas as pd
    rows = [{"scenario": r["file"].removesuffix(".json"), "policy": p, **{k: r["policies"][p]["recovered_share"][k]
                                                                        for k in ("mean", "lo", "hi")}}
            for r in bench["scenarios"].values() for p in ("static", "sr_router", "agent")
            if "mean" in r["policies"][p]["recovered_share"]]
    paths = []
    if rows:
        df = pd.DataFrame(rows)
        order = list(dict.fromkeys(df["scenario"]))
        color = alt.Color("policy:N", sort=["static", "sr_router", "agent"], scale=alt.Scale(range=["#9e9e9e", "#4c78a8", "#f58518"]))
        base = alt.Chart(df).encode(y=alt.Y("scenario:N", sort=order, title=None), yOffset=alt.YOffset("policy:N", sort=["static", "sr_router", "agent"]))
        chart = (base.mark_bar().encode(x=alt.X("mean:Q", title="recovered share of the oracle's gain (1 = oracle)"), color=color)
                 + base.mark_rule().encode(x="lo:Q", x2="hi:Q")
                 + alt.Chart(pd.DataFrame({"x": [0.9]})).mark_rule(strokeDash=[4, 3], color="black").encode(x="x:Q")
                 ).properties(width=420, height=alt.Step(8),
                              title="Recovered share by scenario (mean over seeds, 95% bootstrap interval)")
        paths.append(out / "recovered_share.png")
        chart.save(str(paths[-1]), scale_factor=1.0)
    if speed:
        df = pd.DataFrame([{"batch": r["batch"], "stage": k, "payments_per_s": r[k]} for r in speed["batches"]
                           for k in ("simulator", "observer", "agent", "loop")])
        chart = alt.Chart(df).mark_line(point=True).encode(
            x=alt.X("batch:Q", scale=alt.Scale(type="log"), title="payments per tick"),
            y=alt.Y("payments_per_s:Q", scale=alt.Scale(type="log"), title="payments per second"),
            color="stage:N").properties(width=360, height=220, title="Throughput by batch size (one core)")
        paths.append(out / "speed.png")
        chart.save(str(paths[-1]), scale_factor=1.0)
    return paths
