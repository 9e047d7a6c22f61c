"""The one decline-code table: every vocabulary classed, the simulator's codes unchanged, unknown kept unknown."""
import numpy as np
import pytest

import decline_vocab
from decline_codes import (
    CLASS_INDEX,
    CLASS_ORDER,
    CODE_CLASS,
    CODE_LABELS,
    Code,
    CodeClass,
    classify_code,
    classify_codes,
)


@pytest.mark.parametrize("raw, expected", [
    ("05", CodeClass.SOFT),                        # ISO do not honour: Visa category 2
    ("51", CodeClass.SOFT),                        # ISO insufficient funds
    ("91", CodeClass.TECHNICAL),                   # issuer unavailable: the path, not the issuer
    ("96", CodeClass.TECHNICAL),                   # system malfunction
    ("14", CodeClass.HARD),                        # invalid card: Visa category 1, never retry
    ("54", CodeClass.HARD),                        # expired card: category 3, never as-is
    ("R0", CodeClass.HARD),                        # stop recurring payment, upper case as networks write it
    ("00", CodeClass.APPROVED),                    # approved
    ("timeout", CodeClass.TECHNICAL),              # the simulator's own label
    ("insufficient_funds", CodeClass.SOFT),        # Stripe
    ("do_not_honor", CodeClass.SOFT),              # Stripe
    ("generic_decline", CodeClass.SOFT),           # Stripe
    ("expired_card", CodeClass.HARD),              # Stripe
    ("incorrect_cvc", CodeClass.HARD),             # Stripe: fix the data first
    ("processing_error", CodeClass.TECHNICAL),     # Stripe
    ("issuer_not_available", CodeClass.TECHNICAL), # Stripe
    ("try_again_later", CodeClass.TECHNICAL),      # Stripe
    ("Not enough balance", CodeClass.SOFT),        # Adyen refusal reason, as written in its reports
    ("  ACQUIRER   error ", CodeClass.TECHNICAL),  # Adyen, case and spacing folded
    ("Expired Card", CodeClass.HARD),              # Adyen
    ("51 : Insufficient funds", CodeClass.SOFT),   # an acquirer's raw response, read by its ISO code
    ("UE_9000", CodeClass.UNKNOWN),                # Hyperswitch "Something went wrong": names no class
    ("Cancelled", CodeClass.UNKNOWN),              # Adyen: nobody declined, so no class is claimed
    ("5", CodeClass.UNKNOWN),                      # not "05": never guessed
    ("", CodeClass.UNKNOWN),                       # empty
    (None, CodeClass.UNKNOWN),                     # missing
])
def test_classify_code(raw, expected):
    assert classify_code(raw) is expected


def test_the_simulator_labels_keep_their_classes():
    for code in Code:
        assert classify_code(CODE_LABELS[code]) is CODE_CLASS[code], CODE_LABELS[code]


def test_classify_codes_is_the_table_applied_per_value():
    raw = np.array(["05", "timeout", None, "xx", "54", "05", float("nan")], dtype=object)
    got = classify_codes(raw)
    assert got.dtype == np.int8
    assert [CLASS_ORDER[i] for i in got] == [CodeClass.SOFT, CodeClass.TECHNICAL, CodeClass.UNKNOWN,
                                             CodeClass.UNKNOWN, CodeClass.HARD, CodeClass.SOFT, CodeClass.UNKNOWN]
    assert classify_codes([]).shape == (0,)


def test_class_index_is_the_order_of_the_enum():
    assert CLASS_ORDER == tuple(CodeClass)
    assert [CLASS_INDEX[c] for c in CodeClass] == list(range(len(CodeClass)))


def test_no_code_is_classed_twice_differently():
    merged = decline_vocab.merged()
    assert all(k == " ".join(k.lower().split()) for k in merged)          # keys are normalised
    assert set(merged.values()) <= {c.value for c in CodeClass if c is not CodeClass.UNKNOWN}
