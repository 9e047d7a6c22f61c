"""Operator commands: the approve, reject, pause and resume files the dashboard drops in state/commands/.

worker.py calls process_commands at the start of each tick: every file is read (a regular file
only, never through a symlink, never blocking, at most 64 KB and 4 levels deep: safe_json), its
signature checked against the shared secret (command_auth), validated (an id never seen before, a
known command, who issued it, a recent issue time, for approve the params_hash of the action as
shown), applied once through the agent's operator methods, logged in state/commands.json with its
result, and deleted. A refusal is one bounded log entry (strings cut at 200 characters), counted,
and audited; never an exception. A symlink, FIFO or device is unlinked (the link itself, never its
target); a directory is renamed aside (`<name>.refused-<UTC time>-<inode>`), never read. The ids of
authentic commands are remembered (the last 10,000, in state/seen_ids.json) across restarts.

Never follows a symlink, never reads a file without a bound, never applies an unsigned command.
"""
from __future__ import annotations

import json
import os
import stat
import sys
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import command_auth
from agent import Agent
from clock import iso
from executor import ApprovalError
from safe_json import JsonRefused, load_json
from state_writer import COMMANDS, COMMANDS_DIR, read_json, write_json

COMMAND_MAX_AGE_S = 15 * 60   # an approval older than 15 min was given for traffic that has moved on
COMMAND_MAX_SKEW_S = 60       # a command dated more than a minute ahead is refused (clock skew or a forged date)
COMMAND_LOG = 100             # entries kept in state/commands.json
SEEN_IDS = 10_000             # command ids remembered against replays (a bounded memory in endless runs)
SEEN_FILE = "seen_ids.json"   # those ids, rewritten when one is added (commands are human-paced)
COMMAND_MAX_BYTES = 64 << 10  # a command is ~300 bytes
COMMAND_MAX_DEPTH = 4         # a command is a flat object
COMMANDS_PER_TICK = 100       # files looked at per tick; the rest wait for the next tick
AUDITED_PER_TICK = 10         # refusals audited one by one per tick; more are summed in one line
TEXT_MAX = 200                # characters kept of any string from a command file
SWITCHES = ("pause", "resume")
ENTRY_KEYS = ("id", "file", "command", "action_id", "by", "issued_at", "processed_at", "tick", "result", "message")


def short(value, limit: int = TEXT_MAX):
    """A value from a command file made safe to log: None and numbers as they are, anything else as printable text
    of at most `limit` characters."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str)[:limit + 1]
    text = "".join(c if c.isprintable() else "?" for c in text[:limit + 1])
    return text if len(text) <= limit else text[:limit] + "…"


def valid_id(cid) -> bool:
    """The ids write_command makes: 1-64 ASCII letters, digits or dashes (a file name that stays in commands/)."""
    return isinstance(cid, str) and 0 < len(cid) <= 64 and cid.isascii() and cid.replace("-", "").isalnum()


def _parse_time(value) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def apply_command(agent: Agent, cmd: dict | None, tick: int, now: datetime, seen,
                  resume_held: str | None = None) -> tuple[bool, str]:
    """Validate one operator command and apply it through the executor: (accepted, message). Never raises.
    resume_held names why a resume cannot be taken now (a broken audit log waiting for an operator)."""
    if not isinstance(cmd, dict):
        return False, "refused: not a JSON object (malformed file)"
    if not isinstance(cmd.get("id"), str) or not cmd["id"]:
        return False, "refused: the command has no id"
    if not valid_id(cmd["id"]):
        return False, "refused: the command id must be 1-64 letters, digits or dashes"
    if cmd["id"] in seen:
        return False, f"refused: command {cmd.get('id')} was already processed (replayed)"
    kind = cmd.get("command")
    if kind not in COMMANDS:
        return False, f"refused: unknown command {short(kind, 40)!r}; valid: {', '.join(COMMANDS)}"
    issued = _parse_time(cmd.get("issued_at"))
    if issued is None:
        return False, "refused: issued_at is missing or not an ISO time"
    age = (now - issued).total_seconds()
    if age > COMMAND_MAX_AGE_S:
        return False, f"refused: stale, issued {age / 60:.0f} min ago (limit {COMMAND_MAX_AGE_S // 60} min)"
    if age < -COMMAND_MAX_SKEW_S:
        return False, "refused: issued_at is in the future"
    by = cmd.get("by")
    if not isinstance(by, str) or not by.strip():
        return False, "refused: 'by' (who issued the command) is missing"
    if len(by) > TEXT_MAX:
        return False, f"refused: 'by' is longer than {TEXT_MAX} characters"
    if kind == "resume" and resume_held:
        return False, f"refused: {resume_held}"
    if kind in ("pause", "resume"):
        if agent.paused == (kind == "pause"):
            return False, f"refused: already {'paused' if agent.paused else 'running'}"
        agent.set_paused(kind == "pause", by.strip())
        return True, ("paused: the agent observes and reasons, nothing runs without approval" if agent.paused
                      else "resumed: the agent acts on its own again within its guardrails")
    action_id = cmd.get("action_id")
    if not isinstance(action_id, str) or not 0 < len(action_id) <= 64:
        return False, f"refused: {kind} needs an action_id"
    if kind == "reject":
        msg = agent.reject(action_id, by.strip(), tick, iso(now))
        return msg.startswith("rejected"), msg
    if not isinstance(cmd.get("params_hash"), str):
        return False, "refused: approve needs the params_hash of the action as shown"
    try:
        msg = agent.approve(action_id, by.strip(), tick, iso(now), cmd["params_hash"], ref=cmd["id"])
    except ApprovalError as e:
        return False, f"refused: {e}"
    return msg.startswith("approved"), msg


@dataclass
class CommandLog:
    """The processed commands (state/commands.json), the ids of authentic commands already seen, both bounded,
    the refusals counted by kind, and the secret commands are signed with (None: every command is refused)."""
    entries: deque = field(default_factory=lambda: deque(maxlen=COMMAND_LOG))
    seen: dict = field(default_factory=dict)     # insertion-ordered: the oldest ids fall off first
    key: bytes | None = None
    key_problem: str = "no secret loaded"
    refusals: dict = field(default_factory=lambda: {"file": 0, "signature": 0, "command": 0})
    ignored: set = field(default_factory=set)    # (name, inode) of entries that could not be removed: warned once
    last_switch: datetime | None = None          # issue time of the last pause or resume applied

    def switched(self, issued: datetime | None) -> None:
        if issued is not None and (self.last_switch is None or issued > self.last_switch):
            self.last_switch = issued

    def add(self, entry: dict) -> None:
        self.entries.append(entry)

    def remember(self, cid: str) -> None:
        self.seen[cid] = True
        while len(self.seen) > SEEN_IDS:
            self.seen.pop(next(iter(self.seen)))

    @classmethod
    def load(cls, doc: dict | None, seen_doc: dict | None = None, key: bytes | None = None) -> "CommandLog":
        """Resume from a previous commands.json and seen_ids.json, so a restart forgets no id it accepted."""
        log = cls(key=key)
        counts = (doc or {}).get("refusals")
        for kind in log.refusals:
            if isinstance(counts, dict) and isinstance(counts.get(kind), int):
                log.refusals[kind] = counts[kind]
        ids = (seen_doc or {}).get("ids")
        for cid in [i for i in (ids if isinstance(ids, list) else []) if valid_id(i)][-SEEN_IDS:]:
            log.remember(cid)
        log_entries = (doc or {}).get("log")
        for e in (log_entries if isinstance(log_entries, list) else [])[-COMMAND_LOG:]:
            if isinstance(e, dict):
                log.add({k: short(e.get(k)) for k in ENTRY_KEYS})
                if valid_id(e.get("id")) and e["id"] not in log.seen:
                    log.remember(e["id"])
                if e.get("result") == "accepted" and e.get("command") in SWITCHES:
                    log.switched(_parse_time(e.get("issued_at")))
        return log

    @classmethod
    def open(cls, state_dir: str | Path, doc: dict | None) -> "CommandLog":
        """The worker's log at start: commands.json (`doc`), seen_ids.json and the secret (created when absent)."""
        folder = Path(state_dir)
        try:
            key, problem = command_auth.load_or_create_key(folder), ""
        except command_auth.KeyRefused as e:
            key, problem = None, str(e)
            print(f"worker: warning: {problem}; every operator command is refused until it is fixed", file=sys.stderr)
        seen_doc = read_json(folder / SEEN_FILE)
        if seen_doc is None and os.path.lexists(folder / SEEN_FILE):
            print(f"worker: warning: {SEEN_FILE} is unreadable: only the ids in commands.json are remembered",
                  file=sys.stderr)
        log = cls.load(doc, seen_doc, key)
        log.key_problem = problem or log.key_problem
        return log

    def to_dict(self, tick: int) -> dict:
        return {"tick": tick, "max_age_seconds": COMMAND_MAX_AGE_S, "log": list(self.entries),
                "refusals": dict(self.refusals)}


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%S")


def _open_folder(folder: Path, log: CommandLog) -> int | None:
    """commands/ opened as a directory without following a link: every later open, unlink and rename is relative to
    this descriptor, so the folder swapped for a link to another directory meanwhile is never read nor emptied."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        dfd = os.open(folder, flags)
    except FileNotFoundError:
        return None
    except OSError:
        dfd = None
    if dfd is not None and stat.S_ISDIR(os.fstat(dfd).st_mode):
        return dfd
    if dfd is not None:
        os.close(dfd)
    if ("<folder>", 0) not in log.ignored:
        log.ignored.add(("<folder>", 0))
        print(f"worker: warning: {folder} is not a directory (a symlink?): no command is read from it",
              file=sys.stderr)
    return None


def _entries(dfd: int, log: CommandLog) -> list[os.DirEntry]:
    """Up to COMMANDS_PER_TICK command entries by name; temporary (hidden) and other names are not commands."""
    try:
        with os.scandir(dfd) as it:
            found = [e for e in it if e.name.endswith(".json") and not e.name.startswith(".")]
    except OSError:
        return []
    found = [e for e in found if (e.name, e.inode()) not in log.ignored]
    return sorted(found, key=lambda e: e.name)[:COMMANDS_PER_TICK]


def _read(entry: os.DirEntry, dfd: int) -> tuple[dict | None, str | None]:
    """(command, None) or (None, one-line reason): what is in the file, read only as a bounded regular file."""
    if entry.is_symlink():
        return None, "a symlink (never followed)"
    if entry.is_dir(follow_symlinks=False):
        return None, "a directory"
    if not entry.is_file(follow_symlinks=False):
        return None, "not a regular file (FIFO, socket or device)"
    try:
        doc = load_json(entry.name, COMMAND_MAX_BYTES, COMMAND_MAX_DEPTH, dir_fd=dfd)
    except JsonRefused as e:
        return None, str(e).split(": ", 1)[-1]
    return (doc, None) if isinstance(doc, dict) else (None, "not a JSON object (malformed file)")


def _discard(entry: os.DirEntry, now: datetime, log: CommandLog, dfd: int, folder: Path) -> None:
    """Remove a processed or refused entry without following it: a directory is renamed aside, anything else
    unlinked (a symlink's link, never its target). What cannot be removed is skipped from now on, with one warning."""
    try:
        if entry.is_dir(follow_symlinks=False):
            os.rename(entry.name, f"{entry.name}.refused-{_stamp(now)}-{entry.inode()}", src_dir_fd=dfd, dst_dir_fd=dfd)
        else:
            os.unlink(entry.name, dir_fd=dfd)
    except FileNotFoundError:
        pass
    except OSError as e:
        if len(log.ignored) < SEEN_IDS:                  # past that, such entries are retried (and refused) each tick
            log.ignored.add((entry.name, entry.inode()))
        print(f"worker: warning: cannot remove {short(entry.name)} from {folder} ({e.strerror}): "
              "it is ignored from now on; remove it by hand", file=sys.stderr)


def _audit(agent: Agent, entry: dict) -> None:
    audit = getattr(getattr(agent, "executor", None), "audit", None)
    if callable(audit):
        audit({"event": "command_refused", "who": "operator", "result": "refused",
               "reason": f"command {entry['id']} ({entry['file']}): {entry['message']}"})


def _out_of_order(cmd: dict, log: CommandLog) -> str | None:
    """A pause or resume issued before the last one applied: someone who can write commands/ held it back (it is
    signed and never seen, so the id alone does not stop it) to release it later and undo the operator's latest
    switch. Refused, with the reason; None when in order."""
    issued = _parse_time(cmd.get("issued_at"))
    if cmd.get("command") not in SWITCHES or issued is None or log.last_switch is None or issued >= log.last_switch:
        return None
    if cmd.get("id") in log.seen:
        return None                                      # apply_command refuses it as replayed
    return (f"refused: out of order: issued {iso(issued)}, before the last pause or resume applied "
            f"({iso(log.last_switch)}); send it again")


def process_commands(state_dir: str | Path, agent: Agent, tick: int, now: datetime, log: CommandLog,
                     resume_held: str | None = None) -> list[dict]:
    """Apply the command files in state_dir/commands/, oldest first; log, count and audit each refusal; remove them."""
    folder = Path(state_dir) / COMMANDS_DIR
    dfd = _open_folder(folder, log)
    if dfd is None:
        return []
    try:
        return _process(state_dir, agent, tick, now, log, resume_held, folder, dfd)
    finally:
        os.close(dfd)


def _process(state_dir, agent: Agent, tick: int, now: datetime, log: CommandLog, resume_held: str | None,
             folder: Path, dfd: int) -> list[dict]:
    read = [(entry, *_read(entry, dfd)) for entry in _entries(dfd, log)]
    read.sort(key=lambda r: (str(r[1].get("issued_at", "")) if r[1] else "", r[0].name))
    done, audited = [], 0
    for entry, cmd, problem in read:
        c = cmd or {}
        kind = "command"
        if problem is not None:
            kind, accepted, message = "file", False, f"refused: {problem}"
        elif log.key is None:
            kind, accepted, message = "signature", False, f"refused: no usable secret ({log.key_problem})"
        elif (bad := command_auth.verify(log.key, c)) is not None:
            kind, accepted, message = "signature", False, f"refused: {bad}"
        elif (late := _out_of_order(c, log)) is not None:
            accepted, message = False, late
            if valid_id(c.get("id")) and c["id"] not in log.seen:
                log.remember(c["id"])
        else:
            accepted, message = apply_command(agent, c, tick, now, log.seen, resume_held)
            if accepted and c.get("command") in SWITCHES:
                log.switched(_parse_time(c.get("issued_at")))
            if valid_id(c.get("id")) and c["id"] not in log.seen:
                log.remember(c["id"])
                try:
                    write_json(Path(state_dir) / SEEN_FILE, {"ids": list(log.seen)}, iso(now))
                except OSError as e:
                    print(f"worker: warning: cannot write {SEEN_FILE} ({e.strerror}): a restart may forget "
                          f"command {c['id']}", file=sys.stderr)
        record = {"id": short(c.get("id") if isinstance(c.get("id"), str) else entry.name.removesuffix(".json")),
                  "file": short(entry.name), "command": short(c.get("command")), "action_id": short(c.get("action_id")),
                  "by": short(c.get("by")), "issued_at": short(c.get("issued_at")), "processed_at": iso(now),
                  "tick": tick, "result": "accepted" if accepted else "refused", "message": short(message)}
        log.add(record)
        done.append(record)
        if not accepted:
            log.refusals[kind] += 1
            if kind != "command" or "replayed" in message or "out of order" in message:
                audited += 1
                if audited <= AUDITED_PER_TICK:
                    _audit(agent, record)
        _discard(entry, now, log, dfd, folder)
        print(f"worker: command {record['id']} ({record['command']} {record['action_id'] or ''}) by {record['by']}: "
              f"{record['message']}", file=sys.stderr)
    if audited > AUDITED_PER_TICK:
        _audit(agent, {"id": "-", "file": "-", "message": f"{audited - AUDITED_PER_TICK} more refusals at tick {tick}; "
                                                            "see commands.json"})
    return done
