"""Path-dependent TreeSHAP against interventional TreeSHAP on the two segments' members.

    PYTHONPATH=$PWD:$PWD/bench python bench/explore_interventional.py --generator agent \\
        --variant clean --seed 20

The API's contrast ("why this segment rather than the runner-up") is the surrogate's
path-dependent TreeSHAP: each feature's credit is measured against the training customers that
reach each tree node. A reason can then credit a side whose typical range does not hold the value
("Downgrades 0 | 0 | 0 | this segment"). Interventional TreeSHAP measures each feature against
background customers instead: here the members of the two segments compared, so a feature every
one of them shares with the customer gets no credit at all. For the active customers of a
generated company (fitted as ``segments train`` fits it) this prints, for the top-3 reasons of
each way: how often the value lies in one side's typical range (25th-75th percentile) and not the
other's while the credit goes to the other side; how often both ranges and the value are the same
(a reason a reader cannot follow); the personas whose top 3 name a defining feature; and the time
per customer.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import shap
from eval_explanations import _share, data_defining
from eval_generators import company_arguments, fitted_company

from models.bundle import SegmentModel
from pipelines.train import active_customers

BACKGROUND_PER_SEGMENT = 50


def interventional_contrast(
    model: SegmentModel,
    train: np.ndarray,
    values: np.ndarray,
    segments: np.ndarray,
    rivals: np.ndarray,
    per_segment: int,
) -> np.ndarray:
    """Each row's contrast of its segment over its rival, each feature measured against
    ``per_segment`` training customers (``train``) of each of the two segments."""
    explainer = model.explainer
    assert explainer is not None
    rng = np.random.default_rng(0)
    labels = model.place(train).segment
    out = np.zeros_like(values)
    for pair in sorted({(int(s), int(r)) for s, r in zip(segments, rivals, strict=True)}):
        rows = np.flatnonzero((segments == pair[0]) & (rivals == pair[1]))
        background = []
        for side in pair:
            members = np.flatnonzero(labels == side)
            if len(members) > per_segment:
                members = rng.choice(members, per_segment, replace=False)
            background.append(train[members])
        data = np.vstack(background)
        own, rival = (
            shap.TreeExplainer(
                explainer.models_[side], data=data, feature_perturbation="interventional"
            )
            for side in pair
        )
        out[rows] = own.shap_values(values[rows], check_additivity=False) - rival.shap_values(
            values[rows], check_additivity=False
        )
    return out


def report(
    name: str,
    model: SegmentModel,
    features: pd.DataFrame,
    values: np.ndarray,
    segments: np.ndarray,
    rivals: np.ndarray,
    contributions: np.ndarray,
    seconds: float,
) -> None:
    """Print how the top-3 reasons of ``contributions`` read beside the two typical ranges."""
    top = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :3]
    names = model.feature_names
    contradict = same = total = 0
    for row in range(len(values)):
        own = model.profiles[int(segments[row])].typical_ranges
        rival = model.profiles[int(rivals[row])].typical_ranges
        for column in top[row]:
            feature, value = names[column], values[row, column]
            share = contributions[row, column]
            if feature not in own or feature not in rival:
                continue
            in_own = own[feature][0] <= value <= own[feature][1]
            in_rival = rival[feature][0] <= value <= rival[feature][1]
            total += 1
            contradict += (in_own and not in_rival and share < 0) or (
                in_rival and not in_own and share > 0
            )
            same += in_own and in_rival and own[feature] == rival[feature]
    persona = features["persona"].to_numpy(object)
    named = np.array(names)[top]
    shares = [
        s
        for label in sorted(set(persona))
        if (s := _share(named[persona == label], data_defining(features, persona == label, names)))
        is not None
    ]
    print(
        f"  {name:<15} contradicting {contradict / total:.1%}, same ranges {same / total:.1%}, "
        f"personas mean {np.mean(shares):.3f} lowest {np.min(shares):.3f} "
        f">=70% {sum(s >= 0.7 for s in shares)} of {len(shares)}; "
        f"{seconds / len(values) * 1e3:.2f} ms a customer"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    company_arguments(parser)
    parser.add_argument("--per-segment", type=int, default=BACKGROUND_PER_SEGMENT)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    setting, everyone, _, model = fitted_company(args.generator, args.variant, args.seed)
    features = active_customers(everyone).reset_index(drop=True)
    values = model.values(features)
    placed = model.place(values)
    segments, rivals = placed.segment, placed.runner_up
    print(f"{setting.name} seed {args.seed}: {len(model.profiles)} segments")
    start = time.perf_counter()
    path = model.explainer.explain_contrast(values, segments, rivals).contributions
    report(
        "path-dependent",
        model,
        features,
        values,
        segments,
        rivals,
        path,
        time.perf_counter() - start,
    )
    start = time.perf_counter()
    inter = interventional_contrast(model, values, values, segments, rivals, args.per_segment)
    report(
        "interventional",
        model,
        features,
        values,
        segments,
        rivals,
        inter,
        time.perf_counter() - start,
    )


if __name__ == "__main__":
    main()
