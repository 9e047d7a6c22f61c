"""clock.py: simulated time stamps a run's files from its tick (same seed, same bytes); wall time is UTC ISO."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from clock import EPOCH, SimClock, iso, utc_now


def test_sim_clock_moves_with_the_tick_only():
    c = SimClock(start_hour=12, tick_seconds=10)
    assert c.iso() == "2026-01-01T12:00:00Z" and c.seconds() == 0
    c.tick = 6
    assert c.iso() == "2026-01-01T12:01:00Z" and c.seconds() == 60
    assert c.iso() == c.iso()                                        # no wall time in it
    assert c.start() == EPOCH + timedelta(hours=12)


def test_sim_clock_crosses_midnight_and_takes_fractional_hours():
    c = SimClock(start_hour=23.5, tick_seconds=60, tick=45)
    assert c.iso() == "2026-01-02T00:15:00Z"


def test_iso_is_utc_with_milliseconds_and_a_z():
    t = datetime(2026, 3, 1, 13, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert iso(t) == "2026-03-01T12:00:00.123Z"


def test_utc_now_is_now():
    before = datetime.now(timezone.utc)
    stamp = utc_now()
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert stamp.endswith("Z") and abs((parsed - before).total_seconds()) < 5
