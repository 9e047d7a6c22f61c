"""Shadow mode's report and state: what a replay found, as JSON for tools and the dashboard, and as text.

The report (run.py --replay FILE --report OUT) holds the source and how it was read, the
period (times from the data), the rows read, used and rejected by reason, the universe the
data described, every incident with its recommendation, and the first sighting of each
hypothesis. The state documents let `streamlit run dashboard.py` show a replay (mode
`shadow`) with the data's own timestamps.

Pure: a finished (or running) ShadowRun and the source's facts in, dicts and text out.
"""
from __future__ import annotations

import sys

from formatting import target_text, text_table
from incident_notes import template_note

REPORT_SCHEMA_VERSION = 1
HISTORY = 720


def source_facts(source) -> dict:
    return {"file": source.path, "format": source.format, "format_reason": source.format_reason,
            "shape": source.shape, "roles": dict(source.roles), "dims": list(source.dims),
            "tick_reason": getattr(source, "tick_reason", None)}


def period(source) -> dict:
    return {"start": iso(source.start), "end": iso(source.end), "tick_seconds": source.tick_seconds}


def iso(t) -> str:
    return t.isoformat().replace("+00:00", "Z")


def universe_facts(run) -> dict:
    u = run.universe
    return {d: {"values": len(names), "tracked": [n for n in names if n not in ("(other)", "(all)")][:50],
                "pooled": "(other)" in names, "absent": names == ("(all)",)} for d, names in u.values}


def totals(run) -> dict:
    s = [t for t in run.trend]
    return {"ticks": len(s), "incidents": len(run.tracker.incidents),
            "open_incidents": len(run.tracker.open_incidents()),
            "approvals_lost_est": round(sum(i.approvals_lost_est for i in run.tracker.incidents), 1)}


def build_report(run, source, llm_status: dict | None = None) -> dict:
    return {
        "schema_version": REPORT_SCHEMA_VERSION, "mode": "shadow", "source": source_facts(source),
        "period": period(source), "rows": source.rows.to_dict(), "universe": universe_facts(run),
        "incidents": [i.to_dict() for i in run.tracker.incidents],
        "hypotheses": sorted(({k: v for k, v in h.items() if k in ("tick", "time", "cause", "target", "confidence",
                                                                   "source")} for h in run.first_seen.values()),
                             key=lambda h: (h["tick"], h["cause"])),
        "totals": totals(run), "llm": llm_status or {"enabled": False},
    }


def with_note(inc: dict, as_of: str) -> dict:
    """An incident still without its note (the replay runs on) shows the template's, as of now."""
    return inc if inc.get("note") else {**inc, "note": template_note(inc, as_of)}


def state_documents(run, source, state: str, llm_status: dict | None = None) -> dict[str, dict]:
    """The dashboard's files for a replay: metrics with the data's times, hypotheses, incidents, status."""
    snap, tick = run.last, (run.trend[-1]["tick"] if run.trend else 0)
    u = run.universe
    issuers = []
    if snap is not None:
        min_n = run.settings.localise.min_payments
        for i, name in enumerate(u.issuer_names[:40]):
            w, b = snap.window.slice({"issuer": i}), snap.baseline.slice({"issuer": i})
            issuers.append({"issuer": name, "payments": w.payments, "first_attempt_success_rate": w.first_attempt_rate,
                            "success_rate": w.success_rate, "baseline_first_attempt_success_rate": b.first_attempt_rate,
                            "thin": w.payments < min_n})
    processors = [] if snap is None else [
        {"processor": p, "p50_ms": snap.window.latency_quantiles(i)[0], "p95_ms": snap.window.latency_quantiles(i)[1],
         "p99_ms": snap.window.latency_quantiles(i)[2],
         "first_attempt_success_rate": snap.window.slice({"processor": i}).first_attempt_rate}
        for i, p in enumerate(u.processor_names[:40])]
    latest = [h.to_dict() for h in run.last_hypotheses]
    return {
        "status.json": {"tick": tick, "policy": "shadow", "state": state, "mode": "shadow",
                        "tick_seconds": source.tick_seconds, "time": run.trend[-1]["time"] if run.trend else None,
                        "period": period(source), "source": source_facts(source)},
        "metrics.json": {"tick": tick, "summary": run.trend[-1] if run.trend else {}, "issuers": issuers,
                         "processors": processors,
                         "error_codes": {} if snap is None else snap.window.code_mix(u.code_axis.labels),
                         "trend": run.trend[-HISTORY:]},
        "hypotheses.json": {"tick": tick, "latest": latest, "history": list(run.first_seen.values())[-200:],
                            "llm": llm_status or {"enabled": False}},
        "incidents.json": {"tick": tick, "time": run.trend[-1]["time"] if run.trend else None,
                           "incidents": [with_note(i.to_dict(), run.trend[-1]["time"] if run.trend else "")
                                         for i in run.tracker.incidents[-500:]],
                           "open": len(run.tracker.open_incidents())},
        "actions.json": {"tick": tick, "decision": None,
                         "explanation": {"decision": "Shadow mode: the agent advises and never acts; see incidents."},
                         "actions": [], "decisions": [], "pending": []},
        "learning.json": {"tick": tick, "effectiveness": {}, "signal": {}, "memory": [], "summary": None},
    }


INCIDENT_COLS = [("id", "id", "s"), ("start", "start", "s"), ("end", "end", "s"), ("cause", "cause", "s"),
                 ("target", "where", "s"), ("confidence", "conf", "s"), ("affected_attempts", "attempts", "n"),
                 ("approvals_lost_est", "lost (est.)", "s"), ("advice", "recommendation", "s")]


def advice(inc: dict) -> str:
    r = inc.get("recommendation")
    if not r:
        return "none"
    gate = "needs approval" if r["requires_human_approval"] else "automatic"
    to = r["params"].get("to_processor")
    return f"{r['action']}{' to ' + to if to else ''} ({gate}, risk {r['risk']:.2f})"


def print_report(report: dict, out=None) -> None:
    p = lambda *a: print(*a, file=out or sys.stdout)   # noqa: E731 (sys.stdout at call time)
    src, per, rows = report["source"], report["period"], report["rows"]
    p(f"\n=== Shadow mode: {src['file']} ===\n")
    p(f"Read as {src['format']} ({src['format_reason']}); {src['shape']} rows; dimensions: {', '.join(src['dims']) or 'none'}")
    p(f"Period {per['start']} to {per['end']}, ticks of {per['tick_seconds']:g} s ({src.get('tick_reason')})")
    rejected = rows["rejected"]
    p(f"Rows: read {rows['read']:,}, used {rows['used']:,}, rejected {sum(rejected.values()):,}"
      + (": " + "; ".join(f"{k} {v:,}" for k, v in sorted(rejected.items(), key=lambda kv: -kv[1])) if rejected else ""))
    pooled = [d for d, f in report["universe"].items() if f["pooled"]]
    p("Universe: " + ", ".join(f"{d} {f['values']}" for d, f in report["universe"].items() if not f["absent"])
      + (f" (busiest tracked, the rest pooled: {', '.join(pooled)})" if pooled else ""))
    incs = report["incidents"]
    p(f"\nIncidents the agent would have raised: {len(incs)}")
    if incs:
        p(text_table([{**i, "target": target_text(i["target"]), "confidence": f"{i['confidence']:.2f}",
                       "end": i["end"] or "open", "approvals_lost_est": f"{i['approvals_lost_est']:,.0f}",
                       "advice": advice(i)} for i in incs], INCIDENT_COLS))
        for i in incs:
            p(f"  {i['id']} {i['cause']} at {target_text(i['target'])}: {'; '.join(i['evidence'])}")
            r = i.get("recommendation")
            if r:
                p(f"      would {r['action']} {target_text(r['target'])} {r['params']}: {'; '.join(r['reasons'])}")
            elif i.get("no_recommendation_reason"):
                p(f"      no recommendation: {i['no_recommendation_reason']}")
            if i.get("note"):
                p(f"      note ({i['note'].get('source')}): {i['note'].get('text')}")
    t = report["totals"]
    p(f"\n{t['ticks']:,} ticks replayed; {t['incidents']} incidents ({t['open_incidents']} still open at the end); "
      f"~{t['approvals_lost_est']:,.0f} first-attempt approvals lost during them (against each slice's own baseline). "
      f"Nothing was applied: shadow mode advises only.")
