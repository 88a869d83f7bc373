"""MLflow: the embedded tracking store, runs, the registered model, aliases and verified loading.

Embedded default: a SQLite tracking and registry store and an artifact folder under the data home.
Setting ``MLFLOW_TRACKING_URI`` uses that server instead (artifacts then go wherever it says).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from feature_store.errors import SegmentsError
from feature_store.layout import StoreLayout
from models.bundle import SegmentModel
from pipelines.artifacts import MANIFEST_FILE, load_model, sha256_of

MODEL_NAME = "customer-segments"
EXPERIMENT_NAME = "customer-segments"
CHAMPION, CHALLENGER = "champion", "challenger"
SHA_TAG_PREFIX = "sha256."
MODEL_DIR = "model_dir"


class RegistryError(SegmentsError):
    """The registry cannot answer: no such version or alias, or the store is unreachable."""


@dataclass(frozen=True)
class TrackingConfig:
    tracking_uri: str
    artifact_location: str | None

    @classmethod
    def from_environment(
        cls, layout: StoreLayout, environ: Mapping[str, str] | None = None
    ) -> TrackingConfig:
        environ = os.environ if environ is None else environ
        uri = environ.get("MLFLOW_TRACKING_URI")
        if uri:
            return cls(uri, None)
        return cls(f"sqlite:///{layout.home / 'mlflow.db'}", (layout.home / "mlartifacts").as_uri())


def connect(config: TrackingConfig) -> MlflowClient:
    """Point MLflow at the store and make sure the experiment exists."""
    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_registry_uri(config.tracking_uri)
    client = MlflowClient(config.tracking_uri, config.tracking_uri)
    if client.get_experiment_by_name(EXPERIMENT_NAME) is None:
        client.create_experiment(EXPERIMENT_NAME, artifact_location=config.artifact_location)
    mlflow.set_experiment(EXPERIMENT_NAME)
    return client


class SegmentsPyfunc(mlflow.pyfunc.PythonModel):
    """The registered model as a generic MLflow pyfunc (for ``mlflow models serve`` and friends).

    It loads only after the files match the manifest written next to them at training time.
    """

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        folder = Path(context.artifacts[MODEL_DIR])
        self.model = load_model(folder, json.loads((folder / MANIFEST_FILE).read_text()))

    def predict(
        self, context: object, model_input: pd.DataFrame, params: object = None
    ) -> pd.DataFrame:
        return self.model.assign(model_input)


def log_model_version(
    client: MlflowClient,
    model: SegmentModel,
    model_dir: Path,
    hashes: dict[str, str],
    example: pd.DataFrame,
) -> str:
    """Log the pyfunc in the active run, register it, tag it with the sha256; return the version."""
    assignments = model.assign(example)
    with warnings.catch_warnings():
        # MLflow warns about pickling the wrapper class: it holds no state (the files are loaded
        # and verified in load_context), so only this package's own class is pickled.
        warnings.simplefilter("ignore")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=SegmentsPyfunc(),
            artifacts={MODEL_DIR: str(model_dir)},
            signature=infer_signature(example, assignments),
            input_example=example,
        )
    version = mlflow.register_model(info.model_uri, MODEL_NAME)
    for file_name, digest in hashes.items():
        client.set_model_version_tag(
            MODEL_NAME, version.version, SHA_TAG_PREFIX + file_name, digest
        )
    return str(version.version)


def set_alias(client: MlflowClient, alias: str, version: str) -> None:
    client.set_registered_model_alias(MODEL_NAME, alias, version)


def alias_version(client: MlflowClient, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(MODEL_NAME, alias).version)
    except MlflowException:
        return None


def version_metrics(client: MlflowClient, version: str) -> dict[str, float]:
    run_id = client.get_model_version(MODEL_NAME, version).run_id
    return dict(client.get_run(run_id).data.metrics) if run_id else {}


def expected_hashes(client: MlflowClient, version: str) -> dict[str, str]:
    tags = client.get_model_version(MODEL_NAME, version).tags
    return {k[len(SHA_TAG_PREFIX) :]: v for k, v in tags.items() if k.startswith(SHA_TAG_PREFIX)}


def resolve_version(client: MlflowClient, version: str | None) -> str:
    """The given version after checking it exists, or the champion's."""
    try:
        if version is None:
            champion = alias_version(client, CHAMPION)
            if champion is None:
                raise RegistryError(f"no {CHAMPION} model yet; run `segments train` first")
            return champion
        client.get_model_version(MODEL_NAME, version)
        return version
    except MlflowException as error:
        raise RegistryError(f"model {MODEL_NAME} version {version}: {error.message}") from None


@dataclass(frozen=True)
class DownloadedVersion:
    """A version's model files in a local folder, with the sha256 the registry recorded for them.

    Not checked yet: ``pipelines.artifacts.load_model`` checks them against ``hashes`` before it
    unpickles anything, so the check happens once, where it protects.
    """

    folder: Path
    hashes: dict[str, str]


def download_version(client: MlflowClient, version: str, into: Path) -> DownloadedVersion:
    """Download a version's files, with the sha256 recorded at registration."""
    hashes = expected_hashes(client, version)
    source = f"models:/{MODEL_NAME}/{version}"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(into)))
    return DownloadedVersion(local / "artifacts" / MODEL_DIR, hashes)


def load_version(client: MlflowClient, version: str) -> SegmentModel:
    with tempfile.TemporaryDirectory() as tmp:
        downloaded = download_version(client, version, Path(tmp))
        return load_model(downloaded.folder, downloaded.hashes)


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MODEL_NAME",
    "RegistryError",
    "TrackingConfig",
    "alias_version",
    "connect",
    "load_version",
    "log_model_version",
    "resolve_version",
    "set_alias",
    "sha256_of",
    "version_metrics",
]
