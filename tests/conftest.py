import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


import pytest  # noqa: E402


@pytest.fixture
def gemini_sandbox(monkeypatch):
    """No connection leaves 127.0.0.1, and no Gemini variable from the developer's shell leaks in."""
    from gemini_stub import forbid_network
    forbid_network(monkeypatch)
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_MODEL", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The default demo, run once per session the way the README runs it (`run.py --quiet`, LLM off):
    (folder holding state/ and report.json, the report, what it printed). Several files read it; none may write
    to it (copy the folder first, as test_llm_safety does)."""
    import contextlib
    import io
    import json

    import run
    d = tmp_path_factory.mktemp("demo_run")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert run.main(["--quiet", "--no-llm", "--state-dir", str(d / "state"),
                         "--report", str(d / "report.json")]) == 0
    return d, json.loads((d / "report.json").read_text()), out.getvalue()


@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory):
    """bench.runner.run_benchmark on two tiny scenarios (a control and a degradation), one seed, one worker:
    (scenarios folder, result). test_bench_runner.py and test_bench_report.py read it."""
    import json

    from bench.runner import load_dir, run_benchmark
    d = tmp_path_factory.mktemp("tiny_bench")
    calm = {"name": "control", "seed": 3, "payments_per_tick": 600, "phases": [{"name": "calm", "ticks": 40}]}
    fault = {"name": "degradation", "seed": 3, "payments_per_tick": 600, "phases": [
        {"name": "calm", "ticks": 20},
        {"name": "fault", "ticks": 14, "faults": [{"kind": "issuer_degradation", "issuer": "chase",
                                                   "processor": "atlas", "severity": 0.9}]},
        {"name": "after", "ticks": 6}]}
    (d / "a_control.json").write_text(json.dumps(calm))
    (d / "b_degradation.json").write_text(json.dumps(fault))
    return d, run_benchmark(load_dir(d), n_seeds=1, workers=1, progress=None)


@pytest.fixture(scope="session")
def snaps():
    """A quiet snapshot, then one during a chase/atlas degradation (heuristics name it); test_llm_reasoner.py and
    test_llm_contract.py read them."""
    from control_plane import ControlPlane
    from merchant_profiles import DEFAULT_UNIVERSE as U
    from observer import Observer
    from simulator import Fault, FaultKind, Simulator
    sim, obs = Simulator(U, 3, 2000, 10.0, 12.0), Observer(U)
    fault = (Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="chase", processor="atlas"),)
    quiet = None
    for t in range(40):
        snap = obs.observe(sim.step(ControlPlane(), fault if t >= 32 else ()))
        if t == 31:
            quiet = snap
    return quiet, snap


@pytest.fixture(scope="session")
def pending_agent():
    """The demo scenario up to its first action held for a human: (agent, that action's id), once per session."""
    from tests.helpers import demo_until_pending
    return demo_until_pending()


@pytest.fixture
def agent(pending_agent):
    """A fresh copy of that agent whose audit lines land in agent.audited."""
    import copy
    a = copy.deepcopy(pending_agent[0])
    a.audited = []
    a.executor.audit = a.audited.append
    return a


@pytest.fixture
def pending(pending_agent):
    return pending_agent[0].executor.actions[pending_agent[1]]
