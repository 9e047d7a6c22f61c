import json
import math
import os
import threading

import numpy as np
import pytest

from state_writer import StateWriter, dumps, read_json, write_json


def test_write_is_strict_json_with_stamps(tmp_path):
    write_json(tmp_path / "m.json", {"a": math.nan, "b": np.float64(1.5), "c": np.int64(3), "d": (1, math.inf)}, "T0")
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc == {"schema_version": 1, "generated_at": "T0", "a": None, "b": 1.5, "c": 3, "d": [1, None]}


def test_no_temporary_files_left_and_failure_keeps_old_file(tmp_path):
    write_json(tmp_path / "m.json", {"v": 1}, "T0")
    with pytest.raises(TypeError):
        write_json(tmp_path / "m.json", {"v": object()}, "T1")
    assert read_json(tmp_path / "m.json")["v"] == 1
    assert os.listdir(tmp_path) == ["m.json"]


@pytest.mark.parametrize("content", ["", "{\"a\": 1", "[1, 2]", "not json", "\x00\x01"])
def test_read_forgives_broken_files(tmp_path, content):
    (tmp_path / "x.json").write_text(content)
    assert read_json(tmp_path / "x.json") is None
    assert read_json(tmp_path / "missing.json") is None


@pytest.mark.slow
def test_concurrent_reader_never_sees_half_a_file(tmp_path):
    w = StateWriter(tmp_path, lambda: "T")
    big = {"rows": list(range(50000))}
    w.write("m.json", big)
    stop, failures, reads = threading.Event(), [], [0]

    def reader():
        while not stop.is_set():
            doc = read_json(tmp_path / "m.json")
            reads[0] += 1
            if doc is None or len(doc["rows"]) != 50000:
                failures.append(doc)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(60):
        w.write("m.json", {"rows": list(range(i, 50000 + i))})
    stop.set()
    t.join()
    assert reads[0] > 10 and failures == []


def test_dumps_refuses_nothing_it_cleans():
    assert json.loads(dumps({"x": [np.bool_(True), np.array([1.0, np.nan])]})) == {"x": [True, [1.0, None]]}
