"""What a replayed log is read into: one LogTick of numpy columns per tick, the row counts, the reader's settings.

Values only; log_reader.py fills them.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class ReaderSettings:
    memory_limit: str = "512MB"      # DuckDB's own cap; it spills the sort to temp files beyond it (1 GB RSS target)
    threads: int | None = None       # None: DuckDB's default (all cores); the benchmark measures 1
    batch_rows: int = 262_144        # rows per Arrow batch: big enough to amortise, small enough for memory
    max_ticks: int = 5_000_000       # a stray year-9999 timestamp must not become billions of empty ticks
    temp_root: str | None = None     # where the private temporary folder goes (default: the system's)


@dataclass
class RowCounts:
    read: int = 0
    used: int = 0
    rejected: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)      # reason -> a few offending values, for the summary

    def to_dict(self) -> dict:
        return {"read": self.read, "used": self.used, "rejected": dict(self.rejected)}

    def summary(self) -> str:
        """'read 1,000 rows, used 990; rejected 10: unknown status 10 ('PENDING_REVIEW' x10)'."""
        text = f"read {self.read:,} rows, used {self.used:,}"
        if not self.rejected:
            return text + "; rejected none"
        parts = []
        for reason, n in self.rejected.most_common():
            seen = self.examples.get(reason)
            parts.append(f"{reason} {n:,}" + (f" ({', '.join(seen)})" if seen else ""))
        return text + f"; rejected {sum(self.rejected.values()):,}: " + "; ".join(parts)


@dataclass(frozen=True, eq=False)
class LogTick:
    index: int                     # 0 = the tick containing the first row
    start: datetime                # UTC start of the tick
    dims: dict                     # name -> int32 codes into source.vocab[name]
    count: np.ndarray              # int64 attempts per row (1 for per-attempt rows)
    approved: np.ndarray           # int64 approved attempts per row
    attempt: np.ndarray            # int16: 1 = first attempt
    code: np.ndarray               # int32 into source.code_vocab, -1 when none
    code_class: np.ndarray         # int8 into list(CodeClass)
    latency_ms: np.ndarray         # float32, NaN when missing
    amount: np.ndarray             # float64 major units, NaN when missing
    fee: np.ndarray                # float64, NaN when missing
    prev_hard: np.ndarray | None = None   # bool: the payment's previous attempt was a hard decline (a forbidden retry)

    def __len__(self) -> int:
        return len(self.count)
