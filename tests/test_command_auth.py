"""Approvals a forger cannot make: the 0600 secret in state/, the signature on every command, the dashboard token."""
from __future__ import annotations

import json
import os
import stat
import threading
from datetime import datetime, timezone

import pytest

import command_auth
from clock import iso
from command_auth import (KEY_BYTES, KEY_FILE, KeyRefused, dashboard_token, load_or_create_key, sign, token_matches,
                          verify)
from commands import CommandLog, process_commands
from state_writer import COMMANDS_DIR, write_command, write_json

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def approve_doc(rec, **over) -> dict:
    return {"id": "c1", "command": "approve", "action_id": rec.id, "params_hash": rec.params_hash, "by": "alice",
            "issued_at": iso(NOW), **over}


def test_the_key_is_made_once_owner_only_and_reused(tmp_path):
    key = load_or_create_key(tmp_path / "state")
    path = tmp_path / "state" / KEY_FILE
    assert len(key) == KEY_BYTES and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(tmp_path / "state") == key
    assert [p.name for p in (tmp_path / "state").iterdir()] == [KEY_FILE]        # no temporary file left


def test_two_processes_starting_together_share_one_key(tmp_path):
    keys, start = [], threading.Barrier(8)

    def make():
        start.wait()
        keys.append(load_or_create_key(tmp_path))
    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys) == 8


@pytest.mark.timeout(10)
@pytest.mark.parametrize("make, why", [
    (lambda p, o: p.symlink_to(o), "symlink"),
    (lambda p, o: (p.write_bytes(os.urandom(KEY_BYTES)), p.chmod(0o644)), "group or others"),
    (lambda p, o: (p.write_bytes(os.urandom(KEY_BYTES)), p.chmod(0o640)), "group or others"),
    (lambda p, o: (p.write_bytes(b"short"), p.chmod(0o600)), "not 32"),
    (lambda p, o: p.mkdir(), "not a regular file"),
    (lambda p, o: os.mkfifo(p, 0o600), "not a regular file"),
])
def test_an_unsafe_key_is_refused_in_one_line(tmp_path, make, why):
    outside = tmp_path / "outside.key"
    outside.write_bytes(os.urandom(KEY_BYTES))
    outside.chmod(0o600)
    make(tmp_path / KEY_FILE, outside)
    with pytest.raises(KeyRefused) as e:
        load_or_create_key(tmp_path)
    assert why in str(e.value) and "\n" not in str(e.value)


def test_sign_and_verify():
    key, other = os.urandom(32), os.urandom(32)
    cmd = {"id": "a", "command": "pause", "by": "alice", "issued_at": "2026-03-01T12:00:00Z"}
    signed = sign(key, cmd)
    assert verify(key, signed) is None
    assert "unsigned" in verify(key, cmd)
    assert "wrong signature" in verify(other, signed)
    for field, value in (("by", "mallory"), ("command", "resume"), ("issued_at", "2026-03-01T12:00:01Z")):
        assert "wrong signature" in verify(key, {**signed, field: value})            # any change breaks it
    assert "wrong signature" in verify(key, {**signed, "extra": 1})
    assert "wrong signature" in verify(key, {**signed, "sig": "é" * 64})             # never raises
    assert verify(key, json.loads(json.dumps(signed))) is None                        # survives the file round trip


@pytest.mark.parametrize("forge", ["unsigned", "other key", "altered", "sig copied"])
def test_a_forged_approval_is_refused_audited_and_never_runs(agent, pending, tmp_path, forge):
    key = load_or_create_key(tmp_path)
    doc = approve_doc(pending)
    if forge == "unsigned":
        write_json(tmp_path / COMMANDS_DIR / "c1.json", doc, iso(NOW))
    elif forge == "other key":
        write_command(tmp_path, doc, os.urandom(32))
    elif forge == "altered":
        path = write_command(tmp_path, doc, key)
        path.write_text(path.read_text().replace('"alice"', '"mallory"'))
    else:                                                    # a valid signature from another command
        sig = sign(key, {**doc, "id": "other"})["sig"]
        write_json(tmp_path / COMMANDS_DIR / "c1.json", {**doc, "sig": sig}, iso(NOW))
    log = CommandLog(key=key)
    done = process_commands(tmp_path, agent, 200, NOW, log)
    assert [e["result"] for e in done] == ["refused"] and log.refusals["signature"] == 1
    assert agent.executor.actions[pending.id].status.value == "pending_approval"
    assert [e["event"] for e in agent.audited] == ["command_refused"]
    assert "c1" not in log.seen                                     # a forger cannot burn a real command's id


def test_a_signed_approval_runs_once(agent, pending, tmp_path):
    key = load_or_create_key(tmp_path)
    write_command(tmp_path, approve_doc(pending), key)
    done = process_commands(tmp_path, agent, 200, NOW, CommandLog(key=key))
    assert [e["result"] for e in done] == ["accepted"]
    assert agent.executor.actions[pending.id].status.value == "executed"


def test_without_a_usable_key_every_command_is_refused(agent, pending, tmp_path):
    key = load_or_create_key(tmp_path)
    write_command(tmp_path, approve_doc(pending), key)
    (tmp_path / KEY_FILE).chmod(0o644)                     # someone loosened the key: it is not trusted any more
    log = CommandLog.open(tmp_path, None)
    assert log.key is None
    done = process_commands(tmp_path, agent, 200, NOW, log)
    assert "no usable secret" in done[0]["message"] and "group or others" in done[0]["message"]
    assert agent.executor.actions[pending.id].status.value == "pending_approval"


def test_the_dashboard_token_is_derived_and_checked_in_constant_time():
    key = os.urandom(32)
    token = dashboard_token(key)
    assert len(token) == command_auth.TOKEN_CHARS and token == dashboard_token(key) != dashboard_token(os.urandom(32))
    assert token_matches(key, token) and token_matches(key, f" {token} ")
    for bad in (None, "", token[:-1], token.upper() + "x", "é" * 48, ["list"], token + "0"):
        assert not token_matches(key, bad)
