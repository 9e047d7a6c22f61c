"""The pure stages import nothing that does I/O, and dependencies point one way."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IO = {"executor", "state_writer", "streamlit", "google", "llm_reasoner", "agent", "run", "worker", "dashboard",
      "os", "pathlib", "subprocess", "socket", "requests", "httpx", "time", "datetime", "random", "shutil", "tempfile"}


def imports(module: str) -> set[str]:
    tree = ast.parse((ROOT / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", ["decision", "reasoner", "learning_policy", "observer", "explainability"])
def test_pure_modules_do_no_io(module):
    assert imports(module) & IO == set()


@pytest.mark.parametrize("module, forbidden", [
    ("simulator", {"agent", "observer", "reasoner", "decision", "executor", "learner"}),   # the world knows no agent
    ("decision", {"executor", "state_writer", "llm_reasoner"}),
    ("executor", {"llm_reasoner", "reasoner"}),
    ("dashboard", {"executor", "agent", "simulator"}),
])
def test_dependencies_point_one_way(module, forbidden):
    if not (ROOT / f"{module}.py").exists():
        pytest.skip(f"{module}.py not written yet")
    assert imports(module) & forbidden == set()


def test_every_module_opens_with_a_docstring():
    for path in ROOT.glob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text())), path.name
