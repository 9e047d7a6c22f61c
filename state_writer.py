"""State: the only writer of state/; atomic JSON files that the dashboard and tools read.

Each write goes to a temporary file in the same folder, is flushed and fsynced,
then os.replace()d over the old file, so a reader sees the old or the new file,
never half of one. Every document carries schema_version and generated_at, and is
strict JSON (NaN and infinity become null). read_json() forgives: a missing,
half-written or corrupt file reads as None.

write_command() is the dashboard's only way to reach the worker: it drops one
operator command (approve, reject, pause, resume) as its own file into
state/commands/, and worker.py validates and applies it on its next tick.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

SCHEMA_VERSION = 1
STATE_FILES = ("metrics.json", "hypotheses.json", "actions.json", "learning.json", "control_plane.json", "status.json")
COMMANDS_DIR = "commands"                       # state/commands/<id>.json: one operator command per file
COMMANDS = ("approve", "reject", "pause", "resume")


def _clean(x):
    """Numpy scalars to Python, non-finite floats to None, tuples to lists."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def dumps(doc) -> str:
    return json.dumps(_clean(doc), allow_nan=False, sort_keys=True, separators=(",", ":"))


def write_json(path: str | Path, doc: dict, generated_at: str) -> None:
    """Atomically replace `path` with `doc` plus schema_version and generated_at."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = dumps({"schema_version": SCHEMA_VERSION, "generated_at": generated_at, **doc})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | Path) -> dict | None:
    """The document, or None when the file is missing, half-written or not a JSON object."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def write_command(state_dir: str | Path, command: dict) -> Path:
    """Atomically drop one operator command into state_dir/commands/ for the worker; returns its path.

    `command` names the command (one of COMMANDS), `by` and `issued_at` (ISO time), and for
    approve/reject the `action_id` (approve also the action's `params_hash`). A unique `id` is
    added when missing; the worker refuses an id it has seen before.
    """
    if command.get("command") not in COMMANDS:
        raise ValueError(f"unknown command {command.get('command')!r}; valid: {', '.join(COMMANDS)}")
    doc = {"id": uuid.uuid4().hex, **command}
    cid = doc["id"]
    if not (isinstance(cid, str) and 0 < len(cid) <= 64 and cid.isascii() and cid.replace("-", "").isalnum()):
        raise ValueError(f"command id must be 1-64 letters, digits or dashes, got {cid!r}")
    path = Path(state_dir) / COMMANDS_DIR / f"{cid}.json"
    write_json(path, doc, str(doc.get("issued_at", "")))
    return path


class StateWriter:
    """Writes the loop's documents into one folder; `clock()` returns the ISO time to stamp."""

    def __init__(self, state_dir: str | Path, clock: Callable[[], str]):
        self.dir = Path(state_dir)
        self.clock = clock
        self.dir.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, doc: dict) -> None:
        write_json(self.dir / name, doc, self.clock())

    def read(self, name: str) -> dict | None:
        return read_json(self.dir / name)
