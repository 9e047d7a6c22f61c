"""The operator page's words: status labels, headline metrics, the situation box, from parsed state documents.

Pure string building (no I/O, no clock: an age is passed in). Example:
agent_status({"state": "running"}, age_s=42) -> ("stale", "no update for 42 s: the worker is not running").
Never imports the agent; LLM text is returned as plain text for st.text, never markdown.
"""
from __future__ import annotations

from formatting import pct, target_text

MARKDOWN_PUNCTUATION = frozenset("\\`*_{}[]()<>#+-!|~$:&=.@")
STALE_AFTER_S = 10.0      # a worker writes every tick (1 s by default); 10 s of silence means it is gone


def esc(value) -> str:
    """Any value from state as literal text inside Markdown: each mark that Markdown, HTML or Streamlit's directives
    could read is backslash-escaped (CommonMark shows it as itself), so no link, image, tag or colour runs."""
    return "".join("\\" + c if c in MARKDOWN_PUNCTUATION else c for c in str(value))


def age_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def agent_status(status: dict | None, age_s: float | None, stale_after: float = STALE_AFTER_S) -> tuple[str, str]:
    """(label, detail): running, paused, stale, finished, stopped or waiting (a replay: replaying or replayed)."""
    if not status:
        return "waiting", "no status.json yet"
    state = status.get("state", "unknown")
    if status.get("mode") == "shadow":
        src = (status.get("source") or {}).get("file", "a log")
        when = status.get("time") or "?"
        return ("replayed" if state == "finished" else "replaying"), f"shadow mode, {src}, data time {when}"
    if state in ("finished", "stopped"):
        who = "the run.py demo" if status.get("mode") == "run" else "the worker"
        return state, f"{who} {state} at tick {status.get('tick')}"
    if age_s is not None and age_s > stale_after:
        return "stale", f"no update for {age_text(age_s)}: the worker is not running"
    if status.get("paused") or state == "paused":
        return "paused", "observes and reasons; nothing runs without approval"
    return state, f"tick {status.get('tick')}, {status.get('mode', '?')} mode"


def llm_status(llm: dict | None, latest: list[dict] | None = None) -> tuple[str, str]:
    """(label, detail): off, on, asking (the worker awaits an answer) or fallback (with the reason)."""
    llm = llm or {}
    if not llm.get("enabled"):
        return "off", "heuristics only"
    fallback_h = next((h for h in latest or [] if h.get("source") == "heuristic_fallback"), None)
    if llm.get("fallback") or llm.get("state") == "fallback" or fallback_h:
        why = (llm.get("fallback_reason") or llm.get("reason") or llm.get("error")
               or (fallback_h or {}).get("fallback_reason") or "reason not given")
        if why == "awaiting_reply":                # the worker asked in the background: not a failure
            return "asking", "Gemini asked in the background; heuristics until its answer is in"
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


def caution(signal: dict | None) -> tuple[str, list[str]]:
    """(level, reasons): how much more confidence the learner now demands, and for what."""
    sig = signal or {}
    lines = [f"{a.replace('_', ' ')}: +{v:.2f} confidence needed" for a, v in (sig.get("extra_confidence") or {}).items()]
    lines += [f"{c['action'].replace('_', ' ')} on {target_text(c.get('entity'))}: +{c['extra']:.2f}"
              for c in sig.get("target_caution") or []]
    top = max([*(sig.get("extra_confidence") or {}).values(), *(c["extra"] for c in sig.get("target_caution") or []), 0])
    level = "normal" if top == 0 else "raised" if top < 0.2 else "high"
    return level, lines


def summary_text(summary) -> str:
    """The learner's (LLM-written) summary as plain lines: helped, hurt, watch."""
    if not summary:
        return "none yet (written by the LLM summarizer when it is on)."
    if not isinstance(summary, dict):
        return str(summary)
    lines = [f"{key}: {item}" for key in ("helped", "hurt", "watch") for item in summary.get(key) or []]
    return "\n".join(lines) or str(summary.get("text", "nothing to report"))


def make_command(kind: str, by: str, issued_at: str, action: dict | None = None) -> dict:
    """The command document the dashboard asks state_writer.write_command to drop for the worker."""
    cmd = {"command": kind, "by": by, "issued_at": issued_at}
    if action is not None:
        cmd["action_id"] = action["id"]
        if kind == "approve":
            cmd["params_hash"] = shown_hash(action)
    return cmd


def shown_hash(action: dict) -> str:
    """The hash of the action type, target and parameters as the page shows them (actions.params_hash's formula),
    never the params_hash field beside them: whoever can write actions.json could show other parameters next to
    the real hash, and an approval would then run what was not shown. Shown and real differ: the worker refuses."""
    import hashlib
    import json
    blob = json.dumps({"action": action.get("action"), "target": action.get("target"), "params": action.get("params")},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def advice_text(rec: dict | None) -> str:
    """A shadow-mode recommendation in a line: 'reroute to beacon (automatic, risk 0.41)', or 'none'."""
    if not rec:
        return "none"
    to = (rec.get("params") or {}).get("to_processor")
    gate = "needs approval" if rec.get("requires_human_approval") else "automatic"
    if rec.get("status"):                                   # the live agent's action: where it stands now
        gate = f"{rec.get('action_id', '')} {str(rec['status']).replace('_', ' ')}".strip()
    return f"{rec.get('action')}{' to ' + str(to) if to else ''} ({gate}, risk {rec.get('risk', 0):.2f})"


def incident_lines(inc: dict) -> list[str]:
    """What a payment-ops engineer reads to understand one incident: where, since when, how large, why, what to do."""
    lines = [f"{str(inc.get('cause', '?')).replace('_', ' ')} at {target_text(inc.get('target'))}, "
             f"from {inc.get('start')} to {inc.get('end') or 'the end of the data (still open)'}",
             f"{inc.get('affected_attempts', 0):,} first attempts affected, ~{inc.get('approvals_lost_est', 0):,.0f} "
             f"approvals lost against the slice's own baseline; confidence {inc.get('confidence', 0):.2f}"]
    lines += [f"evidence: {e}" for e in inc.get("evidence") or []]
    lines += [f"also named as {str(a.get('cause')).replace('_', ' ')} at {target_text(a.get('target'))} "
              f"({a.get('ticks')} ticks)" for a in inc.get("also_named") or []]
    rec = inc.get("recommendation")
    if rec:
        lines.append(f"recommendation: {advice_text(rec)}, {rec.get('action')} {target_text(rec.get('target'))} "
                     f"{rec.get('params')}; expected {expected_text(rec.get('expected'))}")
        lines += [f"why: {r}" for r in rec.get("reasons") or []]
    else:
        lines.append(f"no recommendation: {inc.get('no_recommendation_reason') or 'none'}")
    if inc.get("note"):
        lines.append(note_line(inc["note"]))
    return lines


def note_line(note: dict) -> str:
    """'note (gemini, as of 12:06:00Z): ...': who wrote it and when; its text as plain text, never markdown."""
    when = f", as of {note['as_of']}" if note.get("as_of") else ""
    return f"note ({note.get('source', '?')}{when}): {note.get('text')}"
