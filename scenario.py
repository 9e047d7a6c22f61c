"""Scenarios: a fault schedule for the simulator, from a file (phases) or drawn at random (live mode).

run.py and worker.py read a schedule and inject its faults into the simulator tick by
tick; the agent never sees it. parse_scenario validates a document against the
universe and raises ScenarioError with one line naming the problem and the choices.
Only the benchmark's oracle and the people's ground-truth panel read faults.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np

from merchant_profiles import Universe
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


def _number(d: dict, key: str, where: str, default, lo: float = 0.0, integer: bool = False):
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and int(v) != v):
        raise ScenarioError(f"{where}: '{key}' must be a {'whole ' if integer else ''}number, got {v!r}")
    if v < lo:
        raise ScenarioError(f"{where}: '{key}' must be at least {lo}, got {v!r}")
    return int(v) if integer else float(v)


def parse_scenario(doc, universe: Universe) -> Scenario:
    """Validate a scenario document (see README) against the universe."""
    if not isinstance(doc, dict):
        raise ScenarioError("scenario must be a JSON object with 'phases'")
    phases_doc = doc.get("phases")
    if not isinstance(phases_doc, list) or not phases_doc:
        raise ScenarioError("scenario needs a non-empty 'phases' list")
    names = {k: universe.names(k) for k in ("issuer", "processor", "merchant")}
    phases, faults, tick = [], [], 0
    for n, ph in enumerate(phases_doc, 1):
        where = f"phase {n}"
        if not isinstance(ph, dict):
            raise ScenarioError(f"{where}: must be an object with 'name' and 'ticks'")
        ticks = _number(ph, "ticks", where, None if "ticks" in ph else -1, lo=1, integer=True)
        phases.append(Phase(str(ph.get("name", f"phase {n}")), tick, ticks))
        fault_docs = ph.get("faults", [])
        if not isinstance(fault_docs, list):
            raise ScenarioError(f"{where}: 'faults' must be a list")
        for k, fd in enumerate(fault_docs, 1):
            fw = f"{where} fault {k}"
            if not isinstance(fd, dict):
                raise ScenarioError(f"{fw}: must be an object with 'kind'")
            kinds = [x.value for x in FaultKind]
            if fd.get("kind") not in kinds:
                raise ScenarioError(f"{fw}: unknown fault kind {fd.get('kind')!r}; valid: {', '.join(kinds)}")
            kind = FaultKind(fd["kind"])
            fields = {}
            for key in FAULT_FIELDS[kind]:
                if key not in fd:
                    raise ScenarioError(f"{fw}: {kind.value} needs '{key}'; valid: {', '.join(names[key])}")
                if fd[key] not in names[key]:
                    raise ScenarioError(f"{fw}: unknown {key} {fd[key]!r}; valid: {', '.join(names[key])}")
                fields[key] = fd[key]
            if "severity" not in fd:
                raise ScenarioError(f"{fw}: needs 'severity' between 0 and 1")
            severity = _number(fd, "severity", fw, None)
            if severity > 1:
                raise ScenarioError(f"{fw}: 'severity' must be between 0 and 1, got {severity}")
            start = _number(fd, "start", fw, 0, integer=True)
            length = _number(fd, "ticks", fw, ticks - start, lo=1, integer=True)
            faults.append(ScheduledFault(Fault(kind, severity, **fields), tick + start, tick + min(start + length, ticks),
                                         _number(fd, "ramp_ticks", fw, 0, integer=True),
                                         _number(fd, "flap_ticks", fw, 0, integer=True)))
        tick += ticks
    return Scenario(str(doc.get("name", "unnamed")), _number(doc, "seed", "scenario", 7, integer=True),
                    _number(doc, "tick_seconds", "scenario", 10.0, lo=0.001),
                    _number(doc, "payments_per_tick", "scenario", 2000.0, lo=1),
                    _number(doc, "start_hour", "scenario", 12.0) % 24, tuple(phases), tuple(faults))


def load_scenario(path, universe: Universe) -> Scenario:
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise ScenarioError(f"scenario file not found: {path}") from None
    except (OSError, ValueError) as e:
        raise ScenarioError(f"scenario {path} is not valid JSON: {e}") from None
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
