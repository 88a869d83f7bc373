"""What the offline store covers: the time range of accepted events, and who has events before T.

Training asks before it computes anything, so that a request the data cannot answer (an as-of before
the first event, long after the last one, or with too few customers to segment) fails at once with
the data's range in the message, not deep inside the segmenter.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from feature_store.engine import connect, sql_string
from feature_store.errors import EmptyStoreError, SegmentsError
from feature_store.layout import StoreLayout
from feature_store.offline_store import OfflineStore
from feature_store.quarantine import open_rows_of
from feature_store.schema import PRICED_SUBSCRIPTION_TYPES, STREAMS, SUBSCRIPTION_TYPES
from feature_store.timeutil import as_of_text, naive_utc, rfc3339

# How far past the last accepted event an as-of may lie. A quarter: training at a month or quarter
# end on a store whose latest export is weeks old still works (features such as
# days_since_last_activity describe that gap), while a mistyped year is refused. Beyond it every
# customer would look long inactive and the segments would describe the gap, not the customers.
AS_OF_TOLERANCE = timedelta(days=90)
# Fewest customers a segmentation is attempted on: below this, candidate segmentations, stability
# resampling and the explainer's held-out check have too few rows to mean anything.
MIN_TRAINING_CUSTOMERS = 10


class TrainingWindowError(SegmentsError):
    """The as-of asked for lies outside the data, or too few customers have events before it."""


@dataclass(frozen=True)
class EventCoverage:
    """The first and last ``occurred_at`` among accepted events of every stream (naive UTC).

    ``last_event`` is the last one up to now when there is one: one event dated 9999 (a wrong
    year, a client's clock) made every message name 9999 as the data's end and let an as-of
    years past the real data through the range check (a CRM's probe). Those dated after now are
    counted apart (``after_now``, the latest of them ``latest_after_now``)."""

    first_event: datetime
    last_event: datetime
    after_now: int = 0
    latest_after_now: datetime | None = None

    @classmethod
    def of(
        cls, first: datetime, last: datetime, last_by_now: datetime | None, after_now: int
    ) -> EventCoverage:
        """From the first and last instants of all events, the last up to now (None: none is)
        and how many are after now, as both engines measure them."""
        if last_by_now is None:  # every event is dated after now
            return cls(first, last, after_now, last)
        return cls(first, last_by_now, after_now, last if after_now else None)

    def describe(self) -> str:
        if self.after_now and self.latest_after_now == self.last_event:
            # a whole store of a wrong year: said so, where "run from 2031 to 2031" did not
            return (
                f"all {self.after_now:,} accepted events are dated after now, from "
                f"{_instant(self.first_event)} to {_instant(self.last_event)} (a wrong year?)"
            )
        text = (
            f"accepted events run from {_instant(self.first_event)} to {_instant(self.last_event)}"
        )
        if self.after_now and self.latest_after_now is not None:
            text += (
                f", besides {self.after_now:,} dated after now (the latest "
                f"{_instant(self.latest_after_now)}: a wrong year?)"
            )
        return text


def empty_store_error(layout: StoreLayout) -> EmptyStoreError:
    held = open_rows_of(layout)
    if held:
        # "run `segments ingest` first" to a user who just had, and saw every row quarantined
        return EmptyStoreError(
            f"no events accepted under {layout.home}: the {held:,} rows ingested are all in "
            "quarantine; `segments quarantine list` says why, and `segments ingest` again once "
            "they are fixed"
        )
    return EmptyStoreError(
        f"no events ingested under {layout.home}; run `segments ingest` first "
        "(or `segments demo-data` for sample data)"
    )


def _all_events_sql(store: OfflineStore) -> str:
    return " UNION ALL ".join(
        f"SELECT customer_id, occurred_at FROM ({store.events_sql(stream)})" for stream in STREAMS
    )


def event_coverage(
    con: duckdb.DuckDBPyConnection, store: OfflineStore, now: datetime | None = None
) -> EventCoverage | None:
    """The stored events' time range up to ``now`` (default: the clock's), with those after it
    counted apart; None when no event is stored."""
    first, last, last_by_now, after_now = con.execute(
        "SELECT min(occurred_at), max(occurred_at), max(occurred_at) FILTER (occurred_at <= $now), "
        f"count(*) FILTER (occurred_at > $now) FROM ({_all_events_sql(store)})",
        {"now": naive_utc(now or datetime.now(UTC))},
    ).fetchone()
    return None if first is None else EventCoverage.of(first, last, last_by_now, after_now)


def stream_starts(layout: StoreLayout) -> dict[str, datetime | None]:
    """The first accepted event's ``occurred_at`` per stream (naive UTC; None: no event)."""
    return _stream_extremes(layout, "min")


def stream_ends(layout: StoreLayout, before: datetime) -> dict[str, datetime | None]:
    """The last accepted event's ``occurred_at`` before ``before`` per stream (naive UTC; None:
    no such event). Only those: one billing event dated 9999 hid that the rest ended months
    before a training date (a review)."""
    return _stream_extremes(layout, "max", before)


def _stream_extremes(
    layout: StoreLayout, extreme: str, before: datetime | None = None
) -> dict[str, datetime | None]:
    store = OfflineStore(layout)
    where = "" if before is None else "WHERE occurred_at < $before"
    parameters = {} if before is None else {"before": naive_utc(before)}
    con = connect()
    try:
        return {
            stream: con.execute(
                f"SELECT {extreme}(occurred_at) FROM ({store.events_sql(stream)}) {where}",
                parameters,
            ).fetchone()[0]
            for stream in STREAMS
        }
    finally:
        con.close()


def customers_before(con: duckdb.DuckDBPyConnection, store: OfflineStore, as_of: datetime) -> int:
    """Customers with an accepted event before ``as_of``: the rows a feature table as of it has."""
    (count,) = con.execute(
        f"SELECT count(DISTINCT customer_id) FROM ({_all_events_sql(store)}) WHERE occurred_at < ?",
        [as_of],
    ).fetchone()
    return int(count)


def event_kinds_before(
    layout: StoreLayout, as_of: datetime, customers: Collection[str] | None = None
) -> frozenset[str]:
    """The kinds of event accepted before ``as_of`` (of ``customers`` only, when given: a
    discovery's cohort): each billing type present, and "usage" when any usage event is (what
    ``FeatureDefinition.needs_events`` names)."""
    store = OfflineStore(layout)
    con = connect()
    try:
        moment = naive_utc(as_of)
        among = ""
        if customers is not None:
            con.register("cohort_ids", pa.table({"customer_id": sorted(customers)}))
            among = " AND customer_id IN (SELECT customer_id FROM cohort_ids)"
        types = con.execute(
            f"SELECT DISTINCT type FROM ({store.events_sql('billing')}) "
            f"WHERE occurred_at < ?{among}",
            [moment],
        ).fetchall()
        (usage,) = con.execute(
            f"SELECT count(*) > 0 FROM (SELECT 1 FROM ({store.events_sql('usage')}) "
            f"WHERE occurred_at < ?{among} LIMIT 1)",
            [moment],
        ).fetchone()
    finally:
        con.close()
    return frozenset({str(kind) for (kind,) in types} | ({"usage"} if usage else set()))


# Below this share of the smaller stream's customers also found in the other stream, the two
# streams likely write customer ids differently. Customers in one stream alone are common (free
# users have usage and no billing; lapsed payers billing and no usage), but the smaller stream's
# customers are mostly in the larger one when the ids agree.
MIN_SHARED_CUSTOMERS = 0.5
# Fewest customers in the smaller stream for the check to say anything.
MIN_CUSTOMERS_TO_COMPARE = 10


def id_mismatch_note(layout: StoreLayout, as_of: datetime) -> str | None:
    """A warning when billing and usage events before ``as_of`` name mostly different customers
    (``MIN_SHARED_CUSTOMERS``), as two exports that write one id two ways do ("17850" and
    "17850.0", "cus_1" and "1"): every such customer is counted twice, half of them paying and
    never active, half active and never paying. None when the streams agree or one is empty."""
    overlap = _stream_overlap(layout, as_of)
    return None if overlap is None else overlap.describe()


def check_streams_share_customers(layout: StoreLayout, as_of: datetime) -> str | None:
    """Refuse to train when billing and usage events before ``as_of`` share no customer at all:
    one stream's ids are not the other's (a mapping that read usage's ``subscription_id`` as the
    customer), and every customer is either paying and never active or active and never paying.
    Trained anyway, that made a champion of "usage-only" segments beside one holding all MRR
    (a new user's walkthrough). A share above none is only warned about: the warning
    (``id_mismatch_note``'s text) is returned, None when the streams agree. Refused too: many
    customers stored under two spellings of one id (``doubly_spelt_ids``)."""
    overlap = _stream_overlap(layout, as_of)
    if overlap is not None and overlap.shared == 0:
        raise SegmentsError(
            overlap.describe() + "; not trained: fix the ids in the export and ingest the "
            f"corrected files into a new data home{_STORED_STAY}"
        )
    twice = doubly_spelt_ids(layout, as_of)
    if twice is not None:
        raise SegmentsError(f"{twice.describe()}; not trained")
    return None if overlap is None else overlap.describe()


# Events once accepted stay stored (an event id is its identity), so events stored under wrongly
# written ids are not replaced by ingesting corrected ones: they add customers of their own.
_STORED_STAY = (
    " (SEGMENTS_HOME=another folder): events stored under the old ids stay stored, and "
    "ingesting corrected ones beside them adds each customer a second time"
)
# Customers stored under both "17850" and "17850.0", beyond which training is refused: a
# handful may be typed twice by hand; a share of the customers is an export ingested twice.
MAX_DOUBLY_SPELT_SHARE = 0.01


@dataclass(frozen=True)
class DoublySpelt:
    """Customers stored under an integer id and under the same id written as a float."""

    customers: int
    total: int
    example: str  # the float spelling of one of them

    def describe(self) -> str:
        whole = self.example.removesuffix(".0")
        return (
            f"{self.customers:,} of {self.total:,} customers are stored under two spellings of "
            f"one id ({whole!r} and {self.example!r}): a stream ingested again with corrected "
            "ids leaves the first copy stored, every such customer counted twice; ingest the "
            f"corrected files into a new data home{_STORED_STAY}"
        )


def doubly_spelt_ids(layout: StoreLayout, as_of: datetime) -> DoublySpelt | None:
    """Customers before ``as_of`` stored as both "N" and "N.0", when they are more than
    ``MAX_DOUBLY_SPELT_SHARE`` of all (and at least five); None otherwise. Following the refusal
    of two streams that share no customer ("'12346' and '12346.0'"), a user ingested the usage
    again with integer ids: training then segmented 4,339 usage-only copies beside the 4,372
    real customers, unsaid (a newcomer's review of UCI Online Retail, 2026-12-08)."""
    store = OfflineStore(layout)
    streams = " UNION ".join(
        f"SELECT DISTINCT customer_id FROM ({store.events_sql(stream)}) WHERE occurred_at < ?"
        for stream in ("billing", "usage")
    )
    con = connect()
    try:
        con.execute(f"CREATE TEMP TABLE ids AS {streams}", [naive_utc(as_of)] * 2)
        total, twice, example = con.execute(
            "SELECT (SELECT count(*) FROM ids), count(*), min(f.customer_id) FROM ids f "
            "JOIN ids w ON w.customer_id = left(f.customer_id, length(f.customer_id) - 2) "
            "WHERE regexp_full_match(f.customer_id, '-?[0-9]+\\.0')"
        ).fetchone()
    finally:
        con.close()
    if twice < 5 or twice <= MAX_DOUBLY_SPELT_SHARE * total:
        return None
    return DoublySpelt(int(twice), int(total), str(example))


@dataclass(frozen=True)
class MixedCurrencies:
    """Customers whose billing events before an as-of name more than one currency. The contract
    allows one per customer (``docs/contracts/events.md``) and the features read all of a
    customer's money in the currency of its latest billing event, so such a customer's MRR and
    revenue are wrong: an ingestion walkthrough's customer with a USD plan and a EUR invoice
    read its USD MRR as EUR, twice its worth, unsaid. Measured by DuckDB
    (``mixed_currency_note``) and by Spark (``spark_engine.mixed_currencies_spark``)."""

    customers: int
    example: str  # the first such customer id
    currencies: tuple[str, ...]  # the example's currencies, sorted

    def describe(self) -> str:
        whose = "customer's" if self.customers == 1 else "customers'"
        return (
            f"{self.customers:,} {whose} billing events name more than one currency "
            f"({self.example!r}: {' and '.join(self.currencies)}); a customer's money is read in "
            "the currency of its latest billing event, so their MRR and revenue are wrong: the "
            "events contract allows one currency per customer"
        )


def _over_billing_before(layout: StoreLayout, as_of: datetime, query: str) -> tuple:
    """The one row ``query`` returns, reading ``billing``: the store's billing events before
    ``as_of``."""
    store = OfflineStore(layout)
    con = connect()
    try:
        return con.execute(
            f"WITH billing AS (SELECT * FROM ({store.events_sql('billing')}) "
            f"WHERE occurred_at < $before) {query}",
            {"before": naive_utc(as_of)},
        ).fetchone()
    finally:
        con.close()


def mixed_currency_note(layout: StoreLayout, as_of: datetime) -> str | None:
    """The ``MixedCurrencies`` warning for the store's billing events before ``as_of``."""
    count, example, currencies = _over_billing_before(
        layout,
        as_of,
        """SELECT count(*), min(customer_id), arg_min(names, customer_id)
           FROM (
               SELECT customer_id, list_sort(list(DISTINCT currency)) AS names
               FROM billing WHERE currency IS NOT NULL
               GROUP BY customer_id
               HAVING count(DISTINCT currency) > 1
           )""",
    )
    if not count:
        return None
    return MixedCurrencies(count, example, tuple(currencies)).describe()


def unmatched_cancellation_note(layout: StoreLayout, as_of: datetime) -> str | None:
    """A warning when ``subscription_canceled`` events before ``as_of`` end no subscription the
    customer started: their ``subscription_id`` names none of its subscriptions, or is missing
    where its other events name theirs (the contract then reads it as a subscription of its own,
    with nothing to cancel). A newcomer mapped RavenStack's 600 account churn events so: all were
    accepted, none changed anything, and training said "no customer is cancelled … only if the
    export records cancellations" (a review, 2026-12-08). None when every one ends something."""
    priced = ", ".join(sql_string(t) for t in PRICED_SUBSCRIPTION_TYPES)
    count, customers, example = _over_billing_before(
        layout,
        as_of,
        f"""SELECT count(*), count(DISTINCT c.customer_id), min(c.customer_id)
            FROM billing c
            WHERE c.type = 'subscription_canceled' AND NOT EXISTS (
                SELECT 1 FROM billing s
                WHERE s.customer_id = c.customer_id AND s.type IN ({priced})
                  AND coalesce(s.subscription_id, '') = coalesce(c.subscription_id, '')
                  AND s.occurred_at <= c.occurred_at
            ) AND NOT (c.subscription_id IS NULL AND EXISTS (
                -- the contract gives an unnamed event to a named subscription that began
                -- before its events were named (its first event no subscription_started)
                SELECT 1 FROM billing f
                WHERE f.customer_id = c.customer_id AND f.subscription_id IS NOT NULL
                GROUP BY f.subscription_id
                HAVING arg_min(f.type, (f.occurred_at, f.event_id)) <> 'subscription_started'
                   AND count(*) FILTER (WHERE f.type IN ({priced})) > 0
            ))""",
    )
    if not count:
        return None
    return (
        f"{count:,} subscription_canceled event{'' if count == 1 else 's'} of {customers:,} "
        f"customer{'' if customers == 1 else 's'} (the first {example!r}) end no subscription "
        "the customer started before: its subscription_id names none of theirs, or is missing "
        "where their other events name their subscriptions, so it cancels nothing; give each "
        "cancellation the subscription_id it ends (docs/contracts/events.md, 'Several "
        "subscriptions')"
    )


def same_instant_note(layout: StoreLayout, as_of: datetime) -> str | None:
    """A warning when a subscription has events at the same instant that say different things
    (type, MRR or seats). The events contract orders them by ``event_id`` as text, so the one
    whose id sorts last is the subscription's state; exports whose ids say nothing of order got
    the wrong one unsaid (a data engineer's review: Stripe Checkout's "incomplete" creation and
    its activation in the same second left a customer at MRR 0 when the creation's id sorted
    last; integer ids "9" and "10" kept the older state). None when there is none."""
    types = ", ".join(sql_string(t) for t in SUBSCRIPTION_TYPES)
    count, customer, moment = _over_billing_before(
        layout,
        as_of,
        f"""SELECT count(*), arg_min(customer_id, (customer_id, occurred_at)),
                   arg_min(occurred_at, (customer_id, occurred_at))
            FROM (
                SELECT customer_id, coalesce(subscription_id, '') AS subscription, occurred_at
                FROM billing WHERE type IN ({types})
                GROUP BY customer_id, subscription, occurred_at
                HAVING count(DISTINCT (type, coalesce(mrr, -1), coalesce(seats, -1))) > 1
            )""",
    )
    if not count:
        return None
    return (
        f"subscriptions have events at the same instant that say different things "
        f"({count:,} such instant{'' if count == 1 else 's'}, the first customer {customer!r} at "
        f"{rfc3339(moment)}); the events contract orders them "
        "by event_id as text, so the one whose id sorts last is taken as the later: where the ids "
        'say nothing of order (Stripe\'s, or integers: "10" sorts before "9"), give such '
        "events their own times"
    )


@dataclass(frozen=True)
class _Overlap:
    billing: int
    usage: int
    shared: int
    only_billing: str
    only_usage: str

    def describe(self) -> str:
        floats = [e for e in (self.only_billing, self.only_usage) if _FLOAT_SPELLING.fullmatch(e)]
        why = (
            f"; {floats[0]!r} is a whole number written as a float, as pandas stores a column of "
            "ids with gaps: write the ids as text or integers in that export"
            if floats
            else ""
        )
        return (
            f"only {self.shared:,} of the {self.billing:,} customers with billing events and the "
            f"{self.usage:,} with usage events are in both streams: do the two write customer ids "
            f"the same way? (billing has {self.only_billing!r}, usage {self.only_usage!r}{why})"
        )


def _stream_overlap(layout: StoreLayout, as_of: datetime) -> _Overlap | None:
    """The two streams' customers before ``as_of`` when they mostly differ; None otherwise."""
    store = OfflineStore(layout)
    billing_ids, usage_ids = (
        f"SELECT DISTINCT customer_id FROM ({store.events_sql(stream)}) WHERE occurred_at < ?"
        for stream in ("billing", "usage")
    )
    moment = naive_utc(as_of)
    con = connect()
    try:
        con.execute(f"CREATE TEMP TABLE b AS {billing_ids}", [moment])
        con.execute(f"CREATE TEMP TABLE u AS {usage_ids}", [moment])
        billing, usage, shared = con.execute(
            "SELECT (SELECT count(*) FROM b), (SELECT count(*) FROM u), "
            "(SELECT count(*) FROM b JOIN u USING (customer_id))"
        ).fetchone()
        smaller = min(billing, usage)
        if smaller < MIN_CUSTOMERS_TO_COMPARE or shared >= MIN_SHARED_CUSTOMERS * smaller:
            return None
        # one id of each stream that the other lacks (the smallest of each)
        examples = con.execute(
            "SELECT (SELECT min(customer_id) FROM (SELECT * FROM b EXCEPT SELECT * FROM u)), "
            "(SELECT min(customer_id) FROM (SELECT * FROM u EXCEPT SELECT * FROM b))"
        ).fetchone()
    finally:
        con.close()
    return _Overlap(billing, usage, shared, str(examples[0]), str(examples[1]))


# An id such as "17850.0": ingestion keeps ids as written (reading it as "17850" would change
# the identity of events already stored under it), so the note says where it comes from.
_FLOAT_SPELLING = re.compile(r"-?\d+\.0")


def store_coverage(layout: StoreLayout) -> EventCoverage | None:
    """What the data home's accepted events cover (None: no event yet)."""
    con = connect()
    try:
        return event_coverage(con, OfflineStore(layout))
    finally:
        con.close()


def check_features_as_of(
    layout: StoreLayout, as_of: datetime, *, tolerance: timedelta = AS_OF_TOLERANCE
) -> EventCoverage:
    """Refuse, in one line naming the data's range, an as-of whose vectors would mislead: before
    the first event, more than ``tolerance`` after the last, or in the future. The online store
    keeps each customer's latest vectors (a later as-of wins), so a mistyped year written there
    would hide every correct build after it. Returns what the store covers."""
    coverage = store_coverage(layout)
    if coverage is None:
        raise empty_store_error(layout)
    check_as_of_covered(coverage, as_of, tolerance=tolerance)
    return coverage


def check_as_of_covered(
    coverage: EventCoverage, as_of: datetime, *, tolerance: timedelta = AS_OF_TOLERANCE
) -> None:
    """``check_features_as_of`` for events wherever they are (a lake read by Spark)."""
    _check_range(coverage, as_of, tolerance)  # first: its message names the data's range
    check_not_future(as_of)


def check_not_future(as_of: datetime, now: datetime | None = None) -> None:
    """Refuse an as-of after the end of today (UTC): ``--as-of 2026-12-04`` is that day's end, so
    today is accepted; tomorrow's data does not exist yet."""
    current = naive_utc(now or datetime.now(UTC))
    today_end = current.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if as_of > today_end:
        raise TrainingWindowError(
            f"as-of {_as_of(as_of)} is in the future (now {_instant(current)}); give a date up "
            "to today"
        )


def check_training_as_of(
    layout: StoreLayout,
    as_of: datetime,
    *,
    tolerance: timedelta = AS_OF_TOLERANCE,
    min_customers: int = MIN_TRAINING_CUSTOMERS,
    both_streams: bool = True,
) -> str | None:
    """Refuse, in one line naming the data's range, an as-of that training cannot use: any
    ``check_features_as_of`` refuses, one with too few customers before it, or, when it segments
    on ``both_streams``, one before which billing and usage share no customer
    (``check_streams_share_customers``). Every way to train asks it: `segments train`,
    `segments retrain` and discovery (which may segment on one family alone). Returns the
    warning of streams that share some customers but mostly differ (``id_mismatch_note``), so
    that a caller prints it without asking the store again."""
    coverage = check_features_as_of(layout, as_of, tolerance=tolerance)
    con = connect()
    try:
        customers = customers_before(con, OfflineStore(layout), as_of)
    finally:
        con.close()
    if customers < min_customers:
        raise TrainingWindowError(
            f"only {customers} customer(s) have events before as-of {_as_of(as_of)}; training "
            f"needs at least {min_customers} ({coverage.describe()})"
        )
    return check_streams_share_customers(layout, as_of) if both_streams else None


def _check_range(coverage: EventCoverage, as_of: datetime, tolerance: timedelta) -> None:
    if as_of <= coverage.first_event:
        raise TrainingWindowError(
            f"as-of {_as_of(as_of)} is not after the first accepted event; {coverage.describe()}"
        )
    if as_of - tolerance > coverage.last_event:  # not last + tolerance: events reach year 9999
        raise TrainingWindowError(
            f"as-of {_as_of(as_of)} is more than {tolerance.days} days after the last accepted "
            f"event; {coverage.describe()}"
        )


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _as_of(as_of: datetime) -> str:
    # as the user gave it: `--as-of 2030-01-01` read "as-of 2030-01-02 00:00:00 UTC"
    return as_of_text(rfc3339(as_of))


def last_event_before(layout: StoreLayout, as_of: datetime) -> datetime | None:
    """The latest ``occurred_at`` of an accepted event before ``as_of`` (naive UTC; None: none)."""
    con = connect()
    try:
        (last,) = con.execute(
            f"SELECT max(occurred_at) FROM ({_all_events_sql(OfflineStore(layout))}) "
            "WHERE occurred_at < ?",
            [naive_utc(as_of)],
        ).fetchone()
    finally:
        con.close()
    return last


def data_lag_days(layout: StoreLayout, as_of: datetime) -> float:
    """Days from the last accepted event before ``as_of`` to it: how stale the newest data a
    model trained as of ``as_of`` sees is (0 with no event before it).

    Only events before the as-of count, as they do for the features: one event dated 9999 (a
    wrong year, a client's clock) made the whole store look fresh, and a model trained 52 days
    past the real data passed this gate and became champion (a CRM integrator's review)."""
    last = last_event_before(layout, as_of)
    if last is None:
        return 0.0
    lag = (naive_utc(as_of) - last).total_seconds() / 86_400
    return round(max(lag, 0.0), 3)


def event_parts(layout: StoreLayout) -> set[Path]:
    """The offline store's parts as ingestions wrote them (a listing, nothing read), so that
    what an ingestion wrote is the parts after it less those before. A compaction's merged part
    is left out: one made meanwhile holds events stored before."""
    store = OfflineStore(layout)
    parts: set[Path] = set()
    for stream in STREAMS:
        visible, merged = store.listing(stream)
        parts.update(part for part in visible if part.name not in merged)
    return parts


def future_events_note(parts: Collection[Path], now: datetime) -> str | None:
    """A line when the parts an ingestion wrote hold events dated after ``now``: kept (a clock
    may be off), but features as of now leave them out, and a wrong year (2031 for 2021) is told
    no other way: a new user's row of 2031 was accepted without a word, and later messages named
    2031 as the data's end. Said of this ingestion only (it was said after every later one), and
    read from its parts alone: the whole store's dates were read twice per ingestion."""
    if not parts:
        return None
    files = "[" + ", ".join(sql_string(str(part)) for part in sorted(parts)) + "]"
    con = connect()
    try:
        count, latest = con.execute(
            f"SELECT count(*), max(occurred_at) FROM read_parquet({files}, union_by_name=true) "
            "WHERE occurred_at > ?",
            [naive_utc(now)],
        ).fetchone()
    finally:
        con.close()
    if not count or latest is None:
        return None
    return (
        f"{count:,} of the events just stored are dated after now (the latest "
        f"{latest:%Y-%m-%d %H:%M} UTC): kept, but features as of now leave them out "
        "(a wrong year?)"
    )
