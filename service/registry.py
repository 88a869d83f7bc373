"""Where models come from: the MLflow registry alias the settings name, through ``models.registry``.

``ModelSource`` is the seam the lifecycle depends on; ``RegistrySource`` is the MLflow one.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Protocol

from models.bundle import SegmentModel
from models.comparison import COMPARE_FOLDER, COMPARISON_FILE
from models.registry import (
    CHALLENGER,
    DownloadedVersion,
    ModelRegistry,
    RegistryConfig,
    RegistryUnavailableError,
)
from service.settings import Settings

__all__ = ["ModelSource", "RegistrySource", "RegistryUnavailableError"]


class ModelSource(Protocol):
    model_name: str

    def alias_version(self) -> str | None:
        """The version the alias points at, ``None`` when it points nowhere.

        Raises ``RegistryUnavailableError`` when the registry cannot be asked.
        """
        ...

    def fetch(self, version: str, into: Path) -> DownloadedVersion:
        """Download a version's files with the sha256 the registry recorded for them."""
        ...

    def recorded_hashes(self, version: str) -> dict[str, str]:
        """The sha256 the registry recorded for a version's files (``RegistryError`` if it
        cannot say)."""
        ...

    def comparison(self) -> dict[str, object] | None:
        """The challenger's stored comparison with the champion (``models.comparison``, logged
        by ``segments compare``, ``train``, ``promote`` and ``retrain`` to the challenger's run);
        None when there is no challenger or it was never compared."""
        ...

    def served_by_others(self, version: str, model: SegmentModel) -> dict[int, str]:
        """Ids ``model`` does not know that another version served as champion, with the
        version that served each last (``ModelRegistry.served_by_others``)."""
        ...


class RegistrySource:
    """The MLflow registry named by the settings (embedded SQLite store by default)."""

    def __init__(self, settings: Settings) -> None:
        self.alias = settings.model_alias
        self.model_name = settings.model_name
        self.config = RegistryConfig.for_home(
            settings.resolved_home, settings.tracking_uri, settings.model_name
        )
        self._registry: ModelRegistry | None = None

    def _connect(self) -> ModelRegistry:
        # Until training has made the embedded store, each poll finds it missing (unavailable).
        if self._registry is None:
            self._registry = ModelRegistry.existing(self.config)
        return self._registry

    def alias_version(self) -> str | None:
        return self._connect().alias_version(self.alias)

    def fetch(self, version: str, into: Path) -> DownloadedVersion:
        return self._connect().download(version, into)

    def recorded_hashes(self, version: str) -> dict[str, str]:
        return self._connect().recorded_hashes(version)

    def served_by_others(self, version: str, model: SegmentModel) -> dict[int, str]:
        return self._connect().served_by_others(version, model)

    def comparison(self) -> dict[str, object] | None:
        registry = self._connect()
        challenger = registry.alias_version(CHALLENGER)
        if challenger is None:
            return None
        with tempfile.TemporaryDirectory(prefix="segments-compare-") as tmp:
            found = registry.download_run_file(
                challenger, f"{COMPARE_FOLDER}/{COMPARISON_FILE}", Path(tmp)
            )
            return None if found is None else json.loads(found.read_text())
