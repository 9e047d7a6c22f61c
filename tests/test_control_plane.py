"""control_plane.py: what the agent may change (reroutes, retry policies, suppressions), applied and removed by
action id, and the JSON the worker persists and the audit replay rebuilds."""
from __future__ import annotations

import json

import numpy as np
import pytest

from control_plane import (
    ActionType,
    ControlPlane,
    RetryPolicy,
    RouteOverride,
    RouteSplit,
    Suppression,
    apply_action,
    remove_action,
)


def roundtrip(c: ControlPlane) -> ControlPlane:
    return ControlPlane.from_dict(json.loads(json.dumps(c.to_dict())))


def test_apply_reroute_keeps_its_params_and_action_id():
    c = apply_action(ControlPlane(), "reroute", {"issuer": "chase", "processor": "atlas"},
                     {"from_processor": "atlas", "to_processor": "beacon", "holdout": 0.1, "holdout_first_only": True,
                      "attempts": "retries"}, "A7")
    assert c.route_overrides == (RouteOverride("beacon", "atlas", "chase", None, 0.1, "A7", True, True),)
    assert roundtrip(c) == c


def test_a_new_retry_policy_replaces_the_merchants_old_one_and_stays_sorted():
    c = apply_action(ControlPlane(), ActionType.RETRY_POLICY, {"merchant": "skyways"}, {"max_attempts": 3}, "A1")
    c = apply_action(c, "retry_policy", {"merchant": "globemart"}, {"max_attempts": 2, "min_backoff_ticks": 4}, "A2")
    c = apply_action(c, "retry_policy", {"merchant": "skyways"}, {"max_attempts": 1}, "A3")
    assert [m for m, _ in c.retry_policies] == ["globemart", "skyways"]
    assert c.retry_policy("skyways") == RetryPolicy(1) and c.retry_policy("globemart") == RetryPolicy(2, 4)
    assert c.retry_policy("dashbite") is None
    assert roundtrip(c) == c


def test_remove_takes_out_only_that_actions_effect():
    c = ControlPlane()
    c = apply_action(c, "reroute", {"issuer": "chase"}, {"to_processor": "beacon"}, "A1")
    c = apply_action(c, "reroute", {"processor": "cobalt"}, {"from_processor": "cobalt", "to_processor": "atlas"}, "A2")
    c = apply_action(c, "suppress", {"issuer": "bofa", "method": "card"}, {}, "A3")
    c = apply_action(c, "retry_policy", {"merchant": "globemart"}, {"max_attempts": 2}, "A4")
    after = remove_action(c, "reroute", {"issuer": "chase"}, "A1")
    assert [o.action_id for o in after.route_overrides] == ["A2"] and after.suppressions == c.suppressions
    after = remove_action(after, "suppress", {"issuer": "bofa", "method": "card"}, "A3")
    assert after.suppressions == () and after.retry_policies == c.retry_policies
    after = remove_action(after, "retry_policy", {"merchant": "globemart"}, "A4")      # keyed by merchant
    assert after.retry_policies == () and [o.action_id for o in after.route_overrides] == ["A2"]


def test_unknown_action_type_is_refused():
    with pytest.raises(ValueError, match="unknown action type"):
        apply_action(ControlPlane(), "launch", {"merchant": "globemart"}, {}, "A1")


def test_the_control_plane_is_immutable():
    c = ControlPlane()
    d = apply_action(c, "suppress", {"merchant": "glowbox"}, {}, "A1")
    assert c == ControlPlane() and d.suppressions == (Suppression(merchant="glowbox", action_id="A1"),)


def test_route_split_only_in_json_when_set_and_round_trips():
    assert "route_split" not in ControlPlane().to_dict()
    cdf = np.array([[0.25, 0.75, 1.0], [0.0, 0.0, 1.0]])
    split = RouteSplit(cdf, np.array([[1, 2, 0], [2, 0, 1]], dtype=np.int16))
    back = roundtrip(ControlPlane(route_split=split)).route_split
    assert back.cdf.tolist() == cdf.tolist() and back.retry_order.tolist() == split.retry_order.tolist()
    assert roundtrip(ControlPlane(route_split=RouteSplit(cdf))).route_split.retry_order is None
