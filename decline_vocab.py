"""Decline vocabularies of the formats a replay reads, each raw code mapped to its class.

One table for every source: ISO 8583 response codes (the simulator's labels among them),
Stripe decline codes, Adyen refusal reasons, and the few Hyperswitch codes it documents.
Keys are normalised (lower case, single spaces); values are CodeClass values as plain
strings so this module imports nothing (decline_codes turns them into CodeClass).

What is not here is not guessed: a code no table knows is CodeClass.UNKNOWN, counted as
its own class by the reader. Data only: no I/O.

Classes follow payments-facts §2 (Visa excessive-retry categories):
  Cat 1 "never retry" -> hard; Cat 3 "retry only with corrected data" -> hard as well,
  since the same request can never pass; Cat 2 "may pass later" -> soft, except the
  path failures (issuer or switch unreachable, system error) -> technical.
"""
from __future__ import annotations

APPROVED, SOFT, HARD, TECHNICAL = "approved", "soft", "hard", "technical"

# ISO 8583 field 39 response codes (payments-facts §2; developers.tabapay.com/docs/excessive-retry-rules).
ISO_8583 = {
    "00": APPROVED, "08": APPROVED, "10": APPROVED, "11": APPROVED,   # approved, with ID, partial, VIP
    "85": APPROVED,                                                   # no reason to decline (verification)
    # Visa category 1: never retry
    "04": HARD, "07": HARD, "12": HARD, "14": HARD, "15": HARD, "41": HARD, "43": HARD,
    "46": HARD, "57": HARD, "62": HARD, "r0": HARD, "r1": HARD, "r3": HARD,
    # Visa category 3: fix the data first (expired card, wrong PIN, CVV, SCA required)
    "54": HARD, "55": HARD, "n7": HARD, "82": HARD, "1a": HARD,
    # Visa category 2: the issuer may say yes later
    "01": SOFT, "02": SOFT, "05": SOFT, "19": SOFT, "51": SOFT, "59": SOFT, "61": SOFT,
    "65": SOFT, "75": SOFT,
    # the path failed, not the issuer's judgement: another path or a moment later may pass
    "06": TECHNICAL, "68": TECHNICAL, "91": TECHNICAL, "92": TECHNICAL, "96": TECHNICAL,
}

# The simulator's label for an attempt that got no answer within the connector timeout.
SIMULATOR = {"timeout": TECHNICAL}

# Stripe decline codes, https://docs.stripe.com/declines/codes ("Decline Reason" of the
# unified payments export; also what Hyperswitch's error_code carries from its Stripe connector).
STRIPE = {
    "insufficient_funds": SOFT, "do_not_honor": SOFT, "generic_decline": SOFT, "card_declined": SOFT,
    "call_issuer": SOFT, "approve_with_id": SOFT, "card_velocity_exceeded": SOFT,
    "withdrawal_count_exceeded": SOFT, "no_action_taken": SOFT, "authentication_required": SOFT,
    "offline_pin_required": SOFT, "online_or_offline_pin_required": SOFT,
    "expired_card": HARD, "incorrect_number": HARD, "invalid_number": HARD, "incorrect_cvc": HARD,
    "invalid_cvc": HARD, "invalid_expiry_month": HARD, "invalid_expiry_year": HARD, "incorrect_zip": HARD,
    "incorrect_pin": HARD, "invalid_pin": HARD, "pin_try_exceeded": HARD, "invalid_account": HARD,
    "invalid_amount": HARD, "lost_card": HARD, "stolen_card": HARD, "pickup_card": HARD,
    "restricted_card": HARD, "fraudulent": HARD, "merchant_blacklist": HARD, "do_not_try_again": HARD,
    "revocation_of_all_authorizations": HARD, "revocation_of_authorization": HARD,
    "stop_payment_order": HARD, "security_violation": HARD, "service_not_allowed": HARD,
    "transaction_not_allowed": HARD, "not_permitted": HARD, "card_not_supported": HARD,
    "currency_not_supported": HARD, "new_account_information_available": HARD,
    "duplicate_transaction": HARD, "testmode_decline": HARD,
    "processing_error": TECHNICAL, "issuer_not_available": TECHNICAL, "try_again_later": TECHNICAL,
    "reenter_transaction": TECHNICAL,
}

# Adyen refusal reasons (refusalReason text, as in the report's "Acquirer Response"),
# https://docs.adyen.com/development-resources/refusal-reasons. "Cancelled" and
# "Shopper Cancelled" are left out on purpose: the shopper or merchant stopped, no one declined.
ADYEN = {
    "authorised": APPROVED, "approved": APPROVED,
    "refused": SOFT, "referral": SOFT, "not enough balance": SOFT, "3d not authenticated": SOFT,
    "declined non generic": SOFT, "withdrawal amount exceeded": SOFT, "withdrawal count exceeded": SOFT,
    "issuer suspected fraud": SOFT, "card requires online pin": SOFT, "mobile pin required": SOFT,
    "contactless fallback": SOFT, "authentication required": SOFT, "cvm required restart payment": SOFT,
    "blocked card": HARD, "expired card": HARD, "invalid amount": HARD, "invalid card number": HARD,
    "not supported": HARD, "acquirer fraud": HARD, "invalid pin": HARD, "pin tries exceeded": HARD,
    "fraud": HARD, "fraud-cancelled": HARD, "transaction not permitted": HARD, "cvc declined": HARD,
    "restricted card": HARD, "revocation of auth": HARD, "avs declined": HARD,
    "no checking account available on card": HARD, "no savings account available on card": HARD,
    "transaction blocked by adyen to prevent excessive retry fees": HARD,
    "acquirer error": TECHNICAL, "issuer unavailable": TECHNICAL, "pin validation not possible": TECHNICAL,
    "not submitted": TECHNICAL, "rreq not received from ds": TECHNICAL,
    "current aid is in penalty box": TECHNICAL, "3ds authentication error": TECHNICAL,
}

# Hyperswitch: error_code is the connector's own code (covered by the tables above); its
# unified_code UE_9000 means "Something went wrong" (juspay/hyperswitch cypress-tests
# connector configs) and is deliberately absent: it names no class.
HYPERSWITCH: dict[str, str] = {}

SOURCES = {"iso8583": ISO_8583, "simulator": SIMULATOR, "stripe": STRIPE, "adyen": ADYEN,
           "hyperswitch": HYPERSWITCH}


def merged() -> dict[str, str]:
    """All tables as one; a key two tables class differently is a bug caught here."""
    out: dict[str, str] = {}
    for name, table in SOURCES.items():
        for code, cls in table.items():
            if out.get(code, cls) != cls:
                raise ValueError(f"decline code {code!r}: {name} says {cls}, another table {out[code]}")
            out[code] = cls
    return out
