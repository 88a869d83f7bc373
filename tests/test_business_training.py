"""Churn is measured, not clustered: training on a generated company with churners."""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import replace
from datetime import UTC, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from feature_store.features import compute_customer_features
from feature_store.timeutil import parse_as_of, rfc3339
from models.segmenter import CustomerSegmenter
from pipelines.train import fit_model, measure_business

AS_OF = parse_as_of("2026-06-30")


@pytest.fixture(scope="module")
def trained(demo_company):
    events = {"billing": demo_company.billing.to_pandas(), "usage": demo_company.usage.to_pandas()}
    end = compute_customer_features(events, AS_OF)
    start = compute_customer_features(events, AS_OF - timedelta(days=90))
    fitted = fit_model(end, CustomerSegmenter(random_state=0, n_resamples=2))
    measure_business(fitted.model, start, end)
    return fitted.model, start, end


def test_cancelled_customers_are_beside_the_segments_not_in_one(trained):
    model, _, end = trained
    cancelled = int((end["is_canceled"] == 1).sum())
    assert cancelled > 0  # the demo company has churners
    assert model.churned.count == cancelled
    assert sum(p.size for p in model.profiles) == len(end) - cancelled
    assert all(p.medians["is_canceled"] == 0 for p in model.profiles)


def test_each_segment_reports_a_backtested_churn_rate_with_its_interval(trained):
    model, start, end = trained
    paying = start[(start["is_canceled"] == 0) & (start["mrr"] > 0)]
    later = end.set_index("customer_id").loc[paying["customer_id"]]
    cancelled_in_window = int((later["is_canceled"] == 1).sum())
    assert sum(b.cohort for b in model.backtest) == len(paying)
    counted = sum(b.churn.count for b in model.backtest if b.churn is not None)
    small = sum(b.cohort for b in model.backtest if b.churn is None)
    assert cancelled_in_window - small <= counted <= cancelled_in_window
    assert sum(model.churned.last_segment.values()) == cancelled_in_window
    for profile, backtest in zip(model.profiles, model.backtest, strict=True):
        if backtest.churn is None:
            assert profile.churn_rate is None
            continue
        assert profile.churn_rate == backtest.churn.rate
        assert "segment" not in profile.backtest  # a position, beside the public id: left out
        assert backtest.churn.low <= backtest.churn.rate <= backtest.churn.high
        assert backtest.window_days == 90
    rates = [p.churn_rate for p in model.profiles if p.churn_rate is not None]
    assert 0 < max(rates) < 1  # neither 0% everywhere nor a 100% "Churned" segment


def test_a_cancelled_customer_is_told_the_segment_it_was_in_when_last_active(trained):
    """Its vector now (no MRR, no seats) is nearest a segment of customers who never paid: 139
    of 142 cancelled customers of a new user's company were "in" the free users' segment. The
    backtest placed each from its features then; the assignment says that segment."""
    from models.assignment import ModelRef

    model, _, end = trained
    placed = model.last_active_segment
    assert Counter(placed.values()) == Counter(model.churned.last_segment)
    cancelled = end[(end["is_canceled"] == 1) & end["customer_id"].astype(str).isin(placed)]
    live = end[end["is_canceled"] == 0].head(1)
    rows = pd.concat([cancelled.head(3), live])
    ids = rows["customer_id"].astype(str).tolist()
    assigned = model.assignments(rows, ids, ModelRef(name="m", version="1"), explain=False)
    for customer, assignment in zip(ids[:3], assigned[:3], strict=True):
        position = placed[customer]
        assert assignment.is_canceled
        assert assignment.last_active_segment.id == model.segment_ids[position]
        name = model.profiles[position].name
        assert assignment.summary == (
            f"Cancelled customer: not in a segment; when last active it was in '{name}'."
        )
    assert assigned[3].last_active_segment is None  # a live customer is in its segment
    # a customer the model never saw cancel has no such segment, and its summary says why not
    [unknown] = model.assignments(rows.head(1), ["someone-else"], ModelRef(name="m", version="1"),
                                  explain=False)  # fmt: skip
    assert unknown.last_active_segment is None
    assert unknown.summary.startswith("Cancelled customer: not in a segment; by its vector now")


def test_each_segment_says_where_its_customers_were_at_the_window_start(trained):
    """A segment of recent downgrades held almost nobody 90 days ago, so its backtest is empty
    and its customers' losses count under the segment they were in then (a product team read
    them as that segment's): every segment records where today's members were, and a card whose
    members mostly were elsewhere says where."""
    from models.summaries import members_then_text, segment_cards

    model, start, end = trained
    active = end[end["is_canceled"] == 0]
    paying_then = set(start.loc[(start["is_canceled"] == 0) & (start["mrr"] > 0), "customer_id"])
    not_paying = int((~active["customer_id"].isin(paying_then)).sum())
    counted = [b.members_then for b in model.backtest]
    assert sum(c.total for c in counted) == len(active)
    assert sum(c.not_paying_then for c in counted) == not_paying
    for profile, then in zip(model.profiles, counted, strict=True):
        assert then.total == profile.size
        assert set(then.by_segment) <= set(model.segment_ids)
        assert list(then.by_segment.values()) == sorted(then.by_segment.values(), reverse=True)
        stored = profile.backtest["members_then"]  # in the catalog's profile, as served
        assert stored == {"by_segment": then.by_segment, "not_paying_then": then.not_paying_then}
    moved = [
        position
        for position, then in enumerate(counted)
        if then.by_segment.get(model.segment_ids[position], 0) < then.total / 2
    ]
    assert moved, "the demo company has a segment made of recent changes"
    cards = segment_cards(model)
    for position in moved:
        text = members_then_text(model, position)
        assert text is not None
        assert text.startswith(f"Its {model.profiles[position].size:,} customers 90 days ago: ")
        assert text in cards[position].backtest_basis
        assert cards[position].members_then == text  # a segment's page says it too
        # those in no segment then are named, never folded into "elsewhere" (read as a retired
        # segment by a retailer)
        unplaced = counted[position].not_paying_then
        if unplaced:
            assert text.endswith(f", {unplaced:,} not paying."), text
        assert "elsewhere" not in text
    # a segment of new customers, none placed anywhere then: no dangling comma (a review)
    from models.business import MembersThen

    fresh = copy.deepcopy(model)
    fresh.backtest = [
        replace(b, members_then=MembersThen({}, 12)) if b.segment == 0 else b
        for b in fresh.backtest
    ]
    assert members_then_text(fresh, 0) == "Its 12 customers 90 days ago: 12 not paying."
    for position in set(range(len(counted))) - set(moved):
        assert members_then_text(model, position) is None
        assert cards[position].members_then is None
    # rendered where the segment's backtest is (its page, the report's section)
    from models.report import render_report

    assert 'class="lede members-then"' in render_report(model, "1")


def test_contraction_and_expansion_count_the_cohort_and_pages_show_every_figure(trained):
    from models.summaries import backtest_figures, segment_cards

    model, start, end = trained
    paying = start[(start["is_canceled"] == 0) & (start["mrr"] > 0)].set_index("customer_id")
    later = end.set_index("customer_id").loc[paying.index]
    staying = later["is_canceled"] == 0
    contracted = int((staying & (later["mrr"] < paying["mrr"] - 1e-9)).sum())
    expanded = int((staying & (later["mrr"] > paying["mrr"] + 1e-9)).sum())
    measured = [b for b in model.backtest if b.churn is not None]
    small = sum(b.cohort for b in model.backtest if b.churn is None)
    counted = sum(b.contraction.count for b in measured)
    assert contracted - small <= counted <= contracted
    assert counted > 0
    counted = sum(b.expansion.count for b in measured)
    assert expanded - small <= counted <= expanded
    assert counted > 0
    cards = segment_cards(model)
    for card, backtest in zip(cards, model.backtest, strict=True):
        figures = {figure.label: figure for figure in backtest_figures(backtest)}
        assert card.backtest_figures == tuple(figures.values())
        if backtest.churn is None:  # nothing claimed, and the page says why
            assert figures == {}
            assert card.backtest_cohort.startswith("Not measured: ")
            continue
        assert list(figures) == ["Churn", "Contraction", "Expansion", "MRR kept"]
        for label, rate in (
            ("Contraction", backtest.contraction),
            ("Expansion", backtest.expansion),
        ):
            assert figures[label].count == f"{rate.count:,} of {backtest.cohort:,}"
            assert rate.low <= rate.rate <= rate.high
        assert figures["MRR kept"].range is not None
        assert card.backtest_cohort.startswith(f"Of the {backtest.cohort:,} paying customers")


def test_without_history_at_the_window_start_nothing_is_claimed(trained):
    model, _, end = trained
    model = copy.deepcopy(model)  # the fixture's model stays as trained for the other tests
    empty = end.iloc[:0]
    model.backtest = None
    for profile in model.profiles:
        profile.churn_rate, profile.backtest = None, None
    measure_business(model, empty, end)
    assert model.backtest is None
    assert all(p.churn_rate is None for p in model.profiles)
    assert model.churned.count == int(np.sum(end["is_canceled"] == 1))
    # the 0.0 of MRR is said to be unmeasured, for API clients as for the page
    assert model.churned.backtest_unmeasured == "no customer was paying 90 days before"
    # and a segment's page and the report say so, with the window, rather than nothing
    from models.summaries import segment_cards

    for card in segment_cards(model):
        assert card.backtest_figures == ()
        assert card.backtest_heading == "The last 90 days (backtest)"
        assert card.backtest_cohort == (
            "Churn, contraction, expansion and MRR kept not measured: "
            "no customer was paying 90 days before."
        )
    model.churned = None  # a model saved before churn was backtested
    assert "trained before churn was backtested" in segment_cards(model)[0].backtest_cohort
    # a business of invoices alone (a retailer) has no subscription at either end: said so, not
    # "no customer was paying" beside thousands of paid invoices (a new user's walkthrough)
    invoices_only = end.assign(mrr=0.0)
    measure_business(model, invoices_only, invoices_only)
    assert model.churned.backtest_unmeasured.startswith("no customer holds a subscription")
    assert "no customer holds a subscription" in segment_cards(model)[0].backtest_cohort.lower()


def test_the_backtest_and_the_churned_customers_travel_with_the_model_files(trained, tmp_path):
    from models.registry import load_model, save_model

    model, _, _ = trained
    loaded = load_model(tmp_path / "model", save_model(model, tmp_path / "model"))
    assert loaded.churned == model.churned
    assert loaded.backtest is not None
    assert loaded.backtest == model.backtest
    assert [p.churn_rate for p in loaded.profiles] == [p.churn_rate for p in model.profiles]


def test_customers_who_cancelled_before_the_window_are_placed_when_last_active(
    trained, demo_company, demo_files, tmp_path
):
    """Churned customers the backtest's cohort does not hold (they cancelled before the window)
    are placed from their features at the last 30-day step before they cancelled, computed here
    from the events in memory by the same definitions at each customer's own date."""
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout
    from feature_store.schema import SUBSCRIPTION_TYPES
    from pipelines.train import place_earlier_churn

    model, _, _ = trained
    model = copy.deepcopy(model)  # the fixture's model stays as trained for the other tests
    window = model.churned
    layout = StoreLayout(tmp_path / "home")
    ingest_files(layout, {"billing": demo_files["billing"], "usage": demo_files["usage"]})
    window_start = AS_OF - timedelta(days=90)
    place_earlier_churn(model, layout, AS_OF, window_start)

    billing = demo_company.billing.to_pandas()
    subscriptions = billing[
        billing["type"].isin(SUBSCRIPTION_TYPES) & (billing["occurred_at"] < AS_OF)
    ]
    latest = subscriptions.sort_values(["occurred_at", "event_id"]).groupby("customer_id").tail(1)
    canceled_at = latest.loc[latest["type"] == "subscription_canceled"].set_index("customer_id")
    earlier = canceled_at.loc[canceled_at["occurred_at"] < window_start, "occurred_at"]
    assert model.churned.count == len(canceled_at)
    assert model.churned.before_window == len(earlier) > 0
    events = {"billing": billing, "usage": demo_company.usage.to_pandas()}
    step = timedelta(days=30)
    expected, lost = Counter(window.last_segment), 0.0
    for steps, customers in earlier.groupby(-(-(window_start - earlier) // step)):
        then = compute_customer_features(events, window_start - int(steps) * step)
        rows = then[then["customer_id"].isin(customers.index)]
        paying = rows[(rows["is_canceled"] == 0) & (rows["mrr"] > 0)]
        assert len(paying) == len(customers)  # the demo's churners paid until they left
        expected.update(model.place(model.values(paying)).segment.tolist())
        lost += paying["mrr"].sum()
    assert model.churned.last_segment == dict(expected)
    assert model.churned.last_segment_unknown == window.last_segment_unknown - len(earlier)
    assert model.churned.before_window_lost_mrr == pytest.approx(lost)
    assert (model.churned.lost_mrr, window.before_window) == (window.lost_mrr, None)


def test_usage_that_begins_after_the_window_start_is_named_not_measured(demo_company, tmp_path):
    """A usage export of the last two months beside 14 months of billing: 90 days ago every
    customer would look inactive, so no segment gets a rate and the reason is given instead."""
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout
    from models.explainer import SegmentExplainer
    from models.families.kmeans import KMeansFamily
    from models.registry import ModelRegistry
    from pipelines.cli.training import churned_text
    from pipelines.tracking import registry_config
    from pipelines.train import backtest_shortfall, train

    usage = demo_company.usage.to_pandas()
    usage_starts = AS_OF - timedelta(days=60)
    files = {"billing": tmp_path / "billing.parquet", "usage": tmp_path / "usage.parquet"}
    demo_company.billing.to_pandas().to_parquet(files["billing"], index=False)
    usage[usage["occurred_at"] >= usage_starts].to_parquet(files["usage"], index=False)

    layout = StoreLayout(tmp_path / "home")
    ingest_files(layout, files)
    window_start = AS_OF - timedelta(days=90)
    reason = backtest_shortfall(layout, window_start)
    first_usage = usage.loc[usage["occurred_at"] >= usage_starts, "occurred_at"].min()
    needed = window_start - timedelta(days=90)
    assert reason is not None
    assert f"usage events begin on {first_usage:%Y-%m-%d}" in reason
    assert f"placing the customers paying at {window_start:%Y-%m-%d %H:%M} UTC" in reason
    assert f"needs their usage from {needed:%Y-%m-%d %H:%M} UTC on" in reason

    segmenter = CustomerSegmenter(
        n_resamples=2, candidates=[KMeansFamily().candidate(k) for k in (4, 5)], random_state=0
    )
    explainer = SegmentExplainer(leaf_ladder=(8,), n_folds=2, max_iter=60)
    registry = ModelRegistry(registry_config(layout, {}))
    result = train(layout, AS_OF, segmenter, registry, explainer=explainer)
    assert all(segment["backtest"] is None for segment in result.segments)
    assert all(segment["churn_rate"] is None for segment in result.segments)
    assert result.churned["backtest_unmeasured"] == reason
    # nor can those who cancelled before the window be placed: their usage then is missing too
    assert result.churned["before_window"] > 0
    assert result.churned["last_segment"] == {}
    assert result.churned["last_segment_unknown"] == result.churned["count"]
    assert result.currency_levels is None  # one currency: nothing converted, nothing said
    # who cancelled and the MRR they took are billing's, known as when usage is complete
    everything = {"billing": demo_company.billing.to_pandas(), "usage": usage}
    start = compute_customer_features(everything, window_start)
    end = compute_customer_features(everything, AS_OF)
    paying = start[(start["is_canceled"] == 0) & (start["mrr"] > 0)].set_index("customer_id")
    lost = paying["mrr"][end.set_index("customer_id")["is_canceled"].reindex(paying.index) == 1]
    assert result.churned["count"] == int((end["is_canceled"] == 1).sum()) > 0
    assert lost.sum() > 0
    assert result.churned["lost_mrr"] == pytest.approx(lost.sum())
    line = churned_text(result.churned, result.metrics.get("backtest_cohort"))
    assert f"churn per segment not measured: {reason}" in line
    took = f"those paying 90 days before who cancelled since took MRR of {lost.sum():,.2f} a month"
    assert took in line
    # in the currency its money is in, as the pages say it
    assert result.money_currency is not None
    named = churned_text(result.churned, result.metrics.get("backtest_cohort"), False, "USD")
    assert f"took MRR of {lost.sum():,.2f} USD a month" in named
    from models.business import NO_COHORT

    nobody = {**result.churned, "backtest_unmeasured": NO_COHORT}
    assert "nobody was paying" in churned_text(nobody, None)
    # a business with no cancellation at all reads 0% everywhere: said, with what it takes
    from models.business import NO_CANCELLATION

    assert NO_CANCELLATION not in line
    kept_everyone = {**result.churned, "count": 0, "lost_mrr": 0.0, "last_segment": {}}
    said = churned_text(kept_everyone, result.metrics.get("backtest_cohort"))
    assert said.endswith("\n" + NO_CANCELLATION)
    assert "subscription_canceled" in said
    # and where a product team reads it (the explorer, the report)
    from dataclasses import replace

    from models.summaries import churned_line

    model = registry.load_version(result.model_version)
    assert NO_CANCELLATION not in churned_line(model)
    nobody_left = replace(model.churned, count=0, lost_mrr=0.0, last_segment={})
    model.churned = nobody_left
    assert churned_line(model) == "No" + NO_CANCELLATION[2:] + "."
    model = registry.load_version(result.model_version)
    assert model.churned.backtest_unmeasured == reason
    from service.catalog import churned_public  # what GET /v1/segments answers beside them

    assert churned_public(model).backtest_unmeasured == reason


def test_billing_that_ends_long_before_the_date_is_not_read_as_zero_churn(demo_files, tmp_path):
    """Training accepts an as-of up to 90 days after the data. Cancellations after the last
    billing event are then unknown: the rates would read 0%, and say nothing is measured."""
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout
    from models.explainer import SegmentExplainer
    from models.families.kmeans import KMeansFamily
    from models.registry import ModelRegistry
    from models.summaries import churned_line
    from pipelines.cli.training import churned_text
    from pipelines.tracking import registry_config
    from pipelines.train import train

    layout = StoreLayout(tmp_path / "home")
    ingest_files(layout, {"billing": demo_files["billing"], "usage": demo_files["usage"]})
    late = AS_OF + timedelta(days=60)
    segmenter = CustomerSegmenter(
        n_resamples=2, candidates=[KMeansFamily().candidate(k) for k in (3, 4)], random_state=0
    )
    explainer = SegmentExplainer(leaf_ladder=(8,), n_folds=2, max_iter=60)
    registry = ModelRegistry(registry_config(layout, {}))
    result = train(layout, late, segmenter, registry, explainer=explainer)
    reason = result.churned["backtest_unmeasured"]
    assert reason.startswith("billing events end on ")
    assert "before the features' date" in reason
    assert all(segment["churn_rate"] is None for segment in result.segments)
    assert "backtest_cohort" not in result.metrics  # nor the cohort's overall churn
    assert result.churned["lost_mrr"] == 0.0
    assert churned_text(result.churned, None).endswith(f"not measured: {reason}")
    model = registry.load_version(result.model_version)
    assert churned_line(model).endswith(f"not measured: {reason}.")
    assert model.features_as_of == rfc3339(late)  # what the page says the data is as of
    assert model.money_currency == "USD"  # kept by the registry: "Money is in USD."


def _young_company(demo_company, first_paid_after, usage_delay: timedelta, folder):
    """The demo's customers who first paid after ``first_paid_after`` (so billing begins then),
    their usage from ``usage_delay`` after each one's first billing event, written to ``folder``."""
    billing = demo_company.billing.to_pandas()
    usage = demo_company.usage.to_pandas()
    first_paid = billing.groupby("customer_id")["occurred_at"].min()
    young = first_paid[first_paid > first_paid_after]
    billing = billing[billing["customer_id"].isin(young.index)]
    usage = usage[usage["customer_id"].isin(young.index)]
    usage = usage[usage["occurred_at"] >= usage["customer_id"].map(young) + usage_delay]
    files = {"billing": folder / "billing.parquet", "usage": folder / "usage.parquet"}
    billing.to_parquet(files["billing"], index=False)
    usage.to_parquet(files["usage"], index=False)
    return files, young.min(), usage["occurred_at"].min()


@pytest.mark.parametrize(
    ("usage_delay", "measured"),
    [(timedelta(0), True), (timedelta(days=8), False)],
    ids=["usage-with-billing", "usage-8-days-later"],
)
def test_a_young_company_is_measured_when_its_usage_began_with_its_billing(
    demo_company, tmp_path, usage_delay, measured
):
    """Billing from 120 days back: no usage existed before it, so usage that begins with it is
    complete; usage that begins more than a week after it is not."""
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout
    from pipelines.train import backtest_shortfall

    window_start = AS_OF - timedelta(days=90)
    files, first_billing, first_usage = _young_company(
        demo_company, AS_OF - timedelta(days=120), usage_delay, tmp_path
    )
    assert first_billing < window_start  # a cohort exists at the start
    layout = StoreLayout(tmp_path / "home")
    ingest_files(layout, files)
    reason = backtest_shortfall(layout, window_start)
    assert (reason is None) == measured
    if not measured:
        assert reason.startswith(f"usage events begin on {first_usage:%Y-%m-%d}")
        # the same day, however the window's start is written
        east = window_start.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
        assert backtest_shortfall(layout, east) == reason
        assert backtest_shortfall(layout, window_start.replace(tzinfo=UTC)) == reason


def test_usage_that_reaches_back_leaves_the_backtest_measured(demo_files, tmp_path):
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout
    from pipelines.train import backtest_shortfall

    layout = StoreLayout(tmp_path / "home")
    ingest_files(layout, {s: demo_files[s] for s in ("billing", "usage")})
    assert backtest_shortfall(layout, AS_OF - timedelta(days=90)) is None  # 14 months of usage


def test_the_usage_lookback_is_the_longest_window_a_usage_feature_reads():
    import re

    from feature_store.features import USAGE_LOOKBACK_DAYS
    from feature_store.registry import FEATURES

    windows = [
        int(match.group(1))
        for feature in FEATURES
        if feature.family == "behavioural" and (match := re.search(r"_(\d+)d$", feature.name))
    ]
    assert max(windows) == USAGE_LOOKBACK_DAYS


def test_the_train_table_says_why_a_segment_has_no_churn_rate():
    """`segments train` prints a rate with its interval, or why there is none: too few paying
    at the window's start (with the window), or no backtest at all."""
    from pipelines.cli.training import churn_text

    rate = {"rate": 0.041, "low": 0.026, "high": 0.063, "count": 12, "total": 290}
    assert churn_text({"cohort": 290, "churn": rate}) == "4.1% (2.6%-6.3%, 12 of 290)"
    assert churn_text({"cohort": 3, "churn": None, "window_days": 60}) == (
        "too few: would have held 3 paying then"
    )
    assert churn_text(None) == "not measured"


def test_the_train_table_gives_mrr_kept_beside_churn(trained):
    """Each row: the backtest's churn and the MRR its cohort kept, with its interval; a segment
    with no churn figure has no MRR kept either."""
    from rich.console import Console

    from pipelines.cli.training import retention_cell, segments_table

    model, _, _ = trained
    rows = [
        {
            "id": p,
            "name": profile.name,
            "size": profile.size,
            "mrr_share": profile.mrr_share,
            "backtest": backtest.as_dict(),
        }
        for p, (profile, backtest) in enumerate(zip(model.profiles, model.backtest, strict=True))
    ]
    console = Console(width=200, record=True)
    console.print(segments_table(rows))
    printed = console.export_text()
    assert "churn, 90-day backtest" in printed
    assert "MRR kept" in printed
    for row in rows:
        backtest = row["backtest"]
        if backtest["churn"] is None:
            assert retention_cell(backtest) == "-"
            continue
        low, high = backtest["net_mrr_retention_interval"]
        cell = f"{backtest['net_mrr_retention']:.0%} ({low:.0%}-{high:.0%})"
        assert retention_cell(backtest) == cell
        assert cell in printed
    assert retention_cell(None) == "-"


def test_features_whose_events_the_data_lacks_are_not_segmented_on(demo_company, tmp_path):
    """Billing with no paid invoice and no usage at all (a subscription export alone): the days
    since a last activity nobody had would be each customer's tenure, and a payment failure rate
    with no paid invoice is 100% for anyone who failed once. Neither is segmented on, named, or
    cited; the training output says which were left out and why."""
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout
    from feature_store.registry import SEGMENTED_FEATURE_NAMES, feature
    from models.explainer import SegmentExplainer
    from models.registry import ModelRegistry
    from pipelines.cli.training import left_out_text
    from pipelines.tracking import registry_config
    from pipelines.train import train

    billing = demo_company.billing.to_pandas()
    path = tmp_path / "billing.parquet"
    billing[billing["type"] != "invoice_paid"].to_parquet(path, index=False)
    layout = StoreLayout(tmp_path / "home")
    ingest_files(layout, {"billing": path})
    registry = ModelRegistry(registry_config(layout, {}))
    segmenter = CustomerSegmenter(random_state=0, n_resamples=2)
    explainer = SegmentExplainer(leaf_ladder=(8,), n_folds=2, max_iter=60)
    result = train(layout, AS_OF, segmenter, registry, explainer=explainer)

    behavioural = [n for n in SEGMENTED_FEATURE_NAMES if feature(n).family == "behavioural"]
    assert result.left_out == {
        "usage": behavioural,
        "invoice_paid": [n for n in SEGMENTED_FEATURE_NAMES if feature(n).needs == "invoice_paid"],
    }
    assert "payment_failure_rate_365d" in result.left_out["invoice_paid"]  # the rate, named
    left_out = {name for names in result.left_out.values() for name in names}
    model = registry.load_version(result.model_version)
    assert not left_out & set(model.feature_names)
    assert {"mrr", "seats", "tenure_days"} <= set(model.feature_names)
    phrases = {feature(n).above for n in left_out} | {feature(n).below for n in left_out}
    for profile in model.profiles:
        assert not set(profile.name.split(" · ")) & phrases, profile.name
    line = left_out_text(result.left_out)
    assert "no usage events before the date: not segmented on active_days_30d" in line
    assert (
        "no invoice_paid events before the date: not segmented on ltv, payment_overdue_days" in line
    )


def test_a_profile_stored_with_the_first_members_then_form_is_served(trained):
    """Models trained on 2026-12-06 stored members_then as one mapping with -1 for "not paying
    then"; the catalog serves each profile's own copy, which must read in today's form (a
    review found it would have failed validation, a 500, for such a champion)."""
    from models.registry import _profile
    from service.schemas.catalog import BacktestPublic

    model, _, _ = trained
    document = copy.deepcopy(model.profiles[0].as_dict())
    then = document["backtest"]["members_then"]
    old = {str(k): v for k, v in then["by_segment"].items()} | {"-1": then["not_paying_then"]}
    document["backtest"]["members_then"] = old
    served = BacktestPublic.model_validate(_profile(document).backtest)
    assert served.members_then.by_segment == then["by_segment"]
    assert served.members_then.not_paying_then == then["not_paying_then"]


def test_a_business_of_invoices_alone_reports_who_bought_again_per_segment(trained, tmp_path):
    """A retailer's export holds invoices and no subscription: nothing can churn, and every page
    said "not measured". Its question is who buys again: of the customers who had paid before
    the window's start, placed by their features then, the share whose payments grew within it,
    per segment with its 90% interval, in the run's table, the catalog, the cards, the chart
    and the report."""
    from models.charts import churn_figure, churn_heading
    from models.registry import load_model, save_model
    from models.report import render_report
    from models.summaries import segment_cards
    from pipelines.cli.training import segments_table
    from service.schemas.catalog import BacktestPublic

    model, start, end = trained
    model = copy.deepcopy(model)  # the fixture's model stays as trained for the other tests
    model.features_as_of = rfc3339(AS_OF)  # as training records it
    for profile in model.profiles:  # nobody holds MRR in a business of invoices alone
        profile.mrr_share = 0.0
    for metric in ("backtest_cohort", "backtest_churn_rate"):  # the fixture's subscriptions'
        model.metrics.pop(metric, None)
    start = start.assign(mrr=0.0, is_canceled=0)
    buyers = start[start["ltv"] > 0]
    # every third buyer pays again within the window, one refunds what it paid (no growth)
    again = set(buyers["customer_id"].iloc[::3])
    end = start.copy()
    end.loc[end["customer_id"].isin(again), "ltv"] += 25.0
    measure_business(model, start, end)

    assert model.metrics["backtest_buyers"] == len(buyers)
    assert model.metrics["backtest_repurchase_rate"] == pytest.approx(len(again) / len(buyers))
    assert model.churned.backtest_unmeasured.startswith("no customer holds a subscription")
    assert len(model.backtest) == len(model.profiles)
    assert sum(b.cohort for b in model.backtest) == len(buyers)
    measured = [b for b in model.backtest if b.repurchase is not None]
    assert measured
    assert all(b.cohort_kind == "buyers" and b.churn is None for b in model.backtest)
    assert all(b.repurchase.total == b.cohort for b in measured)
    assert all(b.repurchase.low <= b.repurchase.rate <= b.repurchase.high for b in measured)
    if len(measured) == len(model.backtest):
        assert sum(b.repurchase.count for b in measured) == len(again)
    # the catalog's document of each profile validates against the public schema
    for profile in model.profiles:
        public = BacktestPublic.model_validate(profile.backtest)
        assert public.cohort_kind == "buyers"
        assert profile.churn_rate is None

    cards = segment_cards(model)
    card = next(c for c in cards if c.repurchase_rate is not None)
    [figure] = card.backtest_figures
    assert figure.label == "Bought again"
    assert card.repurchase == figure.value
    # whom it counts, with its dates and the whole business beside it: the customers the
    # segment would have held at the window's start, not today's members
    backtest = model.backtest[card.position]
    assert card.backtest_basis.startswith(
        f"Customers like these 90 days ago: of the {backtest.cohort:,} who had bought by "
        "2026-04-01 and whom this segment would have held then, "
        f"{card.repurchase} paid again between 2026-04-02 and 2026-06-30; across all "
        f"segments, {card.repurchase_overall.removeprefix('all segments: ')} of {len(buyers):,}."
    )
    assert card.repurchase_overall == f"all segments: {len(again) / len(buyers):.0%}"
    assert (
        figure.meaning == "paid again between 2026-04-02 and 2026-06-30 (more paid than refunded)"
    )
    assert "no churn to measure" in card.backtest_cohort
    assert "not today's members" in card.backtest_cohort
    assert card.backtest_heading == "Customers like these 90 days ago (backtest)"
    assert all(b.members_then is not None for b in model.backtest)
    assert sum(b.members_then.total for b in model.backtest) == len(end)
    assert churn_heading(cards) == "Bought again by segment, 90-day backtest"
    chart = churn_figure(cards)
    assert chart is not None
    assert chart["data"][0]["x"] == [c.repurchase_rate for c in cards]
    assert "bought again within 90 days" in chart["layout"]["xaxis"]["title"]["text"]

    document = [
        {"id": p.segment_id, "name": p.name, "size": p.size, "mrr_share": 0.0,
         "ltv_share": p.share, "backtest": p.backtest}
        for p in model.profiles
    ]  # fmt: skip
    # nobody can cancel: said so, not "0 customers had cancelled", which a retailer read as
    # nobody lost beside a third of its customers dormant
    from models.summaries import churned_line
    from pipelines.cli.training import churned_text

    assert churned_line(model).startswith(
        "none can be counted, as no customer holds a subscription"
    )
    assert churned_text(model.churned.as_dict(), model.metrics.get("backtest_cohort")).startswith(
        "churned (not a segment): none can be counted"
    )
    assert churned_line(model).endswith(
        '"Bought again" says how many customers like its own came back.'
    )
    young = copy.deepcopy(model)  # a business too young for the backtest: no such clause
    young.metrics.pop("backtest_buyers")
    assert "Bought again" not in churned_line(young)
    table = segments_table(document)
    assert [c.header for c in table.columns][-1] == "bought again, 90-day backtest"
    assert "MRR kept" not in [c.header for c in table.columns]

    from pipelines.plots import business_panels  # the run's picture, in the same terms

    assert business_panels(model.profiles, tmp_path / "business.png").stat().st_size > 0
    html = render_report(model, "7")
    assert "Bought again, 90 days" in html
    assert "no churn; &#34;Bought again&#34;" in html or 'no churn; "Bought again"' in html

    loaded = load_model(tmp_path / "model", save_model(model, tmp_path / "model"))
    assert loaded.backtest == model.backtest

    # side by side (`segments compare`, the Compare page): revenue share and who bought again,
    # where a cohort of 894 buyers read "too few: would have held 894 paying then" and every
    # MRR share 0%
    from models.comparison import of_buyers, of_revenue, side_by_side, side_churn
    from models.summaries import percent
    from service.ui.views import _side

    rows = side_by_side(model, model)
    assert of_buyers(rows, "challenger")
    row = next(r for r in rows if r["challenger_repurchase_rate"] is not None)
    profile = next(p for p in model.profiles if p.segment_id == row["id"])
    rate = profile.backtest["repurchase"]["rate"]
    assert side_churn(row, "challenger") == f"{rate:.1%}"
    assert of_revenue(rows, "challenger")
    assert _side(row, "challenger", revenue=True)[2:] == [
        percent(profile.ltv_share), percent(rate),
    ]  # fmt: skip
    # judged per side: a subscription champion beside it keeps MRR share and churn
    subscriptions, _, _ = trained
    mixed = side_by_side(subscriptions, model)
    assert (of_buyers(mixed, "champion"), of_buyers(mixed, "challenger")) == (False, True)
    assert (of_revenue(mixed, "champion"), of_revenue(mixed, "challenger")) == (False, True)
    # a retailer too young for the buyers' backtest still reads revenue share, as its cards do
    young_rows = [
        {k: v for k, v in r.items() if not k.startswith("challenger_backtest")} for r in rows
    ]
    assert not of_buyers(young_rows, "challenger")
    assert of_revenue(young_rows, "challenger")
    kept = next(r for r in mixed if r.get("champion_churn_rate") is not None)
    assert side_churn(kept, "champion") == f"{kept['champion_churn_rate']:.1%}"
    # a comparison stored before the figure was recorded says so, not "too few" of 894
    stored = {k: v for k, v in row.items() if k != "challenger_repurchase_rate"}
    assert side_churn(stored, "challenger") == "not recorded: compare again"
