"""Persona recovery on planted companies from generators the segmenter was never tuned on.

    python bench/eval_generators.py [--quick] [--jobs N] [--seed S] [--with-100k] [--out FILE]
                                    [--sizes 300,3000] [--personas 6] [--variants clean,subtle]
                                    [--generator both|all|latent|agent|journey|blind]
                                    [--segmenter-seed R]

Generators (``bench/latent_company.py``: latent profiles through a Gaussian copula;
``bench/agent_company.py``: a day-by-day simulation of behavioural policies; with ``--generator
journey`` or ``all``, ``bench/journey_company.py``: week-by-week customer journeys, written later,
on 2026-12-03, by someone who had not seen the segmenter's code or results; with ``--generator
blind``, ``bench/blind_company.py``: a day-by-day B2B SaaS company written on 2026-12-07 by a
helper who read only the events contract and the generators' shared plumbing), each over a grid of
sizes (300, 3,000, 30,000; 100,000 with ``--with-100k``), 3/6/10 personas and variants: clean,
imbalanced (smallest persona 3%), nuisance (annual plan p=0.3 and country, independent of
persona), subtle (each persona differs from a neighbour in two or three traits), churners.

Every company goes through the feature store end to end (ingest into a temporary data home,
features as of its last day), then ``CustomerSegmenter(random_state=0)`` with no k given, on the
27 registry features, as in ``bench/eval_personas.py``, fitted on the customers whose
subscription is not cancelled as of that day (``pipelines.train.active_customers``, as training
does: churn is measured beside the segments, not clustered). Scores are adjusted Rand indices
against the planted personas on those customers; planted k is the number of personas among them.

Baselines, on the same preprocessed matrix (``FeaturePreprocessor`` defaults, as the segmenter
uses): k-means with k chosen by silhouette (2..12), k-means told the planted k, HDBSCAN with
scikit-learn defaults (only up to 30,000 customers; noise counted as one label), and a Gaussian
mixture (full covariance) with k chosen by BIC (1..12, fitted on at most 5,000 rows).

``annual segs`` counts our segments in which at least 90% of customers are on the annual plan:
the plan is drawn at random with p=0.3, so such a segment exists only when the flag split one.
Company seeds derive from ``--seed`` and the setting's name, so one ``--seed`` is one draw of
every company and another seed is a fresh draw. ``--segmenter-seed`` changes only our
segmenter's ``random_state`` (default 0, as ``segments train``): how much the segments of one
company move with it. The baselines run on our preprocessed matrix, whose agreement weights are
estimated with the same seed, so their figures move a little with it too.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from agent_company import generate as generate_agent
from blind_company import generate as generate_blind
from journey_company import generate as generate_journey
from latent_company import generate as generate_latent
from planted import AS_OF, CompanySpec, PlantedCompany, write_company
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from feature_store.currency import ESTIMATE, LevelsChoice, levels_of
from feature_store.ingest import ingest_files
from feature_store.layout import StoreLayout
from feature_store.registry import SEGMENTED_FEATURE_NAMES
from feature_store.timeutil import parse_as_of
from models.bundle import SegmentModel
from models.segmenter import CustomerSegmenter, segmenter_for
from pipelines.feature_pipeline import build_features
from pipelines.train import active_customers, earlier_features, fit_model, reliability_of

GENERATORS: dict[str, Callable[[CompanySpec], PlantedCompany]] = {
    "latent": generate_latent,
    "agent": generate_agent,
    "journey": generate_journey,
    "blind": generate_blind,
}
# name -> (smallest share, nuisance, subtle, churn share)
VARIANTS: dict[str, tuple[float | None, bool, bool, float]] = {
    "clean": (None, False, False, 0.0),
    "nuisance": (None, True, False, 0.0),
    "imbalanced": (0.03, False, False, 0.0),
    "imbalanced+nuisance": (0.03, True, False, 0.0),
    "subtle": (None, False, True, 0.0),
    "subtle+nuisance": (None, True, True, 0.0),
    "churn+nuisance": (None, True, False, 0.15),
}
QUICK = [  # (customers, personas, variant)
    (1000, 6, "clean"),
    (1000, 6, "nuisance"),
    (1000, 6, "imbalanced+nuisance"),
    (1000, 6, "subtle"),
    (1000, 6, "churn+nuisance"),
]
HDBSCAN_MAX_ROWS = 30_000
GMM_SAMPLE = 5000
K_RANGE = range(2, 13)


@dataclass(frozen=True)
class Setting:
    generator: str
    customers: int
    personas: int
    variant: str

    @property
    def name(self) -> str:
        return f"{self.generator}-{self.customers}-{self.personas}-{self.variant}"

    def spec(self, base_seed: int) -> CompanySpec:
        min_share, nuisance, subtle, churn = VARIANTS[self.variant]
        seed = int(
            np.random.SeedSequence([base_seed, zlib.crc32(self.name.encode())]).generate_state(1)[0]
        )
        return CompanySpec(self.customers, self.personas, min_share, nuisance, subtle, churn, seed)


def settings(quick: bool, with_100k: bool) -> list[Setting]:
    if quick:
        return [Setting(g, n, k, v) for g in GENERATORS for n, k, v in QUICK]
    sizes = (300, 3000, 30_000, *((100_000,) if with_100k else ()))
    return [
        Setting(g, n, k, v) for g in GENERATORS for n in sizes for k in (3, 6, 10) for v in VARIANTS
    ]


def feature_table(company: PlantedCompany, levels: LevelsChoice = ESTIMATE) -> pd.DataFrame:
    """Ingest the company into a throwaway data home; features as of its last day, with truth.
    Money as the pipeline converts it (``feature_store.currency``), or by ``levels`` (None: in
    each customer's own currency)."""
    return feature_tables(company, levels)[0]


def feature_tables(
    company: PlantedCompany, levels: LevelsChoice = ESTIMATE
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``feature_table``, and the table a month before as training takes it
    (``pipelines.train.earlier_features``: which columns are lasting traits)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_company(company, Path(tmp) / "events")
        layout = StoreLayout(Path(tmp) / "home")
        ingest_files(layout, {"billing": paths["billing"], "usage": paths["usage"]})
        as_of = parse_as_of(AS_OF)
        features = build_features(layout, as_of, levels)
        earlier = earlier_features(layout, as_of, levels_of(features))
    truth = company.truth
    return features.merge(truth, on="customer_id", how="left", validate="1:1"), earlier


def as_training_sees_it(
    setting: Setting, base_seed: int
) -> tuple[pd.DataFrame, np.ndarray, dict[str, float]]:
    """One company's features as training segments them (its active customers, as ``evaluate``
    takes them), its planted personas, and the columns' reliability: what the exploration
    scripts start from."""
    everyone, earlier = feature_tables(GENERATORS[setting.generator](setting.spec(base_seed)))
    features = active_customers(everyone)
    names = list(SEGMENTED_FEATURE_NAMES)
    reliability = reliability_of(features, earlier, names)
    return features[names], features["persona"].to_numpy(object), reliability


def fitted_company(
    generator: str, variant: str, base_seed: int
) -> tuple[Setting, pd.DataFrame, pd.DataFrame | None, SegmentModel]:
    """A six-persona company of 3,000 customers, its features (persona included), its table a
    month before, and the model fitted as ``segments train`` fits it (that table for the
    columns' reliability): what the explanation explorations start from."""
    setting = Setting(generator, 3000, 6, variant)
    everyone, earlier = feature_tables(GENERATORS[generator](setting.spec(base_seed)))
    model = fit_model(
        everyone.drop(columns=["persona"]), CustomerSegmenter(random_state=0), earlier=earlier
    ).model
    return setting, everyone, earlier, model


def company_arguments(parser: argparse.ArgumentParser, generator: str = "agent") -> None:
    """``--generator``, ``--variant`` and ``--seed`` of one company (``fitted_company``)."""
    parser.add_argument("--generator", default=generator, choices=sorted(GENERATORS))
    parser.add_argument("--variant", default="clean", choices=["clean", "nuisance"])
    parser.add_argument("--seed", type=int, default=20)


def silhouette_kmeans(Z: np.ndarray) -> np.ndarray:
    rows = np.random.default_rng(0).choice(len(Z), min(len(Z), 3000), replace=False)
    fits = {k: KMeans(k, n_init=4, random_state=0).fit_predict(Z) for k in K_RANGE}
    return fits[max(fits, key=lambda k: silhouette_score(Z[rows], fits[k][rows]))]


def bic_gmm(Z: np.ndarray) -> np.ndarray:
    rows = np.random.default_rng(0).choice(len(Z), min(len(Z), GMM_SAMPLE), replace=False)
    fits = [
        GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=0).fit(Z[rows])
        for k in range(1, K_RANGE.stop)
    ]
    return min(fits, key=lambda m: m.bic(Z[rows])).predict(Z)


def hdbscan_defaults(Z: np.ndarray) -> np.ndarray | None:
    return HDBSCAN().fit_predict(Z) if len(Z) <= HDBSCAN_MAX_ROWS else None


def found_k(labels: np.ndarray | None) -> int | None:
    return None if labels is None else len(set(labels.tolist()) - {-1})


def ari(truth: np.ndarray, labels: np.ndarray | None, rows: np.ndarray) -> float | None:
    return None if labels is None else adjusted_rand_score(truth[rows], labels[rows])


def annual_segments(labels: np.ndarray, annual: np.ndarray) -> int:
    share = pd.Series(annual.astype(float)).groupby(labels).mean()
    return int((share >= 0.9).sum())


def evaluate(
    setting: Setting, base_seed: int, sources: str | None = "registry", random_state: int = 0
) -> dict[str, object]:
    """One company: ours (flags judged across sources, the default, or with ``sources=None`` on
    all columns as before 2026-12-03), ours told the planted k, and the baselines. Ours runs with
    ``random_state`` (``--segmenter-seed``: the same company, another draw of the segmenter's
    samples and starts); the baselines keep their own seeds but run on our preprocessed matrix,
    whose agreement weights are drawn with ``random_state``."""
    warnings.filterwarnings("ignore")
    spec = setting.spec(base_seed)
    company = GENERATORS[setting.generator](spec)
    everyone, earlier = feature_tables(company)
    # As in training (``pipelines.train.active_customers``): cancelled customers are reported
    # beside the segments, not segmented, so every method sees the active customers only.
    features = active_customers(everyone)
    X = features[list(SEGMENTED_FEATURE_NAMES)]
    reliability = reliability_of(features, earlier, list(SEGMENTED_FEATURE_NAMES))
    started = time.perf_counter()
    model = CustomerSegmenter(random_state=random_state, sources=sources).fit(
        X, reliability=reliability
    )
    fit_seconds = time.perf_counter() - started
    persona = features["persona"].to_numpy(object)
    planted_k = int(features["persona"].nunique())
    # Ours told the planted number (``--segments``): what a team that knows its personas gets.
    told = segmenter_for(planted_k, sources=sources, random_state=random_state).fit(
        X, reliability=reliability
    )
    with threadpool_limits(limits=1):
        Z = model.transform(X)
        baselines = {
            "sil_kmeans": silhouette_kmeans(Z),
            "kmeans_true_k": KMeans(planted_k, n_init=4, random_state=0).fit_predict(Z),
            "hdbscan": hdbscan_defaults(Z),
            "gmm_bic": bic_gmm(Z),
        }
    everyone_rows = np.ones(len(persona), bool)
    row: dict[str, object] = {
        **asdict(setting),
        "seed": spec.seed,
        "planted_k": planted_k,
        "smallest": float(features["persona"].value_counts(normalize=True).min()),
        "churned": float(1 - len(features) / len(everyone)),
        "ours_k": model.n_segments_,
        "ours_ari": ari(persona, model.labels_, everyone_rows),
        "ours_told_k_ari": ari(persona, told.labels_, everyone_rows),
        "annual_segs": annual_segments(model.labels_, features["is_annual_plan"].to_numpy(bool)),
        "fit_s": fit_seconds,
    }
    for name, labels in baselines.items():
        row[f"{name}_k"] = found_k(labels)
        row[f"{name}_ari"] = ari(persona, labels, everyone_rows)
    row["hdbscan_noise"] = (
        None if baselines["hdbscan"] is None else float((baselines["hdbscan"] == -1).mean())
    )
    return row


COLUMNS = (
    ("generator", "generator", "{}"),
    ("customers", "customers", "{:,}"),
    ("personas", "personas", "{}"),
    ("variant", "variant", "{}"),
    ("smallest", "smallest", "{:.0%}"),
    ("planted_k", "planted k", "{}"),
    ("ours_k", "ours k", "{}"),
    ("ours_ari", "ours ARI", "{:.3f}"),
    ("churned", "churned (not fitted)", "{:.0%}"),
    ("annual_segs", "annual segs", "{}"),
    ("sil_kmeans_k", "sil-km k", "{}"),
    ("sil_kmeans_ari", "sil-km ARI", "{:.3f}"),
    ("kmeans_true_k_ari", "km true-k ARI", "{:.3f}"),
    ("ours_told_k_ari", "ours told-k ARI", "{:.3f}"),
    ("hdbscan_k", "HDBSCAN k", "{}"),
    ("hdbscan_noise", "noise", "{:.0%}"),
    ("hdbscan_ari", "HDBSCAN ARI", "{:.3f}"),
    ("gmm_bic_k", "GMM-BIC k", "{}"),
    ("gmm_bic_ari", "GMM-BIC ARI", "{:.3f}"),
    ("fit_s", "fit s", "{:.0f}"),
    ("seed", "seed", "{}"),
)


def _cell(value: object, fmt: str) -> str:
    return "–" if value is None or value != value else fmt.format(value)


def markdown(rows: list[dict[str, object]]) -> str:
    header = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(r[key], fmt) for key, _, fmt in COLUMNS) + " |" for r in rows]
    return "\n".join([header, rule, *body])


def summary(rows: list[dict[str, object]]) -> str:
    table = pd.DataFrame(rows)
    means = table.groupby("generator")[
        [
            "ours_ari",
            "sil_kmeans_ari",
            "kmeans_true_k_ari",
            "ours_told_k_ari",
            "hdbscan_ari",
            "gmm_bic_ari",
        ]
    ].mean()
    exact = (
        table.assign(exact_k=table["ours_k"] == table["planted_k"])
        .groupby("generator")["exact_k"]
        .mean()
    )
    means.insert(0, "ours k = planted", exact)
    header = "| generator | " + " | ".join(means.columns) + " |"
    rule = "|---" * (len(means.columns) + 1) + "|"
    lines = [f"| {g} | " + " | ".join(f"{v:.3f}" for v in r) + " |" for g, r in means.iterrows()]
    return "Means over the grid (ARI on active customers, the ones fitted):\n\n" + "\n".join(
        [header, rule, *lines]
    )


def breakdown(rows: list[dict[str, object]]) -> str:
    """Mean ARI by generator and company size, persona count and variant: ours (with how often the
    planted k was found and the mean number of segments) beside every baseline."""
    table = pd.DataFrame(rows).assign(
        exact_k=lambda t: t["ours_k"] == t["planted_k"], ours_segments=lambda t: t["ours_k"]
    )
    columns = {
        "companies": ("ours_ari", "size"),
        "ours": ("ours_ari", "mean"),
        "planted k found": ("exact_k", "sum"),
        "segments found": ("ours_segments", "mean"),
        "silhouette k-means": ("sil_kmeans_ari", "mean"),
        "GMM by BIC": ("gmm_bic_ari", "mean"),
        "HDBSCAN": ("hdbscan_ari", "mean"),
        "k-means told k": ("kmeans_true_k_ari", "mean"),
        "ours told k": ("ours_told_k_ari", "mean"),
    }
    # reports written before a column existed (the told-k one) are read without it
    columns = {name: spec for name, spec in columns.items() if spec[0] in table}
    parts = []
    for by in ("customers", "personas", "variant"):
        grouped = table.groupby(["generator", by], sort=False).agg(**columns)
        lines = [
            f"| generator | {by} | " + " | ".join(columns) + " |",
            "|---" * (len(columns) + 2) + "|",
        ]
        for (generator, value), r in grouped.iterrows():
            cells = [
                f"{int(v)}"
                if k in ("companies", "planted k found")
                else f"{v:.1f}"
                if k == "segments found"
                else f"{v:.3f}"
                for k, v in r.items()
            ]
            shown = f"{int(value):,}" if by in ("customers", "personas") else value
            lines.append(f"| {generator} | {shown} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    nuisance = table[table["variant"].str.contains("nuisance")]
    annual = (
        f"Annual-only segments (flag drawn at random): {int(nuisance['annual_segs'].sum())} in "
        f"{len(nuisance)} companies with nuisance flags, in "
        f"{int((nuisance['annual_segs'] > 0).sum())} of them."
    )
    return (
        "By "
        + ", by ".join(("company size", "persona count", "variant"))
        + ":\n\n"
        + "\n\n".join(parts)
        + "\n\n"
        + annual
    )


def read_report(path: Path) -> list[dict[str, object]]:
    """The company rows of the first company table in a report this script wrote (``--out``),
    back as dictionaries; empty when the file holds none."""
    titles = {title: key for key, title, _ in COLUMNS}
    header: list[str] | None = None
    rows: list[dict[str, object]] = []
    for line in path.read_text().splitlines():
        if header is None:
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if line.startswith("| generator | customers |") and set(cells) <= set(titles):
                header = cells
            continue
        if not line.startswith("|"):
            break  # the end of the first company table
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != len(header) or cells[0] not in GENERATORS:
            continue
        rows.append(dict(zip([titles[t] for t in header], map(_value, cells), strict=True)))
    return rows


def _value(cell: str) -> object:
    if cell in ("–", "-"):
        return None
    if cell.endswith("%"):
        return float(cell[:-1]) / 100
    try:
        return float(cell.replace(",", ""))
    except ValueError:
        return cell  # generator, variant


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a small grid: 5 companies per generator"
    )
    parser.add_argument("--jobs", type=int, default=1, help="companies evaluated in parallel")
    parser.add_argument(
        "--seed", type=int, default=0, help="base seed; each company derives its own"
    )
    parser.add_argument("--with-100k", action="store_true", help="add 100,000-customer companies")
    parser.add_argument(
        "--segmenter-seed",
        type=int,
        default=0,
        help="random_state of our segmenter (default 0, as `segments train`); the companies do "
        "not change with it (the baselines run on our preprocessing, which does)",
    )
    parser.add_argument(
        "--generator",
        choices=["both", "all", *GENERATORS],
        default="both",
        help="both: latent and agent (the grids in docs/evaluation.md); all: journey and blind too",
    )
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument(
        "--sources",
        choices=["registry", "all"],
        default="registry",
        help="judge flags across sources (the default) or on all columns (before 2026-12-03)",
    )
    parser.add_argument("--sizes", type=_ints, help="only these company sizes (comma-separated)")
    parser.add_argument("--personas", type=_ints, help="only these persona counts")
    parser.add_argument("--variants", type=lambda text: text.split(","), help="only these")
    parser.add_argument(
        "--breakdown",
        type=Path,
        metavar="REPORT",
        help="print the means by size, persona count and variant of a report written by --out",
    )
    args = parser.parse_args()
    if args.breakdown:
        if not args.breakdown.is_file():
            parser.error(f"--breakdown: {args.breakdown} not found")
        rows = read_report(args.breakdown)
        if not rows:
            parser.error(f"--breakdown: no company table written by --out in {args.breakdown}")
        print(breakdown(rows))
        return
    command = "python bench/eval_generators.py " + shlex.join(sys.argv[1:])
    print(command, flush=True)
    grid = [
        s
        for s in settings(args.quick, args.with_100k or 100_000 in (args.sizes or ()))
        if (
            args.generator in (s.generator, "all")
            or (args.generator == "both" and s.generator in ("latent", "agent"))
        )
        and (args.sizes is None or s.customers in args.sizes)
        and (args.personas is None or s.personas in args.personas)
        and (args.variants is None or s.variant in args.variants)
    ]
    rows: list[dict[str, object]] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        sources = None if args.sources == "all" else "registry"
        n = len(grid)
        seeds = [args.segmenter_seed] * n
        for row in pool.map(evaluate, grid, [args.seed] * n, [sources] * n, seeds):
            rows.append(row)
            print(markdown([row]).splitlines()[-1], flush=True)
    report = f"`{command}`\n\n{markdown(rows)}\n\n{summary(rows)}\n\n{breakdown(rows)}\n"
    print("\n" + report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)


if __name__ == "__main__":
    main()
