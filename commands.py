"""Operator commands: the approve, reject, pause and resume files the dashboard drops in state/commands/.

worker.py calls process_commands at the start of each tick: every file is read, validated
(an id never seen before, a known command, who issued it, a recent issue time, for approve
the params_hash of the action as shown), applied once through the agent's operator methods,
logged in state/commands.json with its result, and deleted. A refusal is a logged message,
never an exception.
"""
from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from agent import Agent
from clock import iso
from executor import ApprovalError
from state_writer import COMMANDS, COMMANDS_DIR, read_json

COMMAND_MAX_AGE_S = 15 * 60   # an approval older than 15 min was given for traffic that has moved on
COMMAND_MAX_SKEW_S = 60       # a command dated more than a minute ahead is refused (clock skew or a forged date)
COMMAND_LOG = 100             # entries kept in state/commands.json
SEEN_IDS = 10_000             # command ids remembered against replays (a bounded memory in endless runs)


def _parse_time(value) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def apply_command(agent: Agent, cmd: dict | None, tick: int, now: datetime, seen) -> tuple[bool, str]:
    """Validate one operator command and apply it through the executor: (accepted, message). Never raises."""
    if not isinstance(cmd, dict):
        return False, "refused: not a JSON object (malformed file)"
    if not isinstance(cmd.get("id"), str) or not cmd["id"]:
        return False, "refused: the command has no id"
    if cmd["id"] in seen:
        return False, f"refused: command {cmd.get('id')} was already processed (replayed)"
    kind = cmd.get("command")
    if kind not in COMMANDS:
        return False, f"refused: unknown command {kind!r}; valid: {', '.join(COMMANDS)}"
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
    if kind in ("pause", "resume"):
        if agent.paused == (kind == "pause"):
            return False, f"refused: already {'paused' if agent.paused else 'running'}"
        agent.set_paused(kind == "pause", by.strip())
        return True, ("paused: the agent observes and reasons, nothing runs without approval" if agent.paused
                      else "resumed: the agent acts on its own again within its guardrails")
    action_id = cmd.get("action_id")
    if not isinstance(action_id, str):
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
    """The processed commands (state/commands.json) and the ids already seen, both bounded."""
    entries: deque = field(default_factory=lambda: deque(maxlen=COMMAND_LOG))
    seen: dict = field(default_factory=dict)     # insertion-ordered: the oldest ids fall off first

    def add(self, entry: dict) -> None:
        self.entries.append(entry)
        if entry.get("id"):
            self.seen[entry["id"]] = True
            while len(self.seen) > SEEN_IDS:
                self.seen.pop(next(iter(self.seen)))

    @classmethod
    def load(cls, doc: dict | None) -> "CommandLog":
        """Resume from a previous commands.json, so a restart does not forget recent ids."""
        log = cls()
        for e in (doc or {}).get("log", []):
            if isinstance(e, dict):
                log.add(e)
        return log

    def to_dict(self, tick: int) -> dict:
        return {"tick": tick, "max_age_seconds": COMMAND_MAX_AGE_S, "log": list(self.entries)}


def process_commands(state_dir: str | Path, agent: Agent, tick: int, now: datetime, log: CommandLog) -> list[dict]:
    """Apply every command file in state_dir/commands/, oldest first, log the result, delete the file."""
    folder = Path(state_dir) / COMMANDS_DIR
    docs = [(read_json(f), f) for f in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    docs.sort(key=lambda d: (str(d[0].get("issued_at", "")) if d[0] else "", d[1].name))
    done = []
    for cmd, path in docs:
        accepted, message = apply_command(agent, cmd, tick, now, log.seen)
        c = cmd if isinstance(cmd, dict) else {}
        entry = {"id": c.get("id") if isinstance(c.get("id"), str) else path.stem, "file": path.name,
                 "command": c.get("command"), "action_id": c.get("action_id"), "by": c.get("by"),
                 "issued_at": c.get("issued_at"), "processed_at": iso(now), "tick": tick,
                 "result": "accepted" if accepted else "refused", "message": message}
        log.add(entry)
        done.append(entry)
        path.unlink(missing_ok=True)
        print(f"worker: command {entry['id']} ({entry['command']} {entry['action_id'] or ''}) by {entry['by']}: "
              f"{message}", file=sys.stderr)
    return done
