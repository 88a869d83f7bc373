"""The feature registry: everything about a feature lives in its one ``FeatureDefinition``.

An entry owns the feature's SQL expression, its type, unit and description, the phrases that name a
segment standing out on it, how a value of it reads, and an example value. The SELECT list of
``feature_store.features.feature_sql``, the segment names of ``models.naming``, the sentences of
``models.wording`` and the request examples of the service are all generated from these entries;
adding a feature is one entry here and its hand-computed case in ``tests/test_features_hand.py``
(``docs/features.md``, "How to add a feature").

An ``expression`` is DuckDB SQL over one row per customer of the feature query's aggregates, joined
as ``s`` (``latest_subscription``), ``m`` (``money``) and ``a`` (``activity``). Every alias may be
NULL for a customer without such events, so expressions ``coalesce`` to the feature's zero value.

The names of the ``spec`` features are a public contract (``docs/contracts/features.md``); the others
are this project's additions, documented in ``docs/features.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Family = Literal["value", "behavioural"]
Dtype = Literal["float", "int"]
Unit = Literal[
    "currency", "currency/month", "count", "days", "ratio", "share", "flag", "seats", "users"
]
UNITS: frozenset[str] = frozenset(Unit.__args__)  # type: ignore[attr-defined]
# How a value is written for a person: 'yes', '94%', '839.06', '63' or '8.67'.
Reading = Literal["yes/no", "percent", "money", "number"]
READINGS: frozenset[str] = frozenset(Reading.__args__)  # type: ignore[attr-defined]
_READING_OF_UNIT: dict[str, Reading] = {
    "flag": "yes/no",
    "share": "percent",
    "ratio": "percent",
    "currency": "money",
    "currency/month": "money",
}
# No feature value is larger than this in magnitude; beyond it a value is an error, not a customer.
MAX_MAGNITUDE = 1e12


@dataclass(frozen=True)
class FeatureDefinition:
    name: str
    family: Family
    dtype: Dtype
    unit: Unit
    description: str
    in_spec: bool
    expression: str  # DuckDB SQL over the aliases s, m and a (module docstring)
    above: str | None  # names a segment clearly above the rest ("High MRR"); None: says nothing
    below: str | None  # ... clearly below the rest ("Low MRR")
    example: float  # a plausible value, shown in the API documentation
    signed: bool = False  # may be negative: a fall in MRR, more refunded than paid
    # Features measuring one thing over other windows share a theme; a name uses one per theme.
    theme: str | None = None
    reading: Reading | None = None  # None: the usual reading of the unit
    # Absolute bars on the segment's median, beside the relative test of ``models.naming``: a
    # segment is "Daily users" only if its median customer is active 20+ days in 30, however far
    # above the rest it stands. None: the relative test alone.
    above_at_least: float | None = None
    below_at_most: float | None = None
    # False: computed, stored and profiled, but not an input of the segmenter by default.
    # For counts of what an invoice leads to (failed payments, refunds): yearly billing means a
    # twelfth of the invoices, so such counts follow ``is_annual`` and lend a billing-cadence flag
    # the agreement of other columns; the per-attempt rates stand in for them
    # (``docs/segmentation.md``, "Counts that follow the billing cadence").
    segmented: bool = True
    # The kind of event without which the value is only its fallback (a billing type, or
    # "usage" for any usage event; None: for behavioural features "usage", else none). With no
    # such event before the date, the fallback can still vary: "days since the last activity" of
    # customers never active is their tenure. A model segmenting on it would name a segment
    # "Dormant" for its tenure, so training leaves such features out (``needs_events``).
    needs: str | None = None
    # The value a customer with no product events in the last 30 days holds (``events_30d`` of
    # 0), which then says nothing about them: no share of API use without activity, a trend of 1
    # for 0 events against 0. Explanations read ``idle_text`` for it instead of "0%" or "1", and a
    # segment whose median customer holds it is not named by it ("Little API use" for a
    # dormant segment). None: every value means what it says.
    idle_value: float | None = None
    # What the idle value means, when it holds ("no activity in the last 90 days" for a trend of 1
    # with no event in the last 30 days: the two months before had none either).
    idle_text: str | None = None
    # (feature, bar): a segment is named by this feature only if its median of the other
    # feature is above the bar. A share of a team's seats says nothing of one-seat accounts
    # (("seats", 1): "Seats fully used" read as a team filling its seats, an upsell signal, for
    # solo accounts using their one seat: a product team's walkthrough), and days as a paying
    # customer nothing of customers who never paid (("ltv", 0): free users active for 14 months
    # were "New customers", a new user's walkthrough).
    named_only_above: tuple[str, float] | None = None
    # (bar, phrase): the phrase below for a segment whose median is at or under the bar, in place
    # of ``below``: one-seat accounts are "Solo accounts", not "Small teams".
    lowest: tuple[float, str] | None = None
    # The phrase for a segment most of whose customers have any (a share above 0 for at least
    # half of them, where fewer than half of everyone have any) when its median does not clear
    # ``above_at_least``: 84% of a segment had a refund in the year against 21% of everyone, at a
    # median refund rate of 0.3%, not "High refund rate"; it was "Typical customers (B)" beside
    # "Typical customers (A)" (a product manager's walkthrough). ``models.naming``.
    most_have: str | None = None
    # What the value means for a customer whose subscription is cancelled, said beside it: days
    # past the next expected payment read as an unpaid bill on a cancelled account's page (83
    # days, "higher than 99% of customers": a product manager's review). None: the same.
    cancelled_text: str | None = None

    def idle(self, value: float, events_30d: float | None) -> bool:
        """Whether ``value`` is this feature's idle value for a customer with ``events_30d``
        product events in the last 30 days (None: unknown, so not idle)."""
        return self.idle_value is not None and events_30d == 0 and value == self.idle_value

    @property
    def needs_events(self) -> str | None:
        return self.needs or ("usage" if self.family == "behavioural" else None)

    @property
    def minimum(self) -> float:
        return -MAX_MAGNITUDE if self.signed else 0.0

    @property
    def maximum(self) -> float:
        """Flags are 0 or 1 and shares are parts of a whole; other ratios may exceed 1."""
        return 1.0 if self.unit in ("flag", "share") else MAX_MAGNITUDE

    @property
    def reads_as(self) -> Reading:
        return self.reading or _READING_OF_UNIT.get(self.unit, "number")

    def phrase(self, above: bool, median: float | None = None) -> str | None:
        """The phrase for a segment standing out in this direction, if its median clears the bar."""
        if not above and self.lowest and median is not None and median <= self.lowest[0]:
            return self.lowest[1]
        text, bar = (self.above, self.above_at_least) if above else (self.below, self.below_at_most)
        if text is None or median is None or bar is None:
            return text
        return text if (median >= bar if above else median <= bar) else None

    @property
    def meaning(self) -> str:
        return self.theme or self.name

    def typed_example(self) -> float | int:
        return int(self.example) if self.dtype == "int" else float(self.example)

    def as_dict(self) -> dict[str, object]:
        """The public description (``GET /v1/model``)."""
        return {
            "name": self.name,
            "family": self.family,
            "dtype": self.dtype,
            "unit": self.unit,
            "description": self.description,
            "in_spec": self.in_spec,
            "signed": self.signed,
            "minimum": self.minimum,
            "maximum": self.maximum,
        }


FEATURES: tuple[FeatureDefinition, ...] = (
    FeatureDefinition(
        "mrr", "value", "float", "currency/month", "Monthly recurring revenue", True,
        expression="coalesce(s.mrr, 0.0)",
        above="High MRR", below="Low MRR", example=3052.46,
    ),
    FeatureDefinition(
        "seats", "value", "int", "seats", "Licensed seats", True,
        expression="coalesce(s.seats, 0)",
        above="Large teams", below="Small teams", example=64, lowest=(1, "Solo accounts"),
        # customers who never paid hold no seat: neither "Solo accounts" nor "Small teams"
        named_only_above=("ltv", 0),
    ),
    FeatureDefinition(
        "is_annual", "value", "int", "flag", "On an annual plan", True,
        expression="CASE WHEN NOT s.canceled AND s.latest_interval = 'year' THEN 1 ELSE 0 END",
        above="Annual plans", below="Monthly plans", example=1, above_at_least=1, below_at_most=0,
    ),
    FeatureDefinition(
        "tenure_days", "value", "int", "days", "Days since the first subscription or payment", True,
        expression="coalesce(m.days_since_first_paid, 0)",
        above="Long-tenured", below="New customers", example=207, above_at_least=365, below_at_most=90,
        named_only_above=("ltv", 0),
    ),
    FeatureDefinition(
        "ltv", "value", "float", "currency", "Lifetime revenue (paid minus refunded)", True,
        expression="coalesce(m.ltv, 0.0)",
        # "revenue", as the cards say it: "lifetime value" read as a forecast (a product team)
        above="High lifetime revenue", below="Low lifetime revenue", example=36629.52, signed=True,
        lowest=(0, "No revenue"),
        # an export with no payments (subscriptions only): minus the refunds, 120 customers
        # negative, and segmented on (a new user's RavenStack walkthrough)
        needs="invoice_paid",
    ),
    FeatureDefinition(
        "mrr_growth_90d", "value", "float", "currency/month", "MRR change over the last 90 days",
        True,
        expression="coalesce(s.mrr, 0.0) - coalesce(s.mrr_90d_ago, 0.0)",
        above="Growing MRR", below="Shrinking MRR", example=0.0, signed=True,
        above_at_least=0.01, below_at_most=-0.01,
    ),
    FeatureDefinition(
        "expansions_365d", "value", "int", "count", "Upgrades in the last year", True,
        expression="coalesce(s.expansions_365d, 0)",
        above="Expanding", below=None, example=0, above_at_least=1,
    ),
    FeatureDefinition(
        "contractions_365d", "value", "int", "count", "Downgrades in the last year", True,
        expression="coalesce(s.contractions_365d, 0)",
        above="Downgrading", below=None, example=0, above_at_least=1,
    ),
    FeatureDefinition(
        "failed_payments_90d", "value", "int", "count", "Failed payments in the last 90 days",
        True,
        expression="coalesce(m.failed_payments_90d, 0)",
        above="Payment failures", below=None, example=0, theme="payment failures",
        above_at_least=1, segmented=False,
    ),
    FeatureDefinition(
        "refunds_365d", "value", "float", "currency", "Refunded in the last year", True,
        expression="coalesce(m.refunds_365d, 0.0)",
        above="Refunded", below=None, example=0.0, theme="refunds", above_at_least=0.01,
        segmented=False,
    ),
    FeatureDefinition(
        "active_days_30d", "behavioural", "int", "days", "Days with activity in the last 30 days",
        True,
        expression="coalesce(a.active_days_30d, 0)",
        above="Daily users", below="Rarely active", example=24, theme="activity",
        above_at_least=20, below_at_most=5,
    ),
    FeatureDefinition(
        "events_30d", "behavioural", "float", "count", "Product events in the last 30 days", True,
        expression="coalesce(a.events_30d, 0.0)",
        above="Heavy usage", below="Light usage", example=360.0, theme="volume",
    ),
    FeatureDefinition(
        "active_users_30d", "behavioural", "int", "users", "Active users in the last 30 days",
        True,
        expression="coalesce(a.active_users_30d, 0)",
        above="Many active users", below="Few active users", example=26,
    ),
    FeatureDefinition(
        "seat_utilization", "behavioural", "float", "ratio",
        "Share of seats used in the last 30 days", True,
        expression="CASE WHEN coalesce(s.seats, 0) = 0 THEN 0 "
        "ELSE coalesce(a.active_users_30d, 0) / s.seats END",
        above="Seats fully used", below="Unused seats", example=0.40625,
        above_at_least=0.9, below_at_most=0.5, named_only_above=("seats", 1),
    ),
    FeatureDefinition(
        "feature_breadth_90d", "behavioural", "int", "count",
        "Distinct features used in the last 90 days", True,
        expression="coalesce(a.feature_breadth_90d, 0)",
        above="Broad feature use", below="Narrow feature use", example=9,
    ),
    FeatureDefinition(
        "usage_trend", "behavioural", "float", "ratio",
        "Activity this month vs the two months before", True,
        expression="(coalesce(a.events_30d, 0.0) + 1) / (coalesce(a.events_30_90d, 0.0) / 2 + 1)",
        above="Usage rising", below="Usage collapsing", example=0.8049,
        above_at_least=1.2, below_at_most=0.5,
        idle_value=1.0, idle_text="no activity in the last 90 days",
        reading="number",  # a factor (0.8, 8.67), not a part of a whole
    ),
    FeatureDefinition(
        "days_since_last_activity", "behavioural", "int", "days",
        "Days since the last product activity", True,
        # Never active: as long as the customer has been one.
        expression="coalesce(a.days_since_last_active, m.days_since_first_paid, 0)",
        above="Dormant", below="Recently active", example=0,
        above_at_least=30, below_at_most=7,
    ),
    FeatureDefinition(
        "api_share_30d", "behavioural", "float", "share",
        "Share of activity through the API (30 days)", True,
        expression="CASE WHEN coalesce(a.events_30d, 0) = 0 THEN 0 "
        "ELSE a.api_events_30d / a.events_30d END",
        above="Heavy API use", below="Little API use", example=0.9694,
        idle_value=0.0, idle_text="no activity in the last 30 days",
        above_at_least=0.5, below_at_most=0.1,
    ),
    # Additions beyond the spec: longer windows, payment recency, price point, churn state.
    FeatureDefinition(
        "is_canceled", "value", "int", "flag", "Subscription canceled", False,
        expression="CASE WHEN s.canceled THEN 1 ELSE 0 END",
        above="Churned", below=None, example=0, above_at_least=1,
    ),
    FeatureDefinition(
        "mrr_per_seat", "value", "float", "currency/month", "Price per seat (plan tier)", False,
        expression="coalesce(s.mrr, 0.0) / greatest(coalesce(s.seats, 0), 1)",
        above="Premium price per seat", below="Low price per seat", example=47.69,
    ),
    # Payment recency measured against the billing period, not in raw days: an annual customer
    # who paid 200 days ago is on time, a monthly one is lapsed. Raw days since the last payment
    # split every persona into its annual and monthly halves (docs/segmentation.md).
    FeatureDefinition(
        "payment_overdue_days", "value", "int", "days",
        "Days past the next expected payment (last paid invoice plus one billing period)", False,
        expression="greatest(coalesce(m.days_since_last_paid, m.days_since_first_paid, 0) - "
        "CASE WHEN s.latest_interval = 'year' THEN 365 ELSE 31 END, 0)",
        above="Lapsed payers", below=None, example=0, above_at_least=7, needs="invoice_paid",
        cancelled_text="none is expected: the subscription is cancelled",
    ),
    FeatureDefinition(
        "failed_payments_365d", "value", "int", "count", "Failed payments in the last year",
        False,
        expression="coalesce(m.failed_payments_365d, 0)",
        above="Dunning history", below=None, example=0, theme="payment failures",
        above_at_least=1, segmented=False,
    ),
    # Per payment attempt rather than per year, so that an annual and a monthly customer who fail
    # equally often per invoice get the same value (``segmented`` above).
    FeatureDefinition(
        "payment_failure_rate_365d", "value", "float", "share",
        "Share of last year's payment attempts that failed", False,
        expression="CASE WHEN coalesce(m.failed_payments_365d, 0) = 0 THEN 0 "
        "ELSE m.failed_payments_365d / (m.failed_payments_365d + m.invoices_paid_365d) END",
        above="Failing payments", below=None, example=0.0, theme="payment failures",
        above_at_least=0.1, needs="invoice_paid", most_have="Payment failures",
    ),
    FeatureDefinition(
        "refund_rate_365d", "value", "float", "ratio", "Share of last year's payments refunded",
        False,
        # At most 1: a refund in the year of a payment made before it (a retailer's return) made
        # the "share" 92 times what was paid in the year, shown as 9167%; more refunded than
        # paid is all of it refunded, and ``refunds_365d`` keeps the amount. The unit stays
        # "ratio" (no bound of 1 on a vector sent to be scored): vectors of earlier builds, and
        # the models trained on them, hold values above 1.
        expression="CASE WHEN coalesce(m.paid_365d, 0) = 0 THEN 0 "
        "ELSE least(m.refunds_365d / m.paid_365d, 1.0) END",
        above="High refund rate", below=None, example=0.0, theme="refunds",
        above_at_least=0.05, needs="invoice_paid", most_have="Refunded",
    ),
    FeatureDefinition(
        "active_days_90d", "behavioural", "int", "days", "Days with activity in the last 90 days",
        False,
        expression="coalesce(a.active_days_90d, 0)",
        above="Consistently active", below="Seldom active", example=68, theme="activity",
        above_at_least=45, below_at_most=10,
    ),
    FeatureDefinition(
        "events_90d", "behavioural", "float", "count", "Product events in the last 90 days",
        False,
        expression="coalesce(a.events_90d, 0.0)",
        above="High volume", below="Low volume", example=1255.0, theme="volume",
    ),
    FeatureDefinition(
        "logins_30d", "behavioural", "float", "count", "Logins in the last 30 days", False,
        expression="coalesce(a.logins_30d, 0.0)",
        above="Frequent logins", below="Few logins", example=3.0, theme="activity",
        above_at_least=8, below_at_most=1,
    ),
    FeatureDefinition(
        "events_per_active_user_30d", "behavioural", "float", "count",
        "Events per active user (30 days)", False,
        expression="CASE WHEN coalesce(a.active_users_30d, 0) = 0 THEN 0 "
        "ELSE a.events_30d / a.active_users_30d END",
        above="Deep per-user use", below="Shallow per-user use", example=13.85,
        idle_value=0.0, idle_text="no activity in the last 30 days",
    ),
)  # fmt: skip

FEATURE_NAMES: tuple[str, ...] = tuple(feature.name for feature in FEATURES)
SPEC_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.in_spec)
# What a model segments on unless told otherwise (``FeatureDefinition.segmented``).
SEGMENTED_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.segmented)
_BY_NAME = {feature.name: feature for feature in FEATURES}


def find(name: str) -> FeatureDefinition | None:
    """The definition of ``name``, or ``None`` for a column the registry does not know."""
    return _BY_NAME.get(name)


def feature(name: str) -> FeatureDefinition:
    """The definition of ``name``; ``KeyError`` names the known features when it is unknown."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}; known: {', '.join(FEATURE_NAMES)}") from None


def with_other_features(names: Sequence[str], columns: Iterable[str]) -> list[str]:
    """``names``, then every other registry feature among ``columns``, in the registry's order:
    what a model keeps beside its own inputs (profiles, the reference sample)."""
    present = set(columns) - set(names)
    return [*names, *(name for name in FEATURE_NAMES if name in present)]


def lacking_events(names: Iterable[str], kinds: Iterable[str]) -> dict[str, list[str]]:
    """The features of ``names`` whose needed kind of event (``needs_events``) is not among
    ``kinds``, by that kind: with none before the date, such a feature holds its fallback, which
    describes something else (tenure, for the days since a last activity nobody had)."""
    present = set(kinds)
    lacking: dict[str, list[str]] = {}
    for name in names:
        needed = feature(name).needs_events
        if needed is not None and needed not in present:
            lacking.setdefault(needed, []).append(name)
    return lacking


def example_vector(names: tuple[str, ...] = FEATURE_NAMES) -> dict[str, float | int]:
    """Every named feature's example value, as a request would carry it."""
    return {name: feature(name).typed_example() for name in names}


def incomplete(definition: FeatureDefinition) -> list[str]:
    """What ``definition`` lacks or gets wrong; empty for a complete entry."""
    checks = {
        "no SQL expression": not definition.expression.strip(),
        "no description": not definition.description.strip(),
        "no naming phrase (above or below)": not (definition.above or definition.below),
        f"unknown unit {definition.unit!r}": definition.unit not in UNITS,
        f"unknown reading {definition.reading!r}": definition.reads_as not in READINGS,
        "example outside [minimum, maximum]": not (
            definition.minimum <= definition.example <= definition.maximum
        ),
        "a whole-number feature with a fractional example": definition.dtype == "int"
        and not float(definition.example).is_integer(),
        f"unknown dtype {definition.dtype!r}": definition.dtype not in ("int", "float"),
    }
    return [problem for problem, failed in checks.items() if failed]
