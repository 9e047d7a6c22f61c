"""The rooms stay where they are: every module imports only the project modules its row allows, the pure
stages import nothing that does I/O, and every module opens with a docstring.

A new import of a project module must be added to ALLOWED here, on purpose.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IO = {"executor", "state_writer", "streamlit", "google", "llm_reasoner", "agent", "run", "worker", "dashboard",
      "os", "pathlib", "subprocess", "socket", "requests", "httpx", "time", "datetime", "random", "shutil", "tempfile",
      "duckdb", "fcntl", "signal"}

# module -> the project modules it may import (dependencies point one way: entry points -> agent -> stages)
ALLOWED = {
    # the world
    "merchant_profiles": {"decline_codes"},
    "decline_vocab": set(),
    "decline_codes": {"decline_vocab"},
    "control_plane": set(),
    "simulator": {"control_plane", "decline_codes", "merchant_profiles"},
    "scenario": {"merchant_profiles", "safe_json", "simulator"},
    # the loop's stages
    "sequential": set(),
    "slice_stats": set(),
    "observer": {"decline_codes", "sequential", "simulator", "slice_stats"},
    "formatting": set(),
    "reasoner": {"formatting", "observer", "slice_stats"},
    "llm_contract": {"merchant_profiles", "observer", "reasoner"},
    "llm_bounds": {"llm_contract"},
    "llm_call": set(),
    "incident_notes": {"formatting", "llm_contract"},
    "llm_asker": {"incident_notes", "llm_bounds", "llm_call", "llm_contract"},
    "llm_reasoner": {"llm_asker", "llm_bounds", "llm_call", "llm_contract", "observer", "reasoner"},
    "guardrails": {"control_plane", "observer"},
    "learning_policy": {"actions"},
    "candidates": {"control_plane", "guardrails", "observer", "reasoner"},
    "reroute_candidates": {"candidates", "control_plane", "guardrails", "observer", "reasoner", "slice_stats"},
    "decision": {"candidates", "control_plane", "guardrails", "learning_policy", "observer", "reasoner",
                 "reroute_candidates"},
    "actions": {"control_plane"},
    "judge": {"actions", "reasoner", "slice_stats"},
    "executor": {"actions", "control_plane", "decision", "guardrails", "judge", "merchant_profiles", "observer",
                 "slice_stats"},
    "recovery": {"actions", "control_plane", "executor", "state_load"},
    "state_load": {"actions", "control_plane"},
    "learner": {"actions", "learning_policy"},
    "explainability": {"decision", "formatting", "reasoner"},
    "agent": {"actions", "control_plane", "decision", "executor", "explainability", "guardrails", "incident_notes",
              "incidents", "judge", "learner", "learning_policy", "merchant_profiles", "observer", "reasoner", "recovery",
              "sequential", "simulator"},
    # state, edges and entry points
    "schemas": set(),
    "clock": set(),
    "safe_json": set(),
    "command_auth": {"safe_json"},
    "state_writer": {"command_auth", "safe_json"},
    "commands": {"agent", "clock", "command_auth", "executor", "safe_json", "state_writer"},
    "report": {"agent", "formatting", "llm_bounds", "observer", "scenario", "slice_stats"},
    "run": {"actions", "agent", "bench.baselines", "clock", "data_universe", "event_export", "incident_notes", "llm_bounds",
            "llm_reasoner", "log_formats", "log_reader", "merchant_profiles", "observer", "report", "scenario", "shadow",
            "shadow_report", "state_writer"},
    "worker": {"agent", "audit_trust", "clock", "commands", "llm_reasoner", "merchant_profiles", "scenario",
               "simulator", "state_load", "state_writer"},
    "audit_trust": {"safe_json", "state_load", "state_writer"},
    "dashboard_text": {"formatting"},
    "dashboard_charts": {"dashboard_text"},
    "dashboard_access": set(),
    "dashboard_gate": {"command_auth", "dashboard_access"},
    "dashboard": {"command_auth", "dashboard_access", "dashboard_charts", "dashboard_gate", "dashboard_text",
                  "state_writer"},
    # reading a team's payment log
    "log_formats": set(),
    "log_sql": {"decline_codes", "log_formats"},
    "log_columns": set(),
    "log_tick": set(),
    "log_reader": {"decline_codes", "log_columns", "log_formats", "log_sql", "log_tick"},
    "event_export": {"decline_codes"},
    # shadow mode: a replayed log read through the agent's eyes
    "data_universe": {"decline_codes"},
    "localise": {"data_universe", "formatting", "reasoner"},
    "incidents": set(),
    "shadow": {"data_universe", "decision", "decline_codes", "guardrails", "incidents", "learning_policy", "localise",
               "observer", "reasoner", "sequential"},
    "shadow_report": {"formatting", "incident_notes"},
    # the benchmark
    "bench.baselines": {"agent", "control_plane", "decline_codes", "merchant_profiles", "observer", "scenario",
                        "simulator"},
    "bench.trace": {"actions", "agent", "bench.baselines", "control_plane", "guardrails", "merchant_profiles", "scenario", "simulator", "slice_stats"},
    "bench.measures": {"bench.baselines", "bench.trace", "scenario", "slice_stats"},
    "bench.runner": {"agent", "bench.baselines", "bench.measures", "bench.trace", "merchant_profiles", "scenario",
                     "simulator"},
    "bench.speed": {"agent", "merchant_profiles", "observer", "simulator"},
    "bench.report": {"agent", "bench.baselines", "bench.measures"},
    "bench.replay_speed": {"data_universe", "log_reader", "shadow"},
    "evaluate": {"bench.baselines", "bench.report", "bench.runner", "bench.speed", "scenario"},
}
PURE = ["control_plane", "decision", "candidates", "reroute_candidates", "reasoner", "llm_contract", "guardrails",
        "judge", "learning_policy", "observer", "explainability", "formatting", "actions", "schemas", "dashboard_text",
        "dashboard_charts", "log_formats", "decline_codes", "sequential", "localise", "incidents", "data_universe",
        "shadow_report", "incident_notes", "dashboard_access", "state_load"]


def module_files() -> dict[str, Path]:
    files = {p.stem: p for p in ROOT.glob("*.py")}
    files |= {f"bench.{p.stem}": p for p in (ROOT / "bench").glob("*.py") if p.stem != "__init__"}
    return files


def imports(name: str) -> set[str]:
    """Every module name imported anywhere in the file (inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(module_files()[name].read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def project_imports(name: str) -> set[str]:
    ours = set(module_files())
    return {m for m in imports(name) if m in ours}


def test_every_module_has_a_row():
    assert set(module_files()) == set(ALLOWED)


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_imports_stay_inside_the_allowed_rooms(module):
    extra = project_imports(module) - ALLOWED[module]
    assert not extra, f"{module} imports {sorted(extra)}, which its row in ALLOWED does not allow"


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_no_io(module):
    assert {m.split(".")[0] for m in imports(module)} & IO == set()


@pytest.mark.parametrize("module, forbidden", [
    ("simulator", {"agent", "observer", "reasoner", "decision", "executor", "learner"}),   # the world knows no agent
    ("decision", {"executor", "state_writer", "llm_reasoner"}),
    ("executor", {"llm_reasoner", "reasoner"}),
    ("learner", {"executor"}),
    ("dashboard", {"executor", "agent", "simulator"}),
    ("run", {"bench.report", "bench.measures", "bench.runner"}),     # the demo never imports the benchmark's report
])
def test_dependencies_point_one_way(module, forbidden):
    assert project_imports(module) & forbidden == set()


def test_the_allowed_graph_has_no_cycle():
    state: dict[str, int] = {}

    def visit(m: str, path: tuple) -> None:
        if state.get(m) == 2:
            return
        assert state.get(m) != 1, f"import cycle: {' -> '.join(path + (m,))}"
        state[m] = 1
        for dep in sorted(ALLOWED.get(m, ())):
            visit(dep, path + (m,))
        state[m] = 2
    for m in sorted(ALLOWED):
        visit(m, ())


def test_every_module_opens_with_a_docstring():
    for path in list(ROOT.glob("*.py")) + list((ROOT / "bench").glob("*.py")):
        assert ast.get_docstring(ast.parse(path.read_text())), path.name


@pytest.mark.parametrize("name", sorted(module_files()))
def test_no_module_is_over_400_lines(name):
    assert len(module_files()[name].read_text().splitlines()) <= 420, f"{name}: split it by job"
