"""log_formats: detection from a header, the column of each role, and the option syntax (one-line LogError)."""
import argparse

import pytest

from log_formats import (
    LogError,
    LogSpec,
    Outcome,
    Shape,
    add_replay_arguments,
    check_time_format,
    detect_format,
    parse_approved_values,
    parse_assignments,
    parse_tick,
    plan_read,
    spec_from_args,
)

HYPERSWITCH = ["payment_id", "merchant_id", "attempt_id", "status", "amount", "currency", "connector", "error_message",
               "payment_method", "created_at", "error_code", "payment_method_type", "unified_code", "card_network"]
STRIPE = ["id", "Created date (UTC)", "Amount", "Currency", "Decline Reason", "Fee", "PaymentIntent ID", "Status",
          "Card Brand", "Card Funding", "Card Issue Country"]
ADYEN = ["Company Account", "Merchant Account", "Psp Reference", "Payment Method", "Creation Date", "TimeZone",
         "Currency", "Amount", "Type", "Issuer Name", "Issuer Country", "Acquirer Response", "Raw Acquirer Response",
         "Payment Method Variant"]
EVENTS = ["time", "payment_id", "attempt", "issuer", "processor", "merchant", "method", "status", "code",
          "latency_ms", "amount", "currency", "fee"]
COUNTS = ["time", "merchant", "method", "gateway", "count", "approved"]


@pytest.mark.parametrize("header, expected", [
    (HYPERSWITCH, "hyperswitch"),                                    # payment_attempt table
    (STRIPE, "stripe"),                                              # unified payments export
    (["id", "Created (UTC)", "Status", "Card Brand"], "stripe"),     # the older export's time column
    ([h.lower() for h in STRIPE], "stripe"),                         # case differs: still Stripe
    (ADYEN, "adyen"),                                                # Received Payment Details
    (EVENTS, "events"),                                              # our own format
    (COUNTS, "counts"),                                              # pre-aggregated rows
    (["when", "result"], None),                                      # nothing known
])
def test_detect_format(header, expected):
    got = detect_format(header)
    assert (got[0].value if got else None) == expected
    if got:
        assert "auto:" in got[1] and "\n" not in got[1]


@pytest.mark.parametrize("header, roles, dims", [
    (HYPERSWITCH, {"time": "created_at", "status": "status", "code": "error_code", "payment_id": "payment_id",
                   "amount": "amount"},
     ["processor", "merchant", "method", "payment_method_type", "card_network"]),      # connector -> processor
    (STRIPE, {"time": "Created date (UTC)", "status": "Status", "code": "Decline Reason", "fee": "Fee",
              "payment_id": "PaymentIntent ID"}, ["card_brand", "card_funding", "card_issue_country"]),
    (ADYEN, {"time": "Creation Date", "status": "Type", "code": "Acquirer Response", "payment_id": "Psp Reference"},
     ["issuer", "merchant", "method", "payment_method_variant", "issuer_country"]),    # no processor: absent
    (EVENTS, {"time": "time", "status": "status", "attempt": "attempt", "latency_ms": "latency_ms"},
     ["issuer", "processor", "merchant", "method"]),
    (COUNTS, {"time": "time", "count": "count", "approved": "approved"},
     ["processor", "merchant", "method"]),                                            # a gateway is a processor
    (["hour", "bank", "gateway", "method_subtype", "attempts", "success"], {"time": "hour", "count": "attempts",
     "approved": "success"}, ["issuer", "processor", "method_subtype"]),              # an orchestrator's own words
])
def test_each_preset_maps_its_columns_onto_roles(header, roles, dims):
    plan = plan_read(LogSpec("log.csv"), header)
    assert {r: plan.column(r) for r in roles} == roles
    assert [d for d, _ in plan.dims] == dims


def test_preset_specifics():
    hs = plan_read(LogSpec("a.csv"), HYPERSWITCH)
    assert hs.amount_minor_units and hs.code_fallback == "unified_code"          # minor units; UE_ codes as fallback
    assert dict(hs.statuses)["charged"] is Outcome.APPROVED
    assert dict(hs.statuses)["authorization_failed"] is Outcome.DECLINED
    assert dict(hs.statuses)["pending"] is Outcome.NO_OUTCOME
    ad = plan_read(LogSpec("a.csv"), ADYEN)
    assert ad.time_zone_column == "TimeZone" and dict(ad.statuses)["error"] is Outcome.FAILED
    assert not plan_read(LogSpec("a.csv"), STRIPE).amount_minor_units            # Stripe exports major units


@pytest.mark.parametrize("spec, check", [
    (LogSpec("a.csv", mapping=(("processor", "gateway"),)),                       # --map names a dim
     lambda p: dict(p.dims)["processor"] == "gateway" and "gateway" not in dict(p.dims)),
    (LogSpec("a.csv", dims=(("bin_range", "gateway"),)),                          # --dim adds an extra one
     lambda p: dict(p.dims)["bin_range"] == "gateway"),
    (LogSpec("a.csv", format="counts", tick="1h"), lambda p: p.tick_seconds == 3600),   # --tick
    (LogSpec("a.csv", mapping=(("time", "merchant"),)), lambda p: p.column("time") == "merchant"),
])
def test_overrides(spec, check):
    assert check(plan_read(spec, COUNTS))


def test_approved_values_replace_the_presets_approved_set():
    plan = plan_read(LogSpec("a.csv", approved_values=("Charged",)), HYPERSWITCH)
    statuses = dict(plan.statuses)
    assert statuses["charged"] is Outcome.APPROVED
    assert "authorized" not in statuses                       # no longer approved, and never guessed as declined
    assert statuses["failure"] is Outcome.DECLINED


def test_auto_with_map_reads_an_unknown_layout():
    plan = plan_read(LogSpec("a.csv", mapping=(("time", "ts"), ("status", "result"))), ["ts", "result", "bank"])
    assert plan.shape is Shape.EVENTS and "--map" in plan.reason


@pytest.mark.parametrize("spec, header, words", [
    (LogSpec("a.csv"), ["when", "result"], ["cannot tell the format", "'when'"]),            # unknown header
    (LogSpec("a.csv", format="stripe"), ["Status", "Amount"], ["'Created date (UTC)'", "'Amount'"]),  # no time
    (LogSpec("a.csv", format="events"), ["time", "issuer"], ["'status'", "'issuer'"]),        # no row shape
    (LogSpec("a.csv", format="counts"), ["time", "count"], ["'count' and 'approved'"]),       # half a shape
    (LogSpec("a.csv", format="events", mapping=(("count", "n"), ("approved", "ok"))), EVENTS + ["n", "ok"],
     ["both row shapes"]),                                                                     # status and counts
    (LogSpec("a.csv", mapping=(("time", "nope"),)), EVENTS, ["--map time=nope", "no column 'nope'"]),
    (LogSpec("a.csv", dims=(("bin", "nope"),)), EVENTS, ["--dim bin=nope"]),
    (LogSpec("a.csv"), [], ["no columns"]),
])
def test_bad_plans_are_one_line(spec, header, words):
    with pytest.raises(LogError) as e:
        plan_read(spec, header)
    assert "\n" not in str(e.value)
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize("text, seconds", [
    ("1m", 60.0), ("5m", 300.0), ("1h", 3600.0), ("10s", 10.0), ("10", 10.0), ("0.5s", 0.5), ("250ms", 0.25),
    (" 2m ", 120.0),
])
def test_parse_tick(text, seconds):
    assert parse_tick(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5x", "-1m", "0s", "1e9", "nan", "8d", "1m30s"])
def test_parse_tick_rejects(text):
    with pytest.raises(LogError, match="--tick"):
        parse_tick(text)


@pytest.mark.parametrize("items, valid, expected", [
    (["time=Created"], None, (("time", "Created"),)),
    (["time = Created date (UTC)"], None, (("time", "Created date (UTC)"),)),     # spaces around '=' trimmed
    (["code=a=b"], None, (("code", "a=b"),)),                                     # only the first '=' splits
    (["time=a", "time=b"], None, (("time", "b"),)),                               # the last one wins
])
def test_parse_assignments(items, valid, expected):
    assert parse_assignments(items, "--map", valid) == expected


@pytest.mark.parametrize("item", ["time", "=col", "time=", "colour=red"])
def test_parse_assignments_rejects(item):
    with pytest.raises(LogError, match="--map"):
        parse_assignments([item], "--map", ("time", "status"))


@pytest.mark.parametrize("fmt, ok", [
    ("%d/%m/%Y %H:%M:%S", True), ("%Y-%m-%dT%H:%M:%S%z", True), ("%s", True),
    ("no directives", False), ("%Q", False), ("%Y-%", False),
])
def test_check_time_format(fmt, ok):
    if ok:
        assert check_time_format(fmt) == fmt
    else:
        with pytest.raises(LogError, match="--time-format"):
            check_time_format(fmt)


def test_approved_values_syntax():
    assert parse_approved_values(" Paid , Refunded,") == ("Paid", "Refunded")
    with pytest.raises(LogError):
        parse_approved_values(" , ")


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_replay_arguments(parser)
    return parser.parse_args(argv)


def test_spec_from_args_round_trip():
    args = _parse(["--format", "counts", "--map", "time=hour", "--map", "processor=gateway", "--dim",
                   "bin=bin_range", "--approved-values", "ok,fine", "--time-format", "%d/%m/%Y %H", "--tick", "1h"])
    spec = spec_from_args("week.csv", args)
    assert spec == LogSpec("week.csv", "counts", (("time", "hour"), ("processor", "gateway")), ("ok", "fine"),
                           (("bin", "bin_range"),), "%d/%m/%Y %H", "1h")
    assert spec_from_args("x.csv", _parse([])) == LogSpec("x.csv")


@pytest.mark.parametrize("argv, words", [
    (["--map", "colour=red"], "unknown role"),
    (["--map", "time"], "NAME=COLUMN"),
    (["--dim", "issuer=bank"], "use --map issuer"),
    (["--tick", "soon"], "--tick"),
    (["--time-format", "dd/mm"], "--time-format"),
    (["--approved-values", ","], "--approved-values"),
])
def test_spec_from_args_rejects(argv, words):
    with pytest.raises(LogError) as e:
        spec_from_args("x.csv", _parse(argv))
    assert words in str(e.value) and "\n" not in str(e.value)
