"""log_reader: every preset on its fixture, the time axis, and every bad input as a LogError or a counted rejection."""
import gzip
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from decline_codes import CLASS_INDEX, CodeClass
from log_reader import LogError, LogSpec, ReaderSettings, open_log

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HEADER = "time,payment_id,issuer,processor,merchant,method,status,code,latency_ms,amount,currency,fee\n"


def read(path, **kw):
    """(source, ticks) with everything read; the source is closed."""
    settings = kw.pop("settings", None)
    source = open_log(LogSpec(str(path), **kw), settings)
    try:
        return source, list(source.ticks())
    finally:
        source.close()


def joined(ticks, field):
    return np.concatenate([getattr(t, field) for t in ticks])


def classes(ticks):
    c = joined(ticks, "code_class")
    counts = joined(ticks, "count") - joined(ticks, "approved") * (c != CLASS_INDEX[CodeClass.APPROVED])
    return {k: int(counts[c == CLASS_INDEX[k]].sum()) for k in CodeClass if counts[c == CLASS_INDEX[k]].sum()}


def write(tmp_path, name, text, mode="w"):
    p = tmp_path / name
    binary = isinstance(text, bytes)
    with (gzip.open(p, "wt") if name.endswith(".gz") and not binary else open(p, "wb" if binary else mode)) as f:
        f.write(text)
    return p


# -- presets on their fixtures --------------------------------------------------------------------------

@pytest.mark.parametrize("name, fmt, roles, dims, rejected", [
    ("hyperswitch_payment_attempt.csv", "hyperswitch",           # connector -> processor, minor units
     {"processor": "connector", "merchant": "merchant_id", "method": "payment_method", "code": "error_code"},
     ("processor", "merchant", "method", "payment_method_type", "card_network"),
     {"status without an authorisation outcome"}),               # 'pending' attempts never got an answer
    ("stripe_unified_payments.csv", "stripe",
     {"time": "Created date (UTC)", "code": "Decline Reason", "fee": "Fee", "payment_id": "PaymentIntent ID"},
     ("card_brand", "card_funding", "card_issue_country"), {"status without an authorisation outcome"}),
    ("adyen_received_payment_details.csv", "adyen",              # no processor column: no processor dim
     {"issuer": "Issuer Name", "merchant": "Merchant Account", "method": "Payment Method", "status": "Type"},
     ("issuer", "merchant", "method", "payment_method_variant", "issuer_country"),
     {"status without an authorisation outcome"}),               # 'Received' only
    ("events.csv.gz", "events", {"status": "status", "attempt": "attempt"},
     ("issuer", "processor", "merchant", "method"), set()),
    ("events.jsonl.gz", "events", {"status": "status", "code": "code"},
     ("issuer", "processor", "merchant", "method"), set()),
])
def test_each_preset_on_its_fixture(name, fmt, roles, dims, rejected):
    source, ticks = read(FIXTURES / name)
    assert source.format == fmt and source.format_reason.startswith(f"auto: {fmt}")
    assert {r: source.roles[r] for r in roles} == roles
    assert source.dims == dims
    assert set(source.rows.rejected) == rejected
    assert source.rows.used == sum(len(t) for t in ticks) == source.rows.read - sum(source.rows.rejected.values())
    assert [t.index for t in ticks] == list(range(len(ticks)))
    got = classes(ticks)
    assert got[CodeClass.APPROVED] > 0.7 * source.rows.used
    assert got.get(CodeClass.SOFT, 0) > 0


@pytest.mark.parametrize("name, expected", [
    # Stripe "Decline Reason": one made-up code stays unknown, the rest are classed
    ("stripe_unified_payments.csv", {"unknown": "some_new_code", "technical": "processing_error",
                                     "hard": "expired_card", "soft": "insufficient_funds"}),
    # Hyperswitch: the connector's code; UE_9000 / DC_08 name no class
    ("hyperswitch_payment_attempt.csv", {"unknown": "DC_08", "soft": "05", "technical": "processing_error"}),
    # Adyen refusal reasons from "Acquirer Response"
    ("adyen_received_payment_details.csv", {"soft": "Not enough balance", "technical": "Acquirer Error",
                                            "hard": "CVC Declined"}),
])
def test_vendor_codes_are_classified(name, expected):
    source, _ = read(FIXTURES / name)
    table = dict(zip(source.code_vocab, source.code_class))
    for cls, code in expected.items():
        assert table[code] is CodeClass(cls), code


def test_hyperswitch_amounts_are_minor_units_per_currency(tmp_path):
    p = write(tmp_path, "a.csv", "created_at,attempt_id,status,connector,amount,currency,payment_id\n"
              "2024-01-01 00:00:00,a1,charged,stripe,1050,USD,p\n"
              "2024-01-01 00:00:01,a2,charged,stripe,1050,JPY,q\n"
              "2024-01-01 00:00:02,a3,charged,stripe,1050,KWD,r\n")
    _, ticks = read(p)
    assert sorted(joined(ticks, "amount").tolist()) == [1.05, 10.5, 1050.0]  # fils, cents, yen


def test_adyen_local_times_become_utc(tmp_path):
    p = write(tmp_path, "rpd.csv", "Creation Date,TimeZone,Type,Psp Reference,Merchant Account\n"
              "2024-03-04 10:00:00,CET,Authorised,1,m\n2024-07-04 10:00:00,CEST,Authorised,2,m\n"
              "2024-07-04 10:00:00,MARS,Authorised,3,m\n")
    source, ticks = read(p, tick="1h")
    assert source.start == datetime(2024, 3, 4, 9, tzinfo=timezone.utc)         # CET = UTC+1
    assert source.end == datetime(2024, 7, 4, 8, tzinfo=timezone.utc)           # CEST = UTC+2
    assert source.rows.rejected == {"unknown time zone": 1}


def test_counts_hourly_export_with_a_gap():
    spec = {"mapping": (("time", "hour"), ("processor", "gateway"), ("issuer", "bank"))}
    source, ticks = read(FIXTURES / "counts_hourly.csv", **spec)
    assert source.shape == "counts" and source.tick_seconds == 3600.0            # inferred: hourly data
    assert source.dims == ("issuer", "processor", "merchant", "method", "method_subtype")
    assert [len(t) for t in ticks] == [12] * 6 + [0] * 3 + [12] * 3              # the gap's hours are yielded, empty
    assert ticks[7].start == datetime(2024, 3, 4, 16, tzinfo=timezone.utc)
    assert all(t.count.dtype == np.int64 and (t.approved <= t.count).all() for t in ticks)
    assert (joined(ticks, "code") == -1).all() and (joined(ticks, "attempt") == 1).all()


def test_tick_override_rebuckets_counts():
    source, ticks = read(FIXTURES / "counts_hourly.csv", mapping=(("time", "hour"),), tick="30m")
    assert source.tick_seconds == 1800.0 and len(ticks) == 23 and sum(len(t) for t in ticks) == 108


# -- the time axis --------------------------------------------------------------------------------------

@pytest.mark.parametrize("stamps, kw, first_utc", [
    (["2024-01-01T10:00:00Z", "2024-01-01T10:00:30Z"], {}, "2024-01-01 10:00:00"),            # ISO, Z
    (["2024-01-01T12:00:00+02:00", "2024-01-01T10:00:30Z"], {}, "2024-01-01 10:00:00"),       # offsets mixed
    (["2024-01-01 05:00:00-05:00", "2024-01-01 10:00:59"], {}, "2024-01-01 10:00:00"),        # naive is UTC
    (["01/01/2024 10:00", "01/01/2024 10:01"], {"time_format": "%d/%m/%Y %H:%M"}, "2024-01-01 10:00:00"),
    (["01/01/2024 12:00 +0200", "01/01/2024 10:01 +0000"], {"time_format": "%d/%m/%Y %H:%M %z"},
     "2024-01-01 10:00:00"),
])
def test_timestamps(tmp_path, stamps, kw, first_utc):
    text = "time,status\n" + "".join(f"{s},approved\n" for s in stamps)
    source, ticks = read(write(tmp_path, "t.csv", text), **kw)
    assert source.rows.rejected == {}
    assert source.start == datetime.fromisoformat(first_utc).replace(tzinfo=timezone.utc)
    assert ticks[0].start.minute == 0 and ticks[0].start.tzinfo == timezone.utc


def test_rows_out_of_order_within_and_across_ticks(tmp_path):
    text = "time,status\n" + "".join(f"2024-01-01T10:0{m}:{s:02d}Z,approved\n" for m, s in
                                     [(2, 5), (0, 50), (2, 1), (0, 10), (1, 30)])
    source, ticks = read(write(tmp_path, "o.csv", text))
    assert [len(t) for t in ticks] == [2, 1, 2] and source.tick_seconds == 60.0


def test_attempts_numbered_within_each_payment(tmp_path):
    text = HEADER + "".join(f"2024-01-01T10:00:{s:02d}Z,{p},i,pr,m,card,{st},,,,,\n" for s, p, st in
                            [(30, "A", "approved"), (1, "A", "declined"), (2, "B", "approved"),
                             (10, "A", "declined"), (3, "", "approved")])
    _, ticks = read(write(tmp_path, "p.csv", text))
    # rows come in tick order, not file order: match them by time
    order = np.argsort(joined(ticks, "latency_ms"))    # all NaN: keep as read
    assert sorted(joined(ticks, "attempt")[order].tolist()) == [1, 1, 1, 2, 3]


def test_attempt_column_wins_over_ranking(tmp_path):
    text = "time,payment_id,attempt,status\n2024-01-01T00:00:00Z,A,4,approved\n2024-01-01T00:00:01Z,A,x,approved\n"
    _, ticks = read(write(tmp_path, "a.csv", text))
    assert sorted(joined(ticks, "attempt").tolist()) == [2, 4]      # 'x' is unreadable: its rank (2) stands in


def test_parquet_with_typed_columns(tmp_path):
    t = pa.table({"time": pa.array([0, 61_000_000, 125_000_000], pa.timestamp("us", tz="UTC")),
                  "status": ["approved", "declined", "failed"], "code": [None, "05", None],
                  "issuer": ["a", None, "a"], "amount": [1.0, float("nan"), float("inf")],
                  "latency_ms": pa.array([10, 20, 30], pa.int32())})
    pq.write_table(t, tmp_path / "x.parquet")
    source, ticks = read(tmp_path / "x.parquet")
    assert [len(x) for x in ticks] == [1, 1, 1]
    assert source.vocab["issuer"] == ["a", "(none)"]                                # missing gets its own name
    assert np.isnan(joined(ticks, "amount")[1:]).all()                              # NaN and Infinity: missing
    assert joined(ticks, "latency_ms").dtype == np.float32
    assert [CodeClass(list(CodeClass)[c]) for c in joined(ticks, "code_class")] == [
        CodeClass.APPROVED, CodeClass.SOFT, CodeClass.TECHNICAL]                   # failed without code: technical


def test_settings_bound_the_batches_without_changing_the_ticks():
    a, ta = read(FIXTURES / "events.csv.gz", tick="10s")
    b, tb = read(FIXTURES / "events.csv.gz", tick="10s", settings=ReaderSettings(batch_rows=7, threads=1))
    assert [len(t) for t in ta] == [len(t) for t in tb] and len(ta) == 24
    assert [int(t.approved.sum()) for t in ta] == [int(t.approved.sum()) for t in tb]


# -- bad input: one line, or counted ---------------------------------------------------------------------

def _fifo(tmp_path):
    p = tmp_path / "pipe.csv"
    os.mkfifo(p)
    return p


@pytest.mark.timeout(20)
@pytest.mark.parametrize("make, words", [
    (lambda d: d / "missing.csv", "no such file"),                                     # not there
    (lambda d: (d / "dir.csv").mkdir() or d / "dir.csv", "is a directory"),           # a directory named like a log
    (_fifo, "not a regular file"),                                                      # a FIFO: must not block
    (lambda d: os.symlink(_fifo(d), d / "link.csv") or d / "link.csv", "not a regular file"),   # symlink to a FIFO
    (lambda d: os.symlink("/dev/zero", d / "zero.csv") or d / "zero.csv", "not a regular file"),  # endless device
    (lambda d: write(d, "log.txt", "time,status\n"), "unknown file type"),             # unknown suffix
    (lambda d: write(d, "empty.csv", ""), "is empty"),                                  # empty
    (lambda d: write(d, "head.csv", "time,status\n"), "no rows"),                       # a header only
    (lambda d: write(d, "head.csv.gz", "time,status\n"), "no rows"),                    # ... gzipped
    (lambda d: write(d, "empty.csv.gz", ""), "no"),                                     # gzip of nothing
    (lambda d: write(d, "junk.parquet", b"\x00\x01garbage" * 100, "wb"), "cannot read it as parquet"),
    (lambda d: write(d, "junk.csv.gz", b"not gzip at all", "wb"), "cannot read it as csv"),
    (lambda d: write(d, "bad.jsonl", '{"time": "2024-01-01", "status": "approved"}\n{oops\n'), "cannot read"),
    (lambda d: write(d, "x.csv", "when,result\n1,2\n"), "cannot tell the format"),      # unknown layout
    (lambda d: write(d, "x.csv", "time,status\nsoon,approved\nlater,declined\n"), "no usable rows"),
    (lambda d: write(d, "x.csv", "time,status\n2024-01-01,approved\n9999-01-01,approved\n"), "stray timestamps"),
])
def test_bad_files_are_one_line_errors(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(LogError) as e:
        read(path)
    assert words in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 600


def test_a_symlink_to_a_regular_log_is_read(tmp_path):
    os.symlink(FIXTURES / "events.csv.gz", tmp_path / "link.csv.gz")
    source, _ = read(tmp_path / "link.csv.gz")
    assert source.rows.used == 1241


@pytest.mark.parametrize("rows, rejected", [
    ("2024-01-01T00:00:00Z,5,4\nnot a time,5,4\n", {"unparsable time": 1}),
    ("2024-01-01T00:00:00Z,5,4\n2024-01-01T00:00:00Z,-5,0\n", {"negative count": 1}),
    ("2024-01-01T00:00:00Z,5,4\n2024-01-01T00:00:00Z,5,6\n", {"approved above count": 1}),
    ("2024-01-01T00:00:00Z,5,4\n2024-01-01T00:00:00Z,NaN,1\n2024-01-01T00:00:00Z,5,Infinity\n",
     {"count or approved not finite (NaN/Infinity)": 2}),
    ("2024-01-01T00:00:00Z,5,4\n2024-01-01T00:00:00Z,abc,1\n2024-01-01T00:00:00Z,,1\n",
     {"count or approved not a number": 2}),
    ("2024-01-01T00:00:00Z,5,4\n2024-01-01T00:00:00Z,2.5,1\n", {"count or approved not a whole number": 1}),
    ("2024-01-01T00:00:00Z,5,4\n2024-01-01T00:00:00Z,5\n2024-01-01T00:00:00Z,5,4,9\n", {"malformed CSV line": 2}),
])
def test_bad_count_rows_are_counted_and_the_run_goes_on(tmp_path, rows, rejected):
    source, ticks = read(write(tmp_path, "c.csv", "time,count,approved\n" + rows))
    assert dict(source.rows.rejected) == rejected
    assert source.rows.used == 1 and int(ticks[0].count.sum()) == 5
    assert source.rows.to_dict() == {"read": 1 + sum(rejected.values()), "used": 1, "rejected": rejected}


def test_unknown_statuses_are_counted_with_examples(tmp_path):
    text = "time,status\n" + "2024-01-01T00:00:00Z,approved\n" + "2024-01-01T00:00:01Z,ON_HOLD\n" * 3 + \
        "2024-01-01T00:00:02Z,\n" + "2024-01-01T00:00:03Z,pending\n"
    source, _ = read(write(tmp_path, "s.csv", text))
    assert dict(source.rows.rejected) == {"unknown status": 3, "missing status": 1,
                                          "status without an authorisation outcome": 1}
    summary = source.rows.summary()
    assert "'on_hold' x3" in summary and "\n" not in summary and summary.startswith("read 6 rows, used 1")


def test_approved_values_make_an_unknown_word_approved(tmp_path):
    text = "time,status\n2024-01-01T00:00:00Z,OK\n2024-01-01T00:00:01Z,declined\n"
    source, ticks = read(write(tmp_path, "s.csv", text), approved_values=("ok",))
    assert source.rows.rejected == {} and int(joined(ticks, "approved").sum()) == 1


def test_garbage_bytes_and_invalid_utf8_lines_are_counted(tmp_path):
    p = tmp_path / "u.csv"
    p.write_bytes(b"time,status\n2024-01-01T00:00:00Z,approved\n2024-01-01T00:00:01Z,appr\xff\xfeved\n"
                  b"2024-01-01T00:00:02Z,declined\n")
    source, _ = read(p)
    assert source.rows.used == 2 and source.rows.rejected == {"invalid UTF-8": 1}


@pytest.mark.slow     # a 3 MB field
def test_a_huge_field_is_read_and_counted(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("time,status\n" + "2024-01-01T00:00:00Z,approved\n" * 3 + "2024-01-01T00:00:01Z," + "x" * 3_000_000 +
                 "\n2024-01-01T00:00:02Z,declined\n")
    source, _ = read(p)
    assert source.rows.used == 4 and dict(source.rows.rejected) == {"unknown status": 1}
    assert len(source.rows.summary()) < 300                          # the 3 MB value is cut in the summary


@pytest.mark.slow     # a line past DuckDB's limit
def test_a_line_past_the_limit_is_one_line_error(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("time,status\n2024-01-01T00:00:00Z,approved\n2024-01-01T00:00:01Z," + "x" * 5_000_000 + "\n")
    with pytest.raises(LogError, match="line size") as e:
        read(p)
    assert "xxxx" not in str(e.value) and "\n" not in str(e.value)


def test_wrong_types_in_optional_columns_become_missing(tmp_path):
    text = HEADER + "2024-01-01T00:00:00Z,p,i,pr,m,card,approved,00,fast,ten,USD,-\n"
    _, ticks = read(write(tmp_path, "w.csv", text))
    assert np.isnan(ticks[0].latency_ms).all() and np.isnan(ticks[0].amount).all() and np.isnan(ticks[0].fee).all()


def test_dim_and_map_overrides_on_a_preset():
    source, ticks = read(FIXTURES / "stripe_unified_payments.csv", mapping=(("issuer", "Card Issue Country"),),
                         dims=(("card_last4", "Card Last4"),))
    assert source.dims[0] == "issuer" and source.dims[-1] == "card_last4"
    assert set(source.vocab["issuer"]) <= {"US", "GB", "DE", "BR"}
    assert all(len(t.dims["card_last4"]) == len(t) for t in ticks)


@pytest.mark.parametrize("minutes", [
    [0, 0, 0, 1, 2],          # the file is in time order: attempts numbered in numpy from the survey
    [2, 0, 1, 0, 0],          # it is not: DuckDB sorts the rows and numbers the attempts itself
])
def test_attempt_numbers_whatever_the_file_order(tmp_path, minutes):
    # payment A tries at 00:00:10, 00:01:00 and 00:02:00; B once; one row has no payment id
    stamps = {0: ["00:00:10", "00:00:20", "00:00:30"], 1: ["00:01:00"], 2: ["00:02:00"]}
    pids = {"00:00:10": "A", "00:00:20": "B", "00:00:30": "", "00:01:00": "A", "00:02:00": "A"}
    order = []
    for m in minutes:
        order.append(stamps[m].pop(0))
    text = "time,payment_id,status\n" + "".join(f"2024-01-01T{s}Z,{pids[s]},declined\n" for s in order)
    _, ticks = read(write(tmp_path, "a.csv", text))
    assert [sorted(t.attempt.tolist()) for t in ticks] == [[1, 1, 1], [2], [3]]


def test_number_attempts_example():
    from log_columns import number_attempts as _number_attempts
    got, prev = _number_attempts(np.array([5, 1, 9, 3]), np.array([7, 7, 8, 7], np.uint64), np.array([1, 1, 1, 1], bool))
    assert got.tolist() == [3, 1, 1, 2] and prev is None


def test_previous_hard_decline_example():
    from log_columns import number_attempts as _number_attempts
    # payment 7: t1 hard decline, t3 soft, t5 ...; payment 8: one attempt, itself hard
    _, prev = _number_attempts(np.array([5, 1, 9, 3]), np.array([7, 7, 8, 7], np.uint64), np.array([1, 1, 1, 1], bool),
                               np.array([False, True, True, False]))
    assert prev.tolist() == [False, False, False, True]     # only t3 follows a hard decline of its own payment
