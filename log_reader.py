"""Replay reader: a team's payment log (CSV, gzip, Parquet, JSON lines) as LogTicks of numpy columns.

open_log checks the file, reads its header and decides the plan (log_formats); a first
DuckDB pass surveys every row's time and reject reason (counted by reason), which gives the
time axis, whether the file is already in time order, and (numpy) each attempt's number
within its payment. ticks() then streams the used rows as Arrow record batches, in the
file's order when that is time order (else DuckDB sorts them, memory-limited and spilling
to a private temporary folder), dictionary-encodes the dimensions into append-only
vocabularies and yields one LogTick per tick, empty ticks included.

Never writes outside its own temporary folder, never opens a file that is not a regular
file (a FIFO would block), never loops in Python per row, and never lets a traceback
reach the user: every failure to read is a one-line LogError.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
import weakref
from datetime import datetime, timedelta, timezone
from typing import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from decline_codes import CLASS_INDEX, CodeClass, classify_code
from log_columns import encode_strings, floats, number_attempts, ticks_in_order
from log_formats import LogError, LogSpec, Outcome, Shape, plan_read
from log_sql import (
    OUTCOME_CODE,
    ZONE_ALIASES,
    Reject,
    quote_ident,
    source_sql,
    survey_sql,
    tick_stream_sql,
    typed_select_sql,
)
from log_tick import LogTick, ReaderSettings, RowCounts

__all__ = ["LogError", "LogSpec", "LogSource", "LogTick", "ReaderSettings", "RowCounts", "open_log"]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
NONE = "(none)"
SUFFIXES = ((".csv.gz", "csv"), (".csv", "csv"), (".parquet", "parquet"), (".jsonl.gz", "jsonl"),
            (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".ndjson.gz", "jsonl"))
_APPROVED, _UNKNOWN, _TECHNICAL = (CLASS_INDEX[c] for c in (CodeClass.APPROVED, CodeClass.UNKNOWN,
                                                            CodeClass.TECHNICAL))


def _file_kind(path: str) -> str:
    name = os.path.basename(path).lower()
    for suffix, kind in SUFFIXES:
        if name.endswith(suffix):
            return kind
    raise LogError(f"{path}: unknown file type; expected .csv, .csv.gz, .parquet, .jsonl or .jsonl.gz")


def _check_file(path: str) -> str:
    kind = _file_kind(path)
    try:
        st = os.stat(path)                      # follows a symlink; stat never blocks, open() on a FIFO would
    except FileNotFoundError:
        raise LogError(f"{path}: no such file") from None
    except OSError as e:
        raise LogError(f"{path}: cannot read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise LogError(f"{path}: is a directory, not a log file")
    if not stat.S_ISREG(st.st_mode):
        raise LogError(f"{path}: is not a regular file (a FIFO, socket or device); export the log to a file")
    if st.st_size == 0:
        raise LogError(f"{path}: is empty")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise LogError(f"{path}: cannot read ({e.strerror})") from None
    return kind


def _one_line(e: Exception) -> str:
    """DuckDB's multi-line message as one short line, without the echoed input line or its advice."""
    skip = ("original line", "possible solution", "file =", "delimiter =", "quote =", "escape =", "new_line =",
            "header =", "skip_rows =", "comment =", "strict_mode =", "date_format =", "timestamp_format =",
            "null_padding =", "sample_size =", "ignore_errors =", "all_varchar =", "line ")
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.strip().lower().startswith(skip)]
    text = " ".join(lines[:2]) if lines else type(e).__name__
    return text[:240]


def _valid_zones(con, labels: list[str]) -> dict[str, str]:
    """Each time-zone label seen in the log -> an ICU zone name; labels neither ICU nor our aliases know are left out."""
    zones = {}
    for label in labels:
        zone = ZONE_ALIASES.get(label.upper(), label)
        try:
            con.execute("SELECT epoch(timezone(?, TIMESTAMP '2000-01-01'))", [zone]).fetchall()
            zones[label] = zone
        except duckdb.Error:
            pass
    return zones


def open_log(spec: LogSpec, settings: ReaderSettings | None = None) -> "LogSource":
    """Check the file and its header, read it into a typed table, count the rows; LogError if it cannot."""
    settings = settings or ReaderSettings()
    kind = _check_file(spec.path)
    tmp = tempfile.mkdtemp(prefix="replay-", dir=settings.temp_root)
    con = None
    try:
        config = {"memory_limit": settings.memory_limit, "temp_directory": tmp,
                  "preserve_insertion_order": "true"}        # the stream must come in the file's order
        if settings.threads:
            config["threads"] = str(settings.threads)
        con = duckdb.connect(":memory:", config=config)
        con.execute("SET TimeZone = 'UTC'").fetchall()
        # DuckDB 2.0 pushes a TRY_CAST into the CSV scanner, which then rejects the whole row (a bad
        # attempt number would drop a good attempt); a bad optional value must only become NULL
        con.execute("SET disabled_optimizers = 'type_pushdown'").fetchall()
        source = LogSource(spec, kind, con, tmp, settings)
    except LogError:
        _discard(con, tmp)
        raise
    except (duckdb.Error, pa.ArrowException, OSError, ValueError) as e:
        _discard(con, tmp)
        raise LogError(f"{spec.path}: cannot read it as {kind}: {_one_line(e)}") from None
    return source


def _discard(con, tmp: str) -> None:
    if con is not None:
        try:
            con.close()
        except duckdb.Error:
            pass
    shutil.rmtree(tmp, ignore_errors=True)


class LogSource:
    """An opened log: what was chosen and why, the row counts, and ticks() to stream it."""

    def __init__(self, spec: LogSpec, kind: str, con, tmp: str, settings: ReaderSettings):
        self.path, self._con, self._settings = spec.path, con, settings
        self._finalizer = weakref.finalize(self, _discard, con, tmp)
        src = source_sql(spec.path, kind)
        described = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
        types = {row[0]: str(row[1]) for row in described}
        plan = plan_read(spec, [row[0] for row in described])
        zones = {}
        if plan.time_zone_column:
            labels = con.execute(f"SELECT DISTINCT trim(CAST({quote_ident(plan.time_zone_column)} AS VARCHAR)) "
                                 f"FROM {src} LIMIT 1000").fetchall()
            zones = _valid_zones(con, [r[0] for r in labels if r[0]])
        if kind == "csv":
            con.execute("DROP TABLE IF EXISTS csv_rejects; DROP TABLE IF EXISTS csv_scans").fetchall()
        self._typed = typed_select_sql(plan, types, src, zones)
        rank = plan.shape is Shape.EVENTS and plan.column("payment_id") is not None
        self._plan = plan
        self.format, self.format_reason = plan.format, plan.reason
        self.shape = plan.shape.value
        self.roles = {**dict(plan.roles), **{d: c for d, c in plan.dims if d in ("issuer", "processor",
                                                                                 "merchant", "method")}}
        self.dims = tuple(name for name, _ in plan.dims)
        self.vocab: dict[str, list[str]] = {d: [] for d in self.dims}
        self._index: dict[str, dict[str, int]] = {d: {} for d in self.dims}
        self.code_vocab: list[str] = []
        self.code_class: list[CodeClass] = []
        self._code_index: dict[str, int] = {}
        self._class_lut = np.zeros(0, dtype=np.int8)
        self._with_hard = rank and plan.column("code") is not None
        ts, pid, has_pid, hard, self.rows = self._survey(kind, rank)
        if self.rows.used == 0:
            raise LogError(f"{self.path}: no usable rows ({self.rows.summary()})")
        self._set_time_axis(ts)
        self._in_order = ticks_in_order(ts, self._origin_us, self._tick_us)
        self._rank_in_sql = rank and not self._in_order
        self._attempts, self._prev_hard = (number_attempts(ts, pid, has_pid, hard) if rank and self._in_order
                                           else (None, None))

    # -- opening ------------------------------------------------------------------------------
    def _survey(self, kind: str, rank: bool):
        """Every row's reject reason counted; the used rows' times (and payment-id hashes), batch by batch."""
        con, rows = self._con, RowCounts()
        times, pids, valid, hards = [], [], [], []
        for batch in con.sql(survey_sql(self._typed, rank, self._with_hard)).to_arrow_reader(
                self._settings.batch_rows * 4):
            rows.read += batch.num_rows
            reject = batch.column("reject")
            if reject.null_count < batch.num_rows:
                for item in pc.value_counts(reject.drop_null()).to_pylist():
                    rows.rejected[item["values"]] += item["counts"]
                batch = batch.filter(reject.is_null())
            times.append(batch.column("ts").to_numpy(zero_copy_only=False).astype(np.int64, copy=False))
            if rank:
                pid = batch.column("pid")
                pids.append(pid.fill_null(0).to_numpy(zero_copy_only=False))
                valid.append(pid.is_valid().to_numpy(zero_copy_only=False))
                if self._with_hard:
                    hards.append(batch.column("hard").fill_null(False).to_numpy(zero_copy_only=False))
        ts = np.concatenate(times) if times else np.zeros(0, np.int64)
        del times
        rows.used = len(ts)
        pid = np.concatenate(pids) if rank and pids else None
        has_pid = np.concatenate(valid) if rank and valid else None
        hard = np.concatenate(hards) if hards else None
        del pids, valid, hards
        if kind == "csv":
            kinds = {"INVALID ENCODING": Reject.CSV_ENCODING, "LINE SIZE OVER MAXIMUM": Reject.CSV_TOO_LONG}
            for error_type, n in con.execute("SELECT error_type, count(DISTINCT line) FROM csv_rejects "
                                             "GROUP BY error_type").fetchall():
                rows.rejected[kinds.get(str(error_type), Reject.CSV_MALFORMED)] += n
                rows.read += n
        if rows.rejected.get(Reject.STATUS_UNKNOWN):
            seen = con.execute(f"SELECT status, count(*) FROM ({self._typed}) WHERE reject = ? GROUP BY status "
                               "ORDER BY count(*) DESC, status LIMIT 3", [Reject.STATUS_UNKNOWN]).fetchall()
            rows.examples[Reject.STATUS_UNKNOWN] = [f"{str(s)[:40]!r} x{n}" for s, n in seen]
        if rows.read == 0:
            raise LogError(f"{self.path}: has a header but no rows")
        return ts, pid, has_pid, hard, rows

    def _set_time_axis(self, ts: np.ndarray) -> None:
        first, last = int(ts.min()), int(ts.max())
        tick_s, self.tick_reason = self._plan.tick_seconds, "--tick"
        if tick_s is None and self._plan.shape is Shape.COUNTS:
            gaps = np.diff(np.unique(ts))
            if len(gaps):
                values, counts = np.unique(gaps, return_counts=True)
                tick_s = float(values[np.argmax(counts)]) / 1e6     # the most common; ties: the shortest
                self.tick_reason = "the most common gap between count rows"
            else:
                tick_s, self.tick_reason = 60.0, "one time bucket only, so 1 minute"
        elif tick_s is None:
            tick_s, self.tick_reason = 60.0, "1 minute, the default for per-attempt rows"
        self._tick_us = max(int(round(tick_s * 1e6)), 1)
        self.tick_seconds = self._tick_us / 1e6
        self._origin_us = (first // self._tick_us) * self._tick_us
        self.n_ticks = (last - self._origin_us) // self._tick_us + 1
        self.start, self.end = _utc(first), _utc(last)
        if self.n_ticks > self._settings.max_ticks:
            raise LogError(f"{self.path}: the log spans {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC, "
                           f"{self.n_ticks:,} ticks of {self.tick_seconds:g} s; look for stray timestamps or "
                           f"pass a longer --tick")

    def tick_start(self, index: int) -> datetime:
        """The UTC start of tick `index` (0: the tick of the first row)."""
        return _utc(self._origin_us + index * self._tick_us)

    def volumes(self) -> dict[str, list[tuple[str, int]]]:
        """Per dimension, every value with its attempts, busiest first (ties by name): one scan, grouping sets."""
        if not self.dims:
            return {}
        weight = "count_raw" if self._plan.shape is Shape.COUNTS else "1"
        keys = ", ".join(f"d{i}" for i in range(len(self.dims)))
        sets = ", ".join(f"(d{i})" for i in range(len(self.dims)))
        grouping = ", ".join(f"grouping(d{i})" for i in range(len(self.dims)))
        sql = (f"SELECT {keys}, [{grouping}] AS g, CAST(sum({weight}) AS BIGINT) AS n FROM ({self._typed}) "
               f"WHERE reject IS NULL GROUP BY GROUPING SETS ({sets})")
        out: dict[str, list[tuple[str, int]]] = {d: [] for d in self.dims}
        try:
            rows = self._con.execute(sql).fetchall()
        except duckdb.Error as e:
            raise LogError(f"{self.path}: cannot read it: {_one_line(e)}") from None
        for row in rows:
            g = row[len(self.dims)]
            i = g.index(0)                              # the one dimension this row groups by
            out[self.dims[i]].append((str(row[i]), int(row[-1] or 0)))
        return {d: sorted(v, key=lambda x: (-x[1], x[0])) for d, v in out.items()}

    # -- streaming ----------------------------------------------------------------------------
    def ticks(self) -> Iterator[LogTick]:
        """Every tick from the first row's to the last row's, in time order, each exactly once."""
        sql = tick_stream_sql(self._plan, self._typed, self._origin_us, self._tick_us, self._in_order,
                              self._rank_in_sql)
        try:
            reader = self._con.sql(sql).to_arrow_reader(self._settings.batch_rows)
        except duckdb.Error as e:
            raise LogError(f"{self.path}: cannot read it: {_one_line(e)}") from None
        next_index, carry, offset = 0, None, 0
        for batch in reader:
            if batch.num_rows == 0:
                continue
            cols = self._columns(batch, offset)
            offset += batch.num_rows
            t = cols.pop("tick")
            starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
            for s, e in zip(starts, np.r_[starts[1:], len(t)]):
                index, part = int(t[s]), {k: v[s:e] for k, v in cols.items()}
                if carry is not None and carry[0] == index:       # a tick split across two batches
                    carry = (index, {k: np.concatenate([carry[1][k], part[k]]) for k in part})
                    continue
                if carry is not None:
                    yield from self._emit(next_index, *carry)
                    next_index = carry[0] + 1
                carry = (index, part)
        if carry is not None:
            yield from self._emit(next_index, *carry)
            next_index = carry[0] + 1
        for index in range(next_index, self.n_ticks):
            yield self._tick(index, self._empty())

    def _emit(self, next_index: int, index: int, cols: dict) -> Iterator[LogTick]:
        for gap in range(next_index, index):
            yield self._tick(gap, self._empty())
        yield self._tick(index, cols)

    def _tick(self, index: int, cols: dict) -> LogTick:
        dims = {d: cols[f"d{i}"] for i, d in enumerate(self.dims)}
        start = _utc(self._origin_us + index * self._tick_us)
        return LogTick(index, start, dims, cols["count"], cols["approved"], cols["attempt"], cols["code"],
                       cols["code_class"], cols["latency_ms"], cols["amount"], cols["fee"], cols.get("prev_hard"))

    def _empty(self) -> dict:
        out = {f"d{i}": np.zeros(0, np.int32) for i in range(len(self.dims))}
        if self._with_hard:
            out["prev_hard"] = np.zeros(0, bool)
        out.update(count=np.zeros(0, np.int64), approved=np.zeros(0, np.int64), attempt=np.zeros(0, np.int16),
                   code=np.zeros(0, np.int32), code_class=np.zeros(0, np.int8),
                   latency_ms=np.zeros(0, np.float32), amount=np.zeros(0, np.float64), fee=np.zeros(0, np.float64))
        return out

    def _columns(self, batch: pa.RecordBatch, offset: int) -> dict:
        n = batch.num_rows
        col = batch.column
        out = {"tick": col("tick").to_numpy()}
        for i, d in enumerate(self.dims):
            out[f"d{i}"] = encode_strings(col(f"d{i}"), self.vocab[d], self._index[d])
        out["latency_ms"] = floats(col("latency_ms"), np.float32)
        out["amount"], out["fee"] = floats(col("amount")), floats(col("fee"))
        code = (encode_strings(col("code"), self.code_vocab, self._code_index, on_new=self._classify)
                if "code" in batch.schema.names else np.full(n, -1, np.int32))
        cls = np.where(code >= 0, self._class_lut[np.maximum(code, 0)] if len(self._class_lut) else _UNKNOWN,
                       _UNKNOWN).astype(np.int8)
        if self._plan.shape is Shape.COUNTS:
            count, approved = col("count").to_numpy(), col("approved").to_numpy()
            attempt = np.ones(n, np.int16)
            all_approved = approved == count
        else:
            outcome = col("outcome").to_numpy()
            all_approved = outcome == OUTCOME_CODE[Outcome.APPROVED]
            count, approved = np.ones(n, np.int64), all_approved.astype(np.int64)
            given = col("attempt")
            attempt = given.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int16)
            if given.null_count:
                fill = (self._attempts[offset:offset + n] if self._attempts is not None
                        else np.ones(n, np.int16))
                attempt = np.where(attempt > 0, attempt, fill).astype(np.int16)
            cls[(cls == _UNKNOWN) & (outcome == OUTCOME_CODE[Outcome.FAILED])] = _TECHNICAL
            if self._with_hard:
                given_prev = col("prev_hard")
                out["prev_hard"] = (self._prev_hard[offset:offset + n] if self._prev_hard is not None
                                    else given_prev.fill_null(False).to_numpy(zero_copy_only=False)).astype(bool)
            code = np.where(all_approved, -1, code).astype(np.int32)
        cls[all_approved] = _APPROVED
        out.update(count=count.astype(np.int64), approved=approved.astype(np.int64), attempt=attempt, code=code,
                   code_class=cls)
        return out

    def _classify(self, raw: str) -> None:
        cls = classify_code(raw)
        self.code_class.append(cls)
        self._class_lut = np.append(self._class_lut, np.int8(CLASS_INDEX[cls]))

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> "LogSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _utc(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))
