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
    assert list(ours.index) == list(reference.index)
    for name in SPEC_FEATURE_NAMES:
        np.testing.assert_allclose(
            ours[name].to_numpy(float),
            reference[name].to_numpy(float),
            rtol=1e-9,
            atol=1e-6,
            err_msg=name,
        )
