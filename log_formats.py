"""Replay formats: presets, roles, auto-detection from a header, and the --map/--dim/--tick options.

Decides *what* to read from a payment log: which format it is and why, which column plays
each role (time, status, issuer, ...), which status values mean approved, and the tick.
log_reader then reads it. Pure: no files, clock or database; a header comes in as a list
of column names and a ReadPlan (or a one-line LogError) goes out.

Roles: `time` always; then one row shape, either `count` + `approved` (pre-aggregated rows)
or `status` (one row per attempt); optional payment_id, attempt, code, latency_ms, amount,
currency, fee and the four named dimensions issuer, processor, merchant, method. Any other
dimension is a --dim NAME=COLUMN. Sources of each preset's columns: docs/replay_formats.md.
"""
from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass, field
from enum import Enum


class LogError(Exception):
    """A log the replay cannot read; str() is one line for the user."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class Role(str, Enum):
    TIME = "time"
    COUNT = "count"
    APPROVED = "approved"
    STATUS = "status"
    PAYMENT_ID = "payment_id"
    ATTEMPT = "attempt"
    CODE = "code"
    LATENCY_MS = "latency_ms"
    AMOUNT = "amount"
    CURRENCY = "currency"
    FEE = "fee"
    ISSUER = "issuer"
    PROCESSOR = "processor"
    MERCHANT = "merchant"
    METHOD = "method"


NAMED_DIMS = ("issuer", "processor", "merchant", "method")


class Shape(str, Enum):
    EVENTS = "events"      # one row per attempt, with a status
    COUNTS = "counts"      # one row per time bucket (and slice): attempts and approved attempts


class Format(str, Enum):
    AUTO = "auto"
    EVENTS = "events"
    COUNTS = "counts"
    HYPERSWITCH = "hyperswitch"
    STRIPE = "stripe"
    ADYEN = "adyen"


class Outcome(str, Enum):
    """What a status value says about one authorisation attempt."""
    APPROVED = "approved"
    DECLINED = "declined"        # the issuer or a risk rule said no; the code says which class
    FAILED = "failed"            # the path failed (error, timeout): technical unless a code says otherwise
    NO_OUTCOME = "no outcome"    # pending, abandoned, expired: never answered, so not an attempt to count


A, D, F, N = Outcome.APPROVED, Outcome.DECLINED, Outcome.FAILED, Outcome.NO_OUTCOME

# Our own events format and any log mapped with --map: the common words for each outcome.
GENERIC_STATUSES = {"approved": A, "authorised": A, "authorized": A, "captured": A, "charged": A, "paid": A,
                    "succeeded": A, "success": A, "declined": D, "refused": D, "rejected": D, "denied": D,
                    "failed": F, "error": F, "timeout": F, "pending": N}

# juspay/hyperswitch crates/common_enums/src/enums.rs, enum AttemptStatus (snake_case in the table).
HYPERSWITCH_STATUSES = {
    **{s: A for s in ("charged", "partial_charged", "partial_charged_and_chargeable", "authorized",
                      "partially_authorized", "capture_initiated", "capture_failed", "void_initiated", "voided",
                      "voided_post_charge", "void_failed", "auto_refunded")},   # all follow an approved authorisation
    **{s: D for s in ("authorization_failed", "failure", "router_declined", "authentication_failed")},
    "integrity_failure": F,                       # the connector's answer failed Hyperswitch's integrity check
    **{s: N for s in ("started", "authentication_pending", "authentication_successful", "authorizing",
                      "cod_initiated", "pending", "payment_method_awaited", "confirmation_awaited",
                      "device_data_collection_pending", "unresolved", "expired")},
}

# Stripe unified payments export "Status": Paid and Failed as seen in public importers of the
# export; Refunded / Partially Refunded / Uncaptured are Stripe Dashboard statuses that follow an
# approved authorisation (assumed in the export too); Canceled and Pending never got an answer.
STRIPE_STATUSES = {"paid": A, "succeeded": A, "refunded": A, "partially refunded": A, "uncaptured": A,
                   "failed": D, "canceled": N, "cancelled": N, "pending": N, "incomplete": N}

# Adyen journal types (docs.adyen.com/reporting/reports-and-the-payments-lifecycle); Refused, Error
# and Cancelled are the refusal categories of a resultCode (docs.adyen.com/development-resources/refusal-reasons).
ADYEN_STATUSES = {"authorised": A, "sentforsettle": A, "settled": A, "refunded": A, "sentforrefund": A,
                  "chargeback": A, "refused": D, "cancelled": D, "error": F, "received": N, "expired": N}


@dataclass(frozen=True)
class Preset:
    """One log layout: the column of each role (alternatives in order), default extra dims, statuses."""
    format: Format
    roles: tuple[tuple[str, tuple[str, ...]], ...]
    signature: tuple[tuple[str, ...], ...]          # every group must have one column in the header
    statuses: dict = field(default_factory=dict)
    dims: tuple[tuple[str, str], ...] = ()
    amount_minor_units: bool = False
    time_zone_column: str | None = None             # a column naming each row's local time zone
    code_fallback: str | None = None                # read where the code column is empty
    all_other_columns_are_dims: bool = False


def _roles(**kw) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((role, cols if isinstance(cols, tuple) else (cols,)) for role, cols in kw.items())


# An orchestrator's hourly export names its columns in its own words: the common ones are understood.
COUNT_TIME = ("time", "hour", "timestamp", "bucket", "period_start", "date")
COUNT_COUNT = ("count", "attempts", "total", "total_count", "txn_count", "transactions")
COUNT_APPROVED = ("approved", "success", "successes", "succeeded", "success_count", "approved_count")

_EVENT_COLUMNS = ("time", "payment_id", "attempt", "issuer", "processor", "merchant", "method", "status",
                  "code", "latency_ms", "amount", "currency", "fee")

PRESETS = {
    Format.EVENTS: Preset(Format.EVENTS, _roles(**{c: c for c in _EVENT_COLUMNS}),
                          signature=(("time",), ("status",)), statuses=GENERIC_STATUSES),
    Format.COUNTS: Preset(Format.COUNTS, _roles(time=COUNT_TIME, count=COUNT_COUNT, approved=COUNT_APPROVED,
                                                code="code", issuer=("issuer", "bank", "issuer_name", "issuing_bank"),
                                                processor=("processor", "gateway", "connector", "acquirer", "psp"),
                                                merchant=("merchant", "merchant_id", "merchant_name"),
                                                method=("method", "payment_method")),
                          signature=(COUNT_TIME, COUNT_COUNT, COUNT_APPROVED), all_other_columns_are_dims=True),
    Format.HYPERSWITCH: Preset(
        Format.HYPERSWITCH,
        _roles(time="created_at", status="status", processor="connector", merchant="merchant_id",
               method="payment_method", code="error_code", payment_id="payment_id", amount="amount",
               currency="currency"),
        signature=(("created_at",), ("attempt_id",), ("status",), ("connector",)),
        statuses=HYPERSWITCH_STATUSES, dims=(("payment_method_type", "payment_method_type"),
                                             ("card_network", "card_network")),
        amount_minor_units=True, code_fallback="unified_code"),
    Format.STRIPE: Preset(
        Format.STRIPE,
        _roles(time=("Created date (UTC)", "Created (UTC)"), status="Status", code="Decline Reason",
               amount="Amount", currency="Currency", fee="Fee", payment_id="PaymentIntent ID"),
        signature=(("Created date (UTC)", "Created (UTC)"), ("Status",), ("Card Brand", "Decline Reason",
                                                                           "PaymentIntent ID")),
        statuses=STRIPE_STATUSES, dims=(("card_brand", "Card Brand"), ("card_funding", "Card Funding"),
                                        ("card_issue_country", "Card Issue Country"))),
    Format.ADYEN: Preset(
        Format.ADYEN,
        _roles(time="Creation Date", status="Type", code="Acquirer Response", issuer="Issuer Name",
               merchant="Merchant Account", method="Payment Method", amount="Amount", currency="Currency",
               payment_id="Psp Reference"),
        signature=(("Creation Date",), ("Psp Reference",), ("Type",)),
        statuses=ADYEN_STATUSES, dims=(("payment_method_variant", "Payment Method Variant"),
                                       ("issuer_country", "Issuer Country")),
        time_zone_column="TimeZone", code_fallback="Raw Acquirer Response"),
}
DETECT_ORDER = (Format.HYPERSWITCH, Format.STRIPE, Format.ADYEN, Format.COUNTS, Format.EVENTS)


@dataclass(frozen=True)
class LogSpec:
    """What the user asked for on the command line (see add_replay_arguments)."""
    path: str
    format: str = "auto"
    mapping: tuple[tuple[str, str], ...] = ()      # role -> column overrides
    approved_values: tuple[str, ...] | None = None
    dims: tuple[tuple[str, str], ...] = ()         # extra dimension name -> column
    time_format: str | None = None
    tick: str | None = None


@dataclass(frozen=True)
class ReadPlan:
    """The decision: which columns to read and how; log_reader turns it into SQL."""
    format: str
    reason: str
    shape: Shape
    roles: tuple[tuple[str, str], ...]              # role -> column actually used
    dims: tuple[tuple[str, str], ...]               # dimension name -> column, named ones first
    statuses: tuple[tuple[str, Outcome], ...]       # lower-case status value -> outcome
    amount_minor_units: bool = False
    time_format: str | None = None
    time_zone_column: str | None = None
    code_fallback: str | None = None
    tick_seconds: float | None = None               # None: the data's own bucket (counts) or 60 s

    def column(self, role: str) -> str | None:
        return dict(self.roles).get(role)


# -- option parsing ------------------------------------------------------------------------------

_TICK = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_STRFTIME = re.compile(r"%(.)")
_STRFTIME_OK = set("aAbBcdefgGHIjmMnpSsTuUVwWxXyYzZ%")


def parse_tick(text: str) -> float:
    """'5m' -> 300.0; '10s' or '10' -> 10.0; '1h' -> 3600.0."""
    m = _TICK.match(str(text))
    seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)] if m else float("nan")
    if not (math.isfinite(seconds) and 0.001 <= seconds <= 7 * 86400):
        raise LogError(f"--tick {text!r}: expected a duration such as 10s, 1m, 5m or 1h (between 1 ms and 7 days)")
    return seconds


def parse_assignments(items, option: str, valid: tuple[str, ...] | None = None) -> tuple[tuple[str, str], ...]:
    """['time=Created', 'code=Reason'] -> (('time', 'Created'), ('code', 'Reason'))."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise LogError(f"{option} {item!r}: expected NAME=COLUMN")
        if valid is not None and key not in valid:
            raise LogError(f"{option} {item!r}: unknown role {key!r}; valid roles: {', '.join(valid)}")
        out[key] = value
    return tuple(out.items())


def parse_approved_values(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    values = tuple(v.strip() for v in str(text).split(",") if v.strip())
    if not values:
        raise LogError(f"--approved-values {text!r}: expected one or more values separated by commas")
    return values


def check_time_format(fmt: str | None) -> str | None:
    if fmt is None:
        return None
    directives = _STRFTIME.findall(fmt)
    bad = [d for d in directives if d not in _STRFTIME_OK]
    if not directives or bad or fmt.endswith("%") and not fmt.endswith("%%"):
        raise LogError(f"--time-format {fmt!r}: expected a strftime pattern such as '%d/%m/%Y %H:%M:%S'")
    return fmt


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """The reading options of `run.py --replay FILE` (run.py adds --replay itself)."""
    parser.add_argument("--format", default="auto", choices=[f.value for f in Format],
                        help="layout of the log; auto decides from the header and says why")
    parser.add_argument("--map", action="append", default=[], metavar="ROLE=COLUMN",
                        help=f"use COLUMN for ROLE (repeatable); roles: {', '.join(r.value for r in Role)}")
    parser.add_argument("--approved-values", default=None, metavar="V1,V2",
                        help="status values that mean approved (presets know theirs)")
    parser.add_argument("--dim", action="append", default=[], metavar="NAME=COLUMN",
                        help="carry another dimension (card network, BIN range, 3DS flow...); repeatable")
    parser.add_argument("--time-format", default=None, metavar="STRFTIME",
                        help="timestamp pattern when it is not ISO 8601, e.g. '%%d/%%m/%%Y %%H:%%M'")
    parser.add_argument("--tick", default=None, metavar="DURATION",
                        help="bucket length: 10s, 1m, 5m, 1h (default: the data's own bucket for count "
                             "rows, 1 minute for per-attempt rows)")


def spec_from_args(path: str, args: argparse.Namespace) -> LogSpec:
    """Validate the options' syntax (one-line LogError) and gather them into a LogSpec."""
    fmt = getattr(args, "format", "auto") or "auto"
    if fmt not in {f.value for f in Format}:
        raise LogError(f"--format {fmt!r}: valid formats: {', '.join(f.value for f in Format)}")
    tick = getattr(args, "tick", None)
    if tick is not None:
        parse_tick(tick)
    dims = parse_assignments(getattr(args, "dim", ()), "--dim")
    for name, _ in dims:
        if name in {r.value for r in Role}:
            raise LogError(f"--dim {name}=...: {name!r} is a role; use --map {name}=COLUMN")
    return LogSpec(path=str(path), format=fmt,
                   mapping=parse_assignments(getattr(args, "map", ()), "--map", tuple(r.value for r in Role)),
                   approved_values=parse_approved_values(getattr(args, "approved_values", None)),
                   dims=dims, time_format=check_time_format(getattr(args, "time_format", None)), tick=tick)


# -- deciding the plan from a header ------------------------------------------------------------

def _finder(header: list[str]):
    exact = {h: h for h in header}
    folded: dict[str, str] = {}
    for h in header:
        folded.setdefault(" ".join(h.lower().split()), h)
    return lambda name: exact.get(name) or folded.get(" ".join(name.lower().split()))


def _shown(header: list[str], limit: int = 30) -> str:
    names = ", ".join(repr(h) for h in header[:limit])
    return names + (f", ... ({len(header)} columns)" if len(header) > limit else "")


def detect_format(header: list[str]) -> tuple[Format, str] | None:
    """The first preset whose signature columns are all in the header, with the reason."""
    find = _finder(header)
    for fmt in DETECT_ORDER:
        found = []
        for group in PRESETS[fmt].signature:
            hit = next((find(c) for c in group if find(c)), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return fmt, f"auto: {fmt.value}, the header has {', '.join(repr(c) for c in found)}"
    return None


def plan_read(spec: LogSpec, header: list[str]) -> ReadPlan:
    """Choose the format, the column of each role, the dims and the statuses; LogError if it cannot."""
    if not header:
        raise LogError(f"{spec.path}: no columns found")
    find = _finder(header)
    overrides = dict(spec.mapping)
    for role, column in spec.mapping:
        if find(column) is None:
            raise LogError(f"--map {role}={column}: no column {column!r} in {spec.path}; columns found: "
                           f"{_shown(header)}")
    if spec.format == Format.AUTO.value:
        mapped = [role for role in overrides if find(role) is None]     # --map time=hour stands for 'time'
        detected = detect_format(header + mapped)
        if detected is not None and mapped:
            detected = (detected[0], detected[1] + " (with your --map " + " ".join(
                f"{r}={overrides[r]}" for r in mapped) + ")")
        if detected is None and "time" in overrides and ("status" in overrides or "count" in overrides):
            fmt = Format.COUNTS if "count" in overrides else Format.EVENTS
            detected = (fmt, f"auto: no known header, so your --map is read as a {fmt.value} log "
                             f"({'one row per time bucket' if fmt is Format.COUNTS else 'one row per attempt'})")
        if detected is None:
            raise LogError(f"cannot tell the format of {spec.path} from its header (columns found: {_shown(header)}); "
                           f"pass --format, or --map time=COLUMN with status=COLUMN (or count= and approved=)")
        fmt, reason = detected
    else:
        fmt, reason = Format(spec.format), f"--format {spec.format}"
    preset = PRESETS[fmt]

    roles: dict[str, str] = {}
    for role, columns in preset.roles:
        hit = next((find(c) for c in columns if find(c)), None)
        if hit is not None:
            roles[role] = hit
    for role, column in overrides.items():
        roles[role] = find(column)
    if "time" not in roles:
        wanted = dict(preset.roles)["time"][0]
        raise LogError(f"{spec.path}: missing required column {wanted!r} (the {fmt.value} time column); "
                       f"columns found: {_shown(header)}; or pass --map time=COLUMN")
    has_counts = "count" in roles and "approved" in roles
    if has_counts and "status" in roles:
        raise LogError(f"{spec.path}: both row shapes mapped (status {roles['status']!r} and count/approved "
                       f"{roles['count']!r}/{roles['approved']!r}); map one: status, or count and approved")
    if not has_counts and "status" not in roles:
        wanted = "'count' and 'approved'" if fmt is Format.COUNTS else repr(dict(preset.roles).get("status",
                                                                                                    ("status",))[0])
        raise LogError(f"{spec.path}: missing required column {wanted} for the {fmt.value} format; columns found: "
                       f"{_shown(header)}; or pass --map status=COLUMN (or count= and approved=)")
    shape = Shape.COUNTS if has_counts else Shape.EVENTS
    if shape is Shape.COUNTS:
        roles.pop("status", None)

    dims: dict[str, str] = {d: roles.pop(d) for d in NAMED_DIMS if d in roles}
    for name, column in preset.dims:
        if find(column):
            dims.setdefault(name, find(column))
    for name, column in spec.dims:
        if find(column) is None:
            raise LogError(f"--dim {name}={column}: no column {column!r} in {spec.path}; columns found: "
                           f"{_shown(header)}")
        dims[name] = find(column)
    if preset.all_other_columns_are_dims:
        used = set(roles.values()) | set(dims.values())
        for h in header:
            if h not in used and h not in dims:
                dims[h] = h

    statuses = dict(preset.statuses or GENERIC_STATUSES)
    if spec.approved_values is not None:
        statuses = {k: v for k, v in statuses.items() if v is not Outcome.APPROVED}
        statuses.update({" ".join(v.lower().split()): Outcome.APPROVED for v in spec.approved_values})
    tz = find(preset.time_zone_column) if preset.time_zone_column else None
    fallback = find(preset.code_fallback) if preset.code_fallback and "code" not in overrides else None
    return ReadPlan(format=fmt.value, reason=reason, shape=shape, roles=tuple(roles.items()),
                    dims=tuple(dims.items()), statuses=tuple(statuses.items()),
                    amount_minor_units=preset.amount_minor_units and "amount" not in overrides,
                    time_format=check_time_format(spec.time_format), time_zone_column=tz,
                    code_fallback=fallback, tick_seconds=parse_tick(spec.tick) if spec.tick else None)
