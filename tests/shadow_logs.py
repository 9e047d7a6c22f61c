"""Synthetic payment logs for the shadow-mode tests: an orchestrator's hourly counts and per-attempt events.

Made here, seeded, never copied from anyone: a day-and-night volume curve (peak at 20 h, trough
at 04 h, about 8x), a long tail of banks (Zipf shares), gateways, merchants, methods and method
sub-types, healthy approval rates that differ by bank and method and dip a little at night, and
planted incidents that fail one combination of values for some hours.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

START = datetime(2026, 11, 23, tzinfo=timezone.utc)      # a Monday


@dataclass(frozen=True)
class Planted:
    where: dict                 # column -> value, e.g. {"gateway": "payu", "method_subtype": "upi_collect"}
    start_hour: int             # hours from START
    hours: int
    rate: float = 0.35          # the approval rate while it lasts


def universe(banks: int = 320, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    names = {
        "bank": [f"bank{i:03d}" for i in range(banks)],
        "gateway": ["payu", "razorpay", "cashfree", "ccavenue", "paytm", "juspay_pg", "billdesk", "stripe_in"],
        "merchant": [f"shop{i:02d}" for i in range(15)],
        "method": ["card", "upi", "netbanking", "wallet"],
    }
    subtypes = {"card": ["credit", "debit", "prepaid"], "upi": ["upi_collect", "upi_intent", "upi_qr"],
                "netbanking": ["nb_retail", "nb_corporate"], "wallet": ["paytm_wallet", "phonepe_wallet"]}
    shares = {
        "bank": (lambda w: w / w.sum())(1 / np.arange(1, banks + 1) ** 1.1),
        "gateway": np.array([0.30, 0.22, 0.14, 0.10, 0.09, 0.07, 0.05, 0.03]),
        "merchant": (lambda w: w / w.sum())(rng.uniform(0.5, 2.0, 15)),
        "method": np.array([0.45, 0.35, 0.12, 0.08]),
    }
    bank_rate = np.clip(rng.normal(0.90, 0.03, banks), 0.75, 0.97)
    return {"names": names, "subtypes": subtypes, "shares": shares, "bank_rate": bank_rate,
            "method_factor": {"card": 1.0, "upi": 0.97, "netbanking": 0.95, "wallet": 1.01}}


def volume(hour_of_day: np.ndarray) -> np.ndarray:
    """Relative traffic by local hour: peak 20 h, trough 04 h, peak/trough about 8x."""
    return 1.0 + 0.78 * np.cos(2 * np.pi * (hour_of_day - 20) / 24)


def hourly_counts(days: int = 3, per_hour: float = 60_000, banks: int = 320, planted: tuple[Planted, ...] = (),
                  seed: int = 7) -> pd.DataFrame:
    """One row per hour x merchant x method x method_subtype x gateway x bank that saw traffic:
    hour, merchant, method, method_subtype, gateway, bank, count, approved."""
    u = universe(banks)
    rng = np.random.default_rng(seed)
    frames = []
    for h in range(days * 24):
        hod = (START + timedelta(hours=h)).hour
        n = int(rng.poisson(per_hour * volume(np.array([hod]))[0]))
        cols = {k: rng.choice(len(u["names"][k]), n, p=u["shares"][k]) for k in ("bank", "gateway", "merchant", "method")}
        method = np.array(u["names"]["method"])[cols["method"]]
        sub = np.empty(n, dtype=object)
        for m, subs in u["subtypes"].items():
            sel = method == m
            sub[sel] = np.array(subs)[rng.integers(0, len(subs), sel.sum())]
        p = u["bank_rate"][cols["bank"]] * np.vectorize(u["method_factor"].get)(method)
        p = p - (0.03 if hod in (1, 2, 3, 4) else 0.0)                       # declines x1.4 in the small hours
        df = pd.DataFrame({"merchant": np.array(u["names"]["merchant"])[cols["merchant"]], "method": method,
                           "method_subtype": sub, "gateway": np.array(u["names"]["gateway"])[cols["gateway"]],
                           "bank": np.array(u["names"]["bank"])[cols["bank"]]})
        for inc in planted:
            if inc.start_hour <= h < inc.start_hour + inc.hours:
                sel = np.ones(n, dtype=bool)
                for col, value in inc.where.items():
                    sel &= df[col].to_numpy() == value
                p = np.where(sel, inc.rate, p)
        df["approved"] = (rng.random(n) < p).astype(np.int64)
        df["count"] = 1
        g = df.groupby(["merchant", "method", "method_subtype", "gateway", "bank"], sort=True, as_index=False)[
            ["count", "approved"]].sum()
        g.insert(0, "hour", (START + timedelta(hours=h)).strftime("%Y-%m-%d %H:00:00"))
        frames.append(g)
    return pd.concat(frames, ignore_index=True)


def events(minutes: int = 24 * 60, per_minute: float = 400, banks: int = 60, planted: tuple[Planted, ...] = (),
           extra: dict | None = None, seed: int = 11) -> pd.DataFrame:
    """One row per first attempt in the events format (time, payment_id, attempt, issuer, processor, merchant,
    method, status, code, latency_ms, amount, currency, fee) plus any extra dimension columns given as
    name -> (values, shares). Planted incidents count their hours in minutes here (start_hour, hours)."""
    u = universe(banks, seed=seed)
    rng = np.random.default_rng(seed)
    extra = extra or {}
    frames = []
    for mnt in range(minutes):
        t0 = START + timedelta(minutes=mnt)
        n = int(rng.poisson(per_minute * volume(np.array([t0.hour + t0.minute / 60]))[0]))
        cols = {k: rng.choice(len(u["names"][k]), n, p=u["shares"][k]) for k in ("bank", "gateway", "merchant", "method")}
        df = pd.DataFrame({"issuer": np.array(u["names"]["bank"])[cols["bank"]],
                           "processor": np.array(u["names"]["gateway"])[cols["gateway"]],
                           "merchant": np.array(u["names"]["merchant"])[cols["merchant"]],
                           "method": np.array(u["names"]["method"])[cols["method"]]})
        for name, (values, shares) in extra.items():
            df[name] = np.array(values)[rng.choice(len(values), n, p=shares)]
        p = u["bank_rate"][cols["bank"]] * np.vectorize(u["method_factor"].get)(df["method"].to_numpy())
        for inc in planted:
            if inc.start_hour <= mnt < inc.start_hour + inc.hours:
                sel = np.ones(n, dtype=bool)
                for col, value in inc.where.items():
                    sel &= df[col].to_numpy() == value
                p = np.where(sel, inc.rate, p)
        ok = rng.random(n) < p
        df.insert(0, "time", [(t0 + timedelta(seconds=float(s))).isoformat() for s in np.sort(rng.uniform(0, 60, n))])
        df.insert(1, "payment_id", [f"p{mnt}_{i}" for i in range(n)])
        df.insert(2, "attempt", 1)
        df["status"] = np.where(ok, "approved", "declined")
        df["code"] = np.where(ok, "00", rng.choice(["05", "51", "14"], n, p=[0.5, 0.4, 0.1]))
        df["latency_ms"] = np.round(np.exp(rng.normal(np.log(1300), 0.42, n)), 1)
        df["amount"] = np.round(np.exp(rng.normal(np.log(70), 0.8, n)), 2)
        df["currency"] = "INR"
        df["fee"] = np.round(np.where(ok, df["amount"] * 0.02, 0.0), 2)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
