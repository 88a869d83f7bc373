"""Segment profiles: what sets a segment apart, in numbers a person can trust."""

from __future__ import annotations

import numpy as np
import pytest

from models.profiles import distinctions


def test_a_flag_that_splits_segments_exactly_has_a_finite_effect():
    Z = np.array([[0.0, 1], [0, 2], [1, 1.5], [1, 2.5]])
    [flag, other] = distinctions(Z, ["flag", "x"], np.array([False, False, True, True]))
    assert flag.feature == "flag"
    assert flag.effect == pytest.approx(20.0)  # 1 / (0.1 * std 0.5)
    assert abs(other.effect) < 2


def test_business_panels_draw_every_segment_even_without_revenue(tmp_path):
    from PIL import Image

    from models.profiles import SegmentProfile
    from pipelines.plots import business_panels

    # Generic data has no MRR, churn or LTV: every bar is zero and the picture is still drawn.
    profiles = [
        SegmentProfile(i, f"segment {i}", 10 * (i + 1), 0.5, 0, 0, 0, 0, 0, 0, 0, 0)
        for i in range(2)
    ]
    out = business_panels(profiles, tmp_path / "business.png")
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size[0] > image.size[1]  # one row of panels


def test_the_business_pictures_churn_carries_its_interval_or_why_it_has_none():
    """The run's picture said "not measured" beside a segment of too few customers, with no
    interval beside a measured one (an analyst's audit): the pages and `segments train` said
    both."""
    from dataclasses import replace

    from models.profiles import SegmentProfile
    from pipelines.plots import churn_label

    base = SegmentProfile(0, "segment 0", 100, 0.5, 0, 0, 0, 0, 0, 0, 0, 0)
    measured = replace(
        base,
        churn_rate=0.068,
        backtest={
            "cohort": 290,
            "churn": {"rate": 0.068, "low": 0.052, "high": 0.087, "count": 20, "total": 290},
        },
    )
    # rounded as the pages round a share (``models.summaries.percent``): the picture said 14.2%
    # beside the cards' 14% (a product manager's review)
    assert churn_label(measured) == "6.8% (5.2% to 8.7%)"
    assert churn_label(replace(measured, backtest={"churn": {"rate": 0.142, "low": 0.117,
                                                             "high": 0.172}})) == (
        "14% (12% to 17%)"
    )  # fmt: skip
    too_few = replace(base, churn_rate=None, backtest={"cohort": 3, "churn": None})
    assert churn_label(too_few) == "too few: would have held 3 paying then"
    assert churn_label(replace(base, churn_rate=None, backtest=None)) == "not measured"


def test_the_business_picture_says_what_it_shows_and_keeps_its_labels_inside():
    """Passed on alone, the picture named no model, date or population, its share axes read
    "0, 40, 80" with no unit, and a churn label with its interval ran into the next panel (a
    product manager's review)."""
    from models.profiles import SegmentProfile
    from pipelines.plots import business_figure

    churn = {"rate": 0.142, "low": 0.117, "high": 0.172, "count": 20, "total": 141}
    # a name as long as real ones: the panels narrow beside it
    long = "Annual plans · Heavy API use · Premium price per seat"
    low = {"rate": 0.003, "low": 0.001, "high": 0.009, "count": 1, "total": 300}
    profiles = [
        SegmentProfile(0, "Large accounts", 900, 0.75, 9e5, 1000.0, 0.8, 3000.0, 400, 0.142,
                       0, 0, backtest={"cohort": 141, "churn": churn}),
        SegmentProfile(1, "Small teams", 300, 0.25, 2e5, 667.0, 0.2, 200.0, 100, None, 0, 0,
                       backtest={"cohort": 3, "churn": None}),
        *(SegmentProfile(2 + i, long, 300, 0.1, 1e5, 300.0, 0.1, 900.0, 100, 0.003, 0, 0,
                         backtest={"cohort": 300, "churn": low}) for i in range(4)),
    ]  # fmt: skip
    figure = business_figure(profiles, "USD", "model version 3 · as of 2026-06-30 · 1,200 active")
    assert "model version 3" in figure.get_suptitle()
    renderer = figure.canvas.get_renderer()
    for axis in figure.axes:
        high = axis.get_xlim()[1]
        for text in axis.texts:
            end = axis.transData.inverted().transform(text.get_window_extent(renderer))[1][0]
            assert end <= high, (axis.get_title(), text.get_text())
    shares = figure.axes[1].xaxis.get_major_formatter()
    assert shares(0.4, 0).endswith("%")
    assert [t.get_text() for t in figure.axes[2].texts][:3] == [
        "14% (12% to 17%)",
        "too few: would have held 3 paying then",
        "0.3% (0.1% to 0.9%)",
    ]


def test_a_median_is_a_value_some_customer_holds():
    """ "median 169.5 seats" read as half a seat; the lower median is what the population's
    quantile grid holds too, so "vs 6 overall" compares like with like."""
    import pandas as pd

    from models.profiles import held_median

    assert held_median(pd.Series([169, 170])) == 169
    assert held_median(pd.Series([3, 10, 12])) == 10
    assert np.isnan(held_median(pd.Series([], dtype=float)))
