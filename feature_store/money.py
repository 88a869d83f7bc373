"""Amounts in minor units (cents) turned into the canonical decimal amount of their currency."""

from __future__ import annotations

from fractions import Fraction

from feature_store.schema import ascii_upper

# Stripe's published lists (docs.stripe.com/currencies). ISK, HUF and TWD are whole-unit in
# practice but Stripe keeps writing them with two decimals, so they take the default exponent 2.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
        "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def minor_unit_exponent(currency: str | None) -> int:
    """Decimal places of ``currency`` in minor units: 0 for JPY, 3 for KWD, 2 otherwise."""
    code = ascii_upper(currency or "")
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def from_minor_units(amount: int | str | Fraction, currency: str | None) -> Fraction:
    """``amount`` minor units of ``currency`` as an exact number of major units (1999 USD -> 19.99)."""
    return Fraction(amount) / 10 ** minor_unit_exponent(currency)
