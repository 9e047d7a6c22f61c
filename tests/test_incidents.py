"""incidents.py: hypotheses held over time as incidents: open, merge by shared values, close after a quiet spell,
and count the first attempts affected and the approvals lost."""
from __future__ import annotations

from incidents import IncidentTracker
from reasoner import Cause, Hypothesis, make_target

CHASE_ATLAS = Hypothesis(Cause.ISSUER_DEGRADATION, make_target(issuer="chase", processor="atlas"), 0.7, ("first",))
CHASE = Hypothesis(Cause.ISSUER_OUTAGE, make_target(issuer="chase"), 0.9, ("everywhere",))
STORM = Hypothesis(Cause.RETRY_STORM, make_target(merchant="globemart"), 0.8, ("storm",))


def time_of(tick):
    return f"t{tick}"


def impact(target):
    return 100, 5.5                                 # each named tick: 100 first attempts affected, 5.5 approvals lost


def test_an_incident_opens_merges_what_shares_a_value_and_closes_after_a_quiet_spell():
    tr = IncidentTracker(close_after=2)
    assert [i.id for i in tr.update(10, [CHASE_ATLAS], impact, time_of)] == ["I001"]
    # chase everywhere joins I001; the storm opens I002
    assert tr.update(11, [CHASE, STORM], impact, time_of)[0].id == "I002"
    inc = tr.incidents[0]
    assert len(tr.incidents) == 2 and inc.named[(CHASE.cause.value, CHASE.target)] == 1
    assert inc.confidence == 0.9 and inc.evidence == ["everywhere"]          # the strongest hypothesis's evidence
    tr.update(12, [CHASE], impact, time_of)
    assert inc.cause == "issuer_outage" and inc.target == {"issuer": "chase"}  # named most often now
    tr.update(13, [STORM], impact, time_of)
    assert inc.open
    tr.update(14, [STORM], impact, time_of)
    assert not inc.open and inc.end == "t13"                                  # the tick after the last one naming it
    assert inc.affected_attempts == 300 and inc.approvals_lost_est == 16.5    # three ticks named
    assert tr.open_incidents() == [tr.incidents[1]]


def test_two_hypotheses_of_one_incident_in_one_tick_count_its_impact_once():
    tr = IncidentTracker()
    tr.update(1, [CHASE_ATLAS, CHASE], impact, time_of)
    (inc,) = tr.incidents
    assert sum(inc.named.values()) == 2 and inc.affected_attempts == 100


def test_to_dict_lists_what_else_named_it_and_prune_keeps_ids_unique():
    tr = IncidentTracker(close_after=1)
    tr.update(1, [CHASE_ATLAS], impact, time_of)
    tr.update(2, [CHASE_ATLAS, CHASE], impact, time_of)
    d = tr.incidents[0].to_dict()
    assert d["cause"] == "issuer_degradation" and d["ticks_named"] == 3 and d["start"] == "t1" and d["end"] is None
    assert d["also_named"] == [{"cause": "issuer_outage", "target": {"issuer": "chase"}, "ticks": 1}]
    for t in range(3, 12, 2):                                     # five more incidents, each closed a tick later
        tr.update(t, [STORM], impact, time_of)
        tr.update(t + 1, [], impact, time_of)
    assert [i.id for i in tr.incidents] == ["I001", "I002", "I003", "I004", "I005", "I006"]
    tr.prune(keep=2)
    assert [i.id for i in tr.incidents] == ["I005", "I006"]
    tr.update(20, [CHASE], impact, time_of)
    assert tr.incidents[-1].id == "I007"
