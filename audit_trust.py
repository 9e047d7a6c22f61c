"""Audit trust: on start the audit log is verified before anything in it is replayed; a broken chain is set aside.

The chain (state/audit.jsonl) is checked against the head kept outside it: `audit_head` in
control_plane.json and state/audit_head.json, both written atomically with each state write
(the higher one counts). When the chain is broken (an edited, inserted, forged or removed line,
a cut tail, a missing log) the worker:
  - renames the log to audit.jsonl.broken-<time>, byte for byte untouched, and never replays it;
  - records the break in state/audit_broken.json (when, why, the old head, the file kept aside);
  - starts a new chain whose first line (audit_chain_start) records the break, the old head and a
    checkpoint of the control plane as the state files have it; replay starts from that line;
  - pauses automation (every decision waits for approval; approvals still work) and says so in
    status.json: "audit": {"ok": false, "message": "..."}.
Until an operator runs `python worker.py --accept-audit-break "reason"` (accept_break), the flag
stays, the pause is re-applied each tick, and `--verify-audit` exits 1. Accepting appends an
audit_break_accepted line (who, why, the old head, the broken file and its sha256) to the new
chain and clears the flag; the broken file stays where it is, for whoever investigates.

Never edits, truncates or appends to a broken log, and never re-chains one.
"""
from __future__ import annotations

import getpass
import hashlib
from dataclasses import dataclass
from pathlib import Path

from safe_json import JsonRefused, load_json
from state_load import CHAIN_START, checkpoint_reason, control_doc_reason, head_reason
from state_writer import AUDIT_FILE, AuditLog, open_audit, read_json, verify_audit, write_json

HEAD_FILE = "audit_head.json"          # {seq, hash}: the log's head, kept outside the log
BROKEN_FILE = "audit_broken.json"      # present while a broken chain waits for an operator
ACCEPTED = "audit_break_accepted"
ACCEPT_HINT = 'python worker.py --accept-audit-break "<reason>"'


@dataclass(frozen=True)
class AuditTrust:
    ok: bool
    message: str                       # one line (the detail, no "broken" prefix): status.json, the dashboard's
                                       # banner ("Audit log broken: <message>") and --verify-audit

    def to_dict(self) -> dict:
        return {"ok": self.ok, "message": self.message}


def _read(path: Path) -> dict | None:
    try:
        doc = load_json(path, max_bytes=1 << 20)
    except JsonRefused:
        return None
    return doc if isinstance(doc, dict) else None


def broken_flag(state_dir: Path) -> dict | None:
    """The recorded break, or None. An unreadable flag file still counts as a break (fail safe)."""
    path = state_dir / BROKEN_FILE
    if not path.exists() and not path.is_symlink():
        return None
    return _read(path) or {"message": f"{BROKEN_FILE} is unreadable", "old_head": None}


def anchor(state_dir: Path, ignore: dict | None = None) -> dict | None:
    """The higher of the heads kept outside the log (control_plane.json, audit_head.json); `ignore`: a head
    that belongs to a chain already set aside (the old head a recorded break names)."""
    heads = [(_read(state_dir / "control_plane.json") or {}).get("audit_head"), _read(state_dir / HEAD_FILE)]
    heads = [{"seq": h["seq"], "hash": h["hash"]} for h in heads if h is not None and head_reason(h) is None]
    heads = [h for h in heads if h != ignore]
    return max(heads, key=lambda h: h["seq"], default=None)


def check(state_dir: Path) -> AuditTrust:
    """Read-only: is the log trustworthy now? (--verify-audit, and the first step of open_log)."""
    flag = broken_flag(state_dir)
    head = anchor(state_dir, ignore=(flag or {}).get("old_head"))
    log = state_dir / AUDIT_FILE
    if not log.is_symlink() and not log.exists():
        if head is not None and head["seq"] > 0:
            return AuditTrust(False, f"the audit log is missing but state recorded seq {head['seq']}")
        ok, message = True, "no audit log yet"
    else:
        ok, message = verify_audit(log, head)
    if flag is not None:
        return AuditTrust(False, f"{str(flag.get('message'))[:150]}; kept aside as {flag.get('log')}; "
                                 f"an operator must run {ACCEPT_HINT}")
    return AuditTrust(ok, message)


def set_aside(state_dir: Path, message: str, stamp: str) -> dict:
    """Record the break, then rename the broken log (untouched); returns the flag written. A kill between the two
    is completed on the next start (finish_set_aside)."""
    old_head = anchor(state_dir, ignore=(broken_flag(state_dir) or {}).get("old_head"))
    log, aside = state_dir / AUDIT_FILE, None
    if log.exists() or log.is_symlink():
        aside = state_dir / f"{AUDIT_FILE}.broken-{stamp}"
        n = 1
        while aside.exists():
            aside, n = state_dir / f"{AUDIT_FILE}.broken-{stamp}-{n}", n + 1
    flag = {"detected_at": stamp, "message": " ".join(message.split())[:500], "old_head": old_head,
            "log": aside.name if aside else None, "sha256": _sha256(log) if aside else None}
    write_json(state_dir / BROKEN_FILE, flag, stamp)
    if aside is not None:
        log.rename(aside)
    return flag


def finish_set_aside(state_dir: Path, flag: dict | None) -> None:
    """A break recorded but its log not yet renamed (a kill in set_aside): rename it now, if it is that log."""
    log = state_dir / AUDIT_FILE
    name = (flag or {}).get("log")
    if isinstance(name, str) and "/" not in name and (log.exists() or log.is_symlink()) and not (state_dir / name).exists() \
            and flag.get("sha256") == _sha256(log):
        log.rename(state_dir / name)


def checkpoint(control_doc: dict | None) -> dict:
    """The control plane, each action's status and the ledger, as the state file has them."""
    doc = control_doc if control_doc is not None and control_doc_reason(control_doc) is None else {}
    cp = {"control_plane": doc.get("control_plane", {}), "applied": dict(doc.get("applied", {})),
          "statuses": {a["id"]: a["status"] for a in doc.get("actions", [])}}
    return cp if checkpoint_reason(cp) is None else {"control_plane": {}, "statuses": {}, "applied": {}}


def start_chain(audit: AuditLog, flag: dict, control_doc: dict | None) -> dict:
    """The first line of the new chain: the break, the old head, and a checkpoint to replay from."""
    return audit.append({"event": CHAIN_START, "reason": f"audit log broken: {flag.get('message')}",
                         "previous_log": flag.get("log"), "previous_head": flag.get("old_head"),
                         "previous_sha256": flag.get("sha256"), "checkpoint": checkpoint(control_doc)})


def write_heads(state_dir: Path, head: dict, stamp: str) -> None:
    """After a new chain begins: both heads kept outside the log name it, so no stale head outlives the break."""
    write_json(state_dir / HEAD_FILE, head, stamp)
    doc = read_json(state_dir / "control_plane.json")
    if doc is not None:
        write_json(state_dir / "control_plane.json", {**doc, "audit_head": head}, stamp)


def open_log(state_dir: Path, stamp: str, clock, process: str, control_doc: dict | None) -> tuple[AuditLog, AuditTrust,
                                                                                                    bool]:
    """On start: verify, set a broken chain aside and begin a new one. Returns (the log to append to, the trust,
    whether its lines may be replayed)."""
    flag = broken_flag(state_dir)
    finish_set_aside(state_dir, flag)
    if flag is None:
        trust = check(state_dir)
        chain_ok, why = trust.ok, trust.message
    else:
        chain_ok, why = _chain_ok(state_dir, flag)
        why = f"the chain begun after the break is broken too: {why}"
    if not chain_ok:
        flag = set_aside(state_dir, why, stamp)
    audit = AuditLog(state_dir, clock, process)
    if audit.seq == 0 and flag is not None:
        start_chain(audit, flag, control_doc)
        write_heads(state_dir, audit.head, stamp)
    if flag is not None:
        trust = check(state_dir)
    return audit, trust, chain_ok


def _chain_ok(state_dir: Path, flag: dict) -> tuple[bool, str]:
    """With a break recorded: is the new chain itself intact (against heads written since)?"""
    log = state_dir / AUDIT_FILE
    head = anchor(state_dir, ignore=flag.get("old_head"))
    if not log.exists() and not log.is_symlink():
        return head is None or head["seq"] == 0, "the new chain is missing"
    return verify_audit(log, head)


def accept_break(state_dir: Path, reason: str, stamp: str, clock) -> tuple[int, str]:
    """The operator's act: (exit code, one line). Sets a still-unhandled break aside first; appends the
    acceptance to the new chain; clears the flag. The worker must be stopped (the caller holds the lock)."""
    reason = " ".join(str(reason).split())[:300]
    if not reason:
        return 2, "--accept-audit-break needs a reason"
    flag = broken_flag(state_dir)
    finish_set_aside(state_dir, flag)
    if flag is None:
        trust = check(state_dir)
        if trust.ok:
            return 0, f"audit log OK ({trust.message}): nothing to accept"
        flag = set_aside(state_dir, trust.message, stamp)
    elif not (new := _chain_ok(state_dir, flag))[0]:
        flag = set_aside(state_dir, f"the chain begun after the break is broken too: {new[1]}", stamp)
    control_doc = read_json(state_dir / "control_plane.json")
    audit = AuditLog(state_dir, clock, "worker.py --accept-audit-break")
    if audit.seq == 0:
        start_chain(audit, flag, control_doc)
    try:
        who = getpass.getuser()
    except (OSError, KeyError):
        who = "operator"
    audit.append({"event": ACCEPTED, "who": "operator", "approver": who, "reason": reason,
                  "previous_log": flag.get("log"), "previous_head": flag.get("old_head"),
                  "previous_sha256": flag.get("sha256"), "break": flag.get("message")})
    write_heads(state_dir, audit.head, stamp)
    (state_dir / BROKEN_FILE).unlink(missing_ok=True)
    return 0, (f"break accepted by {who}: new chain at seq {audit.seq}; the broken log stays as {flag.get('log')}; "
               "automation stays paused until an operator resumes it")


def _sha256(path: Path) -> str:
    """The file's sha256; for a symlink, FIFO or device (never followed nor read) what it is instead."""
    h = hashlib.sha256()
    try:
        with open_audit(path) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        return f"not read: {e.strerror}"
    return h.hexdigest()

