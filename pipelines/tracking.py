"""Which registry the pipelines use.

Everything MLflow lives in ``models.registry``. The pipelines' own configuration: the server in
``MLFLOW_TRACKING_URI`` (else the embedded store under the data home) and the registered model
named by ``SEGMENTS_MODEL_NAME`` (default ``customer-segments``), read, never written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from feature_store.layout import StoreLayout
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


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MODEL_NAME",
    "ModelRegistry",
    "RegistryConfig",
    "RegistryError",
    "SegmentsPyfunc",
    "launcher_run",
    "registry_config",
]
