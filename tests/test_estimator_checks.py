"""scikit-learn's estimator contract (``parametrize_with_checks``) on the project's estimators.

The segmenter is checked once per clustering family, each time with a single small candidate of
that family (the largest setting of its grid for a small two-column sample), so every assigner
is exercised and the checks stay fast. No check is expected to fail.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from models.families import FAMILIES
from models.preprocessing import FeaturePreprocessor
from models.segmenter import CustomerSegmenter

SEGMENTERS = [
    CustomerSegmenter(candidates=[family.grid(40, 3, 2)[-1]], n_resamples=1) for family in FAMILIES
]


@parametrize_with_checks([FeaturePreprocessor(), *SEGMENTERS])
def test_scikit_learn_estimator_contract(estimator, check):
    check(estimator)
