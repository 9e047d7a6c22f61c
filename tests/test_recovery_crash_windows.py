"""Issue 11 part 1: a kill at any audit-line boundary, then a restart from the state folder as it was left.

One scripted live run (LiveLoop in-process: an automatic retry policy, approvals held for a human, an
operator's approval, pause and resume through command files, rollbacks) copies its state folder right
after each audit line is written and again just before the next one: each copy is exactly what a
kill -9 at that moment leaves. Every copy is restarted and run on for a guard window and more; the
worker must start and tick without errors, apply no action twice, lose or expire no approval, lose no
pause, keep who approved what and when, and run nothing that needs a human without an approval
recorded before it.
"""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow      # a restart after a kill at every audit line (kill tests run in the full suite)

import audit_trust
from actions import Status
from clock import utc_now
from command_auth import load_or_create_key
from live_run import live, run_ticks
from recovery import last_pause, replay_audit
from state_writer import GENESIS, AuditLog, _line_hash, read_audit, read_json, write_command

ROOT = Path(__file__).resolve().parent.parent
TICKS = 160


def command(state, kind):
    write_command(state, {"command": kind, "by": "ops", "issued_at": utc_now()}, load_or_create_key(state))


@pytest.fixture(scope="module")
def crash_points(tmp_path_factory):
    """The reference run; returns (state folder copies keyed by (lines written, early or late), its log)."""
    base = tmp_path_factory.mktemp("crash")
    state, snaps = base / "state", base / "snaps"
    state.mkdir()
    copies = {}

    def copy(seq, when):
        copies[seq, when] = shutil.copytree(state, snaps / f"{seq:04d}-{when}", ignore=shutil.ignore_patterns(".lock"))

    class CopyingAuditLog(AuditLog):
        def append(self, event):
            copy(self.seq, "late")                      # the latest moment: state as written before the next line
            line = super().append(event)
            copy(self.seq, "early")                     # the earliest: the line is on disk, nothing after it
            return line

    real = audit_trust.AuditLog
    audit_trust.AuditLog = CopyingAuditLog
    try:
        loop = live(state)
        run_ticks(loop, 100)
        run_ticks(loop, 35, approve_first_pending=True)
        command(state, "pause")
        run_ticks(loop, 10)
        command(state, "resume")
        run_ticks(loop, TICKS - 145)
        copy(loop.audit.seq, "late")
    finally:
        audit_trust.AuditLog = real
    return copies, read_audit(state / "audit.jsonl")


def test_the_reference_run_has_every_kind_of_event(crash_points):
    _, events = crash_points
    kinds = {(e["event"], e.get("action_type"), e.get("who")) for e in events}
    assert ("action_executed", "retry_policy", "agent") in kinds
    assert ("action_pending_approval", "suppress", "agent") in kinds
    assert ("action_approved", "suppress", "operator") in kinds
    assert any(e["event"] == "action_rolled_back" for e in events)
    assert {"pause", "resume"} <= {e["event"] for e in events}
    still_pending = set(e["action_id"] for e in events if e["event"] == "action_pending_approval") - set(
        e["action_id"] for e in events if e["event"] in ("action_approved", "action_rejected", "action_expired"))
    assert still_pending, "one approval is left pending across the run's end"


def check_restart(copy: Path, workdir: Path) -> dict:
    """Restart from a copy left by a kill, run 8 ticks (a guard window and more), check every guarantee."""
    shutil.copytree(copy, workdir)
    before = read_audit(workdir / "audit.jsonl")
    last = replay_audit(before)[1]
    pending_at_kill = {i for i, e in last.items() if e["status"] is Status.PENDING_APPROVAL}
    loop = live(workdir)
    if last_pause(before):
        assert loop.agent.paused, "an operator's pause was lost"
    run_ticks(loop, 8)
    assert loop.guard.total == 0, loop.guard.last                 # no tick failed after the restart
    assert not list(workdir.glob("*.invalid-*")), "the worker's own state failed its schemas"
    events = read_audit(workdir / "audit.jsonl")
    executed = [e["action_id"] for e in events if e["event"] == "action_executed"]
    assert len(executed) == len(set(executed)), "an action was applied twice"
    approved, held = set(), set()
    for e in events:
        if e["event"] == "action_pending_approval":
            held.add(e["action_id"])
        elif e["event"] == "action_approved":
            approved.add(e["action_id"])
        elif e["event"] == "action_executed" and (e["action_id"] in held or e.get("who") == "operator"
                                                  or (e.get("record") or {}).get("requires_human_approval")):
            assert e["action_id"] in approved, f"{e['action_id']} ran without a recorded approval"
    after = events[len(before):]
    ex = loop.agent.executor
    for action_id in pending_at_kill:
        assert not any(e["event"] == "action_expired" and e["action_id"] == action_id for e in after), action_id
        rec = ex.actions[action_id]
        assert rec.status in (Status.PENDING_APPROVAL, Status.EXECUTED, Status.ROLLED_BACK), (action_id, rec.status)
        assert time.time() - rec.proposed_at < 600, "a rebuilt approval lost its proposal time"
    for rec in ex.actions.values():
        if rec.id in approved and rec.status is not Status.PENDING_APPROVAL:
            assert rec.approval and rec.approval.get("by") == "ops" and rec.approval.get("at"), rec.id
        if rec.status is Status.EXECUTED:
            assert rec.judgeable and rec.explanation and rec.cause, rec.id
    assert replay_audit(events)[0] == ex.control
    return {"executed": len(executed), "pending_at_kill": len(pending_at_kill)}


def test_a_kill_at_every_audit_line_boundary_restarts_cleanly(crash_points, tmp_path):
    copies, events = crash_points
    assert len(copies) >= 2 * 12
    started = time.monotonic()
    for (n, when), copy in sorted(copies.items()):
        check_restart(copy, tmp_path / f"r{n:04d}-{when}")
    print(f"kill right after and just before each of {len(events)} audit lines: {len(copies)} restarts clean, "
          f"{time.monotonic() - started:.1f} s")


def rechain(path: Path, edit) -> dict:
    """Rewrite a log with each line edited by `edit`, chained again (what an old worker would have written)."""
    prev, out, key = GENESIS, [], load_or_create_key(path.parent)
    for e in read_audit(path):
        body = edit({k: v for k, v in e.items() if k != "hash"})
        body["prev"] = prev
        prev = _line_hash(prev, body, key)
        out.append(json.dumps({**body, "hash": prev}, sort_keys=True, separators=(",", ":")))
    path.write_text("\n".join(out) + "\n")
    return {"seq": len(out), "hash": prev}


def set_head(state: Path, head: dict) -> None:
    doc = read_json(state / "control_plane.json")
    if doc is not None:
        (state / "control_plane.json").write_text(json.dumps({**doc, "audit_head": head}))
    if (state / "audit_head.json").exists():
        (state / "audit_head.json").write_text(json.dumps({"schema_version": 1, "generated_at": "", **head}))


def test_old_audit_lines_fail_safe_an_applied_action_is_rolled_back_a_pending_one_keeps_its_time(crash_points,
                                                                                                 tmp_path):
    copies, events = crash_points
    auto = next(e for e in events if e["event"] == "action_executed" and e["action_type"] == "retry_policy")
    held = next(e for e in events if e["event"] == "action_pending_approval")
    for line, check in ((auto, "rolled back"), (held, "pending")):
        state = tmp_path / line["event"]
        shutil.copytree(copies[line["seq"], "early"], state)       # killed right after that line
        set_head(state, rechain(state / "audit.jsonl", lambda b: {k: v for k, v in b.items() if k != "record"}))
        loop = live(state)
        run_ticks(loop, 8)
        assert loop.guard.total == 0, loop.guard.last
        rec = loop.agent.executor.actions[line["action_id"]]
        if check == "rolled back":
            assert rec.status is Status.ROLLED_BACK and "baseline" in rec.end_reason
            assert any(e["event"] == "action_rolled_back" and e["action_id"] == rec.id
                       for e in read_audit(state / "audit.jsonl"))
        else:
            assert rec.status is Status.PENDING_APPROVAL and time.time() - rec.proposed_at < 600


@pytest.mark.slow
def test_worker_py_restarts_from_what_a_kill_after_an_automatic_execution_leaves(crash_points, tmp_path):
    """As a process: worker.py started on the copy a kill right after the retry policy's execution left."""
    copies, events = crash_points
    auto = next(e for e in events if e["event"] == "action_executed" and e["action_type"] == "retry_policy")
    shutil.copytree(copies[auto["seq"], "early"], tmp_path / "s")
    p = subprocess.run([sys.executable, "worker.py", "--state-dir", str(tmp_path / "s"), "--max-ticks", "12",
                        "--tick-seconds", "0.001", "--tps", "3000000", "--seed", "13", "--no-llm"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert read_json(tmp_path / "s" / "status.json")["tick_errors"]["total"] == 0
