"""A surrogate that also learns the month before: does it prefer the runner-up less often?

    PYTHONPATH=$PWD:$PWD/bench python bench/explore_surrogate_months.py --generator latent \\
        --variant clean --seed 20

Fits the company as ``segments train`` does, then a second surrogate on the training customers
as of the date *and* as of a month before (labelled by the segmenter). For the customers as of
the date and one, two and three months before, it prints how often each surrogate's contrast
prefers the runner-up (what ``exact_contrast`` answers for a nearest-centre model), how often
its segment differs from the segmenter's, both held-out fidelities, and the personas' top-3
share (``eval_explanations.data_defining``). Tried and not adopted (``docs/explanations.md``).
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from eval_explanations import _share, data_defining
from eval_generators import GENERATORS, Setting
from planted import AS_OF, write_company

from feature_store.currency import levels_of
from feature_store.ingest import ingest_files
from feature_store.layout import StoreLayout
from feature_store.timeutil import parse_as_of
from models.explainer import SegmentExplainer
from models.segmenter import CustomerSegmenter
from pipelines.feature_pipeline import build_features
from pipelines.train import active_customers, earlier_features, fit_model, window_start_features


def tables(generator: str, variant: str, seed: int) -> dict[str, pd.DataFrame]:
    """The company's feature tables as of the date (with the planted persona) and 30, 60 and 90
    days before."""
    company = GENERATORS[generator](Setting(generator, 3000, 6, variant).spec(seed))
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_company(company, Path(tmp) / "events")
        layout = StoreLayout(Path(tmp) / "home")
        ingest_files(layout, {"billing": paths["billing"], "usage": paths["usage"]})
        as_of = parse_as_of(AS_OF)
        now = build_features(layout, as_of)
        levels = levels_of(now)
        out = {"T": now.merge(company.truth, on="customer_id", how="left")}
        out["T-30"] = earlier_features(layout, as_of, levels)
        for days in (60, 90):
            out[f"T-{days}"] = window_start_features(layout, as_of - timedelta(days=days), levels)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", default="latent", choices=sorted(GENERATORS))
    parser.add_argument("--variant", default="clean", choices=["clean", "nuisance"])
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    found = tables(args.generator, args.variant, args.seed)
    everyone = found["T"]
    model = fit_model(
        everyone.drop(columns=["persona"]), CustomerSegmenter(random_state=0), earlier=found["T-30"]
    ).model
    segmenter, names = model.segmenter, model.feature_names
    assert model.explainer is not None
    active = active_customers(everyone).reset_index(drop=True)
    month_before = active_customers(found["T-30"])[names]
    both = SegmentExplainer(random_state=0).fit(
        pd.concat([active[names], month_before], ignore_index=True),
        np.concatenate([segmenter.labels_, segmenter.predict(month_before)]),
    )
    surrogates = {"the date alone": model.explainer, "both months": both}
    print(
        f"{args.generator} {args.variant} seed {args.seed}: {len(model.profiles)} segments; "
        + ", ".join(f"fidelity ({k}) {e.fidelity_:.4f}" for k, e in surrogates.items())
    )
    for label, table in found.items():
        values = active_customers(table)[names].to_numpy(dtype=float)
        order = np.argsort(-segmenter.predict_proba(values), axis=1)
        shares = []
        for explainer in surrogates.values():
            contrast = explainer.explain_contrast(values, order[:, 0], order[:, 1])
            differs = (explainer.predict(values) != order[:, 0]).mean()
            shares.append(f"{(contrast.outputs <= 0).mean():.2%} (segment differs {differs:.2%})")
        print(f"  {label}: prefers the runner-up, " + " / ".join(shares))
    persona = active["persona"].to_numpy(object)
    values = active[names].to_numpy(dtype=float)
    order = np.argsort(-segmenter.predict_proba(values), axis=1)
    for key, explainer in surrogates.items():
        contributions = explainer.explain_contrast(values, order[:, 0], order[:, 1]).contributions
        top = np.array(names)[np.argsort(-np.abs(contributions), axis=1)[:, :3]]
        found_shares = [
            share
            for label in sorted(set(persona))
            if (
                share := _share(
                    top[persona == label], data_defining(active, persona == label, names)
                )
            )
            is not None
        ]
        print(f"  personas' top 3 ({key}): mean {np.mean(found_shares):.3f}")


if __name__ == "__main__":
    main()
