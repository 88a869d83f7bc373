"""Rows as a float matrix in a fitted model's column order, with one error for every model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def ordered_values(X: pd.DataFrame | np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
    """A frame's columns by name, an array's by position (as scikit-learn does).

    Arrays let the scoring service skip building a DataFrame for every request.
    """
    if isinstance(X, pd.DataFrame):
        missing = [name for name in feature_names if name not in X.columns]
        if missing:
            raise ValueError(
                f"missing feature column(s) {', '.join(missing)}; the model was fitted on "
                f"{', '.join(feature_names)}"
            )
        return X[list(feature_names)].to_numpy(dtype=float)
    values = np.asarray(X, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(feature_names):
        raise ValueError(
            f"expected rows of {len(feature_names)} features ({', '.join(feature_names)}), "
            f"got shape {values.shape}"
        )
    return values
