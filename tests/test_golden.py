"""Golden check: refactoring must not change behaviour. The demo's report and printed analysis for seeds 1-5,
and the quick benchmark's numbers, are compared byte for byte with files made before the change.

A change that is meant to alter behaviour regenerates them, and its commit says why:
    python tests/test_golden.py
"""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
SEEDS = (1, 2, 3, 4, 5)


def demo_outputs(seed: int, work: Path) -> tuple[bytes, str]:
    import run
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert run.main(["--seed", str(seed), "--quiet", "--no-llm", "--state-dir", str(work / "state"),
                         "--report", str(work / "report.json")]) == 0
    return (work / "report.json").read_bytes(), out.getvalue()


def quick_benchmark(work: Path) -> bytes:
    import evaluate
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert evaluate.main(["--quick", "--no-bench", "--out", str(work)]) == 0
    return (work / "summary.json").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_demo_report_and_analysis_unchanged(seed, tmp_path):
    report, text = demo_outputs(seed, tmp_path)
    assert report == (GOLDEN / f"demo_seed{seed}.json").read_bytes()
    assert text == (GOLDEN / f"demo_seed{seed}.txt").read_text()


@pytest.mark.slow
def test_quick_benchmark_numbers_unchanged(tmp_path):
    assert quick_benchmark(tmp_path) == (GOLDEN / "bench_quick_summary.json").read_bytes()


if __name__ == "__main__":       # regenerate the golden files
    import tempfile
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as d:
        for s in SEEDS:
            work = Path(d) / str(s)
            report, text = demo_outputs(s, work)
            (GOLDEN / f"demo_seed{s}.json").write_bytes(report)
            (GOLDEN / f"demo_seed{s}.txt").write_text(text)
        (GOLDEN / "bench_quick_summary.json").write_bytes(quick_benchmark(Path(d) / "bench"))
    print(f"golden files rewritten in {GOLDEN}")
