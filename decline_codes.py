"""Decline codes: the vocabulary every stage reads, and the class of each code (soft, hard, technical).

The simulator draws from a small set of ISO 8583 response codes (payments-facts §2: 05 and 51
soft, 91 and 96 technical, 14, 54 and 57 hard, plus timeouts); the observer counts attempts per
code and the reasoner reads timeouts and retried hard declines from these counts. Hard declines
are Visa category 1 / Mastercard MAC 03 and 21: never to be retried.

Data only: no I/O, no randomness.
"""
from __future__ import annotations

from enum import Enum


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
