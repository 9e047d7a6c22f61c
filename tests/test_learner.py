"""learner.py: outcomes remembered, the signal it derives (see test_learning_policy.py), effectiveness stats."""
from actions import ActionRecord, Status
from guardrails import PolicyConfig
from learner import Learner
from learning_policy import LearnerSettings, LearningSignal


def record(i, action="reroute", outcome="neutral", status=Status.ROLLED_BACK, target=None):
    return ActionRecord(id=f"A{i}", tick=i, action=action, target=target or {"issuer": "chase", "processor": "atlas"},
                        params={}, cause="issuer_degradation", confidence=0.8, risk=0.3, requires_human_approval=False,
                        status=status, explanation="", params_hash="h", outcome=outcome,
                        verdicts=[{"metrics": {"treated_rate": 0.5, "holdout_rate": 0.5, "cost_ratio": 1.4}}])


def test_harm_raises_the_confidence_needed_and_fades():
    cfg = PolicyConfig()
    learner = Learner()
    assert learner.signal(0).needed(cfg.min_confidence, "reroute", (("issuer", "chase"), ("processor", "atlas"))) == cfg.min_confidence
    learner.record(record(1), 10)
    sig = learner.signal(10)
    chase = (("issuer", "chase"), ("processor", "beacon"))
    bofa = (("issuer", "bofa"), ("processor", "atlas"))
    assert sig.needed(cfg.min_confidence, "reroute", chase) > sig.needed(cfg.min_confidence, "reroute", bofa) > cfg.min_confidence
    assert sig.needed(cfg.min_confidence, "retry_policy", bofa) == cfg.min_confidence       # other action types unaffected
    later = learner.signal(10 + LearnerSettings().memory_ticks + 1)
    assert later.needed(cfg.min_confidence, "reroute", chase) == cfg.min_confidence


def test_help_does_not_lower_the_bar_below_policy():
    learner = Learner()
    for i in range(5):
        learner.record(record(i, outcome="helped", status=Status.RESTORED), i)
    assert learner.signal(5) == LearningSignal()


def test_effectiveness_stats_and_reload():
    learner = Learner()
    learner.record(record(1), 5)
    learner.record(record(2, outcome="helped", status=Status.RESTORED), 6)
    learner.record(record(2, outcome="helped", status=Status.RESTORED), 7)    # same id updates in place
    stats = learner.get_action_effectiveness_stats()["reroute"]
    assert stats["count"] == 2 and stats["helped"] == 1 and stats["neutral"] == 1 and stats["rolled_back"] == 1
    assert stats["cost_harm"] == 2
    again = Learner()
    again.load(learner.to_dict())
    assert again.get_action_effectiveness_stats() == learner.get_action_effectiveness_stats()


