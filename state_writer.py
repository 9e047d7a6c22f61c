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

import hashlib
import hmac
import json
import math
import os
import tempfile
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

import command_auth
from safe_json import JsonRefused, load_json, loads, open_regular

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


def write_json(path: str | Path, doc: dict, generated_at: str, mode: int = 0o644) -> None:
    """Atomically replace `path` with `doc` plus schema_version and generated_at."""
    write_text_atomic(path, dumps({"schema_version": SCHEMA_VERSION, "generated_at": generated_at, **doc}), mode)


def write_text_atomic(path: str | Path, body: str, mode: int = 0o644) -> None:
    """Replace `path` with `body` so that a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | Path) -> dict | None:
    """The document, or None when the file is missing, half-written, hostile (see safe_json) or not an object."""
    try:
        doc = load_json(path)
    except JsonRefused:
        return None
    return doc if isinstance(doc, dict) else None


def write_command(state_dir: str | Path, command: dict, key: bytes | None = None) -> Path:
    """Atomically drop one operator command into state_dir/commands/ for the worker; returns its path.

    `command` names the command (one of COMMANDS), `by` and `issued_at` (ISO time), and for
    approve/reject the `action_id` (approve also the action's `params_hash`). A unique `id` is
    added when missing; the worker refuses an id it has seen before. With `key` (the shared
    secret, command_auth) the file carries its signature `sig`; the worker refuses a command without one.
    """
    if command.get("command") not in COMMANDS:
        raise ValueError(f"unknown command {command.get('command')!r}; valid: {', '.join(COMMANDS)}")
    doc = {"id": uuid.uuid4().hex, **command}
    cid = doc["id"]
    if not (isinstance(cid, str) and 0 < len(cid) <= 64 and cid.isascii() and cid.replace("-", "").isalnum()):
        raise ValueError(f"command id must be 1-64 letters, digits or dashes, got {cid!r}")
    path = Path(state_dir) / COMMANDS_DIR / f"{cid}.json"
    stamped = {"schema_version": SCHEMA_VERSION, "generated_at": str(doc.get("issued_at", "")), **doc}
    write_json(path, command_auth.sign(key, stamped) if key is not None else stamped, stamped["generated_at"],
               0o600)                     # a signed command is a bearer token: no other user may read and keep it
    return path


class StateWriter:
    """Writes the loop's documents into one folder; `clock()` returns the ISO time to stamp."""

    def __init__(self, state_dir: str | Path, clock: Callable[[], str]):
        self.dir = Path(state_dir)
        self.clock = clock
        self.dir.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, doc: dict) -> None:
        write_json(self.dir / name, doc, self.clock())

    def write_all(self, docs: dict[str, dict], audit_head: dict | None = None) -> None:
        """Every document of a step; control_plane.json carries the audit log's head, so a cut log is noticed."""
        for name, doc in docs.items():
            if name == "control_plane.json" and audit_head is not None:
                doc = {**doc, "audit_head": audit_head}
            self.write(name, doc)

    def read(self, name: str) -> dict | None:
        return read_json(self.dir / name)


# -- one writer per state folder ----------------------------------------------------------

class StateLocked(RuntimeError):
    """Another process already writes this state folder."""


def acquire_lock(state_dir: str | Path, who: str):
    """Hold an exclusive lock on state_dir/.lock for the life of the process, or raise StateLocked."""
    import fcntl
    path = Path(state_dir)
    path.mkdir(parents=True, exist_ok=True)
    try:                                     # never through a link: "a+" truncated whatever file .lock pointed to
        fd = open_regular(path / ".lock", os.O_RDWR | os.O_CREAT)
    except OSError as e:
        raise StateLocked(f"{path}/.lock cannot be opened ({e.strerror}; a symlink, FIFO or device?): remove it") \
            from None
    f = os.fdopen(fd, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise StateLocked(f"{path}/ is in use by {holder}; stop it or pass another --state-dir") from None
    f.seek(0)
    f.truncate()
    f.write(f"{who} (pid {os.getpid()})")
    f.flush()
    return f


# -- the audit log: append-only, hash-chained, fsynced ---------------------------------------

AUDIT_FILE = "audit.jsonl"
GENESIS = "0" * 64
AUDIT_LINE_MAX = 1 << 20        # bytes in one audit line; ours are under 10 KB: a longer one is never read whole


def open_audit(path: str | Path, append: bool = False):
    """A binary file object on the audit log (or another log of ours: errors.log) through safe_json.open_regular
    (no link followed, a FIFO never blocks, /dev/zero never read); OSError otherwise. append: created 0644 if absent."""
    fd = open_regular(path, (os.O_WRONLY | os.O_APPEND | os.O_CREAT) if append else os.O_RDONLY)
    return os.fdopen(fd, "ab" if append else "rb")


def _lines(f):
    """(line bytes or None when over AUDIT_LINE_MAX) for each line of f, in bounded memory."""
    while raw := f.readline(AUDIT_LINE_MAX + 1):
        if len(raw) > AUDIT_LINE_MAX and not raw.endswith(b"\n"):
            while (rest := f.readline(AUDIT_LINE_MAX)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield raw


def audit_key(state_dir: str | Path) -> tuple[bytes | None, str | None]:
    """The key that chains this folder's audit log (state/secret.key, made if absent), or (None, why it is unusable).

    Keyed, the chain is an HMAC: someone who can write state/ but not read the key cannot append, edit or re-chain
    a line, nor move the heads kept beside the log to match."""
    try:
        return command_auth.load_or_create_key(state_dir), None
    except command_auth.KeyRefused as e:
        return None, str(e)


def _line_hash(prev: str, body: dict, key: bytes | None = None) -> str:
    data = (prev + json.dumps(body, sort_keys=True, separators=(",", ":"))).encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest() if key else hashlib.sha256(data).hexdigest()


class AuditLog:
    """state/audit.jsonl: one JSON line per change, each carrying the hash of the line before.

    A line holds who (agent or operator), what (event, action id, type, target, parameters,
    risk, approval reference, reason), when (UTC), result, and origin (process, pid, host).
    """

    def __init__(self, state_dir: str | Path, clock: Callable[[], str], process: str):
        import socket
        self.path = Path(state_dir) / AUDIT_FILE
        self.clock = clock
        self.origin = {"process": process, "pid": os.getpid(), "host": socket.gethostname()}
        self.key, self.key_problem = audit_key(state_dir)     # unusable: lines chained unkeyed, never verified
        self.seq, self.prev = 0, GENESIS
        last = _last_line(self.path)
        if last is not None:
            self.seq, self.prev = last["seq"], last["hash"]

    def append(self, event: dict) -> dict:
        body = {"seq": self.seq + 1, "ts": self.clock(), "who": "agent", "result": "success", **event,
                "origin": self.origin, "prev": self.prev}
        body = _clean(body)
        line = {**body, "hash": _line_hash(self.prev, body, self.key)}
        with open_audit(self.path, append=True) as f:
            f.write((json.dumps(line, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        self.seq, self.prev = line["seq"], line["hash"]
        return line

    @property
    def head(self) -> dict:
        return {"seq": self.seq, "hash": self.prev}


def _last_line(path: Path) -> dict | None:
    try:
        with open_audit(path) as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            tail = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for raw in reversed(tail):
        try:
            doc = loads(raw)
        except JsonRefused:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("hash"), str) and isinstance(doc.get("seq"), int):
            return doc
    return None


def read_audit(path: str | Path) -> list[dict]:
    """Every parseable line, in order (for replay); verify_audit() says whether to trust them."""
    out = []
    try:
        with open_audit(path) as f:
            for raw in _lines(f):
                try:
                    doc = loads(raw.decode(errors="replace")) if raw is not None else None
                except JsonRefused:
                    continue
                if isinstance(doc, dict):
                    out.append(doc)
    except OSError:
        pass
    return out


def verify_audit(path: str | Path, anchor: dict | None = None) -> tuple[bool, str]:
    """Walk the chain with its folder's key; (True, summary) or (False, where it breaks). `anchor` is a head
    recorded elsewhere. Without a usable key nothing can be verified: (False, why)."""
    key, problem = audit_key(Path(path).parent)
    if key is None:
        return False, f"the audit key is unusable, so the chain cannot be verified: {problem}"
    prev, seq, at_anchor = GENESIS, 0, None
    try:
        with open_audit(path) as f:
            return _verify_lines(_lines(f), prev, seq, at_anchor, anchor, key)
    except OSError as e:
        return False, f"cannot read {path}: {e.strerror}"


def _verify_lines(lines, prev, seq, at_anchor, anchor, key: bytes) -> tuple[bool, str]:
    for n, raw in enumerate(lines, 1):
        if raw is None:
            return False, f"line {n}: longer than {AUDIT_LINE_MAX:,} bytes"
        try:
            doc = loads(raw.decode(errors="replace"))
            body = {k: v for k, v in doc.items() if k != "hash"}
        except (JsonRefused, AttributeError):
            return False, f"line {n}: not a JSON object"
        if doc.get("prev") != prev:
            return False, f"line {n} (seq {doc.get('seq')}): previous-hash mismatch: a line before it was changed or removed"
        if doc.get("seq") != seq + 1:
            return False, f"line {n}: sequence {doc.get('seq')} follows {seq}: a line is missing"
        if not hmac.compare_digest(_line_hash(prev, body, key), str(doc.get("hash"))):
            return False, (f"line {n} (seq {doc.get('seq')}): content does not match its keyed hash: the line was "
                           "edited, or written without state/secret.key")
        prev, seq = doc["hash"], doc["seq"]
        if anchor and anchor.get("seq") == seq:
            at_anchor = prev
    if anchor and at_anchor is not None and at_anchor != anchor.get("hash"):
        return False, f"line seq {anchor.get('seq')} is not the line state recorded: the log was rewritten"
    if anchor and (anchor.get("seq", 0) > seq or (anchor.get("seq") == seq and anchor.get("hash") != prev)):
        return False, f"the log ends at seq {seq} but state recorded seq {anchor.get('seq')}: lines were removed from the end"
    return True, f"{seq} lines, chain intact"
