"""bench/trace.py: when a control plane addresses a fault (the benchmark's mitigation ground truth)."""
from __future__ import annotations

import pytest

from bench.trace import addresses
from control_plane import ControlPlane, RetryPolicy, RouteOverride, Suppression
from merchant_profiles import DEFAULT_UNIVERSE as U
from simulator import Fault, FaultKind


@pytest.mark.parametrize("fault, control, expected", [
    # degradation: the path's traffic moved off (90% with a 10% holdout) addresses it; another issuer's move does not
    (Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="chase", processor="atlas"),
     ControlPlane((RouteOverride("beacon", "atlas", "chase", holdout=0.1),)), True),
    (Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="chase", processor="atlas"),
     ControlPlane((RouteOverride("beacon", "atlas", "bofa"),)), False),
    # latency: the whole processor moved; one issuer's share of it is not enough
    (Fault(FaultKind.LATENCY_SPIKE, 0.7, processor="cobalt"), ControlPlane((RouteOverride("beacon", "cobalt"),)), True),
    (Fault(FaultKind.LATENCY_SPIKE, 0.7, processor="cobalt"),
     ControlPlane((RouteOverride("beacon", "cobalt", "revolut"),)), False),
    # retry storm: a cap at or under the merchant's normal attempts, or its retries stopped
    (Fault(FaultKind.RETRY_STORM, 0.8, merchant="glowbox"), ControlPlane(retry_policies=(("glowbox", RetryPolicy(2)),)), True),
    (Fault(FaultKind.RETRY_STORM, 0.8, merchant="glowbox"), ControlPlane(retry_policies=(("glowbox", RetryPolicy(5)),)), False),
    (Fault(FaultKind.RETRY_STORM, 0.8, merchant="glowbox"), ControlPlane(suppressions=(Suppression(merchant="glowbox"),)), True),
    # outage: only stopping the issuer's retries addresses it
    (Fault(FaultKind.ISSUER_OUTAGE, 0.9, issuer="barclays"), ControlPlane((RouteOverride("atlas", "beacon", "barclays"),)), False),
    (Fault(FaultKind.ISSUER_OUTAGE, 0.9, issuer="barclays"), ControlPlane(suppressions=(Suppression(issuer="barclays"),)), True),
])
def test_addresses(fault, control, expected):
    assert addresses(fault, control, U) is expected
