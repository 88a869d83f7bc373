"""An independent 0/1 column must not create segments: the other features have to agree.

The company is the tests' own generated one; the flag is drawn at random, independent of persona,
like an annual-plan flag or a country dummy that says nothing about behaviour.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import somersd
from sklearn.metrics import adjusted_rand_score

from feature_store.features import compute_customer_features
from feature_store.registry import FEATURE_NAMES
from feature_store.timeutil import parse_as_of
from models.preprocessing import FeaturePreprocessor, somers_d
from models.segmenter import CustomerSegmenter


@pytest.fixture(scope="module")
def active_features(demo_company):
    events = {"billing": demo_company.billing.to_pandas(), "usage": demo_company.usage.to_pandas()}
    features = compute_customer_features(events, parse_as_of("2026-06-30"))
    active = features[features["is_canceled"] == 0].reset_index(drop=True)
    return active[[name for name in FEATURE_NAMES if name != "is_canceled"]]


def with_random_flags(features, seed: int):
    rng = np.random.default_rng(seed)
    return features.assign(
        random_flag=(rng.random(len(features)) < 0.3).astype(float),
        random_country_dummy=(rng.random(len(features)) < 0.5).astype(float),
    )


def test_independent_flags_leave_the_segments_unchanged(active_features):
    plain = CustomerSegmenter(random_state=0).fit(active_features)
    flagged = CustomerSegmenter(random_state=0).fit(with_random_flags(active_features, seed=1))
    assert adjusted_rand_score(plain.labels_, flagged.labels_) >= 0.95
    weights = dict(
        zip(
            flagged.preprocessor_.feature_names_in_,
            flagged.preprocessor_.weights_,
            strict=True,
        )
    )
    assert weights["random_flag"] < 0.3
    assert weights["random_country_dummy"] < 0.3


def test_without_agreement_weights_the_same_flags_split_segments(active_features):
    """The mechanism is what holds the segments: range scaling alone lets the flags split them."""
    flagged = with_random_flags(active_features, seed=1)
    plain = CustomerSegmenter(random_state=0, weighting="none").fit(active_features)
    split = CustomerSegmenter(random_state=0, weighting="none").fit(flagged)
    assert adjusted_rand_score(plain.labels_, split.labels_) < 0.95


def test_somers_d_matches_scipy_and_its_null_spread():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, 400).astype(float)
    y = np.round(x + rng.normal(size=400), 1)  # ties on both sides
    d, _ = somers_d(x, y)
    assert d == pytest.approx(somersd(x, y).statistic)
    flag = (rng.random((200, 1000)) < 0.1).astype(float)
    null = [somers_d(f, rng.random(1000)) for f in flag]
    spread = np.std([d for d, _ in null])
    assert np.mean([se for _, se in null]) == pytest.approx(spread, rel=0.2)


def test_a_rare_flag_the_other_columns_back_keeps_its_weight():
    """Like a complaints flag: set for most customers of one group and a few elsewhere. The other
    columns tell its customers apart about as well as they tell their own values apart, so it
    weighs as a feature; an independent flag of the same rarity weighs next to nothing."""
    rng = np.random.default_rng(3)
    group = rng.random(2000) < 0.1
    dense = rng.normal(size=(2000, 4)) + 3.0 * group[:, None]
    backed = np.where(group, rng.random(2000) < 0.7, rng.random(2000) < 0.02)
    independent = rng.random(2000) < backed.mean()
    X = pd.DataFrame(dense, columns=list("abcd")).assign(
        backed=backed.astype(float), independent=independent.astype(float)
    )
    weights = dict(zip(X.columns, FeaturePreprocessor().fit(X).weights_, strict=True))
    assert weights["backed"] == 1.0
    assert weights["independent"] < 0.2


def test_a_flag_weight_moves_with_its_agreement_without_jumps():
    """0 within two standard errors of an independent column's D, 1 within two of the typical
    column's, linear in between: a change in D inside its noise moves the weight little."""
    from models.preprocessing import AGREEMENT_NOISE_Z, agreement_weight

    noise, typical = 0.04, 0.85
    low, high = AGREEMENT_NOISE_Z * noise, typical - AGREEMENT_NOISE_Z * noise
    assert agreement_weight(0.0, noise, typical) == 0.0
    assert agreement_weight(low, noise, typical) == 0.0
    assert agreement_weight(high, noise, typical) == 1.0
    assert agreement_weight(0.95, noise, typical) == 1.0
    assert agreement_weight((low + high) / 2, noise, typical) == pytest.approx(0.5)
    grid = np.linspace(-0.1, 1.0, 1101)
    weights = np.array([agreement_weight(d, noise, typical) for d in grid])
    assert (np.diff(weights) >= 0).all()
    # no step larger than the slope allows: 0.001 of D moves the weight by at most 0.001 / 0.69
    assert np.abs(np.diff(weights)).max() <= 0.001 / (high - low) + 1e-9
    # bands that overlap (noise a quarter of the typical D or more): 0 or 1, nothing between
    assert agreement_weight(0.2, 0.1, 0.3) == 0.0
    assert agreement_weight(0.21, 0.1, 0.3) == 1.0


def _billed_company(annual_marks_persona: bool, seed: int = 0) -> pd.DataFrame:
    """Three personas that differ in billing and in usage. An annual plan is either drawn at
    random or held by the whole third persona. Either way, billing columns follow the cadence as
    invoicing makes them: a year paid up front raises lifetime value, and one charge a year makes
    the refund rate coarse (refunded or not)."""
    rng = np.random.default_rng(seed)
    n = 1500
    persona = rng.integers(0, 3, n)
    annual = (persona == 2) if annual_marks_persona else rng.random(n) < 0.35
    mrr = np.array([30.0, 300.0, 900.0])[persona] * rng.lognormal(0, 0.3, n)
    charges = np.where(annual, 1, 12)
    refunds = rng.binomial(charges, 0.1)
    return pd.DataFrame(
        {
            "mrr": mrr,
            "seats": np.array([2, 10, 40])[persona] + rng.integers(0, 3, n),
            "is_annual": annual.astype(float),
            "ltv": mrr * np.where(annual, 12, rng.integers(1, 13, n)),
            "refund_rate_365d": refunds / charges,
            "events_30d": np.array([50.0, 400.0, 2000.0])[persona] * rng.lognormal(0, 0.3, n),
            "active_days_30d": np.clip(np.array([5, 15, 25])[persona] + rng.normal(0, 3, n), 0, 30),
            "active_users_30d": np.array([1, 6, 30])[persona] + rng.integers(0, 3, n),
        }
    )


def _annual_weight(frame: pd.DataFrame, sources) -> float:
    preprocessor = FeaturePreprocessor(sources=sources).fit(frame)
    return float(dict(zip(frame.columns, preprocessor.weights_, strict=True))["is_annual"])


def test_billing_columns_that_follow_the_cadence_do_not_vouch_for_a_random_annual_flag():
    """Judged on every other column, the billing columns the cadence shapes lend a random annual
    flag weight; judged on usage (the other source), it has none. An annual plan that marks a
    persona is backed by that persona's usage and keeps its weight."""
    random_plan = _billed_company(annual_marks_persona=False)
    assert _annual_weight(random_plan, sources=None) > 0.3  # the leak, measured the old way
    assert _annual_weight(random_plan, sources="registry") < 0.1
    persona_plan = _billed_company(annual_marks_persona=True)
    assert _annual_weight(persona_plan, sources="registry") == 1.0


def test_sources_are_the_registry_families_or_named():
    frame = _billed_company(annual_marks_persona=False).assign(custom=1.0)
    frame.loc[::2, "custom"] = 0.0
    assert FeaturePreprocessor().sources is None  # off by default: docs/segmentation.md
    registry = FeaturePreprocessor(sources="registry")._sources_of(frame.columns)
    assert list(registry) == ["value"] * 5 + ["behavioural"] * 3 + [None]
    named = FeaturePreprocessor(sources={"custom": "crm"})._sources_of(frame.columns)
    assert list(named) == [None] * 8 + ["crm"]
    for wrong in ("families", 3, ["value"]):
        with pytest.raises(ValueError, match="sources must be None, 'registry' or a mapping"):
            FeaturePreprocessor(sources=wrong).fit(frame)
    with pytest.raises(ValueError, match=r"columns the data does not have: \['is_anual'\]"):
        FeaturePreprocessor(sources={"is_anual": "value"}).fit(frame)


def test_a_named_mapping_reaches_the_preprocessor_through_the_segmenter():
    """The same judgement from a mapping as from the registry, through ``CustomerSegmenter``;
    a flag whose source is the only one present falls back to all the other columns."""
    frame = _billed_company(annual_marks_persona=False)
    usage = {"events_30d", "active_days_30d", "active_users_30d"}
    mapping = {name: "usage" if name in usage else "billing" for name in frame.columns}
    segmenter = CustomerSegmenter(sources=mapping, n_resamples=2).fit(frame)
    weights = dict(zip(frame.columns, segmenter.preprocessor_.weights_, strict=True))
    assert weights["is_annual"] < 0.1
    one_source = {name: "billing" for name in frame.columns}
    assert _annual_weight(frame, one_source) == _annual_weight(frame, None)


def test_a_model_pickled_before_sources_existed_loads_with_the_rule_it_was_fitted_by():
    segmenter = CustomerSegmenter(n_resamples=2).fit(_billed_company(annual_marks_persona=True))
    for estimator in (segmenter, segmenter.preprocessor_):
        state = estimator.__getstate__()
        del state["sources"]
        restored = type(estimator).__new__(type(estimator))
        restored.__setstate__(state)
        assert restored.get_params()["sources"] is None


def test_a_count_of_a_few_values_is_not_clipped_into_a_flag():
    """Downgrades in a year (0, 1 or 2, the 2s under 0.5%): clipped, the 2s became 1s and one
    downgrade spanned the whole range, more than any continuous feature's customers; k-means
    then cut personas by a single downgrade on the independent stand-ins."""
    from models.preprocessing import NORMAL_SPAN

    rng = np.random.default_rng(0)
    counts = np.r_[np.zeros(1400), np.ones(590), np.full(8, 2.0)]
    frame = pd.DataFrame({"contractions_365d": counts, "tenure_days": rng.normal(300, 50, 1998)})
    column = FeaturePreprocessor(weighting="none").fit(frame).transform(frame)[:, 0]
    none, one, two = (column[counts == k][0] for k in (0, 1, 2))
    assert none < one < two  # the rare 2s are still more than a 1
    assert two - none == pytest.approx(NORMAL_SPAN)  # the range is the column's own
    assert one - none < 0.75 * NORMAL_SPAN  # one downgrade no longer spans it all
    # a flag nearly nobody holds is still dropped as constant by the clipping (not a count)
    flag = pd.DataFrame({"rare": np.r_[np.zeros(1995), np.ones(3)], "x": rng.normal(size=1998)})
    assert list(FeaturePreprocessor(weighting="none").fit(flag).get_feature_names_out()) == ["x"]


def test_a_few_values_with_one_far_out_is_clipped_as_a_tail():
    """Three values are not always a small count: in 0, 1, 400 the 400s are a tail of extreme
    accounts, which clipping exists for. Left unclipped, the step from 0 to 1 would be a sliver of
    the range and the few far-out accounts would decide the column's whole span."""
    from models.preprocessing import NORMAL_SPAN

    rng = np.random.default_rng(0)
    values = np.r_[np.zeros(1400), np.ones(590), np.full(8, 400.0)]
    frame = pd.DataFrame({"tickets": values, "tenure_days": rng.normal(300, 50, 1998)})
    column = (
        FeaturePreprocessor(weighting="none", log_transform=False).fit(frame).transform(frame)[:, 0]
    )
    none, one, far = (column[values == k][0] for k in (0, 1, 400))
    assert far == pytest.approx(one)  # clipped at the 99.5% quantile, like any tail
    assert one - none == pytest.approx(NORMAL_SPAN)  # one step spans the clipped range


def _company_with_a_passing_state(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Three personas apart in six lasting columns, and a seventh column that is a passing
    state: a quarter of customers are in a busy spell now (far out on it), redrawn a month
    before."""
    rng = np.random.default_rng(seed)
    persona = np.repeat([0, 1, 2], 200)
    centres = 3.0 * np.array([[0, 0, 0, 0, 1, 1], [1, 1, 0, 0, 0, 1], [0, 1, 1, 1, 0, 0]])
    lasting = centres[persona] + rng.normal(0, 1, (len(persona), 6))
    ids = [f"c{i}" for i in range(len(persona))]

    def table(lasting_now: np.ndarray) -> pd.DataFrame:
        spell = rng.random(len(persona)) < 0.25
        state = rng.normal(0, 0.3, len(persona)) + 6.0 * spell
        return pd.DataFrame(
            np.column_stack([lasting_now, state]), columns=[*"abcdef", "spell"], index=ids
        )

    now = table(lasting)
    earlier = table(lasting + rng.normal(0, 0.1, lasting.shape))
    return now, earlier, persona


def test_a_column_that_is_a_passing_state_weighs_less_and_makes_no_segment():
    from models.preprocessing import column_reliability

    now, earlier, persona = _company_with_a_passing_state(3)
    reliability = column_reliability(now, earlier)
    assert min(reliability[c] for c in "abcdef") > 0.95
    assert reliability["spell"] < 0.2
    plain = CustomerSegmenter(random_state=0).fit(now)
    lasting = CustomerSegmenter(random_state=0).fit(now, reliability=reliability)
    # the busy spell cuts the personas without its reliability, and not with it
    assert adjusted_rand_score(persona, plain.labels_) < 0.9
    assert adjusted_rand_score(persona, lasting.labels_) > 0.95
    weights = dict(zip(now.columns, lasting.preprocessor_.weights_, strict=True))
    assert weights["spell"] == pytest.approx(np.sqrt(reliability["spell"]))
    assert weights["a"] == pytest.approx(np.sqrt(reliability["a"]))


def test_reliability_is_judged_only_where_the_two_tables_can_say():
    from models.preprocessing import MIN_RELIABILITY_CUSTOMERS, column_reliability

    now, earlier, _ = _company_with_a_passing_state(4)
    earlier = earlier.assign(a=1.0)  # constant then: usage that began within the month
    assert "a" not in column_reliability(now, earlier)
    few = now.index[: MIN_RELIABILITY_CUSTOMERS - 1]
    assert column_reliability(now, earlier.loc[few]) == {}
    assert column_reliability(now, earlier.drop(columns=["b"])).keys() == {*"cdef", "spell"}
    # a column every customer swaps with another's (negative) weighs nothing, not less than it
    flipped = earlier.assign(c=-now["c"])
    assert column_reliability(now, flipped)["c"] == 0.0
    # with no column left to weigh, the weights stay as the data alone says, and no reliability
    # is recorded as applied (run metrics logged 0.0 beside weights of 1)
    nothing = dict.fromkeys(now.columns, 0.0)
    alone = FeaturePreprocessor().fit(now)
    judged = FeaturePreprocessor().fit(now, reliability=nothing)
    assert np.array_equal(alone.weights_, judged.weights_)
    assert np.isnan(judged.reliability_).all()
    # a column not judged, or judged as no number, keeps its weight and records none (it read 1.0,
    # as if perfectly lasting; NaN made the weights NaN)
    partly = FeaturePreprocessor().fit(now, reliability={"a": 0.25, "b": float("nan")})
    assert partly.weights_[0] == pytest.approx(alone.weights_[0] * 0.5)
    assert partly.weights_[1] == alone.weights_[1]
    assert np.isnan(partly.reliability_[1:]).all()
    assert np.isfinite(partly.transform(now)).all()
    # a customer listed twice has no one pair of values: left out, not misaligned
    twice = pd.concat([now, now.iloc[:1]])
    assert column_reliability(twice, earlier).keys() == column_reliability(now, earlier).keys()
