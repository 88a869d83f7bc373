"""``SegmentModel``: everything needed to assign a customer, as one object that is swapped whole.

The segmenter, the feature list it was trained on and the segment profiles travel together, so an
assignment can never mix a segmenter of one version with the names of another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.profiles import SegmentProfile
from models.segmenter import CustomerSegmenter


@dataclass
class SegmentModel:
    segmenter: CustomerSegmenter
    feature_names: list[str]
    profiles: list[SegmentProfile]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def segment_names(self) -> list[str]:
        return [profile.name for profile in self.profiles]

    def assign(self, features: pd.DataFrame) -> pd.DataFrame:
        """Segment, name, outlier flag, confidence, runner-up and margin for each row."""
        missing = [name for name in self.feature_names if name not in features.columns]
        if missing:
            raise ValueError(f"missing feature column(s): {', '.join(missing)}")
        X = features[self.feature_names]
        proba = self.segmenter.predict_proba(X)
        order = np.argsort(-proba, axis=1)
        best = order[:, 0]
        confidence = proba[np.arange(len(X)), best]
        out = pd.DataFrame(
            {
                "segment_id": best.astype(int),
                "segment_name": [self.segment_names[i] for i in best],
                "is_outlier": self.segmenter.outlier_flags(X),
                "confidence": confidence,
            },
            index=features.index,
        )
        if proba.shape[1] > 1:
            runner = order[:, 1]
            out["runner_up_id"] = runner.astype(int)
            out["runner_up_name"] = [self.segment_names[i] for i in runner]
            out["margin"] = confidence - proba[np.arange(len(X)), runner]
        return out
