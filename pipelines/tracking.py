"""Which registry the pipelines use, and the registry calls ``pipelines/cli.py`` makes.

Everything MLflow lives in ``models.registry``. The pipelines' own configuration: the server in
``MLFLOW_TRACKING_URI`` (else the embedded store under the data home) and the registered model
named by ``SEGMENTS_MODEL_NAME`` (default ``customer-segments``), read, never written.

``TrackingConfig.from_environment``, ``connect``, ``resolve_version``, ``alias_version``,
``set_alias`` and ``load_version`` keep the command line's calls working; new code calls
``ModelRegistry`` methods directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from feature_store.layout import StoreLayout
from models.bundle import SegmentModel
from models.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    ModelRegistry,
    RegistryConfig,
    RegistryError,
    SegmentsPyfunc,  # registered versions pickled it as pipelines.tracking.SegmentsPyfunc
)


def registry_config(
    layout: StoreLayout, environ: Mapping[str, str] | None = None
) -> RegistryConfig:
    """The registry named by the environment for the data home ``layout``."""
    environ = os.environ if environ is None else environ
    return RegistryConfig.for_home(
        layout.home,
        environ.get("MLFLOW_TRACKING_URI") or None,
        environ.get("SEGMENTS_MODEL_NAME") or MODEL_NAME,
    )


def launcher_run(environ: Mapping[str, str] | None = None) -> str | None:
    """The run ``mlflow run`` (MLproject) started for this process; training logs into it."""
    environ = os.environ if environ is None else environ
    return environ.get("MLFLOW_RUN_ID") or None


class TrackingConfig:
    """The command line's name for ``registry_config``."""

    @staticmethod
    def from_environment(
        layout: StoreLayout, environ: Mapping[str, str] | None = None
    ) -> RegistryConfig:
        return registry_config(layout, environ)


def connect(config: RegistryConfig) -> ModelRegistry:
    return ModelRegistry(config)


def resolve_version(registry: ModelRegistry, version: str | None) -> str:
    return registry.resolve_version(version)


def alias_version(registry: ModelRegistry, alias: str) -> str | None:
    return registry.alias_version(alias)


def set_alias(registry: ModelRegistry, alias: str, version: str) -> None:
    registry.set_alias(alias, version)


def load_version(registry: ModelRegistry, version: str) -> SegmentModel:
    return registry.load_version(version)


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MODEL_NAME",
    "ModelRegistry",
    "RegistryConfig",
    "RegistryError",
    "SegmentsPyfunc",
    "TrackingConfig",
    "alias_version",
    "connect",
    "launcher_run",
    "load_version",
    "registry_config",
    "resolve_version",
    "set_alias",
]
