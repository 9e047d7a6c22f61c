"""A scripted live run for the recovery tests: LiveLoop in-process, a retry storm, an outage, approvals by command."""
from argparse import Namespace
from pathlib import Path

import worker
from command_auth import load_or_create_key
from simulator import Fault, FaultKind
from state_writer import read_audit, write_command

ARGS = Namespace(tps=3000.0, tick_seconds=1.0, seed=13, no_llm=True)


class Schedule:
    """A retry storm at globemart (ticks 30-110) and an outage at bofa (80-130)."""

    def faults_at(self, tick):
        f = ()
        if 30 <= tick < 110:
            f += (Fault(FaultKind.RETRY_STORM, 0.9, merchant="globemart"),)
        if 80 <= tick < 130:
            f += (Fault(FaultKind.ISSUER_OUTAGE, 0.9, issuer="bofa"),)
        return f

    def describe(self):
        return {"active_fault": None}


def live(state_dir):
    return worker.LiveLoop(ARGS, Path(state_dir), Schedule(), 12.0)


def approve_by_command(state_dir, rec, by="ops"):
    write_command(state_dir, {"command": "approve", "action_id": rec.id, "params_hash": rec.params_hash, "by": by,
                              "issued_at": worker.utc_now()}, load_or_create_key(state_dir))


def run_ticks(loop, n, approve_first_pending=False):
    """n ticks as worker.py runs them (without the sleep); optionally approve the first held action once."""
    for _ in range(n):
        loop.guarded_step()
        loop.write_state("running")
        loop.tick += 1
        pending = loop.agent.executor.pending()
        if approve_first_pending and pending and not list((loop.state_dir / "commands").glob("*.json")):
            rec = pending[0]
            if not any(e.get("action_id") == rec.id and e["event"] == "action_approved"
                       for e in read_audit(loop.state_dir / "audit.jsonl")):
                approve_by_command(loop.state_dir, rec)
                approve_first_pending = False
