"""actions.py: the record each proposed action leaves: what an approval is bound to, and its JSON round trip."""
from __future__ import annotations

import json

from actions import ActionRecord, Outcome, Status, params_hash


def record(**over) -> ActionRecord:
    d = dict(id="A0001", tick=5, action="reroute", target={"processor": "atlas", "issuer": "chase"},
             params={"to_processor": "beacon", "holdout": 0.1}, cause="issuer_degradation", confidence=0.9, risk=0.3,
             requires_human_approval=True, status="pending_approval", explanation="x",
             params_hash=params_hash("reroute", {"issuer": "chase", "processor": "atlas"},
                                     {"to_processor": "beacon", "holdout": 0.1}))
    return ActionRecord(**{**d, **over})


def test_params_hash_binds_type_target_and_params_not_their_order():
    chase, beacon = {"issuer": "chase", "processor": "atlas"}, {"to_processor": "beacon", "holdout": 0.1}
    h = params_hash("reroute", chase, beacon)
    assert h == params_hash("reroute", {"processor": "atlas", "issuer": "chase"}, {"holdout": 0.1, "to_processor": "beacon"})
    assert len(h) == 16
    others = {params_hash("suppress", chase, beacon),
              params_hash("reroute", {"issuer": "bofa", "processor": "atlas"}, beacon),
              params_hash("reroute", chase, {"to_processor": "cobalt", "holdout": 0.1})}
    assert h not in others and len(others) == 3


def test_a_record_rebuilt_from_json_has_its_enums_back():
    r = record(status=Status.EXECUTED, outcome=Outcome.HELPED, executed_tick=6)
    back = ActionRecord.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r and back.status is Status.EXECUTED and back.outcome is Outcome.HELPED
    assert record().status is Status.PENDING_APPROVAL and record().outcome is Outcome.PENDING


def test_target_key_and_kind():
    r = record()
    assert r.target_key == (("issuer", "chase"), ("processor", "atlas")) and r.is_reroute and not r.retries_only
    assert record(params={"attempts": "retries"}).retries_only
    assert not record(action="retry_policy").is_reroute

