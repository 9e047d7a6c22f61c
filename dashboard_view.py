"""Display: pure functions from state documents to what the dashboard shows (numbers, text, tables, charts).

The dashboard's view model. Each function takes parsed state documents (plain
dicts from state/*.json, any of them possibly empty) and returns strings,
pandas frames or Altair charts. No files, no clock, no streamlit; never imports
the agent, the executor or anything that acts, so tests can call every function
on fixture state. Example: agent_status({"state": "running"}, age_s=42) ->
("stale", "no update for 42 s: the worker is not running").
"""
from __future__ import annotations

import altair as alt
import pandas as pd

STALE_AFTER_S = 10.0      # a worker writes every tick (1 s by default); 10 s of silence means it is gone
THIN_COLOR, BAD_COLOR, OK_COLOR = "#b8b8b8", "#d62728", "#1f77b4"
CHART_HEIGHT = 360        # pixels for the whole chart: Streamlit fits axes and legends inside it
BAD_DROP = 0.05           # the reasoner's min_drop: 5 pp below baseline is what payment ops cares about
CODE_NAMES = {"05": ("05 do not honor", "soft"), "51": ("51 insufficient funds", "soft"),
              "91": ("91 issuer unavailable", "technical"), "96": ("96 system malfunction", "technical"),
              "timeout": ("timeout", "technical"), "14": ("14 invalid card", "hard"),
              "54": ("54 expired card", "hard"), "57": ("57 not permitted", "hard")}
EVENT_COLORS = {"detected": "#ff7f0e", "executed": "#2ca02c", "pending_approval": "#9467bd",
                "rolled_back": "#d62728", "restored": "#17becf", "rejected": "#7f7f7f"}


def pct(x, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def target_text(t: dict | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((t or {}).items())) or "everything"


def age_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


# -- header ------------------------------------------------------------------------------

def agent_status(status: dict | None, age_s: float | None, stale_after: float = STALE_AFTER_S) -> tuple[str, str]:
    """(label, detail): running, paused, stale, finished, stopped or waiting."""
    if not status:
        return "waiting", "no status.json yet"
    state = status.get("state", "unknown")
    if state in ("finished", "stopped"):
        who = "the run.py demo" if status.get("mode") == "run" else "the worker"
        return state, f"{who} {state} at tick {status.get('tick')}"
    if age_s is not None and age_s > stale_after:
        return "stale", f"no update for {age_text(age_s)}: the worker is not running"
    if status.get("paused") or state == "paused":
        return "paused", "observes and reasons; nothing runs without approval"
    return state, f"tick {status.get('tick')}, {status.get('mode', '?')} mode"


def llm_status(llm: dict | None, latest: list[dict] | None = None) -> tuple[str, str]:
    """(label, detail): off, on or fallback (with the reason)."""
    llm = llm or {}
    if not llm.get("enabled"):
        return "off", "heuristics only"
    fallback_h = next((h for h in latest or [] if h.get("source") == "heuristic_fallback"), None)
    if llm.get("fallback") or llm.get("state") == "fallback" or fallback_h:
        why = (llm.get("fallback_reason") or llm.get("reason") or llm.get("error")
               or (fallback_h or {}).get("fallback_reason") or "reason not given")
        return "fallback", str(why)
    return "on", str(llm.get("model") or llm.get("provider") or "LLM reasoner active")


def headline(summary: dict | None, tick_seconds: float | None) -> list[dict]:
    """The header's numbers as st.metric arguments (label, value, delta, delta_color, help)."""
    s = summary or {}
    def delta_pp(now, base):
        return None if now is None or base is None else f"{100 * (now - base):+.1f} pp vs {pct(base)} baseline"
    app, bapp = s.get("attempts_per_payment"), s.get("baseline_attempts_per_payment")
    per_min = None
    if tick_seconds and s.get("window_ticks") and s.get("payments") is not None:
        per_min = s["payments"] / (s["window_ticks"] * tick_seconds) * 60
    return [
        {"label": "Success rate", "value": pct(s.get("success_rate")),
         "delta": delta_pp(s.get("success_rate"), s.get("baseline_success_rate")), "delta_color": "normal",
         "help": "approved attempts / attempts, last window, against the baseline window before it"},
        {"label": "First-attempt success", "value": pct(s.get("first_attempt_success_rate")),
         "delta": delta_pp(s.get("first_attempt_success_rate"), s.get("baseline_first_attempt_success_rate")),
         "delta_color": "normal", "help": "approved first attempts / payments"},
        {"label": "Attempts per payment", "value": "n/a" if app is None else f"{app:.2f}",
         "delta": None if app is None or bapp is None else f"{app - bapp:+.2f} vs {bapp:.2f}", "delta_color": "inverse",
         "help": "retries make this grow; a retry storm shows here first"},
        {"label": "p95 latency", "value": "n/a" if s.get("p95_latency_ms") is None else f"{s['p95_latency_ms']:,.0f} ms",
         "delta": None, "delta_color": "off", "help": "all processors, last window"},
        {"label": "Cost per approved payment", "value": "n/a" if s.get("cost_per_approved") is None
         else f"${s['cost_per_approved']:.3f}", "delta": None, "delta_color": "off", "help": "fees / approvals"},
        {"label": "Payments per minute", "value": "n/a" if per_min is None else f"{per_min:,.0f}",
         "delta": None, "delta_color": "off", "help": "new payments in the last window, per minute of simulated time"},
    ]


# -- the story: what is wrong, what the agent did, what waits for a human -------------------

def hypothesis_text(h: dict) -> str:
    return (f"{h.get('cause', '?').replace('_', ' ')} at {target_text(h.get('target'))} "
            f"(confidence {h.get('confidence', 0):.2f}, {h.get('source', '?')})")


def action_text(a: dict, params: bool = True) -> str:
    """'A0003 retry policy merchant globemart (max_attempts=2, ...)'; without params for the summary."""
    p = ", ".join(f"{k}={v}" for k, v in (a.get("params") or {}).items())
    text = f"{a.get('id')} {a.get('action', '?').replace('_', ' ')} {target_text(a.get('target'))}"
    return f"{text} ({p})" if params and p else text


def last_event_tick(a: dict) -> int:
    return max(t for t in (a.get("tick"), a.get("executed_tick"), a.get("ended_tick"), 0) if t is not None)


def situation(hypotheses: dict | None, actions: dict | None) -> dict[str, list[str]]:
    """Three short lists: what is wrong now, what the agent did lately, what waits for approval."""
    latest = (hypotheses or {}).get("latest") or []
    wrong = [hypothesis_text(h) for h in latest[:3]] or ["Nothing: every measured slice is within its baseline."]
    acts = sorted((actions or {}).get("actions") or [], key=last_event_tick, reverse=True)
    did = []
    for a in acts[:3]:
        status = a.get("status", "?").replace("_", " ")
        outcome = f", outcome {a['outcome']}" if a.get("outcome") not in (None, "pending") else ""
        reason = f": {a['end_reason']}" if a.get("end_reason") else ""
        did.append(f"{action_text(a, params=False)} — {status}{outcome}{reason}")
    pending = [f"{action_text(a, params=False)}, risk {a.get('risk', 0):.2f}: approve or reject it below"
               for a in (actions or {}).get("pending") or []]
    return {"wrong": wrong, "did": did or ["No action yet."], "waiting": pending or ["Nothing waits for you."]}


def decision_verdict(decision: dict | None) -> str:
    """One line: did the agent act this tick, hold the action for a human, or not act."""
    if not decision:
        return "No decision yet (policy 'none' observes only)."
    if decision.get("action") == "no_op":
        return "Did not act: " + decision.get("reason", "no reason given")
    what = f"{decision['action'].replace('_', ' ')} {target_text(decision.get('target'))}"
    if decision.get("requires_human_approval"):
        return f"Proposed {what}, waiting for a human: " + "; ".join(decision.get("guardrails") or [])
    return f"Acted: {what} ({decision.get('reason', '')})"


def expected_text(expected: dict | None) -> str:
    e = expected or {}
    parts = []
    if "success_rate_gain" in e:
        parts.append(f"success rate {100 * e['success_rate_gain']:+.1f} pp on {e.get('attempts_moved_per_tick', 0):.0f} "
                     "attempts/tick")
    if "fee_delta_per_attempt" in e:
        parts.append(f"fees ${e['fee_delta_per_attempt']:+.3f}/attempt")
    if "p95_delta_ms" in e:
        parts.append(f"p95 {e['p95_delta_ms']:+,.0f} ms")
    if "attempts_saved_per_tick" in e:
        parts.append(f"{e['attempts_saved_per_tick']:.0f} attempts/tick saved")
    if "approvals_lost_per_tick" in e:
        parts.append(f"{e['approvals_lost_per_tick']:.1f} approvals/tick lost")
    return ", ".join(parts) or "not estimated"


def make_command(kind: str, by: str, issued_at: str, action: dict | None = None) -> dict:
    """The command document the dashboard asks state_writer.write_command to drop for the worker."""
    cmd = {"command": kind, "by": by, "issued_at": issued_at}
    if action is not None:
        cmd["action_id"] = action["id"]
        if kind == "approve":
            cmd["params_hash"] = action["params_hash"]
    return cmd


# -- tables ------------------------------------------------------------------------------

def hypotheses_frame(latest: list[dict] | None) -> pd.DataFrame:
    rows = [{"cause": h.get("cause"), "target": target_text(h.get("target")), "confidence": h.get("confidence"),
             "evidence": "; ".join(h.get("evidence") or []), "source": h.get("source")} for h in latest or []]
    return pd.DataFrame(rows, columns=["cause", "target", "confidence", "evidence", "source"])


def actions_frame(actions: list[dict] | None) -> pd.DataFrame:
    rows = []
    for a in sorted(actions or [], key=last_event_tick, reverse=True):
        ap = a.get("approval") or {}
        rows.append({"id": a.get("id"), "tick": a.get("tick"), "action": a.get("action"),
                     "target": target_text(a.get("target")), "status": a.get("status"), "outcome": a.get("outcome"),
                     "decided by": ap.get("by") or ap.get("rejected_by") or ("agent" if a.get("executed_tick") is not None
                                                                          else ""),
                     "ended": a.get("ended_tick"), "rollback / end reason": a.get("end_reason") or "",
                     "risk": round(a.get("risk") or 0, 2),
                     "params": ", ".join(f"{k}={v}" for k, v in (a.get("params") or {}).items())})
    cols = ["id", "tick", "action", "target", "status", "outcome", "decided by", "ended", "rollback / end reason",
            "risk", "params"]
    df = pd.DataFrame(rows, columns=cols)
    df["ended"] = df["ended"].astype("Int64")
    return df


def effectiveness_frame(effectiveness: dict | None) -> pd.DataFrame:
    rows = [{"action": k, **{c: v.get(c) for c in ("count", "helped", "hurt", "neutral", "inconclusive",
                                                   "helped_rate", "rolled_back", "mean_success_gain")}}
            for k, v in (effectiveness or {}).items()]
    return pd.DataFrame(rows, columns=["action", "count", "helped", "hurt", "neutral", "inconclusive",
                                       "helped_rate", "rolled_back", "mean_success_gain"])


def caution(signal: dict | None) -> tuple[str, list[str]]:
    """(level, reasons): how much more confidence the learner now demands, and for what."""
    sig = signal or {}
    lines = [f"{a.replace('_', ' ')}: +{v:.2f} confidence needed" for a, v in (sig.get("extra_confidence") or {}).items()]
    lines += [f"{c['action'].replace('_', ' ')} on {target_text(c.get('entity'))}: +{c['extra']:.2f}"
              for c in sig.get("target_caution") or []]
    top = max([*(sig.get("extra_confidence") or {}).values(), *(c["extra"] for c in sig.get("target_caution") or []), 0])
    level = "normal" if top == 0 else "raised" if top < 0.2 else "high"
    return level, lines


def commands_frame(log: list[dict] | None, limit: int = 10) -> pd.DataFrame:
    rows = [{k: e.get(k) for k in ("processed_at", "command", "action_id", "by", "result", "message")}
            for e in reversed((log or [])[-limit:])]
    return pd.DataFrame(rows, columns=["processed_at", "command", "action_id", "by", "result", "message"])


# -- charts ------------------------------------------------------------------------------

def issuer_chart(issuers: list[dict] | None) -> alt.Chart:
    """First-attempt success rate per issuer, a black tick at its baseline, thin slices grey."""
    df = pd.DataFrame(issuers or [], columns=["issuer", "payments", "first_attempt_success_rate",
                                              "baseline_first_attempt_success_rate", "thin"])
    drop = df["baseline_first_attempt_success_rate"] - df["first_attempt_success_rate"]
    df["health"] = ["thin (too few payments)" if t else "below baseline" if d >= BAD_DROP else "ok"
                    for t, d in zip(df["thin"], drop.fillna(0))]
    color = alt.Color("health:N", scale=alt.Scale(domain=["ok", "below baseline", "thin (too few payments)"],
                                                  range=[OK_COLOR, BAD_COLOR, THIN_COLOR]),
                      legend=alt.Legend(orient="top", title=None))
    base = alt.Chart(df).encode(x=alt.X("issuer:N", sort=None, title=None, axis=alt.Axis(labelAngle=-30)))
    tip = [alt.Tooltip("issuer:N"), alt.Tooltip("payments:Q"), alt.Tooltip("first_attempt_success_rate:Q", format=".1%"),
           alt.Tooltip("baseline_first_attempt_success_rate:Q", format=".1%", title="baseline")]
    bars = base.mark_bar().encode(y=alt.Y("first_attempt_success_rate:Q", title="first attempt",
                                          axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
                                  color=color, tooltip=tip)
    ticks = base.mark_tick(color="black", thickness=3, size=30).encode(y="baseline_first_attempt_success_rate:Q",
                                                                        tooltip=tip)
    return (bars + ticks).properties(height=CHART_HEIGHT)


def trend_frame(trend: list[dict] | None) -> pd.DataFrame:
    cols = ["tick", "success_rate", "first_attempt_success_rate", "baseline_success_rate"]
    return pd.DataFrame([{c: t.get(c) for c in cols} for t in trend or []], columns=cols)


def markers(trend: list[dict] | None, actions: list[dict] | None) -> pd.DataFrame:
    """Vertical-rule events inside the trend's span: faults detected, actions taken, ended or held."""
    ticks = [t.get("tick") for t in trend or [] if t.get("tick") is not None]
    rows = []
    for t in trend or []:
        for d in t.get("detected") or []:
            rows.append({"tick": t["tick"], "event": "detected",
                         "label": f"detected {d.get('cause', '?').replace('_', ' ')} at {target_text(d.get('target'))}"})
    for a in actions or []:
        what = f"{a.get('id')} {a.get('action', '?').replace('_', ' ')} {target_text(a.get('target'))}"
        if a.get("executed_tick") is not None:
            by = f" (approved by {a['approval']['by']})" if (a.get("approval") or {}).get("by") else ""
            rows.append({"tick": a["executed_tick"], "event": "executed", "label": f"{what} executed{by}"})
        elif a.get("status") in ("pending_approval", "rejected"):
            rows.append({"tick": a.get("tick"), "event": "pending_approval", "label": f"{what} held for approval"})
        if a.get("ended_tick") is not None and a.get("status") in EVENT_COLORS:
            rows.append({"tick": a["ended_tick"], "event": a["status"],
                         "label": f"{what} {a['status'].replace('_', ' ')}: {a.get('end_reason') or ''}"})
    df = pd.DataFrame(rows, columns=["tick", "event", "label"])
    if not ticks:
        return df.iloc[0:0]
    return df[(df["tick"] >= min(ticks)) & (df["tick"] <= max(ticks))].reset_index(drop=True)


def _rules(marks: pd.DataFrame) -> alt.Chart:
    events = [e for e in EVENT_COLORS if e in set(marks["event"])] or ["detected"]
    return alt.Chart(marks).mark_rule(strokeWidth=2, opacity=0.8).encode(
        x="tick:Q", color=alt.Color("event:N", scale=alt.Scale(domain=events, range=[EVENT_COLORS[e] for e in events]),
                                    legend=alt.Legend(title=None, orient="bottom", columns=3, labelLimit=220)),
        strokeDash=alt.condition(alt.datum.event == "detected", alt.value([4, 3]), alt.value([1, 0])),
        tooltip=["tick:Q", "event:N", "label:N"])


def success_trend_chart(trend: list[dict] | None, actions: list[dict] | None) -> alt.LayerChart:
    """Success and first-attempt rates per tick, the baseline dashed, detections and actions as rules."""
    df = trend_frame(trend)
    names = {"success_rate": "success rate", "first_attempt_success_rate": "first attempt",
             "baseline_success_rate": "baseline"}
    long = df.rename(columns=names).melt("tick", list(names.values()), var_name="series", value_name="rate").dropna()
    lines = alt.Chart(long).mark_line().encode(
        x=alt.X("tick:Q", title="tick"), y=alt.Y("rate:Q", axis=alt.Axis(format="%"), scale=alt.Scale(zero=False),
                                                 title="success rate (last window)"),
        color=alt.Color("series:N", scale=alt.Scale(domain=list(names.values()), range=["#1f77b4", "#aec7e8", "#555555"]),
                        legend=alt.Legend(orient="top", title=None)),
        strokeDash=alt.condition(alt.datum.series == "baseline", alt.value([5, 4]), alt.value([1, 0])),
        tooltip=["tick:Q", "series:N", alt.Tooltip("rate:Q", format=".1%")])
    return (alt.layer(lines, _rules(markers(trend, actions))).resolve_scale(color="independent", strokeDash="independent")
            .properties(height=CHART_HEIGHT))


def latency_frame(trend: list[dict] | None) -> pd.DataFrame:
    rows = [{"tick": t["tick"], "processor": p, "quantile": q, "ms": ms}
            for t in trend or [] for q in ("p50", "p95")
            for p, ms in (t.get(f"{q}_by_processor") or {}).items() if ms is not None]
    return pd.DataFrame(rows, columns=["tick", "processor", "quantile", "ms"])


def latency_chart(trend: list[dict] | None, actions: list[dict] | None) -> alt.LayerChart:
    """p50 (dashed) and p95 per processor over ticks, log scale, actions as rules."""
    lines = alt.Chart(latency_frame(trend)).mark_line().encode(
        x=alt.X("tick:Q", title="tick"), y=alt.Y("ms:Q", scale=alt.Scale(type="log"), title="latency (ms, log)"),
        color=alt.Color("processor:N", legend=alt.Legend(orient="top", title=None)),
        strokeDash=alt.StrokeDash("quantile:N", scale=alt.Scale(domain=["p95", "p50"], range=[[1, 0], [4, 3]]),
                                  legend=alt.Legend(orient="top", title=None)),
        tooltip=["tick:Q", "processor:N", "quantile:N", alt.Tooltip("ms:Q", format=",.0f")])
    marks = markers(trend, actions)
    rules = _rules(marks[marks["event"] != "detected"])
    return (alt.layer(lines, rules).resolve_scale(color="independent", strokeDash="independent")
            .properties(height=CHART_HEIGHT))


def error_mix_frame(codes: dict | None) -> pd.DataFrame:
    rows = [{"code": CODE_NAMES[c][0], "kind": CODE_NAMES[c][1], "attempts": n}
            for c, n in (codes or {}).items() if c in CODE_NAMES]
    return pd.DataFrame(rows, columns=["code", "kind", "attempts"])


def error_mix_chart(codes: dict | None) -> alt.Chart:
    """Declines and errors of the last window by code, coloured soft / technical / hard."""
    df = error_mix_frame(codes)
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("code:N", sort="-x", title=None, axis=alt.Axis(labelLimit=200)),
        x=alt.X("attempts:Q", title="attempts, last window"),
        color=alt.Color("kind:N", scale=alt.Scale(domain=["soft", "technical", "hard"],
                                                  range=["#ffbb78", BAD_COLOR, "#7f7f7f"]),
                        legend=alt.Legend(orient="top", title=None)),
        tooltip=["code:N", "kind:N", "attempts:Q"]).properties(height=CHART_HEIGHT)
