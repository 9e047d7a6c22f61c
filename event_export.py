"""Events export: simulator Batches written as the project's own per-attempt log (Parquet or CSV).

One row per attempt: time, payment_id, attempt, issuer, processor, merchant, method, status,
code, latency_ms, amount, currency, fee. status is approved, declined or failed (failed =
a technical failure); code is the simulator's label from decline_codes.CODE_LABELS ("00"
when approved). Each attempt of tick k is stamped start + k*tick + (its position in the
batch / batch size) * tick, so reading it back with the same tick gives back the same ticks.

Writes only the file it is given, streaming (a Parquet row group or CSV block per batch);
the clock and randomness are not touched: start comes from the caller.
"""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from decline_codes import CODE_CLASS, CODE_LABELS, Code, CodeClass

EVENT_COLUMNS = ("time", "payment_id", "attempt", "issuer", "processor", "merchant", "method", "status",
                 "code", "latency_ms", "amount", "currency", "fee")
SCHEMA = pa.schema([("time", pa.timestamp("us", tz="UTC")), ("payment_id", pa.int64()), ("attempt", pa.int16()),
                    ("issuer", pa.string()), ("processor", pa.string()), ("merchant", pa.string()),
                    ("method", pa.string()), ("status", pa.string()), ("code", pa.string()),
                    ("latency_ms", pa.float32()), ("amount", pa.float64()), ("currency", pa.string()),
                    ("fee", pa.float64())])
CURRENCY = "USD"      # the simulated universe prices everything in dollars

_LABELS = np.array(CODE_LABELS, dtype=object)
_TECHNICAL = np.array([CODE_CLASS[Code(i)] is CodeClass.TECHNICAL for i in range(len(CODE_LABELS))])


class EventWriter:
    """with EventWriter('week.parquet', names, start, 10.0) as w: w.write(batch) ..."""

    def __init__(self, path, universe_names: dict, start: datetime, tick_seconds: float):
        self.path = str(path)
        lower = self.path.lower()
        if not lower.endswith((".parquet", ".csv", ".csv.gz")):
            raise ValueError(f"{self.path}: the events export is .parquet, .csv or .csv.gz")
        self._names = {k: np.array(_names(universe_names, k), dtype=object)
                       for k in ("issuer", "processor", "merchant", "method")}
        start = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
        self._start_us = int(round(start.timestamp() * 1e6))
        self._tick_us = int(round(tick_seconds * 1e6))
        self.rows = 0
        if lower.endswith(".parquet"):
            self._writer = pq.ParquetWriter(self.path, SCHEMA, compression="zstd")
            self._sink = None
        else:
            self._sink = pa.CompressedOutputStream(self.path, "gzip") if lower.endswith(".gz") else pa.OSFile(
                self.path, "wb")
            self._writer = pacsv.CSVWriter(self._sink, SCHEMA)

    def write(self, batch) -> None:
        n = len(batch)
        if n == 0:
            return
        position = np.arange(n, dtype=np.int64)
        t_us = self._start_us + int(batch.tick) * self._tick_us + (position * self._tick_us) // n
        code = np.asarray(batch.code, dtype=np.int64)
        approved = np.asarray(batch.approved, dtype=bool)
        status = np.where(approved, "approved", np.where(_TECHNICAL[code], "failed", "declined"))
        columns = [pa.array(t_us, pa.timestamp("us", tz="UTC")),
                   pa.array(np.asarray(batch.payment_id, dtype=np.int64)),
                   pa.array(np.asarray(batch.attempt, dtype=np.int16))]
        columns += [pa.array(self._names[k][np.asarray(getattr(batch, k))], pa.string())
                    for k in ("issuer", "processor", "merchant", "method")]
        columns += [pa.array(status, pa.string()), pa.array(_LABELS[code], pa.string()),
                    pa.array(np.asarray(batch.latency_ms, dtype=np.float32)),
                    pa.array(np.asarray(batch.amount, dtype=np.float64)),
                    pa.array(np.full(n, CURRENCY, dtype=object), pa.string()),
                    pa.array(np.asarray(batch.fee, dtype=np.float64))]
        self._writer.write_table(pa.Table.from_arrays(columns, schema=SCHEMA))
        self.rows += n

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _names(universe_names: dict, kind: str) -> list[str]:
    """names['issuer'] or, as Universe.describe() spells it, names['issuers']."""
    for key in (kind, kind + "s"):
        if key in universe_names:
            return list(universe_names[key])
    raise KeyError(f"universe_names has no {kind!r} list")
