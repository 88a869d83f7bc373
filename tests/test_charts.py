"""The plain-words summaries, the figures and the report, on a hand-built model of two segments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.assignment import Contribution, Explanation, SegmentRef
from models.bundle import SegmentModel
from models.business import ChurnedCustomers, SegmentBacktest, rate
from models.charts import (
    ABOVE,
    AWAY,
    BELOW,
    TOWARDS,
    churn_figure,
    churn_heading,
    churned_figure,
    contrast_figure,
    figure_json,
    map_figure,
    project_2d,
    share_figure,
    waterfall_figure,
)
from models.lineage import Lineage, SegmentTransition
from models.population import LEVELS, PopulationQuantiles
from models.profiles import Distinction, SegmentProfile
from models.report import render_report
from models.summaries import (
    NOT_MEASURED,
    churned_line,
    contrasts,
    origin_text,
    percent,
    segment_cards,
    segment_ids,
    with_unit,
)

FEATURES = ["seats", "mrr", "is_annual"]
JARGON = ("standardised", "log-odds", "SHAP", "principal component")


def _profile(position: int, name: str, medians: dict[str, float], size: int) -> SegmentProfile:
    return SegmentProfile(
        segment_id=position,
        name=name,
        size=size,
        share=size / 100,
        mrr_total=0.0,
        mrr_mean=0.0,
        mrr_share=0.8 if position else 0.2,
        ltv_median=1234.5,
        tenure_median_days=300.0,
        churn_rate=0.0,
        mrr_lost_90d=0.0,
        outlier_share=0.0,
        distinguishing=[Distinction("seats", 2.0, 1.0, 0.0)],
        typical_ranges={n: [v * 0.5, v * 1.5] for n, v in medians.items()},
        medians=medians,
    )


def _population() -> PopulationQuantiles:
    """Seats: half the customers have 2 to 6, the rest 6 to 100 (median 6); MRR median 100."""
    levels = np.linspace(0, 1, LEVELS)
    seats = np.where(levels <= 0.5, 2 + 8 * levels, 6 + 188 * (levels - 0.5))
    return PopulationQuantiles(
        {
            "seats": seats.tolist(),
            "mrr": (200 * levels).tolist(),
            "is_annual": np.where(levels < 0.8, 0.0, 1.0).tolist(),
        }
    )


@pytest.fixture
def model() -> SegmentModel:
    profiles = [
        _profile(0, "Small teams", {"seats": 3.0, "mrr": 40.0, "is_annual": 0.0}, 80),
        _profile(1, "Large accounts", {"seats": 64.0, "mrr": 900.0, "is_annual": 1.0}, 20),
    ]
    return SegmentModel(None, FEATURES, profiles, population=_population())  # type: ignore[arg-type]


def test_a_segment_is_described_in_the_features_units_against_all_customers(model):
    seats, *_ = contrasts(model, 1)
    assert seats.feature == "seats"
    assert seats.distinguishing
    assert seats.text == "median 64 seats vs 6 overall"
    assert seats.versus_average == "more than average"
    by_name = {c.feature: c for c in contrasts(model, 0)}
    assert by_name["seats"].versus_average == "less than average"
    assert by_name["mrr"].text == "median 40.00 a month vs 100.00 overall"
    assert with_unit("seats", 1.0) == "1 seat"
    assert with_unit("seats", 1.5) == "1.5 seats"
    assert by_name["is_annual"].text == "mostly no vs mostly no overall"
    assert by_name["is_annual"].versus_average == "like most customers"
    # with the shares recorded, a flag reads in shares even where its medians differ (it read
    # "mostly yes vs mostly no overall" beside another segment's "0% vs 9%")
    model.profiles[0].positive_shares = {"is_annual": 0.0}
    model.profiles[1].positive_shares = {"is_annual": 1.0}
    annual = {c.feature: c for c in contrasts(model, 1)}["is_annual"]
    assert annual.text == "100% vs 20% overall"
    assert annual.versus_average == "more than average"


def test_a_feature_every_training_customer_holds_alike_is_not_a_row():
    """A model trained on active customers has ``is_canceled`` 0 for all of them: "mostly no vs
    mostly no overall" in every segment would say nothing about any of them."""
    features = [*FEATURES, "is_canceled"]
    population = _population()
    population.quantiles["is_canceled"] = [0.0] * LEVELS
    medians = {"seats": 3.0, "mrr": 40.0, "is_annual": 0.0, "is_canceled": 0.0}
    model = SegmentModel(None, features, [_profile(0, "All", medians, 100)], population=population)  # type: ignore[arg-type]
    shown = [c.feature for c in contrasts(model, 0)]
    assert "is_canceled" not in shown
    assert set(shown) == set(FEATURES)


def test_without_backtest_churn_is_not_measured_and_churned_customers_are_not_a_card(model):
    cards = segment_cards(model)
    assert [c.churn for c in cards] == [NOT_MEASURED, NOT_MEASURED]
    assert [c.id for c in cards] == [0, 1]
    assert churned_line(model) is None
    assert all(c.origin is None for c in cards)
    reason = "usage events begin on 2026-04-02, billing on 2024-08-11: ..."
    model.churned = ChurnedCustomers(4, 0.0, {}, 4)
    assert churned_line(model) == (  # nobody paying at the window's start: no 0.00 of MRR
        "4 customers had cancelled by the features' date; no customer was paying 90 days before "
        "it, so the MRR they took and churn per segment are not measured."
    )
    model.metrics["backtest_cohort"] = 40.0
    model.churned = ChurnedCustomers(4, 300.0, {}, 4, backtest_unmeasured=reason)
    assert churned_line(model) == (
        "4 customers had cancelled by the features' date; those paying 90 days before it who "
        f"cancelled since took MRR of 300.00 a month; churn per segment not measured: {reason}."
    )
    # each segment's section of the report says so under the window's heading, with the reason
    html = render_report(model, "3")
    assert html.count("<h3>The last 90 days (backtest)</h3>") == 2
    assert html.count(f"MRR kept not measured: {reason}.") == 2
    assert 'class="facts backtest"' not in html


def test_backtest_churned_and_lineage_are_shown_when_the_model_has_them(model):
    model.backtest = [
        SegmentBacktest(0, 80, rate(8, 80), rate(1, 80), rate(2, 80), 0.95, (0.9, 1.0)),
        SegmentBacktest(1, 5, None, None, None, None, None),
    ]
    model.churned = ChurnedCustomers(
        12, 3456.0, {0: 9, 1: 1}, 2, before_window=5, before_window_lost_mrr=789.0
    )
    model.lineage = Lineage(
        version="4",
        previous="3",
        ids=(7, 9),
        since=("2", "4"),
        transitions=(
            SegmentTransition(7, "survived", "Small teams", "2", jaccard=0.82, customers=80),
            SegmentTransition(9, "split", "Large accounts", "4", parents=(5,), customers=20),
        ),
        next_id=10,
    )
    small, large = segment_cards(model)
    assert (small.churn, small.churn_range) == ("10%", "5.7% to 17%")  # Wilson, z = 1.645
    assert (small.net_mrr_retention, small.net_mrr_retention_range) == ("95%", "90% to 100%")
    assert small.backtest_basis == (
        "Of the 80 paying customers it would have held 90 days ago: the share who cancelled "
        "since, and what they pay now against then (with 90% ranges)."
    )
    assert (large.churn_range, large.net_mrr_retention_range) == (None, None)
    assert (small.window_days, large.window_days) == (90, 90)
    assert (large.churn, large.net_mrr_retention) == ("not measured", "not measured")
    assert large.backtest_basis == (
        "Not measured: it would have held 5 paying customers 90 days ago, 10 needed."
    )
    assert segment_ids(model) == [7, 9]
    assert (small.id, large.id) == (7, 9)
    assert origin_text(model, 7) == "since version 2; continues from version 3, 82% overlap"
    assert origin_text(model, 9) == "since version 4; split from segment 5 of version 3"
    model.metrics["backtest_cohort"] = 85.0
    assert churned_line(model) == (
        "12 customers had cancelled by the features' date; those paying 90 days before it who "
        "cancelled since took MRR of 3,456.00 a month; the 5 who cancelled earlier paid 789.00 a "
        "month when last "
        "active; where they were when last active: 9 in Small teams (7), 1 in Large accounts (9)."
    )
    # the churned customers by their last segment, every segment and those not placed
    chart = churned_figure([small, large], model.churned)
    bars = chart["data"][0]
    assert bars["y"] == [
        "Small teams (7)",
        "Large accounts (9)",
        "not placed (no usage then, or not paying)",
    ]
    assert bars["x"] == [9, 1, 2]
    assert churned_figure([small, large], None) is None
    # every picture of churn names its window (issue 9)
    assert churn_heading([small, large]) == "Churn by segment, 90-day backtest"
    figure = churn_figure([small, large])
    axis = figure["layout"]["xaxis"]["title"]["text"]
    assert axis.startswith("Share cancelled within 90 days")
    # the unmeasured segment keeps its row: no bar, and the reason beside its name
    bars = figure["data"][0]
    assert bars["y"] == ["Small teams (7)", "Large accounts (9)"]
    assert bars["x"] == [small.churn_rate, None]
    assert bars["error_x"]["array"][1] is None
    [note] = figure["layout"]["annotations"]
    assert (note["y"], note["text"]) == (
        "Large accounts (9)",
        "not measured: it would have held 5 paying customers 90 days ago, 10 needed",
    )
    assert "null" in figure_json(figure)  # no NaN reaches the page
    # the hover reads as the card does (``percent``), its interval beside it
    assert bars["customdata"] == [
        f"{percent(small.churn_rate)} (90% interval {small.churn_range})",
        "",
    ]
    assert churn_figure([large]) is None
    assert churn_heading([large]) == "Churn by segment"
    # the axis reaches past the widest interval (17%), and spans at least 0 to 5%: a company with
    # no churn had ticks every 0.2% in whole percents ("0% 0% 0% 1% 1%")
    low, high = figure["layout"]["xaxis"]["range"]
    assert low == 0
    assert high == pytest.approx(1.1 * small.churn_interval[1])
    model.backtest = [SegmentBacktest(0, 80, rate(0, 80), rate(0, 80), rate(0, 80), 1.0, (1, 1))]
    calm = churn_figure(segment_cards(model)[:1])
    assert calm["layout"]["xaxis"]["range"] == [0, 0.05]


def test_the_contrast_chart_leans_right_for_more_and_draws_no_bar_for_like_everyone(model):
    figure = contrast_figure(contrasts(model, 1))
    bars = dict(zip(figure["data"][0]["y"], figure["data"][0]["x"], strict=True))
    assert bars["Licensed seats"] > 0
    small = contrast_figure(contrasts(model, 0))
    bars = dict(zip(small["data"][0]["y"], small["data"][0]["x"], strict=True))
    assert bars["Licensed seats"] < 0
    assert bars["On an annual plan"] == 0
    # more or less than average is neither good nor bad: not the green and red of for / against
    colours = dict(zip(small["data"][0]["y"], small["data"][0]["marker"]["color"], strict=True))
    assert colours["Licensed seats"] == BELOW
    assert {ABOVE, BELOW}.isdisjoint({TOWARDS, AWAY})


def test_the_contrast_chart_draws_shares_by_the_mean_rank_in_the_tables_order():
    """ "34% have any vs 8% overall" with both medians 0: the median's percentile (the share at
    0) drew it as average. Its customers' mean rank among all customers, reading the feature as
    any or none, stands 50 × (0.34 − 0.08) = 13 points above; a flag's share of yes likewise.
    Where only the means differ, a stub says the direction; bars in the table's order."""
    from models.summaries import Contrast

    def row(feature, percentile, direction, instead=None):
        return Contrast(feature, feature, 0.0, 0.0, 0.0, 1.0, percentile, direction, True, instead)

    rows = [
        row("failed_payments_90d", 46.0, "more", ("share", 0.34, 0.08)),
        row("api_share_30d", 31.0, "less", ("share", 0.36, 0.38)),
        row("expansions_365d", 40.0, "less"),
        row("seats", 90.0, "more"),
        row("is_annual", 40.0, "more", ("share", 1.0, 0.2)),
        row("usage_trend", 50.0, "less", ("mean", 0.8, 1.0)),
    ]
    bars = contrast_figure(rows)["data"][0]
    assert bars["y"] == [row.feature for row in rows]
    assert bars["x"] == pytest.approx([13.0, -1.0, -10.0, 40.0, 40.0, -1.0])


def _contribution(feature: str, value: float, amount: float) -> Contribution:
    return Contribution(
        feature=feature,
        value=value,
        contribution=amount,
        typical_range=[value, value],
        text="",
        direction="towards" if amount >= 0 else "away",
        description=feature.title(),
        standing="higher than 90% of customers",
    )


def test_the_waterfall_starts_at_an_average_customer_and_ends_at_this_one():
    contributions = [_contribution(f"f{i}", i, (-1) ** i * (10 - i)) for i in range(10)]
    explanation = Explanation(
        base_value=-1.0,
        output_value=-1.0 + sum(c.contribution for c in contributions),
        contributions=contributions,
    )
    (trace,) = waterfall_figure(explanation, "Large accounts", bars=4)["data"]
    assert trace["y"][0] == "An average customer"
    assert trace["y"][-1] == "This customer"
    assert trace["y"][-2] == "6 other features"
    assert trace["measure"] == ["absolute", *["relative"] * 5, "total"]
    assert sum(trace["x"][:-1]) == pytest.approx(explanation.output_value)
    assert trace["hovertext"][1] == "towards 'Large accounts'; higher than 90% of customers"
    assert trace["hovertext"][2] == "away from 'Large accounts'; higher than 90% of customers"
    # the contrast view asks "this segment rather than the runner-up", and every part says so
    contrast = explanation.model_copy(update={"versus": SegmentRef(id=3, name="Small teams")})
    figure = waterfall_figure(contrast, "Large accounts", bars=4)
    (trace,) = figure["data"]
    assert trace["hovertext"][1].startswith("towards 'Large accounts' rather than 'Small teams'")
    assert trace["hovertext"][2].startswith("towards 'Small teams' rather than 'Large accounts'")
    assert figure["layout"]["xaxis"]["title"]["text"] == (
        "← towards 'Small teams' · towards 'Large accounts' →"
    )


def test_the_waterfall_reads_values_as_the_list_beside_it_does():
    """A product manager's review: the bars read "Mrr: 49.00" and "0%" API share beside a list
    saying "49.00 EUR a month" and "no activity in the last 30 days"."""
    contributions = [_contribution("mrr", 49.0, 2.0), _contribution("api_share_30d", 0.0, -1.0)]
    explanation = Explanation(base_value=0.0, output_value=1.0, contributions=contributions)
    (trace,) = waterfall_figure(explanation, "Small teams", currency="EUR", events_30d=0)["data"]
    assert trace["y"][1:3] == [
        "Mrr: 49.00 EUR a month",
        "Api_Share_30D: no activity in the last 30 days",
    ]
    (active,) = waterfall_figure(explanation, "Small teams", currency="EUR", events_30d=12)["data"]
    assert active["y"][2] == "Api_Share_30D: 0%"


def test_the_share_charts_hover_rounds_as_the_cards_do(model):
    """ "0% share of mrr" on hover beside a card's 0.3% (a product manager's review)."""
    cards = segment_cards(model)
    cards[0] = type(cards[0])(**{**cards[0].__dict__, "share": 0.0912, "money_share": 0.003})
    customers, money = share_figure(cards)["data"]
    assert (customers["customdata"][0], money["customdata"][0]) == ("9.1%", "0.3%")
    assert money["hovertemplate"] == "%{y}: %{customdata} of MRR<extra></extra>"


def test_figures_embed_safely_and_speak_plainly(model):
    cards = segment_cards(model)
    cards[0] = type(cards[0])(**{**cards[0].__dict__, "name": "</script><b>"})
    text = figure_json(share_figure(cards))
    assert "</script>" not in text
    assert json.loads(text)["data"][0]["y"][0].startswith("</script>")
    for figure in (share_figure(cards), contrast_figure(contrasts(model, 1))):
        assert not any(word in json.dumps(figure) for word in JARGON)
    assert json.loads(figure_json({"data": [{"x": [float("nan")]}]}))["data"][0]["x"] == [None]


def test_the_map_keeps_the_main_direction_and_samples_large_sets():
    rng = np.random.default_rng(0)
    t = rng.normal(size=300)
    matrix = np.column_stack([t, 2 * t, rng.normal(scale=0.01, size=300)])
    points = project_2d(matrix, (t > 0).astype(int), [f"c{i}" for i in range(300)])
    assert abs(np.corrcoef(points.x, t)[0, 1]) > 0.99
    figure = map_figure(points, ["Low", "High"], [0, 1], max_points=100)
    assert sum(len(trace["x"]) for trace in figure["data"]) == 100
    assert figure["data"][1]["hovertext"][0].endswith("· High (1)")
    # a customer id is shown as written: Plotly drew <span style> and <a href> in hover text
    marked = project_2d(matrix[:2], np.array([0, 0]), ['<a href="https://x.example">c</a>', "c&d"])
    hover = map_figure(marked, ["Low"], [0])["data"][0]["hovertext"]
    assert hover == ['&lt;a href="https://x.example"&gt;c&lt;/a&gt; · Low (0)', "c&amp;d · Low (0)"]


def test_the_report_is_one_offline_file_with_cards_and_charts(model):
    html = render_report(model, "3")
    assert html.count('class="card"') == 2
    assert "median 64 seats vs 6 overall" in html
    assert "Plotly" in html
    assert "<script src=" not in html
    assert '<link rel="stylesheet"' not in html
    assert not any(word in html.split("<script>")[0] for word in JARGON)


def test_a_report_of_a_selection_or_of_a_version_not_served_says_so(model):
    """A report of an enterprise-only challenger read "Share of MRR is the part of all monthly
    recurring revenue" and named neither the selection nor that it was not served."""
    from dataclasses import replace

    from models.business import ChurnedCustomers

    plain = render_report(model, "3", served="3")
    assert 'id="not-served"' not in plain
    assert 'id="selection"' not in plain
    churned = ChurnedCustomers(0, 0.0, {}, 0, selection="plan in enterprise")
    selected = render_report(replace(model, churned=churned), "4", served="1")
    assert "Version 4 is not the model the service answers with (that is version 1)" in selected
    assert "Segments of a selection of customers (plan in enterprise)" in selected
    from html import unescape

    assert "the selection's monthly recurring revenue" in " ".join(unescape(selected).split())


def test_the_report_says_which_currency_money_is_in(model):
    from dataclasses import replace

    from feature_store.currency import CurrencyLevels

    assert 'id="currency"' not in render_report(model, "3")  # an older model: not recorded
    one = render_report(replace(model, money_currency="EUR"), "3")
    assert '<p class="lede" id="currency">Money is in EUR.</p>' in one
    levels = CurrencyLevels("USD", {"USD": 1.0, "INR": 35.0}, (), {"USD": 40, "INR": 20})
    html = render_report(replace(model, currency=levels), "3")
    assert (
        '<p class="lede" id="currency">Customers pay in 2 currencies (USD 40, INR 20); money in '
        "USD: INR 35 per USD (price levels estimated from the median price per seat).</p>"
    ) in html


def test_where_the_medians_read_the_same_the_share_with_any_or_the_mean_tells_them_apart():
    """'median 0 vs 0 overall' said nothing on a card: upgrades are rare in every segment, and
    what sets one apart is how many of its customers have any."""
    names = ["expansions_365d", "mrr", "mrr_growth_90d", "is_annual"]
    medians = dict.fromkeys(names, 0.0) | {"mrr": 100.0}
    rare = _profile(0, "Rarely upgrading", medians, 75)
    often = _profile(1, "Upgrading", medians, 25)
    rare.positive_shares = {"expansions_365d": 0.04, "mrr_growth_90d": 0.01, "is_annual": 0.04}
    often.positive_shares = {"expansions_365d": 0.4, "mrr_growth_90d": 0.2, "is_annual": 0.4}
    rare.means = {"mrr": 70.0, "mrr_growth_90d": -20.0, "expansions_365d": 0.05}
    often.means = {"mrr": 190.0, "mrr_growth_90d": 4.0, "expansions_365d": 0.6}
    grid = np.linspace(0, 1, LEVELS)
    flag = np.where(grid < 0.87, 0.0, 1.0).tolist()
    population = PopulationQuantiles(
        {"expansions_365d": flag, "mrr": (200 * grid).tolist(), "is_annual": flag}
        | {"mrr_growth_90d": (100 * grid - 50).tolist()}
    )
    model = SegmentModel(None, names, [rare, often], population=population)  # type: ignore[arg-type]
    by_name = {c.feature: c for c in contrasts(model, 0)}
    assert by_name["expansions_365d"].text == "4% have any vs 13% overall"  # 0.75*4% + 0.25*40%
    assert by_name["expansions_365d"].versus_average == "less than average"
    assert by_name["mrr"].text == "on average 70.00 a month vs 100.00 on average overall"
    assert by_name["mrr"].versus_average == "less than average"
    # a mean a hair from everyone's is no difference: "on average 212.61 days vs 211.81" read
    # "more than average" (a product manager's review); here under a fifth of MRR's spread
    rare.means["mrr"], often.means["mrr"] = 99.0, 103.0
    close = {c.feature: c for c in contrasts(model, 0)}["mrr"]
    assert close.text == "on average 99.00 a month vs 100.00 on average overall"
    assert close.versus_average == "like most customers"
    rare.means["mrr"], often.means["mrr"] = 70.0, 190.0
    # A signed feature: "have any" would count rises only; the mean says it (a fall, here).
    assert (
        by_name["mrr_growth_90d"].text == "on average -20.00 a month vs -14.00 on average overall"
    )
    assert by_name["mrr_growth_90d"].versus_average == "less than average"
    assert by_name["is_annual"].text == "4% vs 13% overall"  # a flag: the share of yes
    upgrading = {c.feature: c for c in contrasts(model, 1)}
    assert upgrading["expansions_365d"].text == "40% have any vs 13% overall"
    assert upgrading["expansions_365d"].versus_average == "more than average"
    # A model profiled before these figures existed reads as it did.
    for profile in (rare, often):
        profile.positive_shares, profile.means = {}, {}
    by_name = {c.feature: c for c in contrasts(model, 0)}
    assert by_name["expansions_365d"].text == "median 0 vs 0 overall"
    assert by_name["expansions_365d"].versus_average == "like most customers"


def test_a_median_that_reads_as_zero_has_no_direction_and_is_told_by_who_has_any():
    """A retailer's segment read "Share of last year's payments refunded: median 0% vs 0%
    overall, more than average": its median was 0.34%, everyone's 0. Medians that read the same
    have no direction, and a median that reads as 0 is told by who has any, as one that is 0."""
    names = ["refund_rate_365d", "mrr"]
    some = _profile(0, "Some refunds", {"refund_rate_365d": 0.0034, "mrr": 100.0}, 50)
    none = _profile(1, "No refunds", {"refund_rate_365d": 0.0, "mrr": 100.0}, 50)
    some.positive_shares = {"refund_rate_365d": 0.52}
    none.positive_shares = {"refund_rate_365d": 0.02}
    grid = np.linspace(0, 1, LEVELS)
    population = PopulationQuantiles(
        {"refund_rate_365d": np.where(grid < 0.7, 0.0, 0.01).tolist(), "mrr": (200 * grid).tolist()}
    )
    model = SegmentModel(None, names, [some, none], population=population)  # type: ignore[arg-type]
    refunds = {c.feature: c for c in contrasts(model, 0)}["refund_rate_365d"]
    assert refunds.text == "52% have any vs 27% overall"
    assert refunds.versus_average == "more than average"
    some.positive_shares = {}  # a model profiled before the shares: no direction claimed
    none.positive_shares = {}
    refunds = {c.feature: c for c in contrasts(model, 0)}["refund_rate_365d"]
    assert refunds.text == "median 0% vs 0% overall"
    assert refunds.versus_average == "like most customers"


def test_a_trained_at_time_reads_to_the_minute_in_utc():
    from feature_store.timeutil import moment_text

    assert moment_text("2026-12-06T08:57:22+00:00") == "2026-12-06 08:57 UTC"
    assert moment_text("2026-12-06T10:57:22+02:00") == "2026-12-06 08:57 UTC"
    assert moment_text("not a time") == "not a time"
    from feature_store.timeutil import stamp_text  # the API's spelling of a stored stamp

    assert stamp_text("2026-12-06T10:57:22+02:00") == "2026-12-06T08:57:22Z"
    assert stamp_text("2026-12-06T08:57:22Z") == "2026-12-06T08:57:22Z"
    assert (stamp_text("not a time"), stamp_text(None)) == ("not a time", None)


def test_a_median_near_the_middle_of_all_customers_is_like_most_customers():
    """ "Price per seat: 21.63 vs 21.68 overall" read "less than average"; a median that stands
    within 5 percentile points of the middle is like most customers."""
    from models.population import Standing
    from models.summaries import _near_the_middle

    assert _near_the_middle(Standing(below=0.48, same=0.02, above=0.50))  # the 49th percentile
    assert not _near_the_middle(Standing(below=0.40, same=0.02, above=0.58))  # the 41st
    assert not _near_the_middle(None)


def test_a_cards_median_ltv_reads_in_whole_units_from_a_thousand(model):
    """ "Median LTV 126,479.88": cents on a headline figure."""
    from dataclasses import replace

    [card, *_] = segment_cards(model)
    assert replace(card, ltv_median=126479.88).ltv_text == "126,480"
    assert replace(card, ltv_median=812.5).ltv_text == "812.50"
    # in its currency, where the model records one: no unit on any page but the overview
    assert replace(card, ltv_median=126479.88, currency="USD").ltv_text == "126,480 USD"
    assert replace(card, mrr_lost_90d=18577.09, currency="USD").mrr_lost_text == (
        "18,577 USD a month"
    )


def test_money_in_a_profile_names_its_currency_and_mrr_its_month():
    """ "Lifetime revenue: median 331.24 vs 647.74 overall" on a page whose cards said GBP: money
    now says its currency wherever a model records one, and MRR that it is a month's."""
    from models.summaries import with_unit

    assert with_unit("ltv", 331.24, "GBP") == "331.24 GBP"
    assert with_unit("mrr", 839.06, "USD") == "839.06 USD a month"
    assert with_unit("mrr", 839.06) == "839.06 a month"
    assert with_unit("seats", 64, "USD") == "64 seats"
    assert with_unit("seats", 1) == "1 seat"


def test_the_migration_names_segments_by_id_clear_of_the_flows_and_in_full_on_hover():
    from models.charts import migration_figure

    figure = migration_figure(
        {"0": {"0": 50, "2": 5}, "1": {"1": 40}}, {"0": "Dormant", "1": "Solo accounts"},
        {"0": "Dormant", "1": "Solo accounts", "2": "Heavy API use"},
    )  # fmt: skip
    (sankey,) = figure["data"]
    assert sankey["node"]["label"] == ["0", "1", "0", "1", "2"]  # short: flows cross no names
    assert sankey["node"]["customdata"][4] == "2: Heavy API use"
    assert "0: Dormant → 2: Heavy API use" in sankey["link"]["customdata"]


def _lab(hex_colour: str) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB colour, for distances a reader perceives (CIE76)."""
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    rgb = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    x, y, z = (xyz @ rgb) / np.array([0.95047, 1.0, 1.08883])
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z)]
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_neighbouring_segment_ids_differ_in_hue():
    """A model's segments are ids 0 to k - 1, so neighbouring ids are drawn together: up to nine
    segments, each colour's hue is at least 30 degrees from the next one's (ids 6 and 7 were
    rose and wine, 19 degrees apart, which a product team could not tell apart as map dots)."""
    from models.charts import PALETTE, colour

    assert len(set(PALETTE)) == len(PALETTE)
    for first in range(8):
        hues = [np.degrees(np.arctan2(*_lab(colour(i))[[2, 1]])) for i in (first, first + 1)]
        apart = abs(hues[0] - hues[1]) % 360
        assert min(apart, 360 - apart) >= 30, (first, first + 1)


def test_with_no_mrr_anywhere_the_money_share_is_of_revenue_to_date(model):
    """A retailer's invoices make no MRR: every segment read "0% of MRR" on the cards, the chart
    and the report. With none anywhere, the share shown is of revenue to date (lifetime value)."""
    from dataclasses import replace

    assert [c.money for c in segment_cards(model)] == ["MRR", "MRR"]  # some MRR: as before
    invoices = SegmentModel(
        None,  # type: ignore[arg-type]
        FEATURES,
        [
            replace(p, mrr_share=0.0, ltv_share=share)
            for p, share in zip(model.profiles, (0.3, 0.7), strict=True)
        ],
        population=_population(),
    )
    cards = segment_cards(invoices)
    assert [(c.money, c.money_share) for c in cards] == [
        ("revenue to date", 0.3),
        ("revenue to date", 0.7),
    ]
    figure = share_figure(cards)
    assert figure["data"][1]["name"] == "Share of revenue to date"
    assert figure["data"][1]["x"] == [0.3, 0.7]
    assert "of revenue to date" in render_report(invoices, "3")


def test_the_report_says_when_segments_are_weakly_separated(model):
    """At most 0.25 of silhouette is "no substantial structure": said in words beside the
    segments, where a product analyst read two halves of one gradient as two kinds of customer."""
    from dataclasses import replace

    strong = replace(model, metrics={**model.metrics, "silhouette": 0.42})
    assert 'id="structure"' not in render_report(strong, "3")
    weak = render_report(replace(model, metrics={**model.metrics, "silhouette": 0.214}), "3")
    assert '<p class="lede" id="structure">The segments are weakly separated' in weak
    assert "slices of it rather than distinct kinds of customer" in weak


def test_shares_a_few_points_apart_are_like_most_customers():
    """ "Share of last year's payments refunded: 23% have any vs 22% overall, more than average"
    and "On an annual plan: 53% vs 49%, more than average" (a product manager's walkthrough):
    shares claim a direction from Cohen's small effect on, in odds (an odds ratio of 1.44)."""
    from models.summaries import _shares_differ

    assert not _shares_differ(0.23, 0.22)
    assert not _shares_differ(0.53, 0.49)
    assert not _shares_differ(0.46, 0.49)
    assert _shares_differ(0.04, 0.13)  # a rare trait at a third of its usual rate
    assert _shares_differ(0.84, 0.21)
    assert _shares_differ(0.0, 0.02)  # none where some have it: a share of 0 has odds too
    names = ["is_annual", "mrr"]
    grid = np.linspace(0, 1, LEVELS)
    population = PopulationQuantiles(
        {"is_annual": np.where(grid < 0.5, 0.0, 1.0).tolist(), "mrr": (200 * grid).tolist()}
    )
    a = _profile(0, "A", {"is_annual": 1.0, "mrr": 100.0}, 50)
    b = _profile(1, "B", {"is_annual": 0.0, "mrr": 100.0}, 50)
    a.positive_shares, b.positive_shares = {"is_annual": 0.53}, {"is_annual": 0.45}
    model = SegmentModel(None, names, [a, b], population=population)  # type: ignore[arg-type]
    annual = {c.feature: c for c in contrasts(model, 0)}["is_annual"]
    assert annual.text == "53% vs 49% overall"
    assert annual.versus_average == "like most customers"
    assert annual.offset == 0.0


def test_the_shares_are_drawn_in_colours_no_segment_has(model):
    """The share bars were drawn in segments 3's and 0's colours (a product manager's review)."""
    from models.charts import PALETTE

    customers, money = share_figure(segment_cards(model))["data"]
    assert {customers["marker"]["color"], money["marker"]["color"]}.isdisjoint(PALETTE)
