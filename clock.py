"""Clocks: wall time for live mode and the dashboard, simulated time for a reproducible run.

Only run.py, worker.py and dashboard.py construct or read a clock; every other stage
takes time as an argument. SimClock stamps a run's files from its tick, so the same
seed writes the same bytes:

    c = SimClock(start_hour=12, tick_seconds=10); c.tick = 6; c.iso() -> "2026-01-01T12:01:00Z"
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)   # simulated runs start on this day at their start hour


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return iso(datetime.now(timezone.utc))


@dataclass
class SimClock:
    """Simulated time of a run: `tick` moves it on."""
    start_hour: float
    tick_seconds: float
    tick: int = 0

    def seconds(self) -> float:
        """Seconds since the run started (approval expiry, LLM budgets)."""
        return self.tick * self.tick_seconds

    def start(self) -> datetime:
        return EPOCH + timedelta(hours=self.start_hour)

    def iso(self) -> str:
        t = EPOCH + timedelta(hours=self.start_hour, seconds=self.tick * self.tick_seconds)
        return t.isoformat().replace("+00:00", "Z")
