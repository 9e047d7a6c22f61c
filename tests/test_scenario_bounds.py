"""Each finding of the hostile pass over scenario files, as a table: NaN and Infinity in every number, ticks 1e9,
payments_per_tick 1e7, tick_seconds 1e12, JSON 5,000 deep, a lone surrogate in a name, the allocation of
terabytes; each is refused with one line naming the field and its range before anything runs. The shipped
scenarios still parse, and a run's memory does not grow with its ticks.
"""
import json
import math
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

import run
import scenario as S
from merchant_profiles import DEFAULT_UNIVERSE as U
from scenario import ScenarioError, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parent.parent
OUTAGE = {"kind": "issuer_outage", "issuer": "chase", "severity": 0.5}


def doc(top=None, phase=None, fault=None) -> dict:
    """A small valid scenario with these keys changed at the top, in its second phase and in that phase's fault."""
    return {"name": "t", "seed": 3, "tick_seconds": 10, "payments_per_tick": 50, "start_hour": 12, **(top or {}),
            "phases": [{"name": "calm", "ticks": 5},
                       {"name": "fault", "ticks": 10, **(phase or {}), "faults": [{**OUTAGE, **(fault or {})}]}]}


def refused(d, *fragments) -> str:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(d, U)
    msg = str(e.value)
    assert "\n" not in msg and msg.isprintable() and len(msg) <= 400, msg
    for f in fragments:
        assert f in msg, (f, msg)
    return msg


def test_the_documented_bounds():
    assert (S.MAX_TICKS, S.MAX_PAYMENTS_PER_TICK, S.MAX_PAYMENTS) == (100_000, 1_000_000, 100_000_000)
    assert (S.MIN_TICK_SECONDS, S.MAX_TICK_SECONDS, S.MAX_SEED) == (0.001, 86_400, 2 ** 63 - 1)
    assert (S.MAX_PHASES, S.MAX_FAULTS, S.MAX_NAME, S.MAX_FILE_BYTES, S.MAX_DEPTH) == (1_000, 100, 200, 1 << 20, 16)


def test_the_small_valid_document_parses():
    sc = parse_scenario(doc(), U)
    assert sc.total_ticks == 15 and sc.faults[0].start_tick == 5 and sc.faults[0].end_tick == 15


@pytest.mark.parametrize("where, key", [("phase", "ticks"), ("fault", "start"), ("fault", "ramp_ticks"),
                                        ("fault", "flap_ticks"), ("fault", "ticks"), ("fault", "severity"),
                                        ("top", "tick_seconds"), ("top", "start_hour"), ("top", "payments_per_tick"),
                                        ("top", "seed")])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_naming_the_field(where, key, value):
    msg = refused(doc(**{where: {key: value}}), f"'{key}' must be", "got")
    assert ("between 0 and 1" if key == "severity" else "at least") in msg


def test_nan_severity_is_refused_not_silently_never_happening():
    assert refused(doc(fault={"severity": math.nan})) == \
        "phase 2 fault 1: 'severity' must be between 0 and 1, got nan"


@pytest.mark.parametrize("d, message", [
    (doc(phase={"ticks": 1e9}),
     "phase 2: 'ticks' must be at least 1 and at most 100,000 (a whole number), got 1000000000.0"),
    (doc(top={"payments_per_tick": 1e7}),
     "scenario: 'payments_per_tick' must be at least 1 and at most 1,000,000, got 10000000.0"),
    (doc(top={"tick_seconds": 1e12}),
     "scenario: 'tick_seconds' must be at least 0.001 and at most 86,400, got 1000000000000.0"),
    (doc(top={"payments_per_tick": 1e12}), "'payments_per_tick' must be at least 1 and at most 1,000,000"),  # 1.7 TiB
    (doc(top={"payments_per_tick": 1_000_000}, phase={"ticks": 99_995}),
     "scenario: ticks x payments_per_tick must be at most 100,000,000, got 100,000 x 1,000,000 = 100,000,000,000"),
    ({"phases": [{"ticks": 60_000}, {"ticks": 60_000}]}, "phase 2: all phases together must be at most 100,000 ticks"),
    (doc(phase={"ticks": 1.5}), "'ticks' must be at least 1 and at most 100,000 (a whole number), got 1.5"),
    (doc(phase={"ticks": True}), "got True"),
    (doc(phase={"ticks": 10 ** 5_000}), "got an integer of 16,610 bits"),
    (doc(top={"seed": 2 ** 64}), "'seed' must be at least 0 and at most 9,223,372,036,854,775,807 (a whole number), "
                                 "got an integer of 65 bits"),
    (doc(phase={"ticks": "10"}), "got '10'"),
    (doc(top={"seed": -1}), "'seed' must be at least 0"),
    (doc(top={"start_hour": 24}), "'start_hour' must be at least 0 and below 24, got 24"),
    (doc(top={"tick_seconds": 0}), "'tick_seconds' must be at least 0.001"),
    (doc(fault={"severity": 1.01}), "'severity' must be between 0 and 1"),
    (doc(fault={"severity": -0.1}), "'severity' must be between 0 and 1"),
    (doc(fault={"start": 10}), "phase 2 fault 1: 'start' must be at least 0 and at most 9 (a whole number), got 10"),
    (doc(fault={"start": 4, "ticks": 7}), "'ticks' must be at least 1 and at most 6"),
    (doc(fault={"ramp_ticks": 11}), "'ramp_ticks' must be at least 0 and at most 10"),
    (doc(fault={"flap_ticks": -1}), "'flap_ticks' must be at least 0 and at most 10"),
    (doc(fault={"severty": 0.5}), "phase 2 fault 1: unknown key 'severty'; valid: kind, severity"),
    (doc(top={"phase": []}), "scenario: unknown key 'phase'; valid: name, seed"),
    (doc(fault={"issuer": ["chase"]}), "unknown issuer a list; valid: chase"),
    (doc(fault={"kind": {"a": 1}}), "unknown fault kind an object; valid: issuer_degradation"),
    ({"phases": [{"ticks": 1}] * 1_001}, "at most 1,000 phases"),
    ({"phases": [{"ticks": 1, "faults": [OUTAGE] * 101}]}, "at most 100 faults"),
    (doc(top={"name": "x" * 201}), "'name' must be printable text of 1 to 200 characters, got 201 characters"),
    (doc(top={"name": 5}), "'name' must be printable text"),
])
def test_out_of_bounds_values_are_refused_in_one_line(d, message):
    refused(d, message)


@pytest.mark.parametrize("where", ["top", "phase"])
@pytest.mark.parametrize("name", ["a\ud800b", "\udfff", "new\nline", "bell\a", "right\u202eleft", "esc\x1b[31m"])
def test_names_must_be_printable(where, name):
    refused(doc(**{where: {"name": name}}), "'name' must be printable text")


def test_a_lone_surrogate_in_a_file_is_refused_before_anything_runs(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps(doc(phase={"name": "fault \ud800"})))      # written as the escape \ud800
    p = subprocess.run([sys.executable, "run.py", "--scenario", str(f), "--no-llm", "--state-dir", str(tmp_path / "s")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == "" and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [
        "run.py: phase 2: 'name' must be printable text of 1 to 200 characters, got 'fault \\ud800'"]
    assert not (tmp_path / "s").exists()                          # nothing ran, no state written


@pytest.mark.parametrize("text, fragment", [
    ("[" * 5_000 + "]" * 5_000, "nested deeper than 16"),
    ('{"phases": ' + "[" * 20 + "]" * 20 + "}", "nested deeper than 16"),
    ('{"phases": [{"ticks": NaN}]}', "NaN is not a number JSON allows"),
    ('{"phases": [{"ticks": 5}], "tick_seconds": Infinity}', "Infinity is not a number JSON allows"),
    ('{"phases": [{"ticks": 1e400}]}', "'ticks' must be at least 1 and at most 100,000 (a whole number), got inf"),
    ('{"phases": [{"ticks": 5, "faults": [{"kind": "issuer_outage", "issuer": "chase", "severity": -1e400}]}]}',
     "'severity' must be between 0 and 1, got -inf"),
    ('{"phases": [{"ticks": ' + "9" * 5_000 + "}]}", "not valid JSON"),
    ('{"name": "' + "x" * (1 << 20) + '", "phases": []}', "over the 1,048,576-byte limit"),
    ('{"name": "\\ud800", "phases": [{"ticks": 5}]}', "got '\\ud800'"),
    (b'{"name": "\xff", "phases": [{"ticks": 5}]}', "not valid JSON"),
])
def test_hostile_files_are_refused_in_one_line(tmp_path, text, fragment):
    f = tmp_path / "s.json"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ScenarioError) as e:
        load_scenario(f, U)
    msg = str(e.value)
    assert fragment in msg and "\n" not in msg and msg.isprintable() and len(msg) <= 400, msg


def test_a_deep_value_in_process_is_refused_without_recursion(tmp_path):
    deep = []
    for _ in range(5_000):
        deep = [deep]
    refused(doc(top={"name": deep}), "'name' must be printable text", "got a list")
    refused(doc(fault={"severity": deep}), "'severity' must be between 0 and 1, got a list")


def test_not_a_regular_file_is_refused(tmp_path):
    (tmp_path / "real.json").write_text(json.dumps(doc()))
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    for path, fragment in ((tmp_path, "not a regular file"), (tmp_path / "link.json", "cannot open"),
                           (tmp_path / "nope.json", "scenario file not found")):
        with pytest.raises(ScenarioError, match=fragment):
            load_scenario(path, U)


def test_values_at_the_bounds_are_accepted():
    sc = parse_scenario(doc(top={"payments_per_tick": 1_000_000, "tick_seconds": 86_400, "start_hour": 23.99,
                                 "seed": 2 ** 63 - 1, "name": "n" * 200},
                            phase={"ticks": 95}, fault={"severity": 1, "start": 94, "ticks": 1, "ramp_ticks": 1}), U)
    assert sc.total_ticks * sc.payments_per_tick == 100_000_000 and sc.faults[0].end_tick == sc.total_ticks
    sc = parse_scenario({"phases": [{"ticks": 100_000}], "payments_per_tick": 1_000}, U)
    assert sc.total_ticks == 100_000 and sc.start_hour == 12.0 and sc.name == "unnamed"


def test_every_shipped_scenario_parses_unchanged():
    for path in sorted((ROOT / "scenarios").glob("*.json")):
        raw = json.loads(path.read_text())
        sc = load_scenario(path, U)
        assert sc.name == raw["name"] and sc.total_ticks == sum(p["ticks"] for p in raw["phases"])
        assert sc.payments_per_tick == raw["payments_per_tick"] and sc.start_hour == raw.get("start_hour", 12)
        assert len(sc.faults) == sum(len(p.get("faults", [])) for p in raw["phases"])


def test_worker_exits_2_with_one_line_on_a_nan_severity(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps(doc(fault={"severity": 1e400})).replace("Infinity", "1e400"))
    p = subprocess.run([sys.executable, "worker.py", "--scenario", str(f), "--max-ticks", "1", "--no-llm",
                        "--state-dir", str(tmp_path / "s")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == ["worker.py: phase 2 fault 1: 'severity' must be between 0 and 1, got inf"]


def test_a_run_keeps_no_per_tick_statistics():
    """A long phase costs time, not memory: run.py sums a phase as it goes (it used to keep every tick's cubes);
    only the observer's window and baseline (6 + 1 + 120 ticks) stay alive."""
    sc = parse_scenario({"seed": 1, "payments_per_tick": 1, "phases": [{"name": "long", "ticks": 400},
                                                                      {"name": "short", "ticks": 3}]}, U)
    refs, alive = [], []

    def on_tick(phase, tick, step):
        refs.append(weakref.ref(step.snapshot.last))
        alive.append(sum(r() is not None for r in refs))

    res = run.run_scenario(sc, 1, "none", U, on_tick=on_tick)
    assert max(alive) <= 130, max(alive)
    assert [s.ticks for s in res.phase_stats] == [400, 3]
    assert sum(int(s.total.payments) for s in res.phase_stats) > 0


def test_run_py_refuses_a_negative_seed_flag_in_one_line(tmp_path):
    p = subprocess.run([sys.executable, "run.py", "--seed", "-1", "--quiet", "--policy", "none", "--no-llm",
                        "--state-dir", str(tmp_path / "s")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr and not (tmp_path / "s").exists()
    assert p.stderr.strip().splitlines() == [
        "run.py: --seed must be at least 0 and at most 9,223,372,036,854,775,807, got -1"]


@pytest.mark.parametrize("argv, needle", [
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2 ** 64)], "--seed"),
    (["--tps", "nan"], "positive finite"),
    (["--tps", "inf"], "positive finite"),
    (["--tick-seconds", "-0"], "positive finite"),
    (["--tick-seconds", "1e12"], "--tick-seconds"),
    (["--tps", "1e9"], "payments per tick"),
])
def test_worker_py_refuses_hostile_numbers_in_one_line_before_touching_state(tmp_path, capsys, argv, needle):
    import worker
    assert worker.main(argv + ["--state-dir", str(tmp_path / "state"), "--max-ticks", "1", "--no-llm"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "state").exists()
