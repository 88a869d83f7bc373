"""Where models come from: the MLflow registry alias, downloaded and sha256-verified.

``ModelSource`` is the seam the lifecycle depends on; ``RegistrySource`` is the MLflow one, built
on ``pipelines.tracking`` (the same verified download the CLI uses).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from feature_store.errors import SegmentsError
from service.settings import Settings


class RegistryUnavailableError(SegmentsError):
    """The registry could not be asked (server down, store missing, timeout)."""


@dataclass(frozen=True)
class FetchedModel:
    """A version's files in a local folder and the sha256 the registry recorded for them; loading
    (``pipelines.artifacts.load_model``) checks the files against these before unpickling."""

    version: str
    folder: Path
    hashes: dict[str, str]


class ModelSource(Protocol):
    def alias_version(self) -> str | None:
        """The version the alias points at, ``None`` when it points nowhere.

        Raises ``RegistryUnavailableError`` when the registry cannot be asked.
        """
        ...

    def fetch(self, version: str, into: Path) -> FetchedModel:
        """Download a version's files with the sha256 the registry recorded for them."""
        ...


class RegistrySource:
    """The MLflow registry named by the settings (embedded SQLite store by default)."""

    def __init__(self, settings: Settings) -> None:
        self.alias = settings.model_alias
        self._settings = settings
        self._client: object | None = None

    def _connect(self):  # noqa: ANN202 - MlflowClient is imported lazily
        if self._client is None:
            import mlflow
            from mlflow import MlflowClient

            from pipelines import tracking

            # One slow or dead server must not hold the poller for minutes of retries.
            timeout = str(int(self._settings.registry_timeout_seconds))
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", timeout)
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            environ = {"MLFLOW_TRACKING_URI": self._settings.tracking_uri or ""}
            layout = self._settings.layout
            config = tracking.TrackingConfig.from_environment(layout, environ)
            if (
                config.tracking_uri.startswith("sqlite:///")
                and not (layout.home / "mlflow.db").exists()
            ):
                raise RegistryUnavailableError(f"no registry at {config.tracking_uri}")
            # ``models:/`` downloads resolve through the process-wide registry URI.
            mlflow.set_tracking_uri(config.tracking_uri)
            mlflow.set_registry_uri(config.tracking_uri)
            self._client = MlflowClient(config.tracking_uri, config.tracking_uri)
        return self._client

    def alias_version(self) -> str | None:
        from mlflow.exceptions import MlflowException

        from pipelines.tracking import MODEL_NAME

        try:
            client = self._connect()
            return str(client.get_model_version_by_alias(MODEL_NAME, self.alias).version)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise RegistryUnavailableError(f"registry: {error.message}") from None
        except RegistryUnavailableError:
            raise
        except Exception as error:  # connection errors surface as many types
            raise RegistryUnavailableError(f"registry: {type(error).__name__}: {error}") from None

    def fetch(self, version: str, into: Path) -> FetchedModel:
        from pipelines import tracking

        downloaded = tracking.download_version(self._connect(), version, into)
        return FetchedModel(version, downloaded.folder, downloaded.hashes)
