"""Issue 11 part 2: the audit log is verified before it is trusted.

A forged appended line, an edited line, a cut tail: each is never replayed and never re-chained; the
broken log is kept aside byte for byte; automation pauses (approvals still work, a resume does not lift
it); status.json says "audit": {"ok": false, ...}; --verify-audit exits 1 until an operator runs
--accept-audit-break, after which the new chain records the acceptance and everything verifies.
"""
import json
import shutil

import pytest

import worker
from actions import Status
from command_auth import load_or_create_key
from live_run import live, run_ticks
from recovery import replay_audit
from schemas import AUDIT_SCHEMAS
from state_writer import GENESIS, _line_hash, read_audit, read_json, write_command


@pytest.fixture(scope="module")
def held_run(tmp_path_factory):
    """A state folder after 100 ticks: an automatic action ran and ended, two actions wait for a human."""
    state = tmp_path_factory.mktemp("held") / "state"
    state.mkdir()
    loop = live(state)
    run_ticks(loop, 100)
    assert loop.agent.executor.pending()
    return state


def forge_execution(path, held):
    """An action_executed line for a held action, appended without its chain (what issue 11 found went live)."""
    last = read_audit(path)[-1]
    line = {"event": "action_executed", "who": "operator", "action_id": held["action_id"],
            "action_type": held["action_type"], "target": held["target"], "params": held["params"],
            "params_hash": held["params_hash"], "seq": last["seq"] + 1, "prev": "0" * 64, "hash": "f" * 64,
            "ts": last["ts"], "result": "success"}
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


def edit_line(path, held):
    lines = path.read_text().splitlines()
    n = next(k for k, raw in enumerate(lines) if json.loads(raw).get("event") == "action_pending_approval")
    lines[n] = lines[n].replace('"who":"agent"', '"who":"operator"')
    path.write_text("\n".join(lines) + "\n")


def cut_tail(path, held):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-5]) + "\n")


def forge_chained(path, held, key=None):
    """A forger who recomputes the chain and the heads kept outside it. Without the key (sha256 only) the keyed chain
    breaks; with the key (an insider), replay still refuses an execution that no approval precedes."""
    events = read_audit(path)
    last = events[-1]
    body = {"event": "action_executed", "who": "operator", "action_id": held["action_id"],
            "action_type": held["action_type"], "target": held["target"], "params": held["params"],
            "params_hash": held["params_hash"], "seq": last["seq"] + 1, "prev": last["hash"], "ts": last["ts"],
            "result": "success"}
    h = _line_hash(last["hash"], body, key)
    with open(path, "a") as f:
        f.write(json.dumps({**body, "hash": h}, sort_keys=True, separators=(",", ":")) + "\n")
    head = {"seq": body["seq"], "hash": h}
    cp = read_json(path.parent / "control_plane.json")
    (path.parent / "control_plane.json").write_text(json.dumps({**cp, "audit_head": head}))
    (path.parent / "audit_head.json").write_text(json.dumps(head))


def verify_code(state):
    return worker.main(["--verify-audit", "--state-dir", str(state)])


@pytest.mark.parametrize("tamper", [forge_execution, edit_line, cut_tail], ids=["forged", "edited", "truncated"])
def test_a_broken_log_is_kept_aside_never_replayed_and_pauses_automation_until_accepted(held_run, tmp_path, tamper):
    state = tmp_path / "state"
    shutil.copytree(held_run, state, ignore=shutil.ignore_patterns(".lock"))
    log = state / "audit.jsonl"
    held = next(e for e in reversed(read_audit(log)) if e["event"] == "action_pending_approval")
    tamper(log, held)
    broken_bytes = log.read_bytes()
    assert verify_code(state) == 1

    loop = live(state)                                   # start: verify, set aside, new chain, pause
    assert not loop.trust.ok and loop.agent.paused
    aside = list(state.glob("audit.jsonl.broken-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == broken_bytes          # kept aside, untouched
    assert read_json(state / "audit_broken.json")["log"] == aside[0].name
    for name, schema in AUDIT_SCHEMAS.items():
        assert set(read_json(state / name)) == schema.__required_keys__, name
    new = read_audit(log)
    assert new[0]["event"] == "audit_chain_start" and new[0]["prev"] == GENESIS
    rec = loop.agent.executor.actions[held["action_id"]]
    assert rec.status is Status.PENDING_APPROVAL and held["action_id"] not in loop.agent.executor.applied
    assert held["action_id"] not in json.dumps(loop.agent.control.to_dict())   # the forged action never went live
    write_command(state, {"command": "resume", "by": "ops", "issued_at": worker.utc_now()}, load_or_create_key(state))
    run_ticks(loop, 3)
    status = read_json(state / "status.json")
    assert status["audit"]["ok"] is False and "\n" not in status["audit"]["message"]
    assert "--accept-audit-break" in status["audit"]["message"]
    resumed = [c for c in read_json(state / "commands.json")["log"] if c["command"] == "resume"]
    assert resumed and resumed[-1]["result"] == "refused"                    # said so to the operator, in one line
    assert "--accept-audit-break" in resumed[-1]["message"]
    assert status["paused"] is True, "a resume must not lift the pause while the log is broken"
    assert verify_code(state) == 1

    # approvals still work, recorded in the new chain before the execution
    assert loop.agent.approve(rec.id, "ops", loop.tick, worker.utc_now(), rec.params_hash).startswith("approved")
    run_ticks(loop, 1)
    events = read_audit(log)
    assert [e["event"] for e in events if e.get("action_id") == rec.id][-2:] == ["action_approved", "action_executed"]

    again = live(state)                                  # a restart before anyone acts: the new chain is replayed
    assert not again.trust.ok and again.agent.paused and len(list(state.glob("audit.jsonl.broken-*"))) == 1
    assert again.agent.executor.actions[rec.id].status is Status.EXECUTED
    assert replay_audit(read_audit(log))[0] == again.agent.control
    run_ticks(again, 1)

    assert worker.main(["--accept-audit-break", "reviewed the cut: a test", "--state-dir", str(state)]) == 0
    assert verify_code(state) == 0 and not (state / "audit_broken.json").exists()
    accepted = read_audit(log)[-1]
    assert accepted["event"] == "audit_break_accepted" and accepted["previous_log"] == aside[0].name
    assert aside[0].read_bytes() == broken_bytes
    after = live(state)
    assert after.trust.ok and after.agent.paused and "accepted" in after.paused_reason    # resuming is the operator's
    run_ticks(after, 1)
    assert read_json(state / "status.json")["audit"]["ok"] is True
    assert verify_code(state) == 0


def test_a_chain_recomputed_without_the_key_with_both_heads_moved_is_a_break(held_run, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(held_run, state, ignore=shutil.ignore_patterns(".lock"))
    held = next(e for e in reversed(read_audit(state / "audit.jsonl")) if e["event"] == "action_pending_approval")
    forge_chained(state / "audit.jsonl", held)                     # sha256 chain and both heads made to match
    assert verify_code(state) == 1
    loop = live(state)
    assert not loop.trust.ok and "keyed hash" in loop.trust.message
    assert held["action_id"] not in loop.agent.executor.applied and loop.agent.paused


def test_a_chained_forgery_of_an_execution_without_approval_is_not_replayed(held_run, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(held_run, state, ignore=shutil.ignore_patterns(".lock"))
    held = next(e for e in reversed(read_audit(state / "audit.jsonl")) if e["event"] == "action_pending_approval")
    forge_chained(state / "audit.jsonl", held, load_or_create_key(state))      # an insider who holds the key
    assert verify_code(state) == 0
    loop = live(state)
    assert loop.agent.executor.actions[held["action_id"]].status is Status.PENDING_APPROVAL
    assert held["action_id"] not in loop.agent.executor.applied
    assert held["action_id"] not in json.dumps(loop.agent.control.to_dict())


def test_an_intact_log_reports_ok_and_accepting_nothing_is_a_no_op(held_run, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(held_run, state, ignore=shutil.ignore_patterns(".lock"))
    loop = live(state)
    run_ticks(loop, 1)
    assert read_json(state / "status.json")["audit"] == {"ok": True, "message": loop.trust.message}
    assert read_json(state / "audit_head.json")["seq"] == read_audit(state / "audit.jsonl")[-1]["seq"]
    assert worker.main(["--accept-audit-break", "nothing", "--state-dir", str(state)]) == 0
    assert not list(state.glob("audit.jsonl.broken-*"))


def test_a_deleted_log_with_a_recorded_head_is_a_break(held_run, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(held_run, state, ignore=shutil.ignore_patterns(".lock"))
    (state / "audit.jsonl").unlink()
    assert verify_code(state) == 1
    loop = live(state)
    assert not loop.trust.ok and "missing" in loop.trust.message and loop.agent.paused
    assert loop.agent.executor.pending()                  # the state files' records survive


def broken_copy(held_run, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(held_run, state, ignore=shutil.ignore_patterns(".lock"))
    cut_tail(state / "audit.jsonl", None)
    return state


def test_a_kill_between_recording_the_break_and_renaming_the_log_is_completed_on_start(held_run, tmp_path):
    import audit_trust
    state = broken_copy(held_run, tmp_path)
    broken_bytes = (state / "audit.jsonl").read_bytes()
    real_rename = type(state).rename
    type(state).rename = lambda self, target: (_ for _ in ()).throw(KeyboardInterrupt("killed"))
    try:
        with pytest.raises(KeyboardInterrupt):
            audit_trust.set_aside(state, "test", "20260101T000000Z")
    finally:
        type(state).rename = real_rename
    assert (state / "audit_broken.json").exists() and (state / "audit.jsonl").exists()
    loop = live(state)
    aside = list(state.glob("audit.jsonl.broken-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == broken_bytes and not loop.trust.ok
    assert read_audit(state / "audit.jsonl")[0]["event"] == "audit_chain_start"


def test_stale_heads_of_the_set_aside_chain_do_not_break_the_new_one(held_run, tmp_path):
    state = broken_copy(held_run, tmp_path)
    live(state)
    old = read_json(state / "audit_broken.json")["old_head"]
    (state / "audit_head.json").write_text(json.dumps(old))      # a kill before the new heads were written
    cp = read_json(state / "control_plane.json")
    (state / "control_plane.json").write_text(json.dumps({**cp, "audit_head": old}))
    again = live(state)
    assert len(list(state.glob("audit.jsonl.broken-*"))) == 1 and not again.trust.ok


def test_an_edit_to_the_new_chain_while_the_break_waits_is_a_second_break(held_run, tmp_path):
    state = broken_copy(held_run, tmp_path)
    run_ticks(live(state), 2)
    edit = (state / "audit.jsonl").read_text().replace('"event":"worker_start"', '"event":"worker_stop"', 1)
    (state / "audit.jsonl").write_text(edit)
    again = live(state)
    assert len(list(state.glob("audit.jsonl.broken-*"))) == 2 and not again.trust.ok
    assert "broken too" in read_json(state / "audit_broken.json")["message"]
    assert worker.main(["--accept-audit-break", "both reviewed", "--state-dir", str(state)]) == 0
    assert verify_code(state) == 0
