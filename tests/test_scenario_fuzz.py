"""Hostile scenario files: the shipped documents mutated (NaN, infinities, huge numbers and strings, lone
surrogates, wrong types, nesting, dropped and added keys) either parse within the documented bounds or are
refused with one ScenarioError line; never another exception, and run.py exits 0 or 2 with one line.
"""
import copy
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import scenario as S
from merchant_profiles import DEFAULT_UNIVERSE as U
from scenario import ScenarioError, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parent.parent
BASES = [json.loads(p.read_text()) for p in sorted((ROOT / "scenarios").glob("*.json"))]


def _deep(n: int):
    doc = []
    for _ in range(n):
        doc = [doc]
    return doc


HOSTILE = [math.nan, math.inf, -math.inf, -1, 0, 1, 0.5, 1.5, 24, 1e9, 1e12, 1e308, -1e308, 2 ** 63, 2 ** 64, 10 ** 30,
           True, False, None, "", "x" * 1_000_000, "\ud800", "a\udfffb", "right\u202eleft", "line\nbreak", "tab\t",
           "chase", "atlas", "pixelforge", "issuer_outage", "retry_storm", [], {}, [[[[]]]], {"a": {"b": {}}}, [1, 2],
           {"kind": "issuer_outage", "issuer": "chase", "severity": 0.5}, "DEEP"]


def fresh(v):
    """A new copy of a hostile container (a mutation must never change HOSTILE itself)."""
    if v == "DEEP":
        return _deep(5_000)
    return copy.deepcopy(v) if isinstance(v, (list, dict)) else v


KEYS = list(dict.fromkeys(S.TOP_KEYS + S.PHASE_KEYS + S.FAULT_KEYS + ("extra", "", "Ticks", "faults ")))


def paths(doc, limit: int = 6) -> list[tuple]:
    """Every node's path (the root's is ()), at most `limit` deep; iterative, so a 5,000-deep list is fine."""
    out, stack = [], [((), doc)]
    while stack:
        path, node = stack.pop()
        out.append(path)
        if len(path) < limit:
            items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
            stack.extend((path + (k,), v) for k, v in items)
    return sorted(out, key=repr)


def _get(doc, path):
    for k in path:
        doc = doc[k]
    return doc


def mutate(doc, choose, value):
    """One mutation at a node chosen by `choose` (a draw from a list); `value()` gives a hostile value."""
    path = choose(paths(doc))
    op = choose(["replace", "replace", "replace", "drop", "add", "wrap"])
    if not path:
        return value() if op in ("replace", "wrap") else doc
    parent, key = _get(doc, path[:-1]), path[-1]
    if op == "replace":
        parent[key] = value()
    elif op == "drop":
        del parent[key]
    elif op == "wrap":
        parent[key] = choose([[parent[key]], {"x": parent[key]}, {"phases": parent[key]}])
    else:
        node = parent[key]
        if isinstance(node, dict):
            node[choose(KEYS)] = value()
        elif isinstance(node, list):
            node.append(value())
        else:
            parent[key] = value()
    return doc


def within_bounds(sc: S.Scenario) -> None:
    """The documented bounds (README, Scenario files), checked on a parsed scenario."""
    def name_ok(x):
        return isinstance(x, str) and x.isprintable() and 1 <= len(x) <= 200

    assert name_ok(sc.name)
    assert type(sc.seed) is int and 0 <= sc.seed <= 2 ** 63 - 1
    assert type(sc.tick_seconds) is float and 0.001 <= sc.tick_seconds <= 86_400
    assert type(sc.payments_per_tick) is float and 1 <= sc.payments_per_tick <= 1_000_000
    assert type(sc.start_hour) is float and 0 <= sc.start_hour < 24
    assert 1 <= len(sc.phases) <= 1_000 and 1 <= sc.total_ticks <= 100_000
    assert sc.total_ticks * sc.payments_per_tick <= 100_000_000
    tick = 0
    for p in sc.phases:
        assert name_ok(p.name) and type(p.ticks) is int and p.ticks >= 1 and p.start_tick == tick
        tick = p.end_tick
    assert len(sc.faults) <= 100
    for f in sc.faults:
        assert type(f.fault.severity) is float and 0 <= f.fault.severity <= 1
        assert all(type(x) is int for x in (f.start_tick, f.end_tick, f.ramp_ticks, f.flap_ticks))
        assert any(p.start_tick <= f.start_tick < f.end_tick <= p.end_tick for p in sc.phases)
        assert 0 <= f.ramp_ticks <= f.end_tick - f.start_tick and 0 <= f.flap_ticks <= f.end_tick - f.start_tick
        for k, v in f.fault.target.items():
            assert v in U.names(k)


def refused_in_one_line(e: ScenarioError) -> None:
    msg = str(e)
    assert msg and msg.isprintable() and "\n" not in msg and len(msg) <= 400, msg[:500]


def check(doc) -> str:
    try:
        sc = parse_scenario(doc, U)
    except ScenarioError as e:
        refused_in_one_line(e)
        return "refused"
    within_bounds(sc)
    return "accepted"


VALUES = st.one_of(st.sampled_from(HOSTILE).map(fresh), st.floats(), st.integers(), st.integers(-2, 200_000),
                   st.floats(-1, 25), st.text(max_size=12), st.booleans(), st.none())


def mutated_scenario_parses_within_bounds_or_is_refused_in_one_line(data):
    doc = copy.deepcopy(data.draw(st.sampled_from(BASES)))
    for _ in range(data.draw(st.integers(1, 4))):
        doc = mutate(doc, lambda xs: data.draw(st.sampled_from(xs)), lambda: data.draw(VALUES))
    event(check(doc))


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))(
        given(st.data())(mutated_scenario_parses_within_bounds_or_is_refused_in_one_line))


test_300_mutated_scenarios_parse_within_bounds_or_are_refused_in_one_line = fuzz(300)          # the inner loop
test_mutated_scenarios_parse_within_bounds_or_are_refused_in_one_line = pytest.mark.slow(fuzz(3000))


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_scenario_files_load_within_bounds_or_are_refused_in_one_line(data, tmp_path_factory):
    doc = copy.deepcopy(data.draw(st.sampled_from(BASES)))
    for _ in range(data.draw(st.integers(1, 3))):
        doc = mutate(doc, lambda xs: data.draw(st.sampled_from(xs)), lambda: data.draw(VALUES))
    path = tmp_path_factory.mktemp("fuzz") / "s.json"
    try:
        path.write_text(json.dumps(doc))            # NaN and Infinity written as such; surrogates as \ud800
    except RecursionError:
        path.write_text("[" * 5_000 + "]" * 5_000)
    try:
        sc = load_scenario(path, U)
    except ScenarioError as e:
        refused_in_one_line(e)
        return
    within_bounds(sc)


def hostile_files(folder: Path, n: int, seed: int = 11) -> list[Path]:
    """n mutated copies of the shipped files, written to folder; the same seed writes the same files."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        doc = copy.deepcopy(rng.choice(BASES))
        for _ in range(rng.randint(1, 3)):
            doc = mutate(doc, rng.choice, lambda: fresh(rng.choice(HOSTILE)))
        path = folder / f"hostile_{k:02d}.json"
        try:
            path.write_text(json.dumps(doc))
        except RecursionError:
            path.write_text("[" * 5_000 + "]" * 5_000)
        out.append(path)
    return out


@pytest.mark.slow
def test_run_py_exits_0_or_2_with_one_line_on_hostile_files(tmp_path):
    outcomes = {"ran": 0, "refused": 0}
    for path in hostile_files(tmp_path, 30):
        p = subprocess.run([sys.executable, "run.py", "--scenario", str(path), "--quiet", "--policy", "none",
                            "--no-llm", "--state-dir", str(tmp_path / f"state_{path.stem}")],
                           cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, (path.name, p.stderr[-2000:])
        if p.returncode == 2:
            assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("run.py: "), (path.name, p.stderr)
            assert p.stdout == "", path.name                   # refused before anything ran
            outcomes["refused"] += 1
        else:
            assert p.returncode == 0, (path.name, p.returncode, p.stderr[-2000:])
            outcomes["ran"] += 1
    assert outcomes["ran"] and outcomes["refused"], outcomes


@pytest.mark.slow
def test_worker_py_exits_2_with_one_line_on_refused_hostile_files(tmp_path):
    refused = []
    for path in hostile_files(tmp_path, 30):
        try:
            load_scenario(path, U)
        except ScenarioError:
            refused.append(path)
    assert refused
    for path in refused[:5]:
        p = subprocess.run([sys.executable, "worker.py", "--scenario", str(path), "--max-ticks", "1", "--no-llm",
                            "--tick-seconds", "0.01", "--state-dir", str(tmp_path / f"w_{path.stem}")],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and "Traceback" not in p.stderr, (path.name, p.stderr[-2000:])
        assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("worker.py: "), (path.name, p.stderr)
