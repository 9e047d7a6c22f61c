"""Display: the operator's page (`streamlit run dashboard.py`), redrawn every 2 seconds.

Reads state/*.json (cached by modification time, the last good copy kept when a
file is missing or half-written) and shows what the agent sees, why it acted or
did not, and what waits for a human. Its only write is an operator command
(approve, reject, pause, resume), signed with the shared secret and dropped by
state_writer.write_command for worker.py to apply. Never imports the agent or the
executor and never changes routing itself; its text comes from explainability, its
tables and charts are pure functions here that tests call on fixture state.

Access: a request under a Host that is not a loopback name is refused (DNS rebinding);
the page is read-only until it is opened with the token printed on this process's
stderr at start (`?token=...`, remembered for the session, never shown); approvals
are recorded as the OS user running the dashboard, or the signed-in user where
Streamlit's OIDC login is configured. Every value from state is shown as text
(escaped Markdown, st.text, tables), never as Markdown or HTML of its own.

    python dashboard.py [--state-dir DIR] [--port N]     # prints the link with the token, serves on 127.0.0.1
    streamlit run dashboard.py -- --state-dir DIR        # prints it when the first session starts

State folder: --state-dir DIR, else $PAYOPS_STATE_DIR, else ./state.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import streamlit as st

import command_auth
import dashboard_access
import dashboard_text as explain
from dashboard_gate import access, announce, take_token
from dashboard_charts import (
    actions_frame,
    commands_frame,
    effectiveness_frame,
    error_mix_chart,
    hypotheses_frame,
    incidents_frame,
    issuer_chart,
    latency_chart,
    success_trend_chart,
)
from state_writer import read_json, write_command

REFRESH_S = 2
REQUIRED = ("status.json", "metrics.json", "hypotheses.json", "actions.json", "learning.json")
OPTIONAL = ("simulator.json", "commands.json", "incidents.json")   # live mode; shadow mode
E = explain.esc                   # any value from state inside Markdown (captions, alerts, metrics) goes through E


# -- the page -------------------------------------------------------------------------------


def state_dir() -> Path:
    ap = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    ap.add_argument("--state-dir")
    args, _ = ap.parse_known_args()
    return Path(args.state_dir or os.environ.get("PAYOPS_STATE_DIR") or "state")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@st.cache_data(max_entries=64, show_spinner=False)
def _read(path: str, mtime_ns: int, size: int) -> dict | None:
    """One parsed file; modification time and size are the cache key, so a new write is read once."""
    return read_json(path)


def load(folder: Path) -> tuple[dict[str, dict] | None, list[str], float | None]:
    """(documents, warnings, seconds since the newest write); documents is None when there is no state at all."""
    good: dict = st.session_state.setdefault("last_good", {})
    docs, warnings, newest = {}, [], None
    for name in REQUIRED + OPTIONAL:
        try:
            stat = (folder / name).stat()
        except OSError:
            doc, problem = None, "is missing"
        else:
            newest = max(newest or 0.0, stat.st_mtime)
            doc = _read(str(folder / name), stat.st_mtime_ns, stat.st_size)
            problem = None if doc is not None else "is half-written or corrupt"
        if doc is not None:
            good[name] = doc
        elif name in REQUIRED or name in good or problem != "is missing":
            kept = good.get(name)
            warnings.append(f"`{name}` {problem}: " + (f"showing the last good copy (tick {E(kept.get('tick'))})."
                                                      if kept else "its sections wait for the next good write."))
        docs[name] = good.get(name) or {}
    if newest is None and not any(n in good for n in REQUIRED):
        return None, [], None
    return docs, warnings, None if newest is None else max(0.0, time.time() - newest)


def send(folder: Path, kind: str, action: dict | None = None) -> None:
    """Button callback: drop one signed command for the worker and remember it, so the page can show its fate."""
    key, by, why = access(folder)
    if key is None or by is None:
        st.session_state["sent"] = {"error": f"Not sent: {E(why)}."}
        return
    path = write_command(folder, explain.make_command(kind, by, utc_now(), action), key)
    st.session_state["sent"] = {"id": path.stem, "command": kind, "action_id": (action or {}).get("id")}


def welcome(folder: Path) -> None:
    st.info(f"No agent state yet in `{folder}/`. Start the agent in another terminal; this page picks it up "
            f"within {REFRESH_S} seconds.")
    st.markdown("**Live:** a simulated payment stream, a tick per second, with faults injected at random:")
    st.code("python worker.py", language="bash")
    st.markdown("**Or the replay demo** (228 ticks in a few seconds, leaves its end state behind):")
    st.code("python run.py", language="bash")
    st.caption("Another folder? `streamlit run dashboard.py -- --state-dir DIR` or set PAYOPS_STATE_DIR.")


def header(docs: dict, age: float | None) -> None:
    status, hyp = docs["status.json"], docs["hypotheses.json"]
    cells = explain.headline(docs["metrics.json"].get("summary"), status.get("tick_seconds"))
    cols = st.columns(4) + st.columns(4)
    for col, m in zip(cols, cells):
        col.metric(m["label"], m["value"], m["delta"], delta_color=m["delta_color"], help=m["help"])
    label, detail = explain.agent_status(status, age)
    cols[6].metric("Agent", E(label))
    cols[6].caption(E(detail))
    llm, why = explain.llm_status(hyp.get("llm"), hyp.get("latest"))
    cols[7].metric("LLM", E(llm))
    cols[7].caption(E(why))
    st.caption(f"tick {E(status.get('tick'))} · {E(status.get('mode', '?'))} mode · "
               f"updated {explain.age_text(age or 0)} ago · refreshes every {REFRESH_S} s")


def story(docs: dict) -> None:
    s = explain.situation(docs["hypotheses.json"], docs["actions.json"])
    with st.container(border=True):
        for col, (title, key) in zip(st.columns(3), (("What is wrong", "wrong"), ("What the agent did", "did"),
                                                      ("Waiting for you", "waiting"))):
            col.markdown(f"**{title}**")
            col.markdown("\n".join(f"- {E(line)}" for line in s[key]))


def approvals(folder: Path, docs: dict, live: bool) -> None:
    st.subheader("Approval queue")
    key, by, why = access(folder)
    can = key is not None and by is not None
    paused = docs["status.json"].get("paused") or docs["status.json"].get("state") == "paused"
    c1, c2 = st.columns([1, 3])
    if can:
        c1.button("Resume automation" if paused else "Pause automation", key="pause-switch", disabled=not live,
                  on_click=send, args=(folder, "resume" if paused else "pause"))
    else:
        c1.info(f"Read-only: {E(why)}.")
    c2.caption("Paused: the agent observes and reasons, and every decision waits here for you." if paused else
               "Running: low-risk actions run on their own; high-risk ones wait here for you.")
    sent, log = st.session_state.get("sent"), docs["commands.json"].get("log") or []
    if sent and "error" in sent:
        st.error(sent["error"])
        sent = None
    if sent:
        done = next((e for e in reversed(log) if isinstance(e, dict) and e.get("id") == sent["id"]), None)
        what = E(f"{sent['command']} {sent['action_id'] or ''}".strip())
        if done is None:
            st.info(f"Sent {what}; waiting for the worker to pick it up.")
        elif done.get("result") == "accepted":
            st.success(f"{what}: {E(done.get('message'))}")
        else:
            st.error(f"{what}: {E(done.get('message'))}")
    if not live:
        st.caption("The worker is not running: approvals and the pause switch need `python worker.py`.")
    pending = docs["actions.json"].get("pending") or []
    if not pending:
        st.write("Nothing waits for approval.")
    for a in pending:
        with st.container(border=True):
            st.markdown(f"**{E(explain.action_text(a))}**")
            st.markdown(f"Risk **{a.get('risk', 0):.2f}** · confidence {a.get('confidence', 0):.2f} · "
                        f"cause {E(a.get('cause'))} · proposed at tick {E(a.get('tick'))}  \n"
                        f"Expected effect: {E(explain.expected_text(a.get('expected')))}  \n"
                        f"Why it waits: {E('; '.join(map(str, a.get('guardrails') or [])) or 'needs a human')}")
            st.caption(E(a.get("explanation", "")))
            if not can:
                continue
            waiting = bool(sent and sent["action_id"] == a["id"] and not any(e.get("id") == sent["id"] for e in log))
            b1, b2, _ = st.columns([1, 1, 4])
            b1.button("Approve", key=f"approve-{a['id']}", type="primary", disabled=waiting or not live,
                      on_click=send, args=(folder, "approve", a))
            b2.button("Reject", key=f"reject-{a['id']}", disabled=waiting or not live,
                      on_click=send, args=(folder, "reject", a))


def charts(docs: dict) -> None:
    m, actions = docs["metrics.json"], docs["actions.json"].get("actions")
    st.subheader("Traffic")
    top, bottom = st.columns(2), st.columns(2)
    top[0].markdown("**Success rate over time** (dashed rules: faults detected; solid: actions)")
    top[0].altair_chart(success_trend_chart(m.get("trend"), actions))
    top[1].markdown("**First-attempt success by issuer** (black tick: baseline; grey: too thin to judge)")
    top[1].altair_chart(issuer_chart(m.get("issuers")))
    bottom[0].markdown("**Latency by processor** (p50 dashed, p95 solid; rules: actions)")
    bottom[0].altair_chart(latency_chart(m.get("trend"), actions))
    bottom[1].markdown("**Error code mix** (last window)")
    bottom[1].altair_chart(error_mix_chart(m.get("error_codes")))


def show_table(frame: pd.DataFrame, empty_text: str) -> None:
    if frame.empty:
        st.write(empty_text)
    else:
        st.dataframe(frame, hide_index=True)


def reasoning(docs: dict) -> None:
    hyp, act = docs["hypotheses.json"], docs["actions.json"]
    st.subheader("Hypotheses")
    show_table(hypotheses_frame(hyp.get("latest")), "None this tick: every measured slice is within its baseline.")
    st.subheader("Current decision")
    exp = act.get("explanation") or {}
    st.markdown(f"**{E(explain.decision_verdict(act.get('decision')))}**")
    st.markdown(f"Observation: {E(exp.get('observation', 'n/a'))}  \nDecision: {E(exp.get('decision', 'n/a'))}")
    g, t = st.columns(2)
    g.markdown("**Guardrails that fired**\n" + "\n".join(f"- {E(x)}" for x in exp.get("guardrails") or ["none"]))
    t.markdown("**Trade-offs weighed, alternatives rejected**\n"
               + "\n".join(f"- {E(x)}" for x in exp.get("tradeoffs") or ["none: no alternative was on the table"]))
    latest = max(act.get("actions") or [], key=lambda a: a.get("tick", 0), default=None)
    if latest:
        st.caption(f"Latest action decision, {E(latest.get('id'))} at tick {E(latest.get('tick'))}: "
                   f"{E(latest.get('explanation'))}")


def history(docs: dict) -> None:
    st.subheader("Action history")
    show_table(actions_frame(docs["actions.json"].get("actions")), "No action yet.")
    st.subheader("Learning")
    learn = docs["learning.json"]
    level, lines = explain.caution(learn.get("signal"))
    c1, c2 = st.columns([1, 3])
    c1.metric("Caution level", E(level))
    c2.markdown("\n".join(f"- {E(x)}" for x in lines) or "No recent harm: the usual confidence thresholds apply.")
    show_table(effectiveness_frame(learn.get("effectiveness")), "No judged action yet.")
    st.markdown("**Latest learning summary**")
    st.text(explain.summary_text(learn.get("summary")))     # LLM text: shown as plain text, never markdown or HTML
    log = docs["commands.json"].get("log")
    if log:
        st.subheader("Operator commands")
        st.dataframe(commands_frame(log), hide_index=True)
    sim = docs["simulator.json"]
    if sim:
        with st.expander("Injected fault (ground truth for people; the agent never reads it)"):
            st.json({k: v for k, v in sim.items() if k not in ("schema_version", "generated_at")})


def incidents(docs: dict, live: bool = False) -> None:
    """What the agent raised (shadow mode: would have raised), and one incident's drill-down with its note."""
    doc = docs["incidents.json"]
    items = doc.get("incidents") or []
    if live:
        st.subheader("Incidents")
        st.caption(f"{E(doc.get('open', 0))} open. Each hypothesis held over time, with the action the agent took or "
                   "proposed for it and a note for people: Gemini's when it is on, else a template. Nothing the agent "
                   "decides reads them.")
    else:
        st.subheader(f"Incidents ({E(doc.get('open', 0))} open at data time {E(doc.get('time') or '?')})")
        st.caption("Shadow mode: the agent replays a payment log and advises; nothing is applied.")
    show_table(incidents_frame(items), "No incident: every measured segment stayed within its baseline.")
    if items:
        ids = [str(i.get("id")) for i in items]
        pick = st.selectbox("Explain incident", ids, index=len(ids) - 1, key="incident")
        inc = next(i for i in items if str(i.get("id")) == pick)
        st.text("\n".join(explain.incident_lines(inc)))       # data and LLM text: plain text, never markdown


def shadow_page(docs: dict, age: float | None) -> None:
    m = docs["metrics.json"]
    for section in (lambda: header(docs, age), lambda: incidents(docs),
                    lambda: st.altair_chart(success_trend_chart(m.get("trend"), None,
                                                                docs["incidents.json"].get("incidents"))),
                    lambda: st.altair_chart(issuer_chart(m.get("issuers"))),
                    lambda: show_table(hypotheses_frame(docs["hypotheses.json"].get("latest")), "No hypothesis now.")):
        try:
            section()
        except Exception as e:  # the edge: an odd document costs one section, never the page
            st.warning(f"Could not draw a section from the state files: {type(e).__name__}: {E(str(e)[:300])}")


@st.fragment(run_every=REFRESH_S)
def live_page(folder: Path) -> None:
    docs, warnings, age = load(folder)
    if docs is None:
        welcome(folder)
        return
    for w in warnings:
        st.warning(w)
    audit = docs["status.json"].get("audit")
    if isinstance(audit, dict) and audit.get("ok") is False:
        st.error(f"Audit log broken: {E(str(audit.get('message') or 'no detail given')[:300])}. Automation is paused; "
                 "see the README (audit log) before resuming.")
    if docs["status.json"].get("mode") == "shadow":
        shadow_page(docs, age)
        return
    label, detail = explain.agent_status(docs["status.json"], age)
    if age is not None and age > explain.STALE_AFTER_S:
        st.error(f"The worker is not running: the state was last written {explain.age_text(age)} ago ({E(detail)}). "
                 "Start it with `python worker.py`; below is the last state it left.")
    elif label == "paused":
        st.warning("Automation is paused: the agent observes and reasons, but executes nothing on its own.")
    is_live = label in ("running", "paused")
    for section in (lambda: header(docs, age), lambda: story(docs), lambda: approvals(folder, docs, is_live),
                    lambda: charts(docs), lambda: reasoning(docs),
                    lambda: incidents(docs, live=True) if docs["incidents.json"] else None, lambda: history(docs)):
        try:
            section()
        except Exception as e:  # the edge: an odd document costs one section, never the page
            st.warning(f"Could not draw a section from the state files: {type(e).__name__}: {E(str(e)[:300])}")


def main() -> None:
    st.set_page_config(page_title="Payment ops agent", layout="wide")
    extra = dashboard_access.extra_hosts(os.environ.get(dashboard_access.HOSTS_ENV))
    if not dashboard_access.host_allowed(st.context.headers.get("host"), extra):
        st.error("Refused: this page answers only as localhost, 127.0.0.1 or [::1]; a request under another name may "
                 f"be a DNS-rebinding attack. To allow a name on purpose, list it in {dashboard_access.HOSTS_ENV}.")
        st.stop()
    st.title("Payment operations agent")
    folder = state_dir()
    take_token()
    key, by, how = access(folder)
    st.sidebar.caption(f"State folder: {E(folder)}")
    if by:
        st.sidebar.caption(f"Approvals are recorded as **{E(by)}** ({E(how)}).")
    else:
        st.sidebar.caption(f"Read-only: {E(how)}.")
    st.sidebar.caption("Approve and Reject write a signed command file into state/commands/; the worker applies it on "
                       "its next tick, at most once, and refuses unsigned, stale or repeated commands.")
    live_page(folder)


def launch(argv: list[str]) -> None:
    """`python dashboard.py`: print the link with the token on stderr, then serve the page on 127.0.0.1 only."""
    ap = argparse.ArgumentParser(description="The operator page on 127.0.0.1; its access link is printed here.")
    ap.add_argument("--state-dir", default=None)
    ap.add_argument("--port", type=int, default=8501)
    args = ap.parse_args(argv)
    folder = Path(args.state_dir or os.environ.get("PAYOPS_STATE_DIR") or "state")
    try:
        announce(command_auth.load_or_create_key(folder), args.port)
    except command_auth.KeyRefused as e:
        print(f"dashboard: {e}; the page will be read-only", file=sys.stderr, flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", __file__, "--server.address", "127.0.0.1",
                              "--server.port", str(args.port), "--server.headless", "true",
                              "--browser.gatherUsageStats", "false", "--", "--state-dir", str(folder)])


if __name__ == "__main__":
    if st.runtime.exists():
        main()
    else:
        launch(sys.argv[1:])
