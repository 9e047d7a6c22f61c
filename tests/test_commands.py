"""Operator commands: state_writer.write_command drops them, commands.process_commands applies or refuses them."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from clock import iso
from command_auth import load_or_create_key
from commands import COMMAND_MAX_AGE_S, CommandLog, apply_command, process_commands
from state_writer import COMMANDS_DIR, write_command

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def approve(rec, **over) -> dict:
    return {"id": "c1", "command": "approve", "action_id": rec.id, "params_hash": rec.params_hash, "by": "alice",
            "issued_at": iso(NOW), **over}


@pytest.mark.parametrize("change, message", [
    (lambda c: "not a dict", "not a JSON object"),                                    # malformed file
    (lambda c: {**c, "id": None}, "no id"),
    (lambda c: {**c, "command": "launch"}, "unknown command 'launch'"),
    (lambda c: {**c, "issued_at": "yesterday"}, "not an ISO time"),
    (lambda c: {**c, "issued_at": iso(NOW - timedelta(seconds=COMMAND_MAX_AGE_S + 1))}, "stale"),
    (lambda c: {**c, "issued_at": iso(NOW + timedelta(minutes=5))}, "in the future"),
    (lambda c: {**c, "by": " "}, "'by'"),                                               # nobody to record
    (lambda c: {**c, "action_id": "A9999"}, "no action A9999"),                        # unknown action
    (lambda c: {**c, "params_hash": "0" * 16}, "other parameters"),                    # approved something else
    (lambda c: {k: v for k, v in c.items() if k != "params_hash"}, "needs the params_hash"),
])
def test_bad_commands_are_refused_and_change_nothing(agent, pending, change, message):
    ok, msg = apply_command(agent, change(approve(pending)), 200, NOW, {})
    assert not ok and msg.startswith("refused") and message in msg
    assert agent.executor.actions[pending.id].status.value == "pending_approval"
    assert pending.id not in agent.executor.applied


def test_approve_applies_exactly_once_and_records_who_and_when(agent, pending):
    seen = {}
    ok, msg = apply_command(agent, approve(pending), 200, NOW, seen)
    assert ok and msg == f"approved: {pending.id} executed"
    rec = agent.executor.actions[pending.id]
    assert rec.status.value == "executed" and rec.executed_tick == 200
    assert rec.approval == {"by": "alice", "at": iso(NOW), "tick": 200, "params_hash": pending.params_hash,
                            "ref": approve(pending)["id"]}     # the approval points at the operator's command
    seen["c1"] = True
    assert apply_command(agent, approve(pending), 201, NOW, seen) == (
        False, "refused: command c1 was already processed (replayed)")
    ok, msg = apply_command(agent, approve(pending, id="c2"), 201, NOW, seen)   # a new id for a decided action
    assert not ok and "not pending approval" in msg
    assert rec.executed_tick == 200


def test_reject_and_pause_resume(agent, pending):
    ok, msg = apply_command(agent, {**approve(pending), "command": "reject"}, 200, NOW, {})
    assert ok and agent.executor.actions[pending.id].status.value == "rejected"
    base = {"by": "bob", "issued_at": iso(NOW)}
    assert apply_command(agent, {"id": "p1", "command": "pause", **base}, 201, NOW, {})[0]
    assert agent.executor.paused
    assert apply_command(agent, {"id": "p2", "command": "pause", **base}, 201, NOW, {}) == (False, "refused: already paused")
    assert apply_command(agent, {"id": "p3", "command": "resume", **base}, 202, NOW, {})[0]
    assert not agent.executor.paused


def test_process_commands_reads_logs_and_removes_the_files(agent, pending, tmp_path):
    key = load_or_create_key(tmp_path)
    write_command(tmp_path, approve(pending, id="first", issued_at=iso(NOW - timedelta(seconds=2))), key)
    write_command(tmp_path, approve(pending, id="second", issued_at=iso(NOW - timedelta(seconds=1))), key)
    (tmp_path / COMMANDS_DIR / "junk.json").write_text("{half")
    log = CommandLog(key=key)
    done = process_commands(tmp_path, agent, 200, NOW, log)
    assert [(e["id"], e["result"]) for e in done] == [("junk", "refused"), ("first", "accepted"), ("second", "refused")]
    assert not list((tmp_path / COMMANDS_DIR).iterdir())
    resumed = CommandLog.load(json.loads(json.dumps(log.to_dict(200))), key=key)   # a restarted worker remembers
    write_command(tmp_path, approve(pending, id="first"), key)
    assert "replayed" in process_commands(tmp_path, agent, 201, NOW, resumed)[0]["message"]


@pytest.mark.parametrize("command", [
    {"command": "launch", "by": "a", "issued_at": "x"},                   # unknown command
    {"command": "pause", "by": "a", "issued_at": "x", "id": "../escape"},  # an id that would leave commands/
])
def test_write_command_refuses_what_the_worker_could_not_use(tmp_path, command):
    with pytest.raises(ValueError):
        write_command(tmp_path, command)
    assert not (tmp_path / COMMANDS_DIR).exists() or not list((tmp_path / COMMANDS_DIR).iterdir())


def test_worker_replays_a_scenario_applies_a_pause_and_persists_it(tmp_path):
    import clock
    import worker
    from state_writer import read_json
    write_command(tmp_path, {"command": "pause", "by": "carol", "issued_at": clock.utc_now()}, load_or_create_key(tmp_path))
    assert worker.main(["--scenario", str(ROOT / "scenarios" / "demo.json"), "--max-ticks", "3", "--tps", "2000000",
                        "--tick-seconds", "0.001", "--state-dir", str(tmp_path)]) == 0
    status = read_json(tmp_path / "status.json")
    assert status["paused"] is True and status["seed"] == 7          # the scenario's seed
    assert [e["result"] for e in read_json(tmp_path / "commands.json")["log"]] == ["accepted"]
    sim = read_json(tmp_path / "simulator.json")
    assert sim["scenario"].startswith("demo") and sim["phase"] == "baseline" and sim["active_fault"] is None
    assert worker.main(["--scenario", str(tmp_path / "nope.json"), "--state-dir", str(tmp_path)]) == 2
