"""Model files on disk: written by this project, verified by sha256 before anything is unpickled."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import joblib

from feature_store.errors import SegmentsError
from models.bundle import SegmentModel
from models.population import PopulationQuantiles
from models.profiles import Distinction, Driver, SegmentProfile

SEGMENTER_FILE = "segmenter.joblib"
EXPLAINER_FILE = "explainer.joblib"
PROFILES_FILE = "profiles.json"
MANIFEST_FILE = "manifest.json"


class ModelIntegrityError(SegmentsError):
    """A model file is missing or its sha256 differs from the one recorded at registration."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(model: SegmentModel, folder: Path) -> dict[str, str]:
    """Write the model files and return their sha256 by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model.segmenter, folder / SEGMENTER_FILE)
    files = [SEGMENTER_FILE, PROFILES_FILE]
    if model.explainer is not None:
        joblib.dump(model.explainer, folder / EXPLAINER_FILE)
        files.append(EXPLAINER_FILE)
    (folder / PROFILES_FILE).write_text(
        json.dumps(
            {
                "feature_names": model.feature_names,
                "metrics": model.metrics,
                "trained_at": model.trained_at,
                "profiles": [p.as_dict() for p in model.profiles],
                "population_quantiles": model.population.as_dict() if model.population else None,
            },
            indent=2,
        )
    )
    hashes = {name: sha256_of(folder / name) for name in files}
    (folder / MANIFEST_FILE).write_text(json.dumps(hashes, indent=2))
    return hashes


def verify(folder: Path, expected: dict[str, str]) -> None:
    """Refuse unless every expected file exists with exactly the recorded sha256."""
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise ModelIntegrityError(f"model file {name} is missing from {folder}")
        actual = sha256_of(path)
        if actual != digest:
            raise ModelIntegrityError(
                f"model file {name} has sha256 {actual[:12]}..., expected {digest[:12]}...; "
                "refusing to load a file this project did not write"
            )


def load_model(folder: Path, expected: dict[str, str]) -> SegmentModel:
    """Verify, then load. ``expected`` comes from the registry, never from the folder itself."""
    if not expected:
        raise ModelIntegrityError(f"no sha256 recorded for the model in {folder}; refusing to load")
    verify(folder, expected)
    data = json.loads((folder / PROFILES_FILE).read_text())
    profiles = [
        SegmentProfile(
            **{
                **p,
                "distinguishing": [Distinction(**d) for d in p["distinguishing"]],
                "drivers": [Driver(**d) for d in p.get("drivers", [])],
            }
        )
        for p in data["profiles"]
    ]
    segmenter = joblib.load(folder / SEGMENTER_FILE)
    # Only a file listed in the registry's hashes (and so verified above) is ever unpickled.
    explainer = joblib.load(folder / EXPLAINER_FILE) if EXPLAINER_FILE in expected else None
    return SegmentModel(
        segmenter,
        data["feature_names"],
        profiles,
        data.get("metrics", {}),
        explainer=explainer,
        trained_at=data.get("trained_at"),
        population=PopulationQuantiles(quantiles)
        if (quantiles := data.get("population_quantiles"))
        else None,
    )
