"""formatting.py: numbers and tables as text, the same in the terminal, the state files and the benchmark report."""
from __future__ import annotations

import pytest

from formatting import cell, md_table, pct, target_text, text_table


@pytest.mark.parametrize("x, digits, text", [
    (0.8123, 1, "81.2%"),
    (1.0, 1, "100.0%"),
    (0.00049, 2, "0.05%"),       # rounds, does not truncate
    (None, 1, "n/a"),            # nothing measured is said, not shown as 0%
])
def test_pct(x, digits, text):
    assert pct(x, digits) == text


@pytest.mark.parametrize("target, text", [
    ({"processor": "atlas", "issuer": "chase"}, "issuer chase, processor atlas"),    # sorted by key, whatever the order
    ({}, "everything"),
    (None, "everything"),
])
def test_target_text(target, text):
    assert target_text(target) == text


@pytest.mark.parametrize("v, kind, text", [
    (0.5, "pct", "50.0%"), (1.234, "x", "1.23"), (1234.6, "ms", "1,235"), (0.12345, "$", "$0.123"),
    (1234567, "n", "1,234,567"), ("calm", "s", "calm"), (None, "pct", "-"), (None, "s", "None"),
])
def test_cell(v, kind, text):
    assert cell(v, kind) == text


def test_text_table_aligns_first_column_left_and_the_rest_right():
    out = text_table([{"phase": "calm", "payments": 1200}, {"phase": "retry storm", "payments": 5}],
                     [("phase", "phase", "s"), ("payments", "payments", "n")])
    lines = out.splitlines()
    assert lines[0] == "phase        payments"
    assert lines[1] == "-----------  --------"
    assert lines[2] == "calm            1,200"
    assert lines[3] == "retry storm         5"
    assert len({len(line) for line in lines}) == 1


def test_md_table():
    assert md_table(["policy", "share"], [["agent", "81%"], ["none", "60%"]]).splitlines() == [
        "| policy | share |", "|---|---:|", "| agent | 81% |", "| none | 60% |"]
