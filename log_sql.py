"""SQL for the replay reader: from a ReadPlan to DuckDB queries that type, check and order the rows.

A survey query reads each row's time and reject reason (every source row once); a second
query streams the used rows, in the file's order when that is already time order. Every value a user wrote reaches SQL
through quote_ident / quote_literal. Pure: builds text, runs nothing.

Typing rules: a bad timestamp, count or status rejects the row (counted by reason); a bad
optional measurement (latency, amount, fee: text, NaN, Infinity) becomes NULL, read as NaN.
"""
from __future__ import annotations

from decline_codes import DECLINE_TABLE, CodeClass
from log_formats import Outcome, ReadPlan, Shape

OUTCOME_CODE = {o: i for i, o in enumerate(Outcome)}   # TINYINT stored per row
HARD_CODES_TEXT = tuple(sorted(c for c, k in DECLINE_TABLE.items() if k is CodeClass.HARD))   # never to be retried

# ISO 4217 minor-unit exponents other than 2 (amounts in minor units are divided by 10**exp).
ZERO_DECIMAL = ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                "VUV", "XAF", "XOF", "XPF")
THREE_DECIMAL = ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")

# Summer abbreviations ICU does not know as zone names (CET, EST, PST... it does), as fixed offsets.
# Etc/GMT signs are inverted by POSIX convention: Etc/GMT-2 is UTC+2.
ZONE_ALIASES = {"CEST": "Etc/GMT-2", "EEST": "Etc/GMT-3", "WEST": "Etc/GMT-1", "BST": "Etc/GMT-1",
                "EDT": "Etc/GMT+4", "CDT": "Etc/GMT+5", "MDT": "Etc/GMT+6", "PDT": "Etc/GMT+7",
                "AEST": "Etc/GMT-10", "AEDT": "Etc/GMT-11", "Z": "UTC"}

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE", "REAL")


class Reject:
    """Reasons a row is not used; these strings are the keys of rows.rejected."""
    TIME = "unparsable time"
    TIME_ZONE = "unknown time zone"
    STATUS_MISSING = "missing status"
    STATUS_UNKNOWN = "unknown status"
    NO_OUTCOME = "status without an authorisation outcome"
    COUNT_NOT_NUMBER = "count or approved not a number"
    COUNT_NOT_FINITE = "count or approved not finite (NaN/Infinity)"
    COUNT_NOT_WHOLE = "count or approved not a whole number"
    COUNT_NEGATIVE = "negative count"
    APPROVED_ABOVE_COUNT = "approved above count"
    CSV_MALFORMED = "malformed CSV line"
    CSV_ENCODING = "invalid UTF-8"
    CSV_TOO_LONG = "line too long"


def quote_ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def source_sql(path: str, kind: str) -> str:
    """The table function that scans the file; CSV lines that cannot be parsed go to csv_rejects."""
    p = quote_literal(path)
    if kind == "parquet":
        return f"read_parquet({p})"
    if kind == "jsonl":
        return f"read_json({p}, format='newline_delimited', maximum_object_size=16777216)"
    return (f"read_csv({p}, header=true, all_varchar=true, store_rejects=true, "
            f"rejects_table='csv_rejects', rejects_scan='csv_scans', max_line_size=4194304)")


def _text(col: str, types: dict[str, str]) -> str:
    c = quote_ident(col)
    return c if types.get(col, "VARCHAR") == "VARCHAR" else f"CAST({c} AS VARCHAR)"


def _double(col: str, types: dict[str, str]) -> str:
    """A finite DOUBLE or NULL: 'abc', NaN and Infinity are all NULL."""
    c = quote_ident(col)
    raw = f"CAST({c} AS DOUBLE)" if types.get(col, "VARCHAR") in NUMERIC_TYPES else f"TRY_CAST({c} AS DOUBLE)"
    return f"(CASE WHEN isfinite({raw}) THEN {raw} END)"


def _time_us(plan: ReadPlan, types: dict[str, str], zones: dict[str, str]) -> str:
    """Epoch microseconds (UTC) of the time column, NULL when it cannot be read."""
    col = plan.column("time")
    typ = types.get(col, "VARCHAR")
    c = quote_ident(col)
    if typ.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"epoch_us({c})"
    if typ.startswith("TIMESTAMP") or typ == "DATE":
        local = f"CAST({c} AS TIMESTAMP)"
    elif plan.time_format:
        parsed = f"TRY_STRPTIME({_text(col, types)}, {quote_literal(plan.time_format)})"
        if "%z" in plan.time_format or "%Z" in plan.time_format or not plan.time_zone_column:
            return f"epoch_us({parsed})"
        local = parsed
    elif not plan.time_zone_column:
        return f"epoch_us(TRY_CAST({_text(col, types)} AS TIMESTAMPTZ))"   # naive text is UTC (session zone)
    else:
        local = f"TRY_CAST({_text(col, types)} AS TIMESTAMP)"
    if not plan.time_zone_column:
        return f"epoch_us({local})"
    return f"epoch_us(timezone({zone_case(plan.time_zone_column, types, zones)}, {local}))"


def zone_case(column: str, types: dict[str, str], zones: dict[str, str]) -> str:
    """CASE mapping each time-zone label seen in the log to an ICU zone; unknown labels give NULL."""
    if not zones:
        return "NULL"
    whens = " ".join(f"WHEN {quote_literal(k)} THEN {quote_literal(v)}" for k, v in zones.items())
    return f"(CASE trim({_text(column, types)}) {whens} END)"


def typed_select_sql(plan: ReadPlan, types: dict[str, str], source: str, zones: dict[str, str]) -> str:
    """One typed row per source row, in the file's order, `reject` NULL for the rows used."""
    cols = [f"{_time_us(plan, types, zones)} AS ts"]
    checks = [f"WHEN ts IS NULL THEN {quote_literal(Reject.TIME)}"]
    if plan.time_zone_column:
        tz = f"{zone_case(plan.time_zone_column, types, zones)}"
        cols.append(f"({tz} IS NULL) AS bad_zone")
        checks.insert(0, f"WHEN ts IS NULL AND bad_zone THEN {quote_literal(Reject.TIME_ZONE)}")
    for i, (_, column) in enumerate(plan.dims):
        cols.append(f"coalesce(nullif(trim({_text(column, types)}), ''), '(none)') AS d{i}")
    code = plan.column("code")
    if code:
        expr = f"nullif(trim({_text(code, types)}), '')"
        if plan.code_fallback:
            expr = f"coalesce({expr}, nullif(trim({_text(plan.code_fallback, types)}), ''))"
        cols.append(f"{expr} AS code")
    for role in ("latency_ms", "fee"):
        cols.append(f"{_double(plan.column(role), types)} AS {role}" if plan.column(role) else f"NULL::DOUBLE AS {role}")
    if plan.column("amount"):
        amount = _double(plan.column("amount"), types)
        if plan.amount_minor_units:
            cur = f"upper(trim({_text(plan.column('currency'), types)}))" if plan.column("currency") else "''"
            zero, three = (", ".join(quote_literal(c) for c in cs) for cs in (ZERO_DECIMAL, THREE_DECIMAL))
            amount = f"({amount} / CASE WHEN {cur} IN ({zero}) THEN 1 WHEN {cur} IN ({three}) THEN 1000 ELSE 100 END)"
        cols.append(f"{amount} AS amount")
    else:
        cols.append("NULL::DOUBLE AS amount")
    if plan.shape is Shape.COUNTS:
        for role in ("count", "approved"):
            c = plan.column(role)
            raw = (f"CAST({quote_ident(c)} AS DOUBLE)" if types.get(c, "VARCHAR") in NUMERIC_TYPES
                   else f"TRY_CAST({_text(c, types)} AS DOUBLE)")
            cols.append(f"{raw} AS {role}_raw")
        for reason, test in ((Reject.COUNT_NOT_NUMBER, "{r} IS NULL"), (Reject.COUNT_NOT_FINITE, "NOT isfinite({r})"),
                             (Reject.COUNT_NOT_WHOLE, "{r} <> floor({r})"), (Reject.COUNT_NEGATIVE, "{r} < 0")):
            either = " OR ".join(test.format(r=r) for r in ("count_raw", "approved_raw"))
            checks.append(f"WHEN {either} THEN {quote_literal(reason)}")
        checks.append(f"WHEN approved_raw > count_raw THEN {quote_literal(Reject.APPROVED_ABOVE_COUNT)}")
    else:
        status = f"lower(trim({_text(plan.column('status'), types)}))"
        whens = " ".join(f"WHEN {quote_literal(v)} THEN {OUTCOME_CODE[o]}" for v, o in plan.statuses)
        cols.append(f"{status} AS status")
        cols.append(f"CAST(CASE {status} {whens} END AS TINYINT) AS outcome")
        checks += [f"WHEN status IS NULL OR status = '' THEN {quote_literal(Reject.STATUS_MISSING)}",
                   f"WHEN outcome IS NULL THEN {quote_literal(Reject.STATUS_UNKNOWN)}",
                   f"WHEN outcome = {OUTCOME_CODE[Outcome.NO_OUTCOME]} THEN {quote_literal(Reject.NO_OUTCOME)}"]
        if plan.column("payment_id"):
            cols.append(f"nullif(trim({_text(plan.column('payment_id'), types)}), '') AS payment_id")
        if code:
            norm = f"lower(trim({_text(code, types)}))"
            exact = ", ".join(quote_literal(c) for c in HARD_CODES_TEXT)
            heads = ", ".join(quote_literal(c) for c in HARD_CODES_TEXT if len(c) == 2 and c.isalnum())
            cols.append(f"coalesce({norm} IN ({exact}) OR split_part(replace({norm}, ':', ' '), ' ', 1) IN ({heads}), "
                        "false) AS hard")
        if plan.column("attempt"):
            a = _double(plan.column("attempt"), types)
            cols.append(f"CAST(CASE WHEN {a} IS NOT NULL THEN least(greatest(round({a}), 1), 32767) END AS SMALLINT) "
                        "AS attempt")                                # NULL if unreadable
    reject = f"CASE {' '.join(checks)} END AS reject"
    return f"SELECT *, {reject} FROM (SELECT {', '.join(cols)} FROM {source})"


def survey_sql(typed: str, with_payment_hash: bool, with_hard: bool = False) -> str:
    """The first pass: each row's time and reject reason (and a hash of its payment id, to number attempts, and
    whether it was a hard decline, so the next attempt of the payment is known to retry one)."""
    pid = ", CASE WHEN payment_id IS NOT NULL THEN hash(payment_id) END AS pid" if with_payment_hash else ""
    hard = ", hard" if with_payment_hash and with_hard else ""
    return f"SELECT ts, reject{pid}{hard} FROM ({typed})"


def tick_stream_sql(plan: ReadPlan, typed: str, origin_us: int, tick_us: int, in_order: bool,
                    rank_in_sql: bool) -> str:
    """The used rows with their tick: in the file's order when the file is in time order, else sorted by tick.

    Attempt numbers: the attempt column where it has a number; else (rank_in_sql) the payment's attempts
    numbered by time, equal times in the file's order; else NULL, for the reader to fill in.
    """
    cols = [f"(ts - {int(origin_us)}) // {int(tick_us)} AS tick"]
    cols += [f"d{i}" for i in range(len(plan.dims))]
    cols += ["latency_ms", "amount", "fee"]
    if plan.column("code"):
        cols.append("code")
    if plan.shape is Shape.COUNTS:
        cols += ["CAST(count_raw AS BIGINT) AS count", "CAST(approved_raw AS BIGINT) AS approved"]
    else:
        cols.append("outcome")
        given = "attempt" if plan.column("attempt") else "NULL"
        rank = ("CASE WHEN payment_id IS NOT NULL THEN least(row_number() OVER (PARTITION BY payment_id "
                "ORDER BY ts, n), 32767) END" if rank_in_sql and plan.column("payment_id") else "NULL")
        cols.append(f"CAST(coalesce({given}, {rank}) AS SMALLINT) AS attempt")
        if plan.column("payment_id") and plan.column("code"):
            cols.append("lag(hard) OVER (PARTITION BY payment_id ORDER BY ts, n) AS prev_hard" if rank_in_sql
                        else "NULL::BOOLEAN AS prev_hard")
    source = f"(SELECT *, row_number() OVER () AS n FROM ({typed}))" if rank_in_sql else f"({typed})"
    order = "" if in_order else " ORDER BY tick"
    return f"SELECT {', '.join(cols)} FROM {source} WHERE reject IS NULL{order}"
