"""Hostile files in state/commands/: each is one counted, bounded, logged refusal, never a crash, a block or a read
without a bound; the file is removed without following it. Seen ids survive a restart (state/seen_ids.json)."""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

import commands
from clock import iso
from command_auth import load_or_create_key, sign
from commands import COMMAND_LOG, SEEN_FILE, SEEN_IDS, TEXT_MAX, CommandLog, process_commands
from state_writer import COMMANDS_DIR, read_json, write_command

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def state(tmp_path):
    folder = tmp_path / "state"
    (folder / COMMANDS_DIR).mkdir(parents=True)
    return folder


def approve_doc(rec, **over) -> dict:
    return {"id": "c1", "command": "approve", "action_id": rec.id, "params_hash": rec.params_hash, "by": "alice",
            "issued_at": iso(NOW), **over}


def _nested(depth: int) -> str:
    return '{"id": "deep", "command": "pause", "x": ' + "[" * depth + "]" * depth + "}"


def hostile(folder: Path, outside: Path, key: bytes, rec) -> dict[str, str]:
    """Make every hostile entry in folder/commands/; returns {file name: what must appear in its refusal}."""
    cmds = folder / COMMANDS_DIR
    outside.mkdir(exist_ok=True)
    real = outside / "approve.json"                       # a valid, even signed, approval kept outside state/
    real.write_text(json.dumps(sign(key, approve_doc(rec, id="outside"))))
    (cmds / "link.json").symlink_to(real)
    (cmds / "zero.json").symlink_to("/dev/zero")
    (cmds / "null.json").symlink_to("/dev/null")
    (cmds / "dangling.json").symlink_to(outside / "nothing-here.json")
    os.mkfifo(cmds / "fifo.json")
    (cmds / "dir.json").mkdir()
    (cmds / "dir.json" / "inside.json").write_text("{}")
    (cmds / "deep.json").write_text(_nested(1000))       # ~2 KB, 1,000 deep
    with open(cmds / "huge.json", "w") as f:             # a 50 MB command string
        f.write('{"id": "huge", "command": "' + "A" * (50 << 20) + '"}')
    (cmds / "half.json").write_text('{"id": "half", "command": ')
    (cmds / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (cmds / "nan.json").write_text('{"id": "nan", "command": "pause", "by": NaN}')
    (cmds / "list.json").write_text('["approve"]')
    (cmds / "empty.json").write_text("")
    return {"link.json": "symlink", "zero.json": "symlink", "null.json": "symlink", "dangling.json": "symlink",
            "fifo.json": "not a regular file", "dir.json": "directory", "deep.json": "nested deeper",
            "huge.json": "byte limit", "half.json": "not valid JSON", "binary.json": "not valid JSON",
            "nan.json": "not valid JSON", "list.json": "not a JSON object", "empty.json": "not valid JSON"}


@pytest.mark.timeout(30)
def test_every_hostile_file_is_one_refusal_and_is_removed_without_following_it(agent, pending, state, tmp_path):
    key = load_or_create_key(state)
    expected = hostile(state, tmp_path / "outside", key, pending)
    log = CommandLog(key=key)
    done = process_commands(state, agent, 200, NOW, log)
    by_file = {e["file"]: e for e in done}
    assert set(by_file) == set(expected) and len(done) == len(expected)
    for name, why in expected.items():
        assert by_file[name]["result"] == "refused" and why in by_file[name]["message"], by_file[name]
    assert log.refusals == {"file": len(expected), "signature": 0, "command": 0}
    assert agent.executor.actions[pending.id].status.value == "pending_approval"    # the outside approval never ran
    assert (tmp_path / "outside" / "approve.json").exists()                          # the link went, not its target
    left = sorted(p.name for p in (state / COMMANDS_DIR).iterdir())
    assert len(left) == 1 and left[0].startswith("dir.json.refused-")               # renamed aside, kept for forensics
    assert (state / COMMANDS_DIR / left[0] / "inside.json").exists()
    assert len([e for e in agent.audited if e["event"] == "command_refused"]) == commands.AUDITED_PER_TICK + 1
    doc = log.to_dict(200)
    assert len(json.dumps(doc)) < 16_000                                             # bounded, whatever came in
    assert all(len(str(v)) <= TEXT_MAX + 1 for e in doc["log"] for v in e.values())
    assert process_commands(state, agent, 201, NOW, log) == []                       # nothing comes back next tick
    print(f"{len(expected)} hostile command files, {len(done)} refused in one line each, 0 crashes, "
          f"commands.json {len(json.dumps(doc)):,} bytes")


def test_long_strings_under_the_size_cap_are_cut_in_the_log(agent, state):
    key = load_or_create_key(state)
    long = "x" * 60_000                                   # under 64 KB: read, signed, refused, logged cut
    write_command(state, {"id": "long", "command": "pause", "by": long, "issued_at": iso(NOW)}, key)
    (state / COMMANDS_DIR / "unsigned.json").write_text(json.dumps({"id": "u", "command": "reject" + "!" * 60_000}))
    log = CommandLog(key=key)
    done = process_commands(state, agent, 200, NOW, log)
    assert [e["result"] for e in done] == ["refused", "refused"]
    assert all(len(e["by"] or "") <= TEXT_MAX + 1 and len(e["command"] or "") <= TEXT_MAX + 1 for e in done)
    assert "longer than" in next(e for e in done if e["id"] == "long")["message"]
    assert not agent.paused


def test_control_characters_cannot_forge_a_log_line(agent, state, capsys):
    key = load_or_create_key(state)
    write_command(state, {"id": "nl", "command": "pause", "by": "eve\nworker: command x accepted",
                          "issued_at": iso(NOW)}, key)
    process_commands(state, agent, 200, NOW, CommandLog(key=key))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "eve?worker" in err


def test_a_symlinked_commands_folder_is_not_read(agent, pending, state, tmp_path):
    key = load_or_create_key(state)
    elsewhere = tmp_path / "elsewhere"
    write_command(elsewhere, approve_doc(pending), key)
    shutil.rmtree(state / COMMANDS_DIR)
    (state / COMMANDS_DIR).symlink_to(elsewhere / COMMANDS_DIR)
    assert process_commands(state, agent, 200, NOW, CommandLog(key=key)) == []
    assert agent.executor.actions[pending.id].status.value == "pending_approval"


def test_a_flood_is_read_a_hundred_files_a_tick(agent, state):
    key = load_or_create_key(state)
    for n in range(150):
        (state / COMMANDS_DIR / f"junk{n:03}.json").write_text("{")
    log = CommandLog(key=key)
    assert len(process_commands(state, agent, 200, NOW, log)) == commands.COMMANDS_PER_TICK
    assert len(process_commands(state, agent, 201, NOW, log)) == 50
    assert log.refusals["file"] == 150 and len(log.entries) == COMMAND_LOG


def test_seen_ids_survive_a_restart_beyond_the_log(agent, state):
    """150 authentic commands (more than the 100 log entries): after a restart the first one is still a replay."""
    key = load_or_create_key(state)
    first = None
    for n in range(150):
        path = write_command(state, {"command": "reject", "action_id": "A9999", "by": "alice",
                                     "issued_at": iso(NOW)}, key)
        first = first or read_json(path)
        process_commands(state, agent, 200 + n, NOW, log := CommandLog.open(state, log.to_dict(200) if n else None))
    assert len(read_json(state / SEEN_FILE)["ids"]) == 150
    resumed = CommandLog.open(state, json.loads(json.dumps(log.to_dict(400))))
    assert len(resumed.entries) == COMMAND_LOG and len(resumed.seen) == 150
    (state / COMMANDS_DIR / f"{first['id']}.json").write_text(json.dumps(first))
    again = process_commands(state, agent, 401, NOW, resumed)
    assert again[0]["result"] == "refused" and "replayed" in again[0]["message"]


def test_the_seen_window_is_bounded_at_seen_ids():
    log = CommandLog.load(None, {"ids": [f"id-{n}" for n in range(SEEN_IDS + 500)] + ["../bad", 7, None]})
    assert len(log.seen) == SEEN_IDS and "id-0" not in log.seen and f"id-{SEEN_IDS + 499}" in log.seen
    for n in range(20):
        log.remember(f"new-{n}")
    assert len(log.seen) == SEEN_IDS


@pytest.mark.timeout(60)
def test_the_worker_starts_and_stops_among_hostile_files(state, tmp_path, pending_agent):
    """Two worker runs (a restart) over every hostile file: both exit 0, no file blocks it, refusals are counted."""
    import worker
    key = load_or_create_key(state)
    expected = hostile(state, tmp_path / "outside", key, pending_agent[0].executor.actions[pending_agent[1]])
    args = ["--scenario", str(ROOT / "scenarios" / "demo.json"), "--max-ticks", "2", "--tps", "200000",
            "--tick-seconds", "0.001", "--state-dir", str(state), "--no-llm"]
    assert worker.main(args) == 0
    doc = read_json(state / "commands.json")
    assert doc["refusals"]["file"] == len(expected) and len(doc["log"]) == len(expected)
    (state / COMMANDS_DIR / "fifo.json").unlink(missing_ok=True)
    os.mkfifo(state / COMMANDS_DIR / "fifo.json")          # again, for the restarted worker
    assert worker.main(args) == 0
    doc = read_json(state / "commands.json")
    assert doc["refusals"]["file"] == len(expected) + 1      # the count survives the restart
    assert (state / "commands.json").stat().st_size < 32_000
    refused = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()
               if '"command_refused"' in line]
    assert len(refused) == commands.AUDITED_PER_TICK + 2


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_fifo_command_never_keeps_the_worker_from_sigterm(state):
    """The reported hang: a FIFO named x.json blocked the worker's read forever, and it then ignored SIGTERM."""
    import signal
    import subprocess
    import sys
    import time
    os.mkfifo(state / COMMANDS_DIR / "x.json")
    proc = subprocess.Popen([sys.executable, "worker.py", "--state-dir", str(state), "--tick-seconds", "0.05",
                             "--no-llm"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 30
    while time.monotonic() < end and not (read_json(state / "commands.json") or {}).get("log"):
        time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0                  # the promise: SIGTERM honoured within 5 s
    print(f"SIGTERM to exit: {time.monotonic() - sent:.2f} s")
    err = proc.stderr.read()
    assert "not a regular file" in err and "Traceback" not in err
    assert not (state / COMMANDS_DIR / "x.json").exists()
