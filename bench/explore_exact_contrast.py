"""The surrogate's contrast against the segmentation's own exact contrast, on a generated company.

    PYTHONPATH=$PWD:$PWD/bench python bench/explore_exact_contrast.py --generator agent \\
        --variant clean --seed 20

Fits the company as ``segments train`` does (``fit_model``, the table a month before for the
columns' reliability) and explains every active customer's segment rather than its runner-up two
ways: the surrogate's TreeSHAP contrast (what the API gives) and, for a model of nearest centres,
``CustomerSegmenter.contrast_terms`` (the log-odds behind ``confidence``, split exactly by feature;
what the API gives where the surrogate prefers the runner-up). For the customers as of the date
and as of a month before (scored by the same model, as a CRM scoring by events at a past date
does), it prints how often each prefers the runner-up, how far the exact terms' sum is from the
log-odds, how many top-3 reasons point away, and, per planted persona, the share whose top 3 name
a feature that defines it (``eval_explanations.data_defining``). ``docs/explanations.md``.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from eval_explanations import _share, data_defining
from eval_generators import company_arguments, fitted_company

from models.bundle import SegmentModel
from pipelines.train import active_customers


def compare(model: SegmentModel, values: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Print how the two contrasts behave on ``values``; their contributions."""
    placed = model.place(values)
    segments, rivals = placed.segment, placed.runner_up
    assert model.explainer is not None
    assert rivals is not None
    surrogate = model.explainer.explain_contrast(values, segments, rivals)
    exact = model.segmenter.contrast_terms(values, segments, rivals)
    if exact is None:
        raise SystemExit(f"{type(model.segmenter.assigner_).__name__} has no exact contrast")
    proba = model.segmenter.predict_proba(values)
    rows = np.arange(len(values))
    defined = (proba[rows, segments] > 1e-250) & (proba[rows, rivals] > 1e-250)
    log_odds = np.log(proba[rows, segments][defined]) - np.log(proba[rows, rivals][defined])
    error = np.abs(exact.sum(axis=1)[defined] - log_odds)
    print(
        f"{label}: {len(values):,} customers; the surrogate prefers the runner-up for "
        f"{(surrogate.outputs <= 0).mean():.2%}, the exact terms for "
        f"{(exact.sum(axis=1) <= 0).mean():.2%}; largest |sum of terms - log-odds| "
        f"{error.max() if len(error) else 0.0:.1e}"
    )
    for name, contributions in (("surrogate", surrogate.contributions), ("exact", exact)):
        top = np.argsort(-np.abs(contributions), axis=1)[:, :3]
        away = (np.take_along_axis(contributions, top, axis=1) < 0).mean()
        print(f"  {name:<10} top-3 reasons pointing away: {away:.1%}")
    return surrogate.contributions, exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    company_arguments(parser)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    setting, everyone, earlier, model = fitted_company(args.generator, args.variant, args.seed)
    print(
        f"{setting.name} seed {args.seed}: {len(model.profiles)} segments, "
        f"{type(model.segmenter.assigner_).__name__}"
    )
    features = active_customers(everyone).reset_index(drop=True)
    views = compare(model, model.values(features), "as of the date")
    persona = features["persona"].to_numpy(object)
    for name, contributions in zip(("surrogate", "exact"), views, strict=True):
        named = np.array(model.feature_names)[np.argsort(-np.abs(contributions), axis=1)[:, :3]]
        shares = [
            share
            for label in sorted(set(persona))
            if (
                share := _share(
                    named[persona == label],
                    data_defining(features, persona == label, model.feature_names),
                )
            )
            is not None
        ]
        print(
            f"  {name:<10} personas with a defining feature in the top 3: mean "
            f"{np.mean(shares):.3f}, lowest {np.min(shares):.3f}, at 70% or more "
            f"{sum(share >= 0.7 for share in shares)} of {len(shares)}"
        )
    if earlier is not None:
        before = active_customers(earlier[earlier["customer_id"].isin(features["customer_id"])])
        compare(model, model.values(before), "a month before")


if __name__ == "__main__":
    main()
