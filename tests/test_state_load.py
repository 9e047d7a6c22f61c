"""Issue 11 part 3: hostile state files and audit lines never crash a start.

Each bad file gives a one-line warning, is moved aside, and that part starts fresh; the rest resumes.
A tick of 1e9 (or anything past state_load.MAX_TICK) is refused, and a valid large tick does not make
start-up replay the fault schedule tick by tick.
"""
import json
import shutil
import time
from datetime import datetime, timezone

import pytest

import state_load
import worker
from live_run import ARGS, live, run_ticks
from merchant_profiles import DEFAULT_UNIVERSE
from scenario import RandomFaultSchedule
from state_writer import AuditLog, read_audit, read_json

DEEP = "[" * 3000 + "]" * 3000


@pytest.fixture(scope="module")
def resumable(tmp_path_factory):
    """A state folder after 100 ticks with records of every kind."""
    state = tmp_path_factory.mktemp("resumable") / "state"
    state.mkdir()
    run_ticks(live(state), 100)
    return state


def patch(name, edit):
    def apply(state):
        doc = json.loads((state / name).read_text())
        (state / name).write_text(json.dumps(edit(doc)))
    return apply


def raw(name, text):
    def apply(state):
        (state / name).write_text(text)
    return apply


def first_action(doc, **changes):
    doc["actions"][0].update(changes)
    return doc


HOSTILE = {
    "status tick -50": (patch("status.json", lambda d: {**d, "tick": -50}), "status.json"),
    "status tick 1e9": (raw("status.json", '{"tick": 1e9, "paused": false}'), "status.json"),
    "status tick 10^9": (patch("status.json", lambda d: {**d, "tick": 10**9}), "status.json"),
    "status tick x": (patch("status.json", lambda d: {**d, "tick": "x"}), "status.json"),
    "status paused yes": (patch("status.json", lambda d: {**d, "paused": "yes"}), "status.json"),
    "status nested 3000": (raw("status.json", '{"tick": ' + DEEP + "}"), "status.json"),
    "status NaN": (raw("status.json", '{"tick": NaN}'), "status.json"),
    "control missing actions": (patch("control_plane.json", lambda d: {k: v for k, v in d.items() if k != "actions"}),
                                "control_plane.json"),
    "control actions x": (patch("control_plane.json", lambda d: {**d, "actions": "x"}), "control_plane.json"),
    "control plane a list": (patch("control_plane.json", lambda d: {**d, "control_plane": []}), "control_plane.json"),
    "control route override junk": (patch("control_plane.json", lambda d: {**d, "control_plane": {
        "route_overrides": [{"nope": 1}]}}), "control_plane.json"),
    "control next_id x": (patch("control_plane.json", lambda d: {**d, "next_id": "x"}), "control_plane.json"),
    "control applied list": (patch("control_plane.json", lambda d: {**d, "applied": [1]}), "control_plane.json"),
    "action status bogus": (patch("control_plane.json", lambda d: first_action(d, status="bogus")),
                            "control_plane.json"),
    "action unknown field": (patch("control_plane.json", lambda d: first_action(d, surprise=1)), "control_plane.json"),
    "action before text": (patch("control_plane.json", lambda d: first_action(d, before="x")), "control_plane.json"),
    "action tick 1e12": (patch("control_plane.json", lambda d: first_action(d, tick=10**12)), "control_plane.json"),
    "action target nested": (patch("control_plane.json", lambda d: first_action(d, target={"issuer": {"a": 1}})),
                             "control_plane.json"),
    "action guard junk": (patch("control_plane.json", lambda d: first_action(d, guard=[{"after": "x"}])),
                          "control_plane.json"),
    "control nested 3000": (raw("control_plane.json", '{"actions": ' + DEEP + "}"), "control_plane.json"),
    "control NaN": (raw("control_plane.json", '{"next_id": NaN}'), "control_plane.json"),
    "learning memory x": (patch("learning.json", lambda d: {**d, "memory": "x"}), "learning.json"),
    "learning entry wrong types": (patch("learning.json", lambda d: {**d, "memory": [{"id": 1, "tick": "x"}]}),
                                   "learning.json"),
    "learning entry without outcome": (patch("learning.json", lambda d: {**d, "memory": [
        {k: v for k, v in m.items() if k != "outcome"} for m in d["memory"]] or [{"id": "A0001"}]}), "learning.json"),
    "learning summary 5": (patch("learning.json", lambda d: {**d, "summary": 5}), "learning.json"),
    "learning nested 3000": (raw("learning.json", '{"memory": ' + DEEP + "}"), "learning.json"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_state_file_is_moved_aside_and_that_part_starts_fresh(resumable, tmp_path, capsys, case):
    edit, name = HOSTILE[case]
    state = tmp_path / "state"
    shutil.copytree(resumable, state, ignore=shutil.ignore_patterns(".lock"))
    edit(state)
    started = time.perf_counter()
    loop = live(state)
    took = time.perf_counter() - started
    run_ticks(loop, 2)
    assert loop.guard.total == 0, loop.guard.last
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("worker: warning:") and name in line]
    assert warnings and "Traceback" not in err
    assert list(state.glob(f"{name}.invalid-*")) or list(state.glob(f"{name}.corrupt-*"))
    assert read_json(state / name) is not None                       # written afresh on the first tick
    assert loop.trust.ok                                             # a bad state file is not a broken log
    assert took < 5, f"start took {took:.1f} s"
    if name == "status.json":                                        # the tick comes from control_plane.json
        assert loop.tick == read_json(resumable / "control_plane.json")["tick"] + 1 + 2
    if name != "control_plane.json":
        assert loop.agent.executor.actions                           # the other parts resumed


@pytest.mark.parametrize("text", ["{}", "half"], ids=["empty object", "truncated"])
def test_an_empty_or_truncated_control_plane_rebuilds_complete_records_from_the_log(resumable, tmp_path, text):
    state = tmp_path / "state"
    shutil.copytree(resumable, state, ignore=shutil.ignore_patterns(".lock"))
    full = (state / "control_plane.json").read_text()
    (state / "control_plane.json").write_text(text if text != "half" else full[: len(full) // 2])
    before = {a["id"]: a for a in json.loads(full)["actions"]}
    loop = live(state)
    run_ticks(loop, 2)
    assert loop.guard.total == 0 and loop.trust.ok
    ex = loop.agent.executor
    for action_id, old in before.items():
        rec = ex.actions[action_id]
        if old["status"] == "pending_approval":          # still pending, with its own proposal time: never expired
            assert rec.status.value == "pending_approval" and rec.proposed_at == old["proposed_at"]
        assert (rec.cause, rec.explanation, rec.requires_human_approval) == (
            old["cause"], old["explanation"], old["requires_human_approval"])


def append_chained(state, event):
    AuditLog(state, lambda: "2026-01-01T00:00:00Z", "test").append(event)


AUDIT_LINES = {
    "unknown action type": {"event": "action_executed", "action_id": "A0900", "action_type": "teleport",
                            "target": {"issuer": "chase"}, "params": {}},
    "missing fields": {"event": "action_executed", "action_id": "A0901"},
    "target a list": {"event": "action_rolled_back", "action_id": "A0001", "action_type": "retry_policy",
                      "target": ["globemart"], "params": {"max_attempts": 2}},
    "retry policy without merchant": {"event": "action_executed", "action_id": "A0902", "action_type": "retry_policy",
                                      "target": {"issuer": "chase"}, "params": {"max_attempts": 2}},
    "risk text": {"event": "action_pending_approval", "action_id": "A0904", "action_type": "suppress",
                  "target": {"issuer": "chase"}, "params": {}, "risk": "high", "params_hash": 7},
    "record junk": {"event": "action_pending_approval", "action_id": "A0903", "action_type": "suppress",
                    "target": {"issuer": "chase"}, "params": {}, "record": {"proposed_at": "soon", "tick": -4}},
}


@pytest.mark.parametrize("case", sorted(AUDIT_LINES))
def test_a_chained_audit_line_that_fails_its_schema_is_skipped_and_named(resumable, tmp_path, capsys, case):
    state = tmp_path / "state"
    shutil.copytree(resumable, state, ignore=shutil.ignore_patterns(".lock"))
    append_chained(state, AUDIT_LINES[case])
    loop = live(state)
    run_ticks(loop, 2)
    assert loop.guard.total == 0 and loop.trust.ok
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if case == "risk text":
        assert loop.agent.executor.actions["A0904"].risk == 0.0
    elif case == "record junk":            # a valid proposal with a bad record: rebuilt; it keeps its line's time
        rec = loop.agent.executor.actions["A0903"]
        assert rec.tick == 0 and rec.proposed_at == datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    else:
        assert "not replayed" in err
        assert "A0900" not in loop.agent.executor.actions and "A0902" not in loop.agent.executor.applied


@pytest.mark.parametrize("line", [DEEP, '{"seq": NaN}', "\x00\xff garbage"], ids=["nested 3000", "NaN", "binary"])
def test_an_unparseable_audit_line_is_a_broken_log_not_a_crash(resumable, tmp_path, capsys, line):
    state = tmp_path / "state"
    shutil.copytree(resumable, state, ignore=shutil.ignore_patterns(".lock"))
    with open(state / "audit.jsonl", "a") as f:
        f.write(line + "\n")
    loop = live(state)
    run_ticks(loop, 2)
    assert loop.guard.total == 0 and not loop.trust.ok and loop.agent.paused
    assert "Traceback" not in capsys.readouterr().err
    assert read_audit(state / "audit.jsonl")[0]["event"] == "audit_chain_start"


@pytest.mark.parametrize("tick", [10**9, state_load.MAX_TICK - 1])
def test_start_with_a_huge_tick_is_fast(resumable, tmp_path, tick):
    state = tmp_path / "state"
    shutil.copytree(resumable, state, ignore=shutil.ignore_patterns(".lock"))
    for name in ("status.json", "control_plane.json"):
        patch(name, lambda d: {**d, "tick": tick})(state)
    started = time.perf_counter()
    loop = worker.LiveLoop(ARGS, state, RandomFaultSchedule(DEFAULT_UNIVERSE, 1), 12.0)
    took = time.perf_counter() - started
    print(f"start with tick {tick:,}: {took:.2f} s, resumed at tick {loop.tick:,}")
    assert took < 3
    assert loop.tick == (0 if tick > state_load.MAX_TICK else tick + 1)


def test_the_schedule_replay_equals_ticking_every_tick():
    a, b = RandomFaultSchedule(DEFAULT_UNIVERSE, 1), RandomFaultSchedule(DEFAULT_UNIVERSE, 1)
    for t in range(5000):
        a.faults_at(t)
    assert worker.replay_schedule(b, 5000)
    assert all(a.faults_at(t) == b.faults_at(t) for t in range(5000, 8000))
    c = RandomFaultSchedule(DEFAULT_UNIVERSE, 1)
    started = time.perf_counter()
    assert worker.replay_schedule(c, worker.SCHEDULE_REPLAY_TICKS)
    took = time.perf_counter() - started
    print(f"schedule replay over {worker.SCHEDULE_REPLAY_TICKS:,} ticks: {took:.2f} s")
    assert took < 2


def test_a_scenario_schedule_needs_no_replay(capsys):
    class Stateless:
        def faults_at(self, tick):
            return ()

        def describe(self):
            return {"active_fault": None}
    assert worker.replay_schedule(Stateless(), 10**6) is True


def test_every_audit_record_field_has_a_check():
    from actions import REBUILD_FIELDS
    assert set(state_load._REBUILD_CHECKS) == set(REBUILD_FIELDS)


def test_the_state_the_worker_writes_passes_its_own_schemas(resumable, tmp_path, capsys):
    for name, reason in worker.CHECKED.items():
        assert reason(read_json(resumable / name)) is None, name
    assert read_json(resumable / "learning.json")["memory"] and read_json(resumable / "control_plane.json")["actions"]
    state = tmp_path / "state"
    shutil.copytree(resumable, state, ignore=shutil.ignore_patterns(".lock"))
    loop = live(state)
    assert "failed its schema" not in capsys.readouterr().err and loop.trust.ok
    assert not list(state.glob("*.invalid-*"))
