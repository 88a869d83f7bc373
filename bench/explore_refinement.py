"""Exploration: what the discriminant refinement does to a generated company's segments.

    PYTHONPATH=$PWD:$PWD/bench python bench/explore_refinement.py --generator blind \
        --variants clean nuisance --seeds 0 1 2 3 [--ceiling]

For each six-persona company of 3,000 customers (the companies of ``bench/eval_generators.py``,
the same for the same seed), the segmenter fitted as that bench fits it, and again with the
k-means family's finish left out (``KMeansFamily.finish`` as the identity, so the k-means segments
the selection chose stand), each with no k given and told six; ARI against the personas and the
share of customers the refinement moved. ``--ceiling`` adds a linear discriminant fitted on the
planted personas themselves (5-fold cross-validated, on the segmenter's preprocessed matrix): how
far apart the personas are in our features. ``docs/evaluation.md``, "A fourth generator, written
blind".
"""

from __future__ import annotations

import argparse
import contextlib
import warnings
from collections.abc import Iterator

from eval_generators import GENERATORS, Setting, as_training_sees_it
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import cross_val_predict

from models.families.kmeans import KMeansFamily
from models.segmenter import CustomerSegmenter, segmenter_for

PERSONAS = 6


@contextlib.contextmanager
def without_refinement() -> Iterator[None]:
    """The k-means family's finish left out for the fits inside (restored after)."""
    finish = KMeansFamily.finish
    KMeansFamily.finish = lambda self, fitted, Z, random_state: fitted  # type: ignore[method-assign]
    try:
        yield
    finally:
        KMeansFamily.finish = finish  # type: ignore[method-assign]


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=list(GENERATORS), default="blind")
    parser.add_argument("--variants", nargs="+", default=["clean", "nuisance"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--ceiling", action="store_true", help="add the discriminant on the truth")
    args = parser.parse_args()
    for seed in args.seeds:
        for variant in args.variants:
            setting = Setting(args.generator, 3000, PERSONAS, variant)
            X, personas, reliability = as_training_sees_it(setting, seed)
            scores = []
            for label, context in (
                ("refined", contextlib.nullcontext),
                ("k-means", without_refinement),
            ):
                with context():
                    found = CustomerSegmenter(random_state=0).fit(X, reliability=reliability)
                    told = segmenter_for(PERSONAS, random_state=0).fit(X, reliability=reliability)
                if label == "refined":
                    moved, model = found.finish_moved_share_, found
                scores.append(
                    f"{label}: {adjusted_rand_score(personas, found.labels_):.3f}, "
                    f"told six {adjusted_rand_score(personas, told.labels_):.3f}"
                )
            line = (
                f"{args.generator} {variant} seed {seed}: {model.n_segments_} segments; "
                f"{'; '.join(scores)}; the refinement moved {moved:.0%}"
            )
            if args.ceiling:
                truth = cross_val_predict(
                    LinearDiscriminantAnalysis(), model.transform(X), personas, cv=5
                )
                line += (
                    f"; discriminant on the personas: accuracy {(truth == personas).mean():.3f},"
                    f" ARI {adjusted_rand_score(personas, truth):.3f}"
                )
            print(line, flush=True)


if __name__ == "__main__":
    main()
