"""Training: features as of a date -> segmenter -> profiles -> an MLflow run and a registered version.

Promotion gates (a new version becomes ``champion`` when all hold; the first version always does):

- the segmentation is reproducible: stability (bootstrap ARI) at least ``MIN_STABILITY``;
- it is readable: between 2 and the segment cap, outlier share at most ``MAX_OUTLIER_SHARE``;
- it is not worse than the champion it replaces: silhouette no more than ``MAX_SILHOUETTE_DROP``
  below the champion's.

Every new version gets the ``challenger`` alias, so it can be compared before promotion by hand
(``segments promote VERSION``).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from hdbscan.validity import validity_index

from feature_store.layout import StoreLayout
from feature_store.registry import FEATURE_NAMES
from models.bundle import SegmentModel
from models.profiles import build_profiles
from models.segmenter import CustomerSegmenter
from pipelines import tracking
from pipelines.artifacts import save_model
from pipelines.feature_pipeline import build_features
from pipelines.plots import profile_heatmap, segment_map

MIN_STABILITY = 0.75
MAX_OUTLIER_SHARE = 0.10
MAX_SILHOUETTE_DROP = 0.05
DBCV_SAMPLE = 1500


@dataclass
class TrainResult:
    run_id: str
    model_version: str
    n_segments: int
    metrics: dict[str, float]
    promoted: bool
    champion_version: str | None
    gate_failures: list[str]
    segments: list[dict[str, object]]
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _metric_key(candidate: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", candidate).strip("_")


def _dbcv(Z: np.ndarray, labels: np.ndarray, seed: int) -> float:
    rows = np.random.default_rng(seed).choice(len(Z), min(len(Z), DBCV_SAMPLE), replace=False)
    if len(np.unique(labels[rows])) < 2:
        return -1.0
    return float(validity_index(Z[rows].astype(np.float64), labels[rows]))


def fit_model(
    features: pd.DataFrame, segmenter: CustomerSegmenter
) -> tuple[SegmentModel, np.ndarray]:
    """Fit and profile; returns the model and the preprocessed matrix (for pictures)."""
    names = [n for n in FEATURE_NAMES if n in features.columns]
    X = features[names]
    segmenter.fit(X)
    Z = segmenter.preprocessor_.transform(X)
    proba = segmenter.predict_proba_from_matrix(Z)
    kept = list(segmenter.preprocessor_.get_feature_names_out())
    profiles = build_profiles(
        features,
        features["customer_id"],
        segmenter.labels_,
        segmenter.is_outlier_,
        proba.max(axis=1),
        Z,
        kept,
        segmenter.n_segments_,
    )
    chosen = next(s for s in segmenter.candidate_scores_ if s.chosen)
    metrics = {
        "n_segments": float(segmenter.n_segments_),
        "outlier_share": float(segmenter.is_outlier_.mean()),
        "silhouette": chosen.silhouette,
        "stability": float(chosen.stability or 0.0),
        "dbcv": _dbcv(Z, segmenter.labels_, segmenter.random_state),
        "customers": float(len(features)),
    }
    return SegmentModel(segmenter, names, profiles, metrics), Z


def gate_failures(
    metrics: dict[str, float], champion: dict[str, float] | None, cap: int
) -> list[str]:
    failures = []
    if metrics["stability"] < MIN_STABILITY:
        failures.append(f"stability {metrics['stability']:.3f} < {MIN_STABILITY}")
    if not 2 <= metrics["n_segments"] <= cap:
        failures.append(f"{metrics['n_segments']:.0f} segments outside 2..{cap}")
    if metrics["outlier_share"] > MAX_OUTLIER_SHARE:
        failures.append(f"outlier share {metrics['outlier_share']:.3f} > {MAX_OUTLIER_SHARE}")
    if champion and metrics["silhouette"] < champion.get("silhouette", -1) - MAX_SILHOUETTE_DROP:
        failures.append(
            f"silhouette {metrics['silhouette']:.3f} more than {MAX_SILHOUETTE_DROP} below the "
            f"champion's {champion['silhouette']:.3f}"
        )
    return failures


def train(
    layout: StoreLayout, as_of: datetime, segmenter: CustomerSegmenter | None = None
) -> TrainResult:
    started = time.perf_counter()
    segmenter = segmenter or CustomerSegmenter()
    features = build_features(layout, as_of)
    model, Z = fit_model(features, segmenter)
    client = tracking.connect(tracking.TrackingConfig.from_environment(layout))
    champion = tracking.alias_version(client, tracking.CHAMPION)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run() as run:
        folder = Path(tmp)
        mlflow.log_params(
            {
                **segmenter.get_params(),
                "as_of": as_of.isoformat(),
                "features": ",".join(model.feature_names),
                "chosen_candidate": segmenter.chosen_candidate_.name,
            }
        )
        mlflow.log_metrics(model.metrics)
        for score in segmenter.candidate_scores_:
            key = _metric_key(score.candidate)
            mlflow.log_metric(f"candidate.{key}.silhouette", score.silhouette)
            if score.stability is not None:
                mlflow.log_metric(f"candidate.{key}.stability", score.stability)
        _log_artifacts(model, segmenter, Z, folder)
        # The folder name is the pyfunc artifact key: MLflow stores it as artifacts/<name>.
        model_dir = folder / tracking.MODEL_DIR
        hashes = save_model(model, model_dir)
        example = features[model.feature_names].head(5).astype(float)
        version = tracking.log_model_version(client, model, model_dir, hashes, example)
        run_id = run.info.run_id
    tracking.set_alias(client, tracking.CHALLENGER, version)
    champion_metrics = tracking.version_metrics(client, champion) if champion else None
    failures = gate_failures(model.metrics, champion_metrics, segmenter.max_segments)
    promoted = champion is None or not failures
    if promoted:
        tracking.set_alias(client, tracking.CHAMPION, version)
    return TrainResult(
        run_id,
        version,
        int(model.metrics["n_segments"]),
        model.metrics,
        promoted,
        version if promoted else champion,
        failures if champion else [],
        [
            {
                "id": p.segment_id,
                "name": p.name,
                "size": p.size,
                "mrr_share": p.mrr_share,
                "churn_rate": p.churn_rate,
            }
            for p in model.profiles
        ],
        time.perf_counter() - started,
    )


def _log_artifacts(
    model: SegmentModel, segmenter: CustomerSegmenter, Z: np.ndarray, folder: Path
) -> None:
    names = model.segment_names
    kept = list(segmenter.preprocessor_.get_feature_names_out())
    (folder / "profiles.json").write_text(
        json.dumps([p.as_dict() for p in model.profiles], indent=2)
    )
    table = pd.DataFrame([s.as_dict() for s in segmenter.candidate_scores_])
    table.to_csv(folder / "candidates.csv", index=False)
    segment_map(Z, segmenter.labels_, names, folder / "segment_map.png")
    profile_heatmap(Z, segmenter.labels_, names, kept, folder / "profile_heatmap.png")
    for name in ("profiles.json", "candidates.csv", "segment_map.png", "profile_heatmap.png"):
        mlflow.log_artifact(str(folder / name))
