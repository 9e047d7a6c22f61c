"""The simulated world: merchants, issuers, processors and their default routing.

Static data only, grounded in ../shared/payments-facts.md. No randomness, no
clock, no state: the simulator draws traffic from these profiles and the agent
reads the business facts it would know in real life (fees, margins, capacity).
It never knows faults.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from decline_codes import SIM_AXIS, CodeAxis

METHODS = ("card", "wallet", "bank_transfer")


@dataclass(frozen=True)
class Issuer:
    name: str
    share: float                      # share of all payments
    approval: tuple[float, float, float]  # healthy approval rate per method (card, wallet, bank_transfer)
    primary: str                      # processor that gets most of its traffic by default
    primary_share: float              # BIN routing: the rest is split over the other processors


@dataclass(frozen=True)
class Processor:
    name: str
    p50_ms: float
    p95_ms: float
    fee_pct: float                    # of the amount, charged on approvals
    fee_fixed: float                  # per approval
    fee_per_attempt: float            # per request, approved or not (IC++ style + network auth fee)
    capacity_share: float             # max share of the nominal payments per tick it can take
    tech_failure: dict[str, float] = field(default_factory=dict)  # per issuer: 91/96 rate on this path
    auth_uplift: dict[str, float] = field(default_factory=dict)   # per issuer: approval multiplier (local acquiring)


@dataclass(frozen=True)
class Merchant:
    name: str
    vertical: str
    share: float                      # share of payments at the daily mean
    peak_hour: float                  # local hour of the daily peak
    daily_amplitude: float            # rate = mean * (1 + a*cos(...)): a=0.8 gives peak/trough 9x
    burst_prob: float                 # chance per tick of a flash-sale burst
    burst_mult: float
    ticket_median: float              # lognormal ticket size in USD
    ticket_sigma: float
    method_mix: tuple[float, float, float]
    max_attempts: int                 # its own retry behaviour
    backoff_ticks: int
    approval_factor: float            # vertical effect on approval (digital goods, cross-border)
    latency_sensitivity: float        # 0..1, how much slow authorizations cost it
    decline_sensitivity: float        # 0..1, how much a lost approval costs it beyond margin
    margin: float                     # contribution margin of a sale


ISSUERS = (
    Issuer("chase", 0.24, (0.92, 0.95, 0.96), "atlas", 0.90),
    Issuer("bofa", 0.18, (0.91, 0.94, 0.96), "atlas", 0.88),
    Issuer("capital_one", 0.12, (0.89, 0.93, 0.95), "beacon", 0.85),
    Issuer("barclays", 0.14, (0.90, 0.94, 0.95), "beacon", 1.00),   # BIN-routed to its domestic acquirer only
    Issuer("santander", 0.12, (0.88, 0.92, 0.94), "beacon", 0.88),
    Issuer("itau", 0.12, (0.80, 0.86, 0.92), "cobalt", 0.92),
    Issuer("revolut", 0.08, (0.90, 0.94, 0.95), "cobalt", 0.80),
)

PROCESSORS = (
    Processor("atlas", 1300, 2600, 0.029, 0.30, 0.0195, 0.80,
              {"chase": 0.004, "bofa": 0.005, "itau": 0.03},
              {"chase": 1.0, "bofa": 1.0, "itau": 0.93}),
    Processor("beacon", 1100, 2300, 0.016, 0.10, 0.13, 0.70,
              {"barclays": 0.004, "santander": 0.005, "capital_one": 0.006},
              {"barclays": 1.01, "santander": 1.01, "itau": 0.95}),
    Processor("cobalt", 1500, 3000, 0.032, 0.30, 0.05, 0.50,
              {"itau": 0.006, "revolut": 0.004},
              {"itau": 1.03, "chase": 0.99}),
)

MERCHANTS = (
    Merchant("globemart", "retail", 0.22, 19.0, 0.5, 0.01, 2.0, 60, 0.8, (0.70, 0.20, 0.10), 2, 3, 1.00, 0.4, 0.5, 0.25),
    Merchant("skyways", "travel", 0.08, 11.0, 0.3, 0.005, 2.5, 350, 0.6, (0.85, 0.10, 0.05), 2, 6, 0.95, 0.3, 0.7, 0.08),
    Merchant("pixelforge", "gaming", 0.06, 21.0, 0.6, 0.02, 3.0, 15, 1.0, (0.50, 0.40, 0.10), 3, 1, 0.88, 0.5, 0.3, 0.60),
    Merchant("streamly", "subscriptions", 0.12, 3.0, 0.2, 0.0, 1.0, 13, 0.3, (0.90, 0.05, 0.05), 2, 12, 0.94, 0.1, 0.6, 0.70),
    Merchant("dashbite", "food_delivery", 0.14, 19.5, 0.7, 0.01, 1.8, 30, 0.5, (0.50, 0.45, 0.05), 2, 1, 1.00, 0.9, 0.6, 0.12),
    Merchant("urbanwear", "fashion", 0.09, 20.0, 0.5, 0.01, 2.0, 110, 0.7, (0.75, 0.20, 0.05), 2, 3, 0.98, 0.4, 0.5, 0.35),
    Merchant("homenest", "home", 0.07, 18.0, 0.4, 0.005, 2.0, 220, 0.7, (0.80, 0.10, 0.10), 2, 3, 0.99, 0.3, 0.5, 0.30),
    Merchant("glowbox", "beauty", 0.05, 20.0, 0.5, 0.01, 2.0, 60, 0.6, (0.70, 0.25, 0.05), 2, 2, 0.99, 0.4, 0.4, 0.45),
    Merchant("tixnow", "ticketing", 0.05, 10.0, 0.3, 0.03, 4.0, 90, 0.7, (0.75, 0.20, 0.05), 2, 1, 0.97, 0.7, 0.8, 0.15),
    Merchant("quickcab", "mobility", 0.12, 8.5, 0.5, 0.005, 1.5, 22, 0.5, (0.55, 0.40, 0.05), 3, 2, 0.99, 0.8, 0.5, 0.20),
)


@dataclass(frozen=True, eq=False)
class Universe:
    """Entity tables plus the numpy arrays the hot path indexes by integer code."""

    issuers: tuple[Issuer, ...] = ISSUERS
    processors: tuple[Processor, ...] = PROCESSORS
    merchants: tuple[Merchant, ...] = MERCHANTS
    methods: tuple[str, ...] = METHODS

    dims: tuple[str, ...] = ("issuer", "processor", "merchant", "method")
    code_axis: CodeAxis = SIM_AXIS

    def size(self, dim: str) -> int:
        return len(self.names(dim))

    @cached_property
    def issuer_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.issuers)

    @cached_property
    def processor_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.processors)

    @cached_property
    def merchant_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.merchants)

    def index(self, kind: str, name: str) -> int:
        names = {"issuer": self.issuer_names, "processor": self.processor_names,
                 "merchant": self.merchant_names, "method": self.methods}[kind]
        return names.index(name)

    def names(self, kind: str) -> tuple[str, ...]:
        return {"issuer": self.issuer_names, "processor": self.processor_names,
                "merchant": self.merchant_names, "method": self.methods}[kind]

    @cached_property
    def issuer_share(self) -> np.ndarray:
        s = np.array([i.share for i in self.issuers])
        return s / s.sum()

    @cached_property
    def merchant_share(self) -> np.ndarray:
        s = np.array([m.share for m in self.merchants])
        return s / s.sum()

    @cached_property
    def approval(self) -> np.ndarray:
        """[issuer, method] healthy approval rate."""
        return np.array([i.approval for i in self.issuers])

    @cached_property
    def route_cdf(self) -> np.ndarray:
        """[issuer, processor] cumulative default routing split (rows end at 1)."""
        n = len(self.processors)
        split = np.zeros((len(self.issuers), n))
        for row, issuer in enumerate(self.issuers):
            primary = self.processor_names.index(issuer.primary)
            split[row, :] = (1 - issuer.primary_share) / (n - 1)
            split[row, primary] = issuer.primary_share
        return np.cumsum(split, axis=1)

    @cached_property
    def route_share(self) -> np.ndarray:
        return np.diff(self.route_cdf, axis=1, prepend=0.0)

    @cached_property
    def tech_failure(self) -> np.ndarray:
        """[processor, issuer] baseline technical failure rate (91/96) on that path."""
        return np.array([[p.tech_failure.get(i, 0.008) for i in self.issuer_names] for p in self.processors])

    @cached_property
    def auth_uplift(self) -> np.ndarray:
        """[processor, issuer] approval multiplier of that acquiring path."""
        return np.array([[p.auth_uplift.get(i, 1.0) for i in self.issuer_names] for p in self.processors])

    @cached_property
    def latency_mu_sigma(self) -> tuple[np.ndarray, np.ndarray]:
        """Lognormal parameters per processor from its p50 and p95."""
        p50 = np.array([p.p50_ms for p in self.processors])
        p95 = np.array([p.p95_ms for p in self.processors])
        return np.log(p50), np.log(p95 / p50) / 1.6449

    @cached_property
    def fees(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pct, fixed, per_attempt) per processor."""
        return (np.array([p.fee_pct for p in self.processors]),
                np.array([p.fee_fixed for p in self.processors]),
                np.array([p.fee_per_attempt for p in self.processors]))

    @cached_property
    def merchant_arrays(self) -> dict[str, np.ndarray]:
        ms = self.merchants
        return {
            "method_cdf": np.cumsum(np.array([m.method_mix for m in ms]), axis=1),
            "ticket_mu": np.log(np.array([m.ticket_median for m in ms])),
            "ticket_sigma": np.array([m.ticket_sigma for m in ms]),
            "max_attempts": np.array([m.max_attempts for m in ms]),
            "backoff": np.array([m.backoff_ticks for m in ms]),
            "approval_factor": np.array([m.approval_factor for m in ms]),
            "margin": np.array([m.margin for m in ms]),
            "mean_ticket": np.array([m.ticket_median * np.exp(m.ticket_sigma ** 2 / 2) for m in ms]),
            "latency_sensitivity": np.array([m.latency_sensitivity for m in ms]),
            "decline_sensitivity": np.array([m.decline_sensitivity for m in ms]),
        }

    def traffic_multiplier(self, hour: float) -> np.ndarray:
        """Per merchant arrival multiplier at a local hour (daily shape, mean 1)."""
        peak = np.array([m.peak_hour for m in self.merchants])
        amp = np.array([m.daily_amplitude for m in self.merchants])
        return 1.0 + amp * np.cos(2 * np.pi * (hour - peak) / 24.0)

    def describe(self) -> dict[str, list[str]]:
        return {"issuers": list(self.issuer_names), "processors": list(self.processor_names),
                "merchants": list(self.merchant_names), "methods": list(self.methods)}


DEFAULT_UNIVERSE = Universe()
