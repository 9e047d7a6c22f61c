"""The universe a replayed log describes: its dimensions and their values, discovered from the data.

Each dimension keeps its busiest values one by one (by attempts over the whole log) and
pools the rest as "(other)", so a dimension with thousands of values stays a small integer
axis: 300 banks become 40 tracked banks and "(other)". The four named dimensions (issuer,
processor, merchant, method) are always present; one the log lacks has a single value,
"(all)". Business facts a log does not carry (margins, capacity, latency sensitivity) take
documented defaults, so the decision engine can price a recommendation; fees come from the
log's fee column where it has one.

Pure values; the reader's codes are mapped onto these axes by `pool`. No I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from decline_codes import CLASS_AXIS, CodeAxis

NAMED = ("issuer", "processor", "merchant", "method")
OTHER = "(other)"
ALL = "(all)"


@dataclass(frozen=True)
class DataFacts:
    """Defaults for what a log does not say (units as in merchant_profiles)."""
    margin: float = 0.25                 # contribution margin of a sale: a mid-range retail figure
    mean_ticket: float = 100.0           # $ per approved payment when the log has no amounts (payments-facts §7)
    latency_sensitivity: float = 0.5
    decline_sensitivity: float = 0.5
    fee_pct: float = 0.029               # Stripe-like 2.9% + $0.30 on approvals when the log has no fees
    fee_fixed: float = 0.30
    fee_per_attempt: float = 0.0
    capacity_share: float = 1.0          # unknown: a processor is assumed able to take all traffic


@dataclass(frozen=True)
class ProcessorFacts:
    name: str
    capacity_share: float


@dataclass(frozen=True, eq=False)
class DataUniverse:
    values: tuple[tuple[str, tuple[str, ...]], ...]     # dimension -> its names in code order
    volumes: tuple[tuple[str, tuple[int, ...]], ...] = ()   # dimension -> attempts per name (same order)
    facts: DataFacts = DataFacts()
    code_axis: CodeAxis = CLASS_AXIS

    @classmethod
    def from_volumes(cls, volumes: dict[str, list[tuple[str, int]]], track: int = 40,
                     facts: DataFacts = DataFacts()) -> "DataUniverse":
        """The `track` busiest values of each dimension one by one, the rest pooled; missing named ones as '(all)'.

        {"processor": [("payu", 900), ("razorpay", 700), ("cashfree", 5)]}, track=2 ->
        processor: ("payu", "razorpay", "(other)"); issuer, merchant, method: ("(all)",)
        """
        values, vols = {}, {}
        for dim, pairs in volumes.items():
            kept = pairs[:track]
            rest = sum(n for _, n in pairs[track:])
            values[dim] = tuple(name for name, _ in kept) + ((OTHER,) if len(pairs) > track else ())
            vols[dim] = tuple(n for _, n in kept) + ((rest,) if len(pairs) > track else ())
        dims = tuple(d for d in NAMED) + tuple(d for d in volumes if d not in NAMED)
        return cls(tuple((d, values.get(d, (ALL,))) for d in dims),
                   tuple((d, vols.get(d, (1,))) for d in dims), facts)

    # -- the observer's and the reasoner's view ------------------------------------------------
    @cached_property
    def dims(self) -> tuple[str, ...]:
        return tuple(d for d, _ in self.values)

    @cached_property
    def _names(self) -> dict[str, tuple[str, ...]]:
        return dict(self.values)

    @cached_property
    def _index(self) -> dict[str, dict[str, int]]:
        return {d: {n: i for i, n in enumerate(names)} for d, names in self.values}

    def names(self, kind: str) -> tuple[str, ...]:
        return self._names[kind]

    def index(self, kind: str, name: str) -> int:
        return self._index[kind][name]

    def size(self, dim: str) -> int:
        return len(self._names[dim])

    @property
    def issuer_names(self) -> tuple[str, ...]:
        return self._names["issuer"]

    @property
    def processor_names(self) -> tuple[str, ...]:
        return self._names["processor"]

    @property
    def merchant_names(self) -> tuple[str, ...]:
        return self._names["merchant"]

    @property
    def methods(self) -> tuple[str, ...]:
        return self._names["method"]

    @property
    def issuers(self) -> tuple[str, ...]:
        return self.issuer_names

    @property
    def merchants(self) -> tuple[str, ...]:
        return self.merchant_names

    @cached_property
    def processors(self) -> tuple[ProcessorFacts, ...]:
        return tuple(ProcessorFacts(p, self.facts.capacity_share) for p in self.processor_names)

    def describe(self) -> dict[str, list[str]]:
        return {d: list(n) for d, n in self.values}

    # -- business facts, defaults where the log is silent ------------------------------------------
    @cached_property
    def merchant_share(self) -> np.ndarray:
        v = np.array(dict(self.volumes).get("merchant", (1,)) or (1,), dtype=float)
        return v / v.sum() if v.sum() else np.full(len(v), 1 / len(v))

    @cached_property
    def fees(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.size("processor")
        f = self.facts
        return np.full(n, f.fee_pct), np.full(n, f.fee_fixed), np.full(n, f.fee_per_attempt)

    @cached_property
    def merchant_arrays(self) -> dict[str, np.ndarray]:
        n, f = self.size("merchant"), self.facts
        return {"margin": np.full(n, f.margin), "mean_ticket": np.full(n, f.mean_ticket),
                "latency_sensitivity": np.full(n, f.latency_sensitivity),
                "decline_sensitivity": np.full(n, f.decline_sensitivity)}

    # -- the reader's codes onto these axes ----------------------------------------------------
    def pool(self, dim: str, reader_vocab: list[str], codes: np.ndarray, lut: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Reader codes (into its append-only vocabulary) -> this universe's codes; values not tracked go to
        '(other)'. Returns (codes, the lookup table extended to the vocabulary's length) for the next tick."""
        lut = np.zeros(0, dtype=np.int32) if lut is None else lut
        if len(lut) < len(reader_vocab):
            index, other = self._index[dim], self._index[dim].get(OTHER, 0)
            new = np.array([index.get(name, other) for name in reader_vocab[len(lut):]], dtype=np.int32)
            lut = np.concatenate([lut, new])
        return (lut[codes] if len(codes) else np.zeros(0, dtype=np.int32)), lut
