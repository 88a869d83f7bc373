"""The SQL feature definitions equal an independent pandas implementation of the spec."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from feature_oracle import pandas_features

from feature_store.ingest import ingest_files
from feature_store.registry import SPEC_FEATURE_NAMES
from pipelines.feature_pipeline import build_features


def assert_same_values(ours: pd.DataFrame, reference: pd.DataFrame, names: tuple[str, ...]) -> None:
    """The same customers in the same order, and each named feature equal to 1e-9 (relative)."""
    assert list(ours.index) == list(reference.index)
    for name in names:
        np.testing.assert_allclose(
            ours[name].to_numpy(float),
            reference[name].to_numpy(float),
            rtol=1e-9,
            atol=1e-6,
            err_msg=name,
        )


@pytest.mark.parametrize(
    "as_of",
    [datetime(2026, 7, 1), datetime(2026, 3, 15, 13, 30), datetime(2025, 10, 2)],
)
def test_every_spec_feature_matches_the_pandas_reference(layout, demo_files, as_of):
    ingest_files(layout, {"billing": demo_files["billing"], "usage": demo_files["usage"]})
    ours = build_features(layout, as_of).set_index("customer_id")
    billing = pd.read_parquet(demo_files["billing"])
    usage = pd.read_parquet(demo_files["usage"])
    reference = pandas_features(billing, usage, as_of).set_index("customer_id")
    assert_same_values(ours, reference, SPEC_FEATURE_NAMES)


@pytest.mark.parametrize(
    "as_of", [datetime(2026, 6, 1), datetime(2025, 9, 14, 6), datetime(2025, 12, 1)]
)
def test_several_subscriptions_per_customer_match_the_pandas_reference(tmp_path, as_of):
    """The edge-case company of the Spark parity test, a third of whose customers name two
    subscriptions (and leave the name out on some events): MRR and seats are summed, a customer
    is cancelled when every subscription is, and moves are counted per subscription."""
    from test_spark_parity import _ingested, edge_case_company

    billing, usage = edge_case_company(seed=11)
    assert billing["subscription_id"].notna().any()
    ours = build_features(_ingested(tmp_path, billing, usage), as_of).set_index("customer_id")
    reference = pandas_features(billing, usage, as_of).set_index("customer_id")
    assert_same_values(ours, reference, (*SPEC_FEATURE_NAMES, "is_canceled"))
    named = billing.loc[billing["subscription_id"].notna(), "customer_id"].unique()
    several = reference.index.isin(named)
    assert several.sum() > 10
    # the ids matter: read as one subscription each, these customers would differ
    single = pandas_features(billing.drop(columns=["subscription_id"]), usage, as_of)
    single = single.set_index("customer_id")
    moved = ["mrr", "seats", "is_canceled", "expansions_365d", "contractions_365d"]
    assert (single.loc[several, moved] != reference.loc[several, moved]).any(axis=None)
