"""Scenarios: a fault schedule for the simulator, from a file (phases) or drawn at random (live mode).

run.py and worker.py read a schedule and inject its faults into the simulator tick by
tick; the agent never sees it. parse_scenario validates a document against the
universe and raises ScenarioError with one line naming the problem and the choices.
Only the benchmark's oracle and the people's ground-truth panel read faults.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from merchant_profiles import Universe
from safe_json import JsonRefused, load_json
from simulator import FAULT_FIELDS, Fault, FaultKind, Simulator


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message is one line naming the problem and the choices."""


@dataclass(frozen=True)
class ScheduledFault:
    fault: Fault
    start_tick: int
    end_tick: int                  # exclusive
    ramp_ticks: int = 0            # gradual: severity grows linearly over this many ticks
    flap_ticks: int = 0            # flapping: on for flap_ticks, off for flap_ticks, ...

    def severity_at(self, tick: int) -> float:
        if not self.start_tick <= tick < self.end_tick:
            return 0.0
        age = tick - self.start_tick
        if self.flap_ticks and (age // self.flap_ticks) % 2 == 1:
            return 0.0
        if self.ramp_ticks:
            return self.fault.severity * min(1.0, (age + 1) / self.ramp_ticks)
        return self.fault.severity

    def at(self, tick: int) -> Fault:
        """The fault as the simulator meets it at this tick (severity 0 outside its span)."""
        return replace(self.fault, severity=self.severity_at(tick))

    @property
    def full_strength_tick(self) -> int:
        return self.start_tick + max(self.ramp_ticks - 1, 0)


@dataclass(frozen=True)
class Phase:
    name: str
    start_tick: int
    ticks: int

    @property
    def end_tick(self) -> int:
        return self.start_tick + self.ticks


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    tick_seconds: float
    payments_per_tick: float
    start_hour: float
    phases: tuple[Phase, ...]
    faults: tuple[ScheduledFault, ...]

    @property
    def total_ticks(self) -> int:
        return self.phases[-1].end_tick if self.phases else 0

    def faults_at(self, tick: int) -> tuple[Fault, ...]:
        return tuple(f.at(tick) for f in self.faults if f.severity_at(tick) > 0)


# Bounds of a scenario file (README, Scenario files). Peak memory is set by one tick's attempts: ~2.7 GB at
# 1,000,000 payments per tick with every issuer down and every merchant storming (retries pile up ~8 deep).
# run.py keeps no per-tick state, so a run's length costs time, not memory (122 MB at 2,000 and at 20,000
# ticks). Time per policy: ~2-5 ms a tick plus 0.5-3 us a payment, so MAX_TICKS and MAX_PAYMENTS cap a run
# at minutes: 100,000 ticks ~5-8 min, 1e8 payments ~1-5 min, on one core.
MAX_FILE_BYTES = 1 << 20          # the shipped files are under 2 KB
MAX_DEPTH = 16                    # a scenario nests 5 deep: document, phases, phase, faults, fault
MAX_TICKS = 100_000               # all phases together; 11.6 days of 10 s ticks
MAX_PAYMENTS_PER_TICK = 1_000_000
MAX_PAYMENTS = 100_000_000        # ticks x payments_per_tick
MIN_TICK_SECONDS, MAX_TICK_SECONDS = 0.001, 86_400.0   # a millisecond to a day: 100,000 day-long ticks end in 2300
MAX_SEED = 2 ** 63 - 1
MAX_PHASES = 1_000
MAX_FAULTS = 100                  # in the whole file; each tick checks every fault
MAX_NAME = 200                    # characters of a scenario or phase name
TOP_KEYS = ("name", "seed", "tick_seconds", "payments_per_tick", "start_hour", "phases")
PHASE_KEYS = ("name", "ticks", "faults")
FAULT_KEYS = ("kind", "severity", "start", "ticks", "ramp_ticks", "flap_ticks", "issuer", "processor", "merchant")


def _show(v) -> str:
    """A value as an error message shows it: short, never a deep repr (one line comes from _one_line)."""
    if isinstance(v, (dict, list)):
        return "an object" if isinstance(v, dict) else "a list"
    if isinstance(v, int) and v.bit_length() > 64:          # repr of a 5,000-digit int raises
        return f"an integer of {v.bit_length():,} bits"
    text = repr(v[:60]) + "..." if isinstance(v, str) and len(v) > 60 else repr(v)
    return text if len(text) <= 80 else text[:80] + "..."


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _fmt(x: float) -> str:
    return f"{int(x):,}" if x == int(x) else f"{x:g}"


def _number(d: dict, key: str, where: str, default, lo: float, hi: float, integer: bool = False,
            below_hi: bool = False):
    """d[key] (or default): a finite number in [lo, hi] ([lo, hi) if below_hi), a whole one if integer, never a bool."""
    v = d.get(key, default)
    ok = (not isinstance(v, bool) and isinstance(v, (int, float)) and (isinstance(v, int) or math.isfinite(v))
          and (not integer or v == int(v)))
    if not ok or v < lo or v > hi or (below_hi and v >= hi):
        span = (f"between {_fmt(lo)} and {_fmt(hi)}" if (lo, hi) == (0, 1) else
                f"at least {_fmt(lo)} and {'below' if below_hi else 'at most'} {_fmt(hi)}")
        raise ScenarioError(f"{where}: '{key}' must be {span}{' (a whole number)' if integer else ''}, got {_show(v)}")
    return int(v) if integer else float(v)


def _name(d: dict, key: str, where: str, default: str) -> str:
    v = d.get(key, default)
    if not isinstance(v, str) or not v.isprintable() or not 0 < len(v) <= MAX_NAME:
        got = f"{len(v):,} characters" if isinstance(v, str) and len(v) > MAX_NAME else _show(v)
        raise ScenarioError(f"{where}: '{key}' must be printable text of 1 to {MAX_NAME} characters, got {got}")
    return v


def _keys(d: dict, allowed: tuple[str, ...], where: str) -> None:
    extra = [k for k in d if k not in allowed]
    if extra:
        raise ScenarioError(f"{where}: unknown key {_show(extra[0])}; valid: {', '.join(allowed)}")


def parse_scenario(doc, universe: Universe) -> Scenario:
    """Validate a scenario document (see README) against the universe; every bound is checked before a tick runs."""
    try:
        return _parse(doc, universe)
    except ScenarioError as e:
        raise ScenarioError(_one_line(str(e))) from None


def _parse(doc, universe: Universe) -> Scenario:
    if not isinstance(doc, dict):
        raise ScenarioError("scenario must be a JSON object with 'phases'")
    _keys(doc, TOP_KEYS, "scenario")
    phases_doc = doc.get("phases")
    if not isinstance(phases_doc, list) or not phases_doc:
        raise ScenarioError(f"scenario needs a non-empty 'phases' list, at most {MAX_PHASES:,} phases")
    if len(phases_doc) > MAX_PHASES:
        raise ScenarioError(f"scenario: at most {MAX_PHASES:,} phases, got {len(phases_doc):,}")
    names = {k: universe.names(k) for k in ("issuer", "processor", "merchant")}
    kinds = [x.value for x in FaultKind]
    phases, faults, tick = [], [], 0
    for n, ph in enumerate(phases_doc, 1):
        where = f"phase {n}"
        if not isinstance(ph, dict):
            raise ScenarioError(f"{where}: must be an object with 'name' and 'ticks'")
        _keys(ph, PHASE_KEYS, where)
        if "ticks" not in ph:
            raise ScenarioError(f"{where}: needs 'ticks', a whole number from 1 to {MAX_TICKS:,}")
        ticks = _number(ph, "ticks", where, None, 1, MAX_TICKS, integer=True)
        if tick + ticks > MAX_TICKS:
            raise ScenarioError(f"{where}: all phases together must be at most {MAX_TICKS:,} ticks, "
                                f"got {tick + ticks:,} by this phase")
        phases.append(Phase(_name(ph, "name", where, f"phase {n}"), tick, ticks))
        fault_docs = ph.get("faults", [])
        if not isinstance(fault_docs, list):
            raise ScenarioError(f"{where}: 'faults' must be a list")
        if len(faults) + len(fault_docs) > MAX_FAULTS:
            raise ScenarioError(f"{where}: at most {MAX_FAULTS} faults in a scenario, "
                                f"got {len(faults) + len(fault_docs)}")
        for k, fd in enumerate(fault_docs, 1):
            faults.append(_fault(fd, f"{where} fault {k}", tick, ticks, kinds, names))
        tick += ticks
    seed = _number(doc, "seed", "scenario", 7, 0, MAX_SEED, integer=True)
    tick_seconds = _number(doc, "tick_seconds", "scenario", 10.0, MIN_TICK_SECONDS, MAX_TICK_SECONDS)
    per_tick = _number(doc, "payments_per_tick", "scenario", 2000.0, 1, MAX_PAYMENTS_PER_TICK)
    if tick * per_tick > MAX_PAYMENTS:
        raise ScenarioError(f"scenario: ticks x payments_per_tick must be at most {MAX_PAYMENTS:,}, "
                            f"got {tick:,} x {_fmt(per_tick)} = {tick * per_tick:,.0f}")
    return Scenario(_name(doc, "name", "scenario", "unnamed"), seed, tick_seconds, per_tick,
                    _number(doc, "start_hour", "scenario", 12.0, 0, 24, below_hi=True), tuple(phases), tuple(faults))


def _fault(fd, fw: str, tick: int, ticks: int, kinds: list[str], names: dict) -> ScheduledFault:
    """One fault of a phase of `ticks` ticks from run tick `tick`; it starts, ramps and flaps inside its phase."""
    if not isinstance(fd, dict):
        raise ScenarioError(f"{fw}: must be an object with 'kind'")
    kind_doc = fd.get("kind")
    if not isinstance(kind_doc, str) or kind_doc not in kinds:
        raise ScenarioError(f"{fw}: unknown fault kind {_show(kind_doc)}; valid: {', '.join(kinds)}")
    kind = FaultKind(kind_doc)
    _keys(fd, FAULT_KEYS[:6] + FAULT_FIELDS[kind], fw)
    fields = {}
    for key in FAULT_FIELDS[kind]:
        if key not in fd:
            raise ScenarioError(f"{fw}: {kind.value} needs '{key}'; valid: {', '.join(names[key])}")
        if not isinstance(fd[key], str) or fd[key] not in names[key]:
            raise ScenarioError(f"{fw}: unknown {key} {_show(fd[key])}; valid: {', '.join(names[key])}")
        fields[key] = fd[key]
    if "severity" not in fd:
        raise ScenarioError(f"{fw}: needs 'severity' between 0 and 1")
    severity = _number(fd, "severity", fw, None, 0, 1)
    start = _number(fd, "start", fw, 0, 0, ticks - 1, integer=True)
    length = _number(fd, "ticks", fw, ticks - start, 1, ticks - start, integer=True)
    return ScheduledFault(Fault(kind, severity, **fields), tick + start, tick + start + length,
                          _number(fd, "ramp_ticks", fw, 0, 0, length, integer=True),
                          _number(fd, "flap_ticks", fw, 0, 0, length, integer=True))


def load_scenario(path, universe: Universe) -> Scenario:
    """A scenario file read through safe_json (a regular file, at most MAX_FILE_BYTES, MAX_DEPTH deep, strict JSON)."""
    try:
        doc = load_json(path, MAX_FILE_BYTES, MAX_DEPTH)
    except JsonRefused as e:
        if not Path(path).exists() and not Path(path).is_symlink():
            raise ScenarioError(_one_line(f"scenario file not found: {path}")) from None
        reason = str(e).removeprefix(f"{Path(path).name}: ")
        raise ScenarioError(_one_line(f"scenario file {path}: {reason}")) from None
    return parse_scenario(doc, universe)


def fault_dict(f: ScheduledFault) -> dict:
    """A scheduled fault as the report, the benchmark and simulator.json show it."""
    return {"kind": f.fault.kind.value, "target": f.fault.target, "severity": f.fault.severity,
            "start_tick": f.start_tick, "end_tick": f.end_tick}


def make_simulator(scenario: Scenario, universe: Universe, seed: int, **overrides) -> Simulator:
    """The simulator a scenario describes: its volume, tick length and start hour, with this seed."""
    return Simulator(universe, seed, overrides.get("payments_per_tick", scenario.payments_per_tick),
                     overrides.get("tick_seconds", scenario.tick_seconds), scenario.start_hour,
                     tick=overrides.get("tick", 0))


# -- live mode's schedules ------------------------------------------------------------------

@dataclass
class RandomFaultSchedule:
    """A seeded stream of faults: quiet gaps, then one fault of a random kind, target and severity."""
    universe: Universe
    seed: int
    quiet: tuple[int, int] = (60, 150)
    length: tuple[int, int] = (40, 100)
    _rng: np.random.Generator = field(init=False)
    _current: ScheduledFault | None = field(init=False, default=None)
    _next_start: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng([self.seed, 7919])
        self._next_start = int(self._rng.integers(*self.quiet))

    def _draw(self, start: int) -> ScheduledFault:
        u, rng = self.universe, self._rng
        kind = FaultKind(rng.choice([k.value for k in FaultKind]))
        pick = lambda names: str(rng.choice(names))
        fields = {
            FaultKind.ISSUER_DEGRADATION: lambda: {"issuer": (i := pick(u.issuer_names)),
                                                   "processor": next(x.primary for x in u.issuers if x.name == i)},
            FaultKind.ISSUER_OUTAGE: lambda: {"issuer": pick(u.issuer_names)},
            FaultKind.RETRY_STORM: lambda: {"merchant": pick(u.merchant_names)},
            FaultKind.LATENCY_SPIKE: lambda: {"processor": pick(u.processor_names)},
        }[kind]()
        severity = round(float(rng.uniform(0.4, 0.9)), 2)
        end = start + int(rng.integers(*self.length))
        ramp = int(rng.integers(0, 10)) if rng.random() < 0.3 else 0
        return ScheduledFault(Fault(kind, severity, **fields), start, end, ramp)

    def faults_at(self, tick: int) -> tuple[Fault, ...]:
        if self._current is None and tick >= self._next_start:
            self._current = self._draw(tick)
        if self._current is not None and tick >= self._current.end_tick:
            self._next_start = self._current.end_tick + int(self._rng.integers(*self.quiet))
            self._current = None
        if self._current is None:
            return ()
        return (self._current.at(tick),)

    def describe(self) -> dict:
        f = self._current
        return {"active_fault": None if f is None else fault_dict(f), "next_fault_not_before": self._next_start}


@dataclass
class ScenarioSchedule:
    """A scenario file's fault schedule replayed in real time; quiet after its last phase."""
    scenario: Scenario
    _tick: int = field(init=False, default=0)

    def faults_at(self, tick: int) -> tuple[Fault, ...]:
        self._tick = tick
        return self.scenario.faults_at(tick)

    def describe(self) -> dict:
        t = self._tick
        phase = next((p.name for p in self.scenario.phases if p.start_tick <= t < p.end_tick), None)
        active = [fault_dict(f) for f in self.scenario.faults if f.severity_at(t) > 0]
        return {"scenario": self.scenario.name, "phase": phase, "active_fault": active[0] if active else None,
                "active_faults": active}
