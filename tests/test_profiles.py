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
