"""bench/replay_speed.py: the replay speed benchmark runs end to end on a small log and reports what it measured (no
speed is asserted)."""
import pytest

from bench import replay_speed


@pytest.mark.slow
def test_benchmark_runs_on_a_small_log(tmp_path, capsys):
    results = replay_speed.main(["--rows", "20000", "--days", "1", "--dir", str(tmp_path)])
    stages = [("read", 1), ("read", "default"), ("observe", 1), ("replay", 1)]
    assert [(r["file"], r["stage"], r["threads"]) for r in results] == [(f, *s) for f in ("parquet", "csv") for s in stages]
    assert all(r["rows"] == r["used"] == r["read"] == 20000 and r["ticks"] > 1000 for r in results)
    assert all(r["peak_rss_mb"] > 0 and r["rows_per_s"] > 0 for r in results)
    assert "rows/s" in capsys.readouterr().out
