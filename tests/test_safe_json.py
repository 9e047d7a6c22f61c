"""safe_json: JSON someone else wrote is read only when it is a regular file of bounded size and depth, strict JSON;
anything else is one JsonRefused line, never another exception, never a block."""
from __future__ import annotations

import os

import pytest

from safe_json import JsonRefused, depth, load_json, loads


def refused(path, **bounds) -> str:
    with pytest.raises(JsonRefused) as e:
        load_json(path, **bounds)
    message = str(e.value)
    assert "\n" not in message and len(message) < 300
    return message


def test_a_regular_file_within_its_bounds_is_read(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"tick": 3, "rows": [1, 2, {"x": null}]}')
    assert load_json(p, max_bytes=100, max_depth=3) == {"tick": 3, "rows": [1, 2, {"x": None}]}


@pytest.mark.parametrize("make, reason", [
    (lambda d: os.symlink(d / "real.json", d / "x.json"), "cannot open"),              # a link, even to a good file
    (lambda d: os.symlink("/dev/zero", d / "x.json"), "cannot open"),                  # an endless read
    (lambda d: os.mkfifo(d / "x.json"), "not a regular file"),                         # would block a plain open()
    (lambda d: os.mkdir(d / "x.json"), "not a regular file"),
    (lambda d: None, "missing"),
])
def test_anything_but_a_regular_file_is_refused_without_blocking(tmp_path, make, reason):
    (tmp_path / "real.json").write_text('{"command": "approve"}')
    make(tmp_path)
    assert reason in refused(tmp_path / "x.json")


@pytest.mark.parametrize("text, reason", [
    ('{"a": ' + "1" * 200 + "}", "limit"),                                                  # over max_bytes
    ("[" * 50 + "]" * 50, "nested deeper than 8"),
    ("[" * 100_000 + "]" * 100_000, "limit"),
    ('{"severity": NaN}', "not valid JSON"),
    ('{"ticks": Infinity}', "not valid JSON"),
    ('{"ticks": -Infinity}', "not valid JSON"),
    ('{"a": 1', "not valid JSON"),                                                          # half-written
    ("", "not valid JSON"),
])
def test_hostile_contents_are_one_line(tmp_path, text, reason):
    p = tmp_path / "x.json"
    p.write_text(text)
    assert reason in refused(p, max_bytes=150, max_depth=8)


def test_invalid_utf8_and_a_deep_document_in_memory_are_refusals_not_crashes(tmp_path):
    p = tmp_path / "x.json"
    p.write_bytes(b'{"name": "\xff\xfe"}')
    assert "not valid JSON" in refused(p)
    with pytest.raises(JsonRefused, match="nested deeper"):
        loads("[" * 5_000 + "]" * 5_000)                                 # the C parser's RecursionError, caught


def test_depth_counts_containers_and_stops_early():
    assert depth(3) == 0 and depth([]) == 1 and depth({"a": [1, {"b": []}]}) == 4
    deep = []
    for _ in range(10_000):                                              # deeper than Python's recursion limit
        deep = [deep]
    assert depth(deep, limit=64) == 65
