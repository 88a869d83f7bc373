"""Explanations: exact additivity, fidelity, the features that define a segment, the contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from feature_store.registry import FEATURE_NAMES, find
from models.assignment import Assignment, ModelRef
from models.explainer import SegmentExplainer
from models.gates import MIN_FIDELITY
from models.population import PopulationQuantiles, Standing
from models.segmenter import CustomerSegmenter
from models.wording import contribution_text, format_value, standing_text
from pipelines.train import fit_model, gate_failures

REF = ModelRef(name="customer-segments", version="7")
PERSONAS = ("api_heavy", "collapsing", "large_accounts", "steady")


def persona_table(per_persona: int = 150, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers with every registered feature; each persona differs from 'steady' in known ways."""
    rng = np.random.default_rng(seed)
    n = per_persona * len(PERSONAS)
    truth = np.repeat(np.arange(len(PERSONAS)), per_persona)
    base = {
        "mrr": rng.uniform(80, 160, n),
        "seats": rng.integers(3, 9, n).astype(float),
        "is_annual": np.zeros(n),
        "is_canceled": np.zeros(n),  # active customers: training segments only those
        "tenure_days": rng.integers(200, 700, n).astype(float),
        "events_30d": rng.uniform(300, 600, n),
        "active_days_30d": rng.integers(15, 25, n).astype(float),
        "usage_trend": rng.uniform(0.8, 1.2, n),
        "api_share_30d": rng.uniform(0.0, 0.1, n),
        "days_since_last_activity": rng.integers(0, 3, n).astype(float),
    }
    frame = pd.DataFrame({name: rng.uniform(0, 1, n) for name in FEATURE_NAMES})
    for name, values in base.items():
        frame[name] = values
    api, collapsing, large = (truth == i for i in range(3))
    frame.loc[api, "api_share_30d"] = rng.uniform(0.75, 0.98, api.sum())
    frame.loc[collapsing, "usage_trend"] = rng.uniform(0.02, 0.15, collapsing.sum())
    frame.loc[large, "seats"] = rng.integers(80, 200, large.sum()).astype(float)
    frame.loc[large, "mrr"] = rng.uniform(4000, 9000, large.sum())
    frame.insert(0, "customer_id", [f"cus_{i:04d}" for i in range(n)])
    return frame, truth


@pytest.fixture(scope="module")
def personas():
    return persona_table()


@pytest.fixture(scope="module")
def explainer(personas):
    frame, truth = personas
    return SegmentExplainer(random_state=0).fit(frame[list(FEATURE_NAMES)], truth)


@pytest.fixture(scope="module")
def fitted(personas):
    frame, _ = personas
    return fit_model(frame, CustomerSegmenter(random_state=0, n_resamples=2))


def test_attributions_add_up_to_the_surrogate_output_computed_by_scikit_learn(explainer, personas):
    frame, truth = personas
    X = frame[list(FEATURE_NAMES)]
    attribution = explainer.explain(X, truth)
    reconstructed = attribution.base_values + attribution.contributions.sum(axis=1)
    # The reference is scikit-learn's own decision function, not shap's tree walk.
    reference = explainer.decision_function(X)[np.arange(len(X)), truth]
    np.testing.assert_allclose(reconstructed, reference, atol=1e-6)
    np.testing.assert_allclose(attribution.outputs, reference, atol=1e-6)


def test_the_surrogate_reproduces_the_segmentation_on_held_out_customers(explainer):
    assert explainer.fidelity_ >= MIN_FIDELITY
    assert explainer.n_held_out_ == 600  # cross-fitted: every customer held out once


@pytest.mark.parametrize(
    ("persona", "defining"),
    [("api_heavy", "api_share_30d"), ("collapsing", "usage_trend"), ("large_accounts", "seats")],
)
def test_explanations_name_the_feature_that_defines_the_persona(
    explainer, personas, persona, defining
):
    frame, truth = personas
    members = truth == PERSONAS.index(persona)
    attribution = explainer.explain(frame[list(FEATURE_NAMES)][members], truth[members])
    top3 = np.argsort(-np.abs(attribution.contributions), axis=1)[:, :3]
    named = (top3 == FEATURE_NAMES.index(defining)).any(axis=1)
    assert named.mean() >= 0.9


def test_pickling_drops_the_shap_structures_and_rebuilds_them(explainer, personas):
    import pickle

    frame, truth = personas
    X = frame[list(FEATURE_NAMES)].head(20)
    before = explainer.explain(X, truth[:20]).contributions
    restored = pickle.loads(pickle.dumps(explainer))
    assert "_shap_explainers" not in restored.__dict__
    np.testing.assert_array_equal(restored.explain(X, truth[:20]).contributions, before)


def test_assignment_objects_follow_the_contract(fitted, personas):
    frame, _ = personas
    model = fitted.model
    rows = frame.head(40)
    assignments = model.assignments(rows, rows["customer_id"].tolist(), REF, top_k=3)
    placed = model.assign(rows)
    directions = []
    for assignment, (_, expected) in zip(assignments, placed.iterrows(), strict=True):
        data = json.loads(assignment.model_dump_json())
        directions += [c["direction"] for c in data["explanation"]["contributions"]]
        assert {"customer_id", "segment", "confidence", "is_outlier", "runner_up"} <= set(data)
        assert {"explanation", "features", "model"} <= set(data)
        assert data["segment"]["id"] == expected["segment_id"]
        assert data["segment"]["name"] == expected["segment_name"]
        assert 0 <= data["confidence"] <= 1
        assert data["runner_up"]["id"] != data["segment"]["id"]
        assert data["model"] == {"name": "customer-segments", "version": "7"}
        contributions = data["explanation"]["contributions"]
        assert len(contributions) == 3
        sizes = [abs(c["contribution"]) for c in contributions]
        assert sizes == sorted(sizes, reverse=True)
        for item in contributions:
            assert item["value"] == data["features"][item["feature"]]
            assert item["direction"] == ("towards" if item["contribution"] >= 0 else "away")
            # a reason against the segment says so in its text, which a CRM may show alone
            assert item["text"].endswith("; points to the runner-up") == (
                item["direction"] == "away"
            )
            low, high = item["typical_range"]
            assert low <= high
            assert item["text"].startswith(item["description"] + ": ")
            # The standing is the value's rank among the training customers, measured here
            # independently of the stored quantile grid.
            column = frame[item["feature"]]
            below, same = (column < item["value"]).mean(), (column == item["value"]).mean()
            if find(item["feature"]).unit == "flag":  # a flag has no percentile, only a share
                assert item["percentile"] is None
                assert item["standing"] == f"like {round(100 * same)}% of customers"
                continue
            assert item["percentile"] == pytest.approx(100 * (below + same / 2), abs=1.0)
        Assignment.model_validate(data)  # what is written reads back under the same contract
    assert {"towards", "away"} <= set(directions)  # both kinds of reason were checked


def test_with_every_feature_the_contributions_add_up_to_the_output(fitted, personas):
    frame, _ = personas
    model = fitted.model
    assignments = model.assignments(frame, [None] * len(frame), REF, top_k=len(model.feature_names))
    for assignment in assignments:
        explanation = assignment.explanation
        assert explanation is not None
        assert len(explanation.contributions) == len(model.feature_names)
        total = explanation.base_value + sum(c.contribution for c in explanation.contributions)
        assert abs(total - explanation.output_value) < 1e-6


def test_without_explain_the_explanation_is_null(fitted, personas):
    frame, _ = personas
    [assignment] = fitted.model.assignments(frame.head(1), ["c"], REF, explain=False)
    assert assignment.explanation is None
    assert assignment.features["mrr"] == frame["mrr"].iloc[0]


def test_outliers_say_so_and_name_their_nearest_segment(fitted, personas):
    frame, _ = personas
    extreme = frame.head(1).copy()
    extreme[list(FEATURE_NAMES)] = 1e7
    [assignment] = fitted.model.assignments(extreme, ["far"], REF)
    assert assignment.is_outlier
    assert assignment.summary.startswith("Unusual customer")
    assert assignment.segment.name in assignment.summary


def test_drivers_are_stored_in_the_profiles(fitted):
    for profile in fitted.model.profiles:
        assert len(profile.drivers) == 5
        strengths = [d.mean_abs_contribution for d in profile.drivers]
        assert strengths == sorted(strengths, reverse=True)
        assert all(d.feature in FEATURE_NAMES for d in profile.drivers)
    assert set(fitted.drivers) == set(range(int(fitted.model.metrics["n_segments"])))
    assert fitted.model.metrics["surrogate_fidelity"] >= MIN_FIDELITY


def test_a_segments_examples_are_its_most_typical_members(fitted):
    """Ranked by membership probability, near 1 for almost everyone, a segment's first example
    was an outlier its own page called "unlike the members of every segment" (a product
    manager's walkthrough)."""
    segmenter = fitted.model.segmenter
    _, is_outlier, typicality = segmenter.placement_and_typicality_from_matrix(fitted.Z)
    ids = np.asarray(fitted.customer_ids)
    for profile in fitted.model.profiles:
        members = segmenter.labels_ == profile.segment_id
        examples = np.isin(ids, profile.example_customers)
        assert examples.sum() == len(profile.example_customers) > 0
        assert members[examples].all()
        assert not is_outlier[examples].any()
        others = members & ~examples
        assert typicality[examples].min() >= typicality[others].max()


def test_low_fidelity_blocks_promotion_even_for_the_first_version():
    metrics = {
        "surrogate_fidelity": 0.95,
        "stability": 0.9,
        "n_segments": 5.0,
        "outlier_share": 0.01,
        "silhouette": 0.4,
    }
    assert gate_failures(metrics, None, 12) == ["surrogate_fidelity 0.950 (needs >= 0.97)"]
    assert gate_failures({**metrics, "surrogate_fidelity": 0.99}, None, 12) == []
    # nor one trained so far past the data that it describes the gap (a review's first version,
    # 87 days past it, became champion by itself)
    late = {**metrics, "surrogate_fidelity": 0.99, "data_lag_days": 87.0}
    assert gate_failures(late, None, 12) == ["data_lag_days 87 days (needs <= 7 days)"]
    # a month past it empties every 30-day window: everyone looked inactive and the names said so
    month = {**late, "data_lag_days": 31.0}
    assert gate_failures(month, None, 12) == ["data_lag_days 31 days (needs <= 7 days)"]
    # a fraction is kept: rounded, a failure read "7 days (needs <= 7 days)"
    from models.gates import _at_most

    for lag, shown in ((7.3, "7.30"), (7.04, "7.04")):
        failed = _at_most("data_lag_days", lag, 7).describe()
        assert failed == f"data_lag_days {shown} days (needs <= 7 days)"
    champion = {"silhouette": 0.4}
    assert gate_failures({**metrics, "surrogate_fidelity": 0.99}, champion, 12) == []


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("api_share_30d", 0.94, "94%"),
        ("mrr", 839.061, "839.06"),
        ("active_users_30d", 63.0, "63"),
        ("is_annual", 1.0, "yes"),
        ("usage_trend", 0.25, "0.25"),
        ("ltv", 12500.0, "12,500.00"),
        ("not_in_registry", 3.5, "3.5"),
    ],
)
def test_values_are_written_in_their_unit(name, value, text):
    assert format_value(name, value) == text


def test_the_sentence_of_the_spec():
    assert (
        contribution_text("api_share_30d", 0.94, (0.80, 0.99))
        == "Share of activity through the API (30 days): 94%; typical for this segment: "
        "80% to 99%"
    )
    assert contribution_text("seats", 0.0, (0.0, 0.0)).endswith("typical for this segment: 0")
    # the contrast view adds the runner-up's range
    assert contribution_text("events_30d", 360.0, (551.0, 1376.0), versus_range=(6.0, 11.0)) == (
        "Product events in the last 30 days: 360; typical for this segment: 551 to 1,376; "
        "for the runner-up: 6 to 11"
    )


def test_a_reason_reads_as_a_salesperson_reads_it():
    """What a CRM integrator's review found unreadable: money with no currency beside pages
    that named it, a share of 0.00025 as "0%", a flag's range as "no to yes"."""
    assert contribution_text(
        "mrr", 242.13, (100.0, 300.0), versus_range=(10.0, 20.0), currency="USD"
    ) == (
        "Monthly recurring revenue: 242.13 USD a month; typical for this segment: 100.00 to "
        "300.00 USD a month; for the runner-up: 10.00 to 20.00 USD a month"
    )
    assert contribution_text("mrr", 242.13, (100.0, 300.0)).startswith(  # no currency recorded
        "Monthly recurring revenue: 242.13 a month; typical for this segment: 100.00 to 300.00 "
        "a month"
    )
    assert contribution_text("seats", 6.0, (5.0, 8.0), currency="USD").startswith("Licensed")
    assert "6 USD" not in contribution_text("seats", 6.0, (5.0, 8.0), currency="USD")
    refunds = contribution_text("refund_rate_365d", 0.00025, (0.0, 0.0), versus_range=(0.0, 0.004))
    assert refunds.endswith(
        ": under 1%; typical for this segment: 0%; for the runner-up: 0% to under 1%"
    )
    assert contribution_text("api_share_30d", 0.998, (0.9, 1.0)).startswith(
        "Share of activity through the API (30 days): over 99%;"
    )
    assert contribution_text("is_annual", 1.0, (0.0, 1.0)).endswith(
        "yes; typical for this segment: yes or no"
    )
    assert contribution_text("api_share_30d", 1.0, (0.8, 1.0)).startswith(  # all, exactly
        "Share of activity through the API (30 days): 100%; typical for this segment: 80% to 100%"
    )
    assert format_value("refund_rate_365d", 0.00025) == "0%"  # pages compare who has any instead


def test_a_value_that_only_says_there_was_no_activity_reads_as_that():
    """A dormant customer's trend of 1 (no event against no event) read as steady activity."""
    trend = "Activity this month vs the two months before"
    assert contribution_text("usage_trend", 1.0, (1.0, 1.0), events_30d=0.0) == (
        f"{trend}: no activity in the last 90 days; typical for this segment: 1"
    )
    assert contribution_text("usage_trend", 1.0, (0.8, 1.2), events_30d=12.0).startswith(
        f"{trend}: 1;"
    )
    assert contribution_text("usage_trend", 0.2, (0.1, 0.3), events_30d=0.0).startswith(
        f"{trend}: 0.2;"  # none this month, some before: collapsing, as it says
    )
    assert contribution_text("api_share_30d", 0.0, (0.0, 0.0), events_30d=0.0).startswith(
        "Share of activity through the API (30 days): no activity in the last 30 days;"
    )
    assert contribution_text("api_share_30d", 0.0, (0.0, 0.0)).startswith(  # unknown activity
        "Share of activity through the API (30 days): 0%;"
    )


def test_standing_counts_customers_below_at_and_above_a_value():
    frame = pd.DataFrame({"seats": [1.0] * 60 + [2.0] * 30 + [50.0] * 10})
    population = PopulationQuantiles.of(frame)
    one = population.standing("seats", 1.0)
    assert (one.below, one.same) == (0.0, pytest.approx(0.6, abs=0.01))
    ten = population.standing("seats", 10.0)
    assert ten.below == pytest.approx(0.9, abs=0.01)
    assert ten.same == 0.0
    assert ten.percentile == pytest.approx(90, abs=1)
    assert population.standing("mrr", 1.0) is None  # a feature the model was not trained on


@pytest.mark.parametrize(
    ("name", "standing", "text"),
    [
        ("seats", Standing(below=0.93, same=0.0, above=0.07), "higher than 93% of customers"),
        # Rounded down: 92.5% of customers is not "higher than 93%".
        ("seats", Standing(below=0.925, same=0.0, above=0.075), "higher than 92% of customers"),
        ("is_annual", Standing(0.0, 0.0, 1.0), "unlike every customer the model was trained on"),
        # "like 100% of customers" for a subscription not cancelled, beside 328 cancelled
        ("is_canceled", Standing(0.0, 1.0, 0.0), "like every customer the model was trained on"),
        ("mrr", Standing(below=0.1, same=0.02, above=0.88), "lower than 88% of customers"),
        ("failed_payments_90d", Standing(0.0, 0.91, 0.09), "like 91% of customers"),
        ("is_annual", Standing(below=0.85, same=0.15, above=0.0), "like 15% of customers"),
        ("seats", Standing(below=0.998, same=0.002, above=0.0), "higher than 99% of customers"),
        # above or below them all: said so, not "higher than 100% of customers"
        ("seats", Standing(1.0, 0.0, 0.0), "higher than every customer the model was trained on"),
        ("mrr", Standing(0.0, 0.0, 1.0), "lower than every customer the model was trained on"),
    ],
)
def test_standing_in_words(name, standing, text):
    assert standing_text(name, standing) == text


def test_a_model_saved_without_population_quantiles_explains_without_a_standing(fitted, tmp_path):
    from dataclasses import replace

    from models.registry import load_model, save_model

    # Models registered before standings existed have no quantiles in profiles.json.
    older = replace(fitted.model, population=None)
    hashes = save_model(older, tmp_path / "model")
    loaded = load_model(tmp_path / "model", hashes)
    assert loaded.population is None
    frame, _ = persona_table(per_persona=5, seed=1)
    [assignment] = loaded.assignments(frame.head(1), ["cus_x"], REF, top_k=2)
    for item in assignment.explanation.contributions:
        assert item.percentile is None
        assert item.standing is None
    Assignment.model_validate_json(assignment.model_dump_json())
    # A model saved with them reads them back unchanged.
    hashes = save_model(fitted.model, tmp_path / "current")
    assert load_model(tmp_path / "current", hashes).population == fitted.model.population


def test_a_runner_up_range_the_profile_does_not_know_is_left_out_not_invented(fitted):
    """A runner-up profiled without a feature (an older model) or with no member left (NaN
    quartiles): its range is null and the sentence does not mention it, rather than showing the
    customer's own value or "nan" as what is typical there."""
    from dataclasses import replace

    frame, _ = persona_table(per_persona=5, seed=1)
    model = fitted.model
    [assignment] = model.assignments(frame.head(1), ["cus_x"], REF, top_k=3)
    rival = model.segment_ids.index(assignment.runner_up.id)  # its position among the profiles
    features = [c.feature for c in assignment.explanation.contributions]
    assert all(c.versus_typical_range is not None for c in assignment.explanation.contributions)
    profiles = list(model.profiles)
    ranges = dict(profiles[rival].typical_ranges)
    ranges.pop(features[0])
    ranges[features[1]] = [float("nan"), float("nan")]
    profiles[rival] = replace(profiles[rival], typical_ranges=ranges)
    [again] = replace(model, profiles=profiles).assignments(frame.head(1), ["cus_x"], REF, top_k=3)
    first, second, third = again.explanation.contributions
    for unknown in (first, second):
        assert unknown.versus_typical_range is None
        assert "runner-up" not in unknown.text
    assert (
        third.versus_typical_range == assignment.explanation.contributions[2].versus_typical_range
    )
    Assignment.model_validate_json(again.model_dump_json())


def test_alike_features_pairs_columns_that_rank_rows_alike():
    from models.population import alike_features

    rng = np.random.default_rng(0)
    a = rng.uniform(0, 100, 500)
    frame = pd.DataFrame(
        {
            "a": a,
            "b": np.exp(a / 20),  # monotone in a: the same ranks
            "c": -a,  # the reverse order does not "move with" a
            "d": rng.uniform(0, 1, 500),  # independent
            "e": np.ones(500),  # constant: correlates with nothing
            "f": a + rng.normal(0, 5, 500),  # close to a's order, not the same (rho ~0.98)
            "g": a + rng.normal(0, 40, 500),  # related, but ranks rows differently (rho ~0.6)
        }
    )
    alike = alike_features(frame)
    assert alike["a"] == ["b", "f"]  # most alike first
    assert alike["b"] == ["a", "f"]
    assert alike["f"] == ["a", "b"]
    assert set(alike) == {"a", "b", "f"}


def test_an_explanation_names_the_features_that_move_with_its_reasons(tmp_path):
    """Lifetime revenue ranks these customers exactly as MRR does: whichever of the two the
    surrogate split on, the contribution says so, the text names the other with its value, and the
    pairing survives saving and loading the model."""
    from models.registry import PROFILES_FILE, load_model, save_model, sha256_of
    from models.wording import alike_name, with_currency

    frame, truth = persona_table(per_persona=80, seed=3)
    frame["ltv"] = 12 * frame["mrr"]
    fitted = fit_model(frame, CustomerSegmenter(random_state=0, n_resamples=2))
    model = fitted.model
    assert model.population.alike["mrr"] == ["ltv"]
    assert model.population.alike["ltv"] == ["mrr"]
    assert "api_share_30d" not in model.population.alike
    large = frame[truth == PERSONAS.index("large_accounts")].head(5)
    assignments = model.assignments(
        large, list(large["customer_id"]), REF, top_k=len(FEATURE_NAMES)
    )
    for assignment in assignments:
        by_feature = {c.feature: c for c in assignment.explanation.contributions}
        for name, other in (("mrr", "ltv"), ("ltv", "mrr")):
            item = by_feature[name]
            assert item.moves_with == [other]
            value = with_currency(other, format_value(other, assignment.features[other]), None)
            assert item.text.endswith(f"; moves with {alike_name(other)} ({value})")
        assert by_feature["api_share_30d"].moves_with == []
        assert "moves with" not in by_feature["api_share_30d"].text
        Assignment.model_validate_json(assignment.model_dump_json())
    hashes = save_model(model, tmp_path / "model")
    assert load_model(tmp_path / "model", hashes).population.alike == model.population.alike
    # A model registered before the field: profiles.json without the key explains as before.
    profiles = tmp_path / "model" / PROFILES_FILE
    document = json.loads(profiles.read_text())
    del document["alike_features"]
    profiles.write_text(json.dumps(document))
    hashes = {**hashes, PROFILES_FILE: sha256_of(profiles)}
    older = load_model(tmp_path / "model", hashes)
    assert older.population.alike == {}
    [assignment] = older.assignments(large.head(1), ["cus_x"], REF, top_k=len(model.feature_names))
    assert all(c.moves_with == [] for c in assignment.explanation.contributions)
    assert all("moves with" not in c.text for c in assignment.explanation.contributions)


def test_a_reason_names_at_most_two_features_moving_with_it():
    from models.wording import alike_list

    assert alike_list(["a (1)"]) == "a (1)"
    assert alike_list(["a (1,000.00)", "b (2)"]) == "a (1,000.00) and b (2)"
    assert alike_list(["a", "b", "c", "d"]) == "a, b and 2 more"


def test_the_sentence_names_what_moves_with_the_feature():
    text = contribution_text("mrr", 29.0, (19.0, 39.0), [("seats", 1.0), ("ltv", 348.0)])
    assert text == (
        "Monthly recurring revenue: 29.00 a month; typical for this segment: 19.00 to 39.00 a "
        "month; "
        "moves with licensed seats (1) and lifetime revenue (paid minus refunded) (348.00)"
    )


def test_a_saturated_confidence_is_not_worded_as_a_certainty():
    """Where segments are well apart the probability rounds to 100% for nearly everyone; the
    summary and the customer page say "over 99%", and never "0%" for a margin that is not 0."""
    from models.wording import assignment_summary, probability_text

    assert probability_text(1.0) == probability_text(0.9996) == "over 99%"
    assert probability_text(0.994) == "99%"
    assert probability_text(0.87) == "87%"
    assert probability_text(0.003) == "under 1%"
    assert probability_text(0.0) == "0%"
    summary = assignment_summary("Heavy API use", 0.9999, False, "Monthly plans")
    assert (
        summary == "In segment 'Heavy API use' with over 99% confidence; runner-up 'Monthly plans'."
    )


def test_a_customer_younger_than_the_feature_windows_is_said_to_be_new():
    """An account of 10 days with no usage yet read as "Dormant" with over 99% confidence to a
    CRM's salesperson, who would treat an onboarding account as one at risk."""
    from models.wording import assignment_summary

    new = assignment_summary("Dormant", 0.9999, False, "Typical customers", tenure_days=10.0)
    assert new == (
        "In segment 'Dormant' with over 99% confidence; runner-up 'Typical customers'. "
        "A new customer (10 days): its 30- and 90-day figures cover only that time."
    )
    settled = assignment_summary("Dormant", 0.9999, False, "Typical customers", tenure_days=400.0)
    assert "new customer" not in settled
    gone = assignment_summary("Dormant", 0.9, False, None, canceled=True, tenure_days=10.0)
    assert "new customer" not in gone  # a cancelled one is not onboarding
    # a free user of months has 0 days as a paying customer: that says nothing of its age
    free = assignment_summary("Dormant", 0.9, False, None, tenure_days=0.0, never_paid=True)
    assert "new customer" not in free
    starting = assignment_summary("Dormant", 0.9, False, None, tenure_days=0.0)
    assert "A new customer (0 days)" in starting  # paying since today
    assert free.endswith("It has not paid yet: no MRR and no revenue.")
    assert "not paid" not in starting


def _unlike_any_persona(frame: pd.DataFrame, rows: int = 300) -> pd.DataFrame:
    """Customers whose columns are drawn apart from each other: every value is one a training
    customer holds, but together they are no persona, where the surrogate, which learned the
    segmentation from the personas, can disagree with the segmenter."""
    rng = np.random.default_rng(1)
    odd = frame.head(rows).copy()
    for name in FEATURE_NAMES:
        odd[name] = frame[name].to_numpy()[rng.integers(0, len(frame), rows)]
    return odd


def test_nearest_centre_contrast_terms_add_up_to_the_segmenters_own_log_odds(fitted, personas):
    """k-means' (and its discriminant refinement's) log-odds of one segment over another is
    linear in the customer, so it splits exactly into one term per feature."""
    frame, _ = personas
    segmenter = fitted.model.segmenter
    odd = _unlike_any_persona(frame)[list(segmenter.feature_names_in_)]
    proba = segmenter.predict_proba(odd)
    order = np.argsort(-proba, axis=1)
    rows = np.arange(len(odd))
    for segments, rivals in ((order[:, 0], order[:, 1]), (order[:, 1], order[:, 0])):
        terms = segmenter.contrast_terms(odd, segments, rivals)
        assert terms is not None
        assert terms.shape == odd.shape
        defined = (proba[rows, segments] > 1e-200) & (proba[rows, rivals] > 1e-200)
        log_odds = np.log(proba[rows, segments][defined]) - np.log(proba[rows, rivals][defined])
        assert defined.sum() > 100
        assert np.allclose(terms.sum(axis=1)[defined], log_odds, rtol=1e-6, atol=1e-6)


def test_a_contrast_never_argues_for_the_runner_up_of_a_nearest_centre_model(fitted, personas):
    """A lead placed with 99% confidence had every reason "point to the runner-up" (a CRM's
    review): the surrogate preferred the runner-up for a customer unlike its training customers.
    There the segmenter's own exact contrast explains the decision; elsewhere the surrogate's."""
    frame, _ = personas
    model = fitted.model
    odd = _unlike_any_persona(frame)
    values = model.values(odd)
    placed = model.place(values)
    surrogate = model.explainer.explain_contrast(values, placed.segment, placed.runner_up)
    assert (surrogate.outputs <= 0).sum() >= 5  # the case exists in this data
    assignments = model.assignments(odd, [None] * len(odd), REF, top_k=len(model.feature_names))
    methods = [a.explanation.method for a in assignments]
    assert methods.count("exact_contrast") == (surrogate.outputs <= 0).sum()
    for assignment in assignments:
        explanation = assignment.explanation
        assert explanation.supports_segment is True
        assert explanation.output_value > 0
        total = explanation.base_value + sum(c.contribution for c in explanation.contributions)
        assert abs(total - explanation.output_value) < 1e-6
        assert "lean towards" not in assignment.summary
        if explanation.method == "exact_contrast":  # measured from the two centres' midpoint
            assert explanation.base_value == 0.0


def test_a_contrast_the_model_cannot_compute_says_when_its_reasons_lean_the_other_way(personas):
    """A mixture with a covariance per part has no exact split of its log-odds: the surrogate's
    reasons stay, and the answer says when they favour the runner-up."""
    from models.families import GaussianMixtureFamily

    frame, _ = personas
    segmenter = CustomerSegmenter(
        random_state=0, n_resamples=2, candidates=[GaussianMixtureFamily().candidate(4)]
    )
    model = fit_model(frame, segmenter).model
    odd = _unlike_any_persona(frame)
    assert model.segmenter.contrast_terms(odd[model.feature_names], [0], [1]) is None
    assignments = model.assignments(odd, [None] * len(odd), REF)
    leaning = [a for a in assignments if a.explanation.supports_segment is False]
    assert leaning, "no customer here whose surrogate prefers the runner-up"
    for assignment in assignments:
        explanation = assignment.explanation
        assert explanation.method == "tree_shap_contrast"
        assert explanation.supports_segment is (explanation.output_value > 0)
        said = f"The reasons below lean towards '{assignment.runner_up.name}'"
        assert (said in assignment.summary) is (explanation.supports_segment is False)
    # per segment: whether the surrogate gives the segment better than even odds, said when not
    per_segment_view = model.assignments(odd, [None] * len(odd), REF, view="segment")
    assert any(a.explanation.supports_segment is False for a in per_segment_view)
    for per_segment in per_segment_view:
        explanation = per_segment.explanation
        assert explanation.supports_segment is (explanation.output_value > 0)
        said = f"The reasons below mostly count against '{per_segment.segment.name}'"
        assert (said in per_segment.summary) is (explanation.supports_segment is False)
        assert "lean towards" not in per_segment.summary


def test_the_runner_up_is_the_second_nearest_segment_where_probabilities_underflow():
    """Far from every centre the probabilities of all but the nearest segment are exactly 0, and
    a stable sort of them named the lowest-numbered segment as the runner-up (18 of 1,500 demo
    customers), so the contrast explained the wrong pair."""
    from models.families import KMeansFamily

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    frame = pd.DataFrame(
        np.concatenate([centre + rng.normal(0, 0.01, (60, 2)) for centre in centres]),
        columns=["a", "b"],
    )
    segmenter = CustomerSegmenter(
        random_state=0, n_resamples=2, candidates=[KMeansFamily().candidate(4)]
    ).fit(frame)
    segment_of = segmenter.predict(pd.DataFrame(centres, columns=["a", "b"]))
    # each near one centre; the second nearest is the planted neighbour along the line
    probes = pd.DataFrame([[2.9, 0.0], [0.1, 2.9], [1.1, 0.0]], columns=["a", "b"])
    Z = segmenter.transform(probes)
    proba = segmenter.predict_proba_from_matrix(Z)
    assert (np.sort(proba, axis=1)[:, -2] == 0).all()  # the case: underflowed
    order = segmenter.segment_order_from_matrix(Z, proba)
    assert order[:, 0].tolist() == segment_of[[2, 3, 1]].tolist()
    assert order[:, 1].tolist() == segment_of[[1, 0, 0]].tolist()
    terms = segmenter.contrast_terms(probes, order[:, 0], order[:, 1])
    assert (terms.sum(axis=1) > 0).all()  # finite, where log(0) is not


def test_an_unusual_customer_is_told_what_makes_it_unusual(fitted, personas):
    """Its page said only "unlike the members of every segment" (a product manager's review):
    it names the features far outside the training range, else the largest parts of its
    distance from its segment's centre, which add up to the outlier score exactly."""
    frame, _ = personas
    model = fitted.model
    cents = frame.head(1).copy()
    cents["seats"] = 100 * frame["seats"].max()  # seats sent in the wrong unit
    [assignment] = model.assignments(cents, ["far"], REF)
    assert assignment.is_outlier
    assert assignment.summary.startswith(
        "Unusual customer: unlike the members of every segment, most of all in licensed seats; "
    )
    # the farthest out first, not in the registry's order (MRR comes before seats there)
    span = frame["mrr"].max() - frame["mrr"].min()
    cents["mrr"] = frame["mrr"].max() + 1.5 * span
    [assignment] = model.assignments(cents, ["far"], REF)
    assert ", most of all in licensed seats and monthly recurring revenue; " in assignment.summary
    odd = _unlike_any_persona(frame)
    values = model.values(odd)
    placed = model.place(values)
    terms = model.segmenter.outlier_terms(values, placed.segment)
    scores = model.segmenter.assigner_.outlier_score(model.segmenter.transform(values))
    assert np.allclose(terms.sum(axis=1), scores**2)
    unusual = [a for a in model.assignments(odd, [None] * len(odd), REF) if a.is_outlier]
    assert unusual, "no unusual customer among the mixed-up ones"
    for assignment in unusual:
        assert ", most of all in " in assignment.summary


def test_a_customer_younger_than_the_longest_window_is_said_to_be_young():
    """45 days old: its "MRR change over the last 90 days" was its whole MRR, and 45 days
    without activity read as a lapse (a product manager's review)."""
    from models.wording import assignment_summary

    young = assignment_summary("Dormant", 0.9999, False, "Typical customers", tenure_days=45.0)
    assert young.endswith(" A young customer (45 days): its 90-day figures cover only that time.")
    assert "young" not in assignment_summary("Dormant", 0.9, False, None, tenure_days=95.0)
    assert "A new customer (10 days)" in assignment_summary(
        "Dormant", 0.9, False, None, tenure_days=10.0
    )


def test_days_past_an_expected_payment_of_a_cancelled_account_are_no_unpaid_bill():
    """A cancelled customer's page read "Days past the next expected payment: 83 days, higher
    than 99% of customers", an unpaid bill to a salesperson (a product manager's review)."""
    from models.summaries import customer_value_text

    said = "83 days (none is expected: the subscription is cancelled)"
    assert customer_value_text("payment_overdue_days", 83.0, canceled=True) == said
    assert customer_value_text("payment_overdue_days", 83.0) == "83 days"
    assert contribution_text("payment_overdue_days", 83.0, (0.0, 5.0), canceled=True).startswith(
        "Days past the next expected payment (last paid invoice plus one billing period): 83 "
        "(none is expected: the subscription is cancelled);"
    )
    assert "cancelled" not in contribution_text("seats", 3.0, (1.0, 5.0), canceled=True)


@pytest.mark.parametrize("layout", ["C", "F"])
def test_each_rows_product_is_the_same_whatever_rows_and_layouts_come_with_it(layout):
    """A batch's matrix in Fortran order (as the preprocessing gives it) was summed in another
    order than one row: 1,000 of 1,000 rows differed in the last bits, and a customer at a tie
    changed segment between a batch and its own request (a CRM's review)."""
    from models.assigners import row_by_row_product

    rng = np.random.default_rng(0)
    batch = np.asarray(rng.normal(size=(300, 27)), order=layout)
    projection = rng.normal(size=(6, 27)).T  # a transposed matrix is in Fortran order
    # a row alone is its own matrix, as the preprocessing makes one for a request
    alone = np.vstack([row_by_row_product(batch[i : i + 1].copy(), projection) for i in range(300)])
    together = row_by_row_product(batch, projection)
    assert (together == alone).all()
    assert (row_by_row_product(batch[::3], projection) == alone[::3]).all()


def test_a_customer_is_placed_and_explained_alike_alone_and_in_a_batch(fitted, personas):
    """A customer at a near-tie was in one segment scored alone and in another inside a batch:
    BLAS rounds by the matrix's shape (a hostile client's review). Every number is now the same
    to the last bit, whichever rows come with it."""
    frame, _ = personas
    model = fitted.model
    odd = _unlike_any_persona(frame, rows=60)
    together = model.assignments(odd, [None] * len(odd), REF, top_k=len(model.feature_names))
    for row, batched in zip(range(0, 60, 7), together[::7], strict=True):
        [alone] = model.assignments(
            odd.iloc[row : row + 1], [None], REF, top_k=len(model.feature_names)
        )
        assert alone.model_dump() == batched.model_dump()
