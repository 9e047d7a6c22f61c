"""The operator page's tables and charts: pandas frames and Altair charts from parsed state documents.

Pure: documents in, frames and charts out; tests call them on fixture state. The page
(dashboard.py) only lays them out. Never reads files, never imports the agent.
"""
from __future__ import annotations

import altair as alt
import pandas as pd

import dashboard_text as text

THIN_COLOR, BAD_COLOR, OK_COLOR = "#b8b8b8", "#d62728", "#1f77b4"
CHART_HEIGHT = 360        # pixels for the whole chart: Streamlit fits axes and legends inside it
BAD_DROP = 0.05           # the reasoner's min_drop: 5 pp below baseline is what payment ops cares about
CODE_NAMES = {"05": ("05 do not honor", "soft"), "51": ("51 insufficient funds", "soft"),
              "91": ("91 issuer unavailable", "technical"), "96": ("96 system malfunction", "technical"),
              "timeout": ("timeout", "technical"), "14": ("14 invalid card", "hard"),
              "54": ("54 expired card", "hard"), "57": ("57 not permitted", "hard")}
EVENT_COLORS = {"detected": "#ff7f0e", "executed": "#2ca02c", "pending_approval": "#9467bd",
                "rolled_back": "#d62728", "restored": "#17becf", "rejected": "#7f7f7f"}


def hypotheses_frame(latest: list[dict] | None) -> pd.DataFrame:
    rows = [{"cause": h.get("cause"), "target": text.target_text(h.get("target")), "confidence": h.get("confidence"),
             "evidence": "; ".join(h.get("evidence") or []), "source": h.get("source")} for h in latest or []]
    return pd.DataFrame(rows, columns=["cause", "target", "confidence", "evidence", "source"])


def actions_frame(actions: list[dict] | None) -> pd.DataFrame:
    rows = []
    for a in sorted(actions or [], key=text.last_event_tick, reverse=True):
        ap = a.get("approval") or {}
        rows.append({"id": a.get("id"), "tick": a.get("tick"), "action": a.get("action"),
                     "target": text.target_text(a.get("target")), "status": a.get("status"), "outcome": a.get("outcome"),
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


def commands_frame(log: list[dict] | None, limit: int = 10) -> pd.DataFrame:
    rows = [{k: e.get(k) for k in ("processed_at", "command", "action_id", "by", "result", "message")}
            for e in reversed((log or [])[-limit:])]
    return pd.DataFrame(rows, columns=["processed_at", "command", "action_id", "by", "result", "message"])


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
    cols = ["tick", "time", "success_rate", "first_attempt_success_rate", "baseline_success_rate"]
    df = pd.DataFrame([{c: t.get(c) for c in cols} for t in trend or []], columns=cols)
    df["time"] = pd.to_datetime(df["time"], utc=True, errors="coerce")
    return df


def _x(trend: list[dict] | None) -> tuple[str, str]:
    """The time axis: a replay's own timestamps when the trend carries them, else ticks."""
    rows = trend or []
    return ("time:T", "time (UTC, from the data)") if rows and all(t.get("time") for t in rows) else ("tick:Q", "tick")


def incidents_frame(incidents: list[dict] | None) -> pd.DataFrame:
    cols = ["id", "start", "end", "cause", "where", "confidence", "attempts", "lost (est.)", "recommendation"]
    rows = [{"id": i.get("id"), "start": i.get("start"), "end": i.get("end") or "open", "cause": i.get("cause"),
             "where": text.target_text(i.get("target")), "confidence": i.get("confidence"),
             "attempts": i.get("affected_attempts"), "lost (est.)": i.get("approvals_lost_est"),
             "recommendation": text.advice_text(i.get("recommendation"))} for i in incidents or []]
    return pd.DataFrame(rows, columns=cols)


def incident_markers(incidents: list[dict] | None) -> pd.DataFrame:
    """Rules at each incident's start (detected) and end, on the data's time axis."""
    rows = []
    for i in incidents or []:
        what = f"{i.get('id')} {str(i.get('cause', '?')).replace('_', ' ')} at {text.target_text(i.get('target'))}"
        rows.append({"time": i.get("start"), "event": "detected", "label": what})
        if i.get("end"):
            rows.append({"time": i["end"], "event": "restored", "label": f"{what} ended"})
    df = pd.DataFrame(rows, columns=["time", "event", "label"])
    df["time"] = pd.to_datetime(df["time"], utc=True, errors="coerce")
    return df.dropna(subset=["time"])


def markers(trend: list[dict] | None, actions: list[dict] | None) -> pd.DataFrame:
    """Vertical-rule events inside the trend's span: faults detected, actions taken, ended or held."""
    ticks = [t.get("tick") for t in trend or [] if t.get("tick") is not None]
    rows = []
    for t in trend or []:
        for d in t.get("detected") or []:
            rows.append({"tick": t["tick"], "event": "detected",
                         "label": f"detected {d.get('cause', '?').replace('_', ' ')} at {text.target_text(d.get('target'))}"})
    for a in actions or []:
        what = f"{a.get('id')} {a.get('action', '?').replace('_', ' ')} {text.target_text(a.get('target'))}"
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


def _rules(marks: pd.DataFrame, x: str = "tick:Q") -> alt.Chart:
    events = [e for e in EVENT_COLORS if e in set(marks["event"])] or ["detected"]
    return alt.Chart(marks).mark_rule(strokeWidth=2, opacity=0.8).encode(
        x=x, color=alt.Color("event:N", scale=alt.Scale(domain=events, range=[EVENT_COLORS[e] for e in events]),
                             legend=alt.Legend(title=None, orient="bottom", columns=3, labelLimit=220)),
        strokeDash=alt.condition(alt.datum.event == "detected", alt.value([4, 3]), alt.value([1, 0])),
        tooltip=[x, "event:N", "label:N"])


def success_trend_chart(trend: list[dict] | None, actions: list[dict] | None,
                        incidents: list[dict] | None = None) -> alt.LayerChart:
    """Success and first-attempt rates per tick, the baseline dashed, detections and actions as rules; a replay
    on its own time axis, with its incidents as rules."""
    df = trend_frame(trend)
    x, title = _x(trend)
    names = {"success_rate": "success rate", "first_attempt_success_rate": "first attempt",
             "baseline_success_rate": "baseline"}
    key = x.split(":")[0]
    long = df.drop(columns=["time" if key == "tick" else "tick"]).rename(columns=names).melt(
        key, list(names.values()), var_name="series", value_name="rate").dropna()
    marks = incident_markers(incidents) if key == "time" else markers(trend, actions)
    lines = alt.Chart(long).mark_line().encode(
        x=alt.X(x, title=title), y=alt.Y("rate:Q", axis=alt.Axis(format="%"), scale=alt.Scale(zero=False),
                                         title="success rate (last window)"),
        color=alt.Color("series:N", scale=alt.Scale(domain=list(names.values()), range=["#1f77b4", "#aec7e8", "#555555"]),
                        legend=alt.Legend(orient="top", title=None)),
        strokeDash=alt.condition(alt.datum.series == "baseline", alt.value([5, 4]), alt.value([1, 0])),
        tooltip=[x, "series:N", alt.Tooltip("rate:Q", format=".1%")])
    return (alt.layer(lines, _rules(marks, x)).resolve_scale(color="independent", strokeDash="independent")
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
