"""Decline codes: the vocabulary every stage reads, and the class of each code (soft, hard, technical).

The simulator draws from a small set of ISO 8583 response codes (payments-facts §2: 05 and 51
soft, 91 and 96 technical, 14, 54 and 57 hard, plus timeouts); the observer counts attempts per
code and the reasoner reads timeouts and retried hard declines from these counts. Hard declines
are Visa category 1 / Mastercard MAC 03 and 21: never to be retried.

Data only: no I/O, no randomness.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from decline_vocab import merged as _merged_vocab  # data only; imports nothing back


class Code(int, Enum):
    """The codes the simulator makes; their integer value indexes the observer's code axis."""
    APPROVED = 0
    DO_NOT_HONOR = 1        # 05, soft
    INSUFFICIENT_FUNDS = 2  # 51, soft
    ISSUER_UNAVAILABLE = 3  # 91, technical
    SYSTEM_MALFUNCTION = 4  # 96, technical
    TIMEOUT = 5             # no answer within the connector timeout, technical
    INVALID_CARD = 6        # 14, hard
    EXPIRED_CARD = 7        # 54, hard
    NOT_PERMITTED = 8       # 57, hard


class CodeClass(str, Enum):
    APPROVED = "approved"
    SOFT = "soft"              # the issuer said no for now: a later retry may pass
    HARD = "hard"              # never to be retried under network rules
    TECHNICAL = "technical"    # the path failed, not the issuer's judgement: another path may pass
    UNKNOWN = "unknown"        # a code no table knows: counted as its own class, never guessed


CODE_LABELS = ("00", "05", "51", "91", "96", "timeout", "14", "54", "57")
N_CODES = len(CODE_LABELS)
CODE_CLASS = {
    Code.APPROVED: CodeClass.APPROVED,
    Code.DO_NOT_HONOR: CodeClass.SOFT, Code.INSUFFICIENT_FUNDS: CodeClass.SOFT,
    Code.ISSUER_UNAVAILABLE: CodeClass.TECHNICAL, Code.SYSTEM_MALFUNCTION: CodeClass.TECHNICAL,
    Code.TIMEOUT: CodeClass.TECHNICAL,
    Code.INVALID_CARD: CodeClass.HARD, Code.EXPIRED_CARD: CodeClass.HARD, Code.NOT_PERMITTED: CodeClass.HARD,
}
HARD_CODES = tuple(c for c, k in CODE_CLASS.items() if k is CodeClass.HARD)
TECHNICAL_CODES = tuple(c for c, k in CODE_CLASS.items() if k is CodeClass.TECHNICAL)


# -- the observer's code axis ---------------------------------------------------------------

@dataclass(frozen=True)
class CodeAxis:
    """The codes an observer counts attempts by: index 0 is always 'approved'."""
    labels: tuple[str, ...]
    hard: tuple[int, ...]          # never to be retried
    timeout: int                   # the index whose count is reported as timeouts


SIM_AXIS = CodeAxis(CODE_LABELS, tuple(int(c) for c in HARD_CODES), int(Code.TIMEOUT))


# -- raw codes from payment logs (replay): one table, a vectorised classifier -------------------

DECLINE_TABLE = {code: CodeClass(cls) for code, cls in _merged_vocab().items()}
CLASS_ORDER = tuple(CodeClass)                       # int8 code of a class = its index here
CLASS_INDEX = {c: i for i, c in enumerate(CLASS_ORDER)}
# a replay counts attempts by class: a log's own codes are too many and too differently spelled to keep apart
CLASS_AXIS = CodeAxis(tuple(c.value for c in CLASS_ORDER), (CLASS_INDEX[CodeClass.HARD],),
                      CLASS_INDEX[CodeClass.TECHNICAL])


def normalise_code(raw) -> str:
    """'  Not Enough  Balance ' -> 'not enough balance'; None or NaN -> ''."""
    if raw is None or (isinstance(raw, float) and raw != raw):
        return ""
    return " ".join(str(raw).lower().split())


def classify_code(raw) -> CodeClass:
    """The class of one raw code; an acquirer's '51 : Insufficient funds' is read by its ISO code.

    An empty code or one no table knows is UNKNOWN: counted, never guessed.
    """
    code = normalise_code(raw)
    if code in DECLINE_TABLE:
        return DECLINE_TABLE[code]
    head = code.replace(":", " ").split(" ", 1)[0]
    if head != code and head in DECLINE_TABLE and head.isalnum() and len(head) == 2:
        return DECLINE_TABLE[head]
    return CodeClass.UNKNOWN


def classify_codes(raw_codes) -> np.ndarray:
    """int8 index into CLASS_ORDER for each raw code; the table is consulted once per distinct code.

    ['05', 'timeout', None, 'xx'] -> [1 (soft), 3 (technical), 4 (unknown), 4 (unknown)]
    """
    import pandas as pd  # only the replay reader needs it; the simulator stays light
    codes, uniques = pd.factorize(pd.Series(raw_codes, dtype=object), use_na_sentinel=True)
    lut = np.array([CLASS_INDEX[classify_code(u)] for u in uniques] + [CLASS_INDEX[CodeClass.UNKNOWN]],
                   dtype=np.int8)
    return lut[codes]                    # the sentinel -1 picks the trailing UNKNOWN
