"""schemas.py pins the wire shape of every state file and of the report: the keys written are the keys declared."""
from __future__ import annotations

import json

import pytest

import worker
from schemas import STATE_SCHEMAS, Report
from state_writer import STATE_FILES, read_json


@pytest.fixture(scope="module")
def written(tmp_path_factory, demo_run):
    """Where each mode wrote its state: run, the session's demo run (conftest.py); live, a few worker ticks."""
    live = tmp_path_factory.mktemp("schemas") / "live"
    assert worker.main(["--state-dir", str(live), "--max-ticks", "4", "--tick-seconds", "0.001", "--no-llm"]) == 0
    return {"run": demo_run[0] / "state", "live": live, "report": demo_run[0] / "report.json"}


def _keys_fit(doc: dict, schema: type) -> None:
    assert schema.__required_keys__ <= set(doc), f"missing {sorted(schema.__required_keys__ - set(doc))}"
    assert set(doc) <= schema.__required_keys__ | schema.__optional_keys__, \
        f"undeclared {sorted(set(doc) - schema.__required_keys__ - schema.__optional_keys__)}"


@pytest.mark.parametrize("mode", ["run", "live"])
@pytest.mark.parametrize("name", sorted(STATE_SCHEMAS))
def test_every_state_file_has_exactly_its_declared_keys(written, mode, name):
    doc = read_json(written[mode] / name)
    if doc is None:
        assert name in ("simulator.json", "commands.json") and mode == "run"     # live mode only
        return
    _keys_fit(doc, STATE_SCHEMAS[name])


def test_every_state_file_written_has_a_schema():
    assert set(STATE_FILES) <= set(STATE_SCHEMAS)


def test_the_report_has_exactly_its_declared_keys(written):
    _keys_fit(json.loads(written["report"].read_text()), Report)


@pytest.mark.parametrize("schema, required", [
    (STATE_SCHEMAS["status.json"], {"schema_version", "generated_at", "tick", "policy", "state", "mode",
                                    "tick_seconds"}),                   # what the dashboard's header needs
    (STATE_SCHEMAS["actions.json"], {"schema_version", "generated_at", "tick", "decision", "explanation", "actions",
                                     "decisions", "pending"}),          # the approval queue reads `pending`
    (Report, {"schema_version", "scenario", "seed", "policy", "universe", "phases", "faults", "hypotheses", "actions",
              "learning", "totals", "llm"}),                            # other tools read the report
])
def test_pinned_required_keys(schema, required):
    assert schema.__required_keys__ == required
