"""The pre-release hostile pass: each finding that broke a README guarantee, as a test that failed before its fix.

The attacker can write the state folder (not secret.key): an audit.jsonl that is a FIFO, a link to /dev/zero or a
dangling link to a file outside state/ must neither stall nor exhaust a start, nor be written through; a link
swapped in while the worker runs must not be appended to.
"""
import json
import os
import resource
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import commands
import dashboard_access
import dashboard_text
import worker
from actions import Status, params_hash
from command_auth import load_or_create_key
from live_run import live, run_ticks
from state_writer import AUDIT_LINE_MAX, AuditLog, read_audit, verify_audit, write_command

ROOT = Path(__file__).resolve().parent.parent


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))   # /dev/zero read whole would take it all


def _start(state, ticks=3):
    return subprocess.run([sys.executable, "worker.py", "--state-dir", str(state), "--tick-seconds", "0.01",
                           "--max-ticks", str(ticks), "--no-llm"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, preexec_fn=_limit_memory)


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "dangling_link_outside"])
def test_a_hostile_audit_log_at_start_is_set_aside_never_read_nor_written_through(tmp_path, kind):
    state, outside = tmp_path / "state", tmp_path / "outside.txt"
    state.mkdir()
    log = state / "audit.jsonl"
    if kind == "fifo":
        os.mkfifo(log)                                  # before: the start blocked in open() forever
    elif kind == "dev_zero":
        log.symlink_to("/dev/zero")                     # before: read_text() until MemoryError, a traceback
    else:
        log.symlink_to(outside)                         # before: the whole audit chain was written to outside.txt
    try:
        done = _start(state)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{kind}: the worker did not start within 60 s")
    assert done.returncode == 0, done.stderr[-500:]
    assert "Traceback" not in done.stderr
    assert not outside.exists()
    assert log.is_file() and not log.is_symlink()
    aside = list(state.glob("audit.jsonl.broken-*"))
    assert len(aside) == 1 and (aside[0].is_symlink() or not aside[0].is_file())
    status = json.loads((state / "status.json").read_text())
    assert status["audit"]["ok"] is False
    assert verify_audit(log)[0]


def test_a_link_swapped_in_while_running_is_never_appended_through(tmp_path):
    state, outside = tmp_path / "state", tmp_path / "operators_file.txt"
    state.mkdir()
    outside.write_text("precious\n")
    audit = AuditLog(state, lambda: "2026-01-01T00:00:00.000Z", "test")
    audit.append({"event": "worker_start"})
    (state / "audit.jsonl").unlink()
    (state / "audit.jsonl").symlink_to(outside)
    with pytest.raises(OSError):
        audit.append({"event": "worker_stop"})          # fails the tick (caught, logged): nothing unaudited is done
    assert outside.read_text() == "precious\n"
    os.mkfifo(state / "fifo")
    (state / "audit.jsonl").unlink()
    (state / "audit.jsonl").symlink_to(state / "fifo")
    with pytest.raises(OSError):
        audit.append({"event": "worker_stop"})


def test_an_endless_line_is_a_break_read_in_bounded_pieces(tmp_path):
    log = tmp_path / "audit.jsonl"
    with open(log, "wb") as f:
        f.write(b"x" * (3 * AUDIT_LINE_MAX))
    ok, why = verify_audit(log)
    assert not ok and "longer than" in why
    assert read_audit(log) == []


def test_commands_folder_swapped_for_a_link_after_listing_never_empties_the_linked_folder(tmp_path, monkeypatch):
    """An attacker who can write state/ renames commands/ aside and links it to the operator's folder between the
    worker's listing and its reads and removals: before, the worker deleted the operator's files of those names."""
    state, victim = tmp_path / "state", tmp_path / "operators_folder"
    (state / "commands").mkdir(parents=True)
    victim.mkdir()
    for n in range(5):
        (state / "commands" / f"c{n}.json").write_text("{}")
        (victim / f"c{n}.json").write_text('{"keep": true}')
    listed = commands._entries

    def list_then_swap(*args):
        found = listed(*args)
        (state / "commands").rename(state / "real")
        (state / "commands").symlink_to(victim)
        return found

    monkeypatch.setattr(commands, "_entries", list_then_swap)
    done = commands.process_commands(state, object(), 1, datetime.now(timezone.utc), commands.CommandLog())
    assert len(done) == 5 and all(r["result"] == "refused" for r in done)
    assert sorted(p.name for p in victim.iterdir()) == [f"c{n}.json" for n in range(5)]
    assert all(p.read_text() == '{"keep": true}' for p in victim.iterdir())
    assert list((state / "real").iterdir()) == []        # the worker's own folder (held open) was emptied instead


def _switch(state, key, kind, issued):
    return write_command(state, {"command": kind, "by": "alice", "issued_at": issued}, key)


def test_a_signed_command_file_is_readable_by_its_owner_only(tmp_path):
    """A signed command is a bearer token until the worker has seen its id: another local user who can list
    state/commands/ must not be able to read and keep a copy (to replay it once its id is forgotten)."""
    state = tmp_path / "state"
    path = _switch(state, load_or_create_key(state), "resume", "2026-01-01T00:00:00.000Z")
    assert os.stat(path).st_mode & 0o077 == 0


def test_a_pause_or_resume_held_back_and_released_after_a_later_one_is_refused(tmp_path):
    """Someone who can write state/commands/ moves the operator's resume aside (never read, so never seen), waits
    until the operator has resumed again and then paused, and puts it back within 15 minutes: before, automation
    resumed against the operator's latest pause. Also after a restart (from commands.json)."""
    state = tmp_path / "state"
    state.mkdir()
    key = load_or_create_key(state)
    loop = live(state)
    run_ticks(loop, 2)
    t0 = datetime.now(timezone.utc) - timedelta(minutes=5)
    at = lambda s: (t0 + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    _switch(state, key, "pause", at(0))
    run_ticks(loop, 1)
    withheld = _switch(state, key, "resume", at(10))
    aside = tmp_path / "attacker"
    aside.mkdir()
    withheld.rename(aside / withheld.name)                       # the attacker holds the first resume back
    _switch(state, key, "resume", at(20))                         # the operator, seeing nothing, resumes again
    run_ticks(loop, 1)
    _switch(state, key, "pause", at(30))                          # and later pauses
    run_ticks(loop, 1)
    assert loop.agent.paused
    (aside / withheld.name).rename(withheld)                      # released, 4 minutes old, never seen
    run_ticks(loop, 1)
    assert loop.agent.paused, "a held-back resume undid the operator's later pause"
    entry = json.loads((state / "commands.json").read_text())["log"][-1]
    assert entry["result"] == "refused" and "out of order" in entry["message"]
    assert any(e.get("event") == "command_refused" and "out of order" in e.get("reason", "")
               for e in read_audit(state / "audit.jsonl"))
    log = commands.CommandLog.load(json.loads((state / "commands.json").read_text()))
    assert log.last_switch is not None and worker.utc_now() > at(30)
    assert commands._out_of_order({"command": "resume", "id": "x1", "issued_at": at(25)}, log)
    assert commands._out_of_order({"command": "resume", "id": "x2", "issued_at": at(31)}, log) is None


@pytest.mark.parametrize("host", ["[::1].evil.example", "[::1]x:8501", "127.0.0.1:80@evil.example",
                                  "localhost:8501/evil", "[localhost].evil:1", "localhost:85a1"])
def test_a_host_with_more_than_a_loopback_name_and_port_is_refused(host):
    assert dashboard_access.host_allowed(host) is False
    for ok in ("localhost:8501", "[::1]:8501", "[::1]", "127.0.0.1", "LOCALHOST", " localhost "):
        assert dashboard_access.host_allowed(ok) is True


@pytest.mark.parametrize("kind", ["link", "fifo"])
def test_a_hostile_lock_file_is_one_line_and_never_truncates_what_it_points_to(tmp_path, kind):
    """state/.lock planted as a link to the operator's file: before, the start opened it "a+" and truncated that
    file to "worker.py (pid N)"; as a FIFO, a traceback (not seekable)."""
    state, victim = tmp_path / "state", tmp_path / "operators_file.txt"
    state.mkdir()
    victim.write_text("precious\n")
    if kind == "link":
        (state / ".lock").symlink_to(victim)
    else:
        os.mkfifo(state / ".lock")
    done = _start(state, 1)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert ".lock" in done.stderr.strip().splitlines()[-1]
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("kind", ["link", "fifo", "directory"])
def test_a_hostile_errors_log_neither_receives_a_traceback_nor_stops_the_tick_guard(tmp_path, kind):
    victim = tmp_path / "operators_file.txt"
    victim.write_text("precious\n")
    log = tmp_path / "errors.log"
    if kind == "link":
        log.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(log)                                 # before: open(..., "a") blocked the worker forever
    else:
        log.mkdir()                                    # before: IsADirectoryError out of the tick boundary
    guard = worker.TickGuard(log)
    assert guard.failed(7, RuntimeError("boom")) is False
    assert guard.total == 1 and victim.read_text() == "precious\n"


def test_audit_log_swapped_for_a_link_while_running_stops_in_one_line_and_writes_nothing_through(tmp_path):
    """Swapped mid-run, the log is never appended through the link; SIGTERM still ends the worker in one line (the
    stop cannot be recorded: exit 1), not a traceback, and the linked file is untouched."""
    state, victim = tmp_path / "state", tmp_path / "operators_file.txt"
    state.mkdir()
    victim.write_text("precious\n")
    proc = subprocess.Popen([sys.executable, "worker.py", "--state-dir", str(state), "--tick-seconds", "0.02",
                             "--no-llm"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (state / "status.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        (state / "audit.jsonl").rename(state / "audit.real")
        (state / "audit.jsonl").symlink_to(victim)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "Traceback" not in err
    assert proc.returncode == 1 and "the stop could not be recorded" in err.strip().splitlines()[-1]
    assert victim.read_text() == "precious\n"


def test_an_approval_binds_the_parameters_shown_not_the_hash_beside_them(tmp_path):
    """Whoever can write actions.json shows a held 'suppress retries at globemart' as one at another merchant, next
    to the real params_hash: before, the dashboard's approval carried that hash and the real action ran."""
    state = tmp_path / "state"
    state.mkdir()
    key = load_or_create_key(state)
    loop = live(state)
    run_ticks(loop, 100)
    shown = json.loads((state / "actions.json").read_text())["pending"]
    honest = shown[0]
    assert dashboard_text.make_command("approve", "ops", worker.utc_now(), honest)["params_hash"] == \
        honest["params_hash"] == params_hash(honest["action"], honest["target"], honest["params"])
    forged = {**honest, "target": {k: "some-other-name" for k in honest["target"]}}   # the real hash stays beside it
    write_command(state, dashboard_text.make_command("approve", "ops", worker.utc_now(), forged), key)
    run_ticks(loop, 1)
    assert loop.agent.executor.actions[honest["id"]].status is Status.PENDING_APPROVAL
    entry = json.loads((state / "commands.json").read_text())["log"][-1]
    assert entry["result"] == "refused" and "other parameters" in entry["message"]
