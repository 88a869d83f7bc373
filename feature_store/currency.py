"""Money features in one reporting currency when customers pay in several.

The feature SQL computes every money feature (a registry unit of ``currency`` or
``currency/month``) in the customer's own currency: the events contract allows one currency per
customer. Left so, an Indian customer on a plan priced at 35 rupees per dollar of list price shows
35 times the MRR of a US customer on the same plan; the money columns move together, so they
outvote the rest and customers are grouped by currency, and MRR per segment adds rupees to dollars
(``docs/segmentation.md``, "Customers who pay in several currencies").

Every money feature of one customer is a sum, difference or ratio of that customer's amounts, so
dividing the whole vector by one number per currency converts it exactly. The number is a *price
level*: how many units of the currency buy what one unit of the reporting currency buys, read from
the data itself as the median price per seat (``mrr_per_seat``) of the currency's paying customers
over that of the reporting currency's, the currency with most paying customers. With no exchange
rates given that is the only level the data holds, and it puts a customer on the same plan at the
same value whatever they pay in, which is what a segment should see.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Union

import pandas as pd
from filelock import FileLock

from feature_store.errors import SegmentsError
from feature_store.layout import StoreLayout
from feature_store.registry import FEATURES
from feature_store.schema import currency_codes

# The identity column the feature SQL adds beside ``customer_id``: the currency of the customer's
# latest billing event with one (NULL without any).
CURRENCY_COLUMN = "currency"
MONEY_FEATURES: tuple[str, ...] = tuple(
    f.name for f in FEATURES if f.unit in ("currency", "currency/month")
)
# Whose price per seat says what a currency's plans cost (``paying_customers``, in SQL).
PAYING_SQL = "is_canceled = 0 AND mrr > 0 AND mrr_per_seat > 0"
# What a table build is told: the data home's kept levels (``kept_levels``), these, or (None)
# money in each customer's own currency.
ESTIMATE: Final = "estimate"
LevelsChoice = Union["CurrencyLevels", None, Literal["estimate"]]
# Where a built feature table keeps the levels its money was converted by (``DataFrame.attrs``,
# as ``CurrencyLevels.as_dict()``: attrs travel into Parquet metadata, which is JSON).
LEVELS_ATTR = "currency_levels"
# ... and the currencies its customers pay in (sorted codes), so that one currency can be named.
CURRENCIES_ATTR = "currencies"
# Fewest paying customers whose median price per seat sets a currency's level; below it the
# median is one or two customers' plan, and the currency is left unconverted (and named so).
MIN_PRICED_CUSTOMERS = 5
# Levels a user may give: the widest spread of real exchange rates (about 1e-4 to 1e5 per dollar)
# with room to spare; beyond it a typo, and money divided by it overflows or vanishes.
MIN_GIVEN_LEVEL = 1e-6
MAX_GIVEN_LEVEL = 1e9


@dataclass(frozen=True)
class CurrencyLevels:
    """Price levels of the currencies customers pay in, against the reporting currency.

    ``levels[c]``: units of ``c`` per unit of ``reporting`` (1.0 for ``reporting`` itself).
    ``unpriced``: currencies with too few paying customers to measure, left unconverted.
    ``given``: currencies whose level the user gave (``segments currency set``: exchange rates
    of their choosing) rather than measured from the data.
    """

    reporting: str
    levels: Mapping[str, float]
    unpriced: tuple[str, ...] = ()
    customers: Mapping[str, int] = field(default_factory=dict)
    given: tuple[str, ...] = ()

    @property
    def converts(self) -> bool:
        """Whether any money is converted (more than one currency with a level)."""
        return any(currency != self.reporting for currency in self.levels)

    def describe(self) -> str:
        """'customers pay in 3 currencies (USD 1,200, EUR 640, INR 310); money in USD: EUR 0.95,
        INR 35.1 per USD (price levels estimated from the median price per seat)'."""
        counts = ", ".join(f"{c} {n:,}" for c, n in self.customers.items())
        many = "currency" if len(self.customers) == 1 else "currencies"
        # levels given for a data home whose tables have not counted customers per currency
        text = f"customers pay in {len(self.customers)} {many} ({counts}); " if counts else ""
        others = ", ".join(
            f"{currency} {level:.3g}"
            for currency, level in sorted(self.levels.items())
            if currency != self.reporting
        )
        if others:
            text += f"money in {self.reporting}: {others} per {self.reporting} ({self.sources()})"
        else:
            text += "money is in each customer's own currency"
        if self.unpriced:
            text += (
                f"; not converted, no level against {self.reporting}: {', '.join(self.unpriced)}"
            )
        return text

    def sources(self) -> str:
        """Where the levels other than the reporting currency's come from, in words."""
        given = [c for c in sorted(self.levels) if c in self.given and c != self.reporting]
        measured = [c for c in sorted(self.levels) if c not in self.given and c != self.reporting]
        if not given:
            return "price levels estimated from the median price per seat"
        if not measured:
            return "levels given with `segments currency set`"
        return (
            f"{', '.join(given)} given with `segments currency set`; {', '.join(measured)} "
            "estimated from the median price per seat"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "reporting": self.reporting,
            "levels": dict(self.levels),
            "unpriced": list(self.unpriced),
            "customers": dict(self.customers),
            "given": list(self.given),
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, object]) -> CurrencyLevels:
        return cls(
            str(document["reporting"]),
            {str(k): float(v) for k, v in dict(document["levels"]).items()},  # type: ignore[call-overload]
            tuple(str(c) for c in document.get("unpriced", ())),  # type: ignore[union-attr]
            {str(k): int(v) for k, v in dict(document.get("customers", {})).items()},  # type: ignore[call-overload]
            tuple(str(c) for c in document.get("given", ())),  # type: ignore[union-attr]
        )


def estimate_levels(features: pd.DataFrame) -> CurrencyLevels | None:
    """The price levels of a feature table with its ``currency`` column (money in each customer's
    own currency); None when its customers pay in fewer than two currencies."""
    currency = features[CURRENCY_COLUMN]
    known = currency.notna()
    customers = currency[known].value_counts()
    if len(customers) < 2:
        return None
    paying = known & paying_customers(features)
    priced = features.loc[paying, "mrr_per_seat"].groupby(currency[paying]).agg(["median", "size"])
    return levels_from_prices(
        {str(c): int(n) for c, n in customers.items()},
        {str(c): (float(row["median"]), int(row["size"])) for c, row in priced.iterrows()},
    )


def paying_customers(features: pd.DataFrame) -> pd.Series:
    """Whose price per seat says what a currency's plans cost: not cancelled, paying, with seats.
    (The same condition as ``PAYING_SQL``, for the Spark engine.)"""
    return (features["is_canceled"] == 0) & (features["mrr"] > 0) & (features["mrr_per_seat"] > 0)


def levels_from_prices(
    customers: Mapping[str, int], priced: Mapping[str, tuple[float, int]]
) -> CurrencyLevels | None:
    """The levels from each currency's customers and (median price per seat, paying customers):
    one home for the rule, whichever engine aggregated the table. None with one currency; with
    several but none measurable, levels that convert nothing and say so."""
    if len(customers) < 2:
        return None
    measured = {c: median for c, (median, size) in priced.items() if size >= MIN_PRICED_CUSTOMERS}
    # the reporting currency: most paying customers (else most customers), ties to the first code
    # alphabetically
    count = {c: priced[c][1] for c in measured} or dict(customers)
    reporting = min(count, key=lambda c: (-count[c], c))
    levels = {c: median / measured[reporting] for c, median in sorted(measured.items())}
    unpriced = tuple(sorted(c for c in customers if c not in levels))
    ordered = dict(sorted(customers.items(), key=lambda item: (-item[1], item[0])))
    return CurrencyLevels(reporting, levels, unpriced, ordered)


def to_reporting_currency(features: pd.DataFrame, levels: CurrencyLevels | None) -> pd.DataFrame:
    """``features`` with every money feature divided by its customer's currency level; customers
    of a currency without a level (or with no currency) keep their values."""
    if levels is None or not levels.converts:
        return features
    divisor = features[CURRENCY_COLUMN].map(dict(levels.levels)).astype(float)
    divisor = divisor.fillna(1.0).to_numpy()
    converted = features.copy()
    for name in MONEY_FEATURES:
        if name in converted:
            converted[name] = converted[name].astype(float).to_numpy() / divisor
    return converted


def priced(local: pd.DataFrame, levels: CurrencyLevels | None) -> pd.Series:
    """Per row of a table of local money: whether ``levels`` put its money in the reporting
    currency (or it has none to put: no currency, or one currency in a table ``levels`` leave
    alone). A customer in a currency without a level would keep its own units and be counted
    as if they were the reporting currency's (``to_reporting_currency`` divides it by 1)."""
    currency = local[CURRENCY_COLUMN]
    if levels is not None and levels.levels:  # the reporting currency is priced, at 1
        return currency.isna() | currency.isin(list(levels.levels))
    return pd.Series(currency.dropna().nunique() <= 1, index=local.index)


def with_levels(
    features: pd.DataFrame, levels: CurrencyLevels | None, currencies: Sequence[str] = ()
) -> pd.DataFrame:
    """``features``, noting in its attrs the levels its money was converted by and the
    currencies its customers pay in (``single_currency``)."""
    features.attrs[LEVELS_ATTR] = levels.as_dict() if levels is not None else None
    features.attrs[CURRENCIES_ATTR] = sorted(currencies)
    return features


def single_currency(features: pd.DataFrame) -> str | None:
    """The one currency a built table's customers all pay in (its money needs no converting, and
    ``levels_of`` is None), so pages can say what the figures are in; None with several, or
    none recorded."""
    currencies = features.attrs.get(CURRENCIES_ATTR) or ()
    return str(currencies[0]) if len(currencies) == 1 else None


def levels_of(features: pd.DataFrame) -> CurrencyLevels | None:
    """The levels a built table's money was converted by (None: not converted)."""
    document = features.attrs.get(LEVELS_ATTR)
    return CurrencyLevels.from_dict(document) if document else None


def kept_levels(layout: StoreLayout, local: pd.DataFrame) -> CurrencyLevels | None:
    """The data home's price levels for a table of local money: measured the first time its
    customers pay in several currencies, then kept, so that every table, model and stored vector
    of the data home divides by the same numbers (as segment ids keep their meaning across
    retrains). A currency newly measurable is added at its level against the kept ones
    (``extended``); a kept level never moves unless the user changes it (``segments currency``).
    The file (``layout.currency_levels_path``) is read, extended and written under a lock, since
    builds run in several processes at once, and written only when a level or an unpriced
    currency is added, or an unpriced currency's customers have doubled."""
    measured = estimate_levels(local)
    if measured is None:  # one currency: nothing to add, and a read needs no lock
        return read_levels(layout)
    with _levels_lock(layout):
        kept = read_levels(layout)
        levels = extended(kept, measured)
        if levels is not None and (
            kept is None
            or dict(levels.levels) != dict(kept.levels)
            # a currency seen for the first time and too rare to price: noted, so that a
            # refresh does not measure the whole store again for it (``feature_store.refresh``),
            # and its count kept current once it has doubled, when a refresh measures it again
            or bool(set(levels.unpriced) - set(kept.unpriced))
            or any(
                worth_measuring_again(kept, c, levels.customers.get(c, 0))
                for c in set(levels.unpriced) & set(kept.unpriced)
            )
            # levels given by hand: keep the first count of customers per currency, so that
            # `segments currency show` can name the currencies left unconverted
            or (not kept.customers and levels.customers)
        ):
            write_levels(layout, levels)
    return levels


def worth_measuring_again(kept: CurrencyLevels, currency: str, customers: int) -> bool:
    """Whether a currency ``kept`` notes as unpriced (too few paying when it was measured) now
    has ``customers`` enough to measure again: twice as many as then, so that a growing currency
    is measured a few times, not on every refresh (``feature_store.refresh``), and the kept count
    follows it (``kept_levels``)."""
    return customers >= 2 * kept.customers.get(currency, MIN_PRICED_CUSTOMERS)


def extended(kept: CurrencyLevels | None, measured: CurrencyLevels | None) -> CurrencyLevels | None:
    """``kept`` with the currencies ``measured`` prices and it does not, put on the kept scale
    through a currency both price (the kept reporting currency when ``measured`` prices it, else
    the first other one: given levels may name a reporting currency few customers pay in);
    ``measured`` with none kept. Customers per currency, and so the unconverted ones, are
    ``measured``'s: the table at hand."""
    if kept is None or not kept.levels:
        return measured if measured is not None else kept
    if measured is None:
        return kept
    levels = dict(kept.levels)
    shared = [c for c in (kept.reporting, *sorted(levels)) if measured.levels.get(c)]
    if not shared and set(levels) == {kept.reporting} and measured.converts:
        # a reporting currency chosen by hand that the data cannot price (too few of its
        # customers pay): converting into the measured one beats converting nothing
        return measured
    if shared:
        # measured units of a currency per kept unit of the same currency's value
        scale = measured.levels[shared[0]] / levels[shared[0]]
        for currency, level in measured.levels.items():
            levels.setdefault(currency, level / scale)
    unpriced = tuple(sorted(c for c in measured.customers if c not in levels))
    return CurrencyLevels(kept.reporting, levels, unpriced, dict(measured.customers), kept.given)


def _levels_lock(layout: StoreLayout) -> FileLock:
    """The lock every read-extend-write of the levels file takes (as ingestion takes the
    store's)."""
    path = layout.currency_levels_path.with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path))


def write_levels(layout: StoreLayout, levels: CurrencyLevels) -> None:
    """Keep ``levels`` in the data home, written whole or not at all: a refresh may read the
    file at any moment."""
    path = layout.currency_levels_path
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=path.name, suffix=".partial", dir=path.parent)
    try:
        os.fchmod(handle, 0o644)  # mkstemp makes it private; the service may run as another user
        with os.fdopen(handle, "w") as out:
            json.dump(levels.as_dict(), out, indent=2)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def given_levels(reporting: str, levels: Mapping[str, float]) -> CurrencyLevels:
    """Levels the user gives (units of each currency per unit of ``reporting``, as exchange rates
    are quoted), checked: ISO 4217 codes as the events contract has them, finite positive levels,
    1 for the reporting currency (added when left out)."""
    for code in (reporting, *levels):
        if code not in currency_codes():
            raise SegmentsError(f"{code!r} is not an ISO 4217 currency code (USD, EUR, JPY)")
    for code, level in levels.items():
        if not (math.isfinite(level) and MIN_GIVEN_LEVEL <= level <= MAX_GIVEN_LEVEL):
            raise SegmentsError(
                f"the level of {code} must be a number from {MIN_GIVEN_LEVEL:g} to "
                f"{MAX_GIVEN_LEVEL:g}, not {level}"
            )
    if levels.get(reporting, 1.0) != 1.0:
        raise SegmentsError(
            f"the reporting currency {reporting} is 1 {reporting} per {reporting}, not "
            f"{levels[reporting]}"
        )
    given = {reporting: 1.0, **{c: float(v) for c, v in levels.items()}}
    return CurrencyLevels(reporting, dict(sorted(given.items())), given=tuple(sorted(given)))


def reanchored(kept: CurrencyLevels, reporting: str) -> CurrencyLevels:
    """``kept`` in ``reporting`` units (every level divided by ``reporting``'s), which becomes
    the reporting currency; a ``SegmentsError`` when the kept levels do not price it."""
    anchor = kept.levels.get(reporting)
    if not anchor:
        priced = ", ".join(sorted(kept.levels)) or "none"
        raise SegmentsError(
            f"{reporting} has no kept price level (priced: {priced}); give the levels of the "
            f"other currencies against it, e.g. --reporting {reporting} EUR=0.92"
        )
    levels = {c: level / anchor for c, level in kept.levels.items()}
    levels[reporting] = 1.0
    # Levels each within the bounds against one currency can span their product against another
    # (EUR at 1e-6 and JPY at 1e9 per USD are 1e-15 EUR per JPY): held to the same bounds.
    for code, level in sorted(levels.items()):
        if not MIN_GIVEN_LEVEL <= level <= MAX_GIVEN_LEVEL:
            raise SegmentsError(
                f"against {reporting}, the level of {code} would be {level:g}, outside "
                f"{MIN_GIVEN_LEVEL:g} to {MAX_GIVEN_LEVEL:g}: give the levels against "
                f"{reporting} instead, e.g. --reporting {reporting} {code}=..."
            )
    return CurrencyLevels(
        reporting,
        levels,
        kept.unpriced,
        dict(kept.customers),
        tuple(sorted({*kept.given, reporting})),
    )


def choose_reporting(
    layout: StoreLayout, reporting: str
) -> tuple[CurrencyLevels, CurrencyLevels | None]:
    """Make ``reporting`` the reporting currency, the kept levels re-expressed against it
    (``reanchored``), or, with none kept, chosen for the next table build to measure against;
    the new levels and the ones replaced, read and written under the lock."""
    chosen = given_levels(reporting, {})  # a bad code is refused before the lock is taken
    with _levels_lock(layout):
        kept = read_levels(layout)
        levels = reanchored(kept, reporting) if kept else chosen
        write_levels(layout, levels)
    return levels, kept


def replace_levels(layout: StoreLayout, levels: CurrencyLevels | None) -> CurrencyLevels | None:
    """Replace the data home's kept levels by ``levels`` (None: forget them, so that the next
    table build measures them again), under the lock table builds take; the levels replaced."""
    with _levels_lock(layout):
        try:
            before = read_levels(layout)
        except SegmentsError:
            before = None  # a damaged file is what replacing it mends
        if levels is None:
            layout.currency_levels_path.unlink(missing_ok=True)
        else:
            write_levels(layout, levels)
    return before


def _checked(levels: CurrencyLevels) -> CurrencyLevels:
    """Levels a file may hold (it may have been edited by hand): finite positive levels, the
    reporting currency's 1 when any are measured (a ``ValueError`` names what is wrong)."""
    for currency, level in levels.levels.items():
        if not (math.isfinite(level) and level > 0):
            raise ValueError(f"the level of {currency} is {level}")
    if levels.levels and levels.levels.get(levels.reporting) != 1.0:
        raise ValueError(f"the reporting currency {levels.reporting} has no level of 1")
    return levels


def read_levels(layout: StoreLayout) -> CurrencyLevels | None:
    """The data home's kept levels (``kept_levels``); None while its customers pay in one
    currency."""
    path = layout.currency_levels_path
    try:
        return _checked(CurrencyLevels.from_dict(json.loads(path.read_text())))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        raise SegmentsError(
            f"{path} is not a price-levels file this project wrote ({error}); run `segments "
            "currency forget` (or delete it) to measure the levels again"
        ) from None
