"""Where the embedded stores live under the data home (``SEGMENTS_HOME``, default ``./.segments``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from feature_store.engine import memory_limit_bytes
from feature_store.schema import Stream

DEFAULT_HOME = ".segments"


@dataclass(frozen=True)
class StoreLayout:
    """Paths of every store under one data home; creating the object touches no disk.

    ``memory_limit``: the bytes a batch job's DuckDB holds before it spills to ``spill_dir``
    (``SEGMENTS_MEMORY_LIMIT``; None: ``engine.default_spilling_memory()``)."""

    home: Path
    memory_limit: int | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> StoreLayout:
        """The layout ``SEGMENTS_HOME`` and ``SEGMENTS_MEMORY_LIMIT`` name; ``ValueError`` naming
        the variable when the limit is not a size."""
        environ = os.environ if environ is None else environ
        limit = environ.get("SEGMENTS_MEMORY_LIMIT", "").strip()
        try:
            memory_limit = memory_limit_bytes(limit) if limit else None
        except ValueError as error:
            raise ValueError(f"SEGMENTS_MEMORY_LIMIT: {error}") from None
        return cls(Path(environ.get("SEGMENTS_HOME", DEFAULT_HOME)).resolve(), memory_limit)

    @property
    def events_dir(self) -> Path:
        return self.home / "offline" / "events"

    def stream_dir(self, stream: Stream | str) -> Path:
        return self.events_dir / stream

    @property
    def customers_dir(self) -> Path:
        return self.home / "offline" / "customers"

    @property
    def snapshots_dir(self) -> Path:
        return self.home / "offline" / "snapshots"

    @property
    def catalog_path(self) -> Path:
        """DuckDB file holding the ingestion log and the quarantine."""
        return self.home / "catalog.duckdb"

    @property
    def currency_levels_path(self) -> Path:
        """The data home's kept price levels (``feature_store.currency.kept_levels``)."""
        return self.home / "currency_levels.json"

    @property
    def online_store_path(self) -> Path:
        return self.home / "online.sqlite"

    @property
    def jobs_path(self) -> Path:
        """SQLite file of the discovery jobs (``feature_store.jobs``)."""
        return self.home / "jobs.sqlite"

    @property
    def spill_dir(self) -> Path:
        """Where a batch job's DuckDB spills what does not fit its memory (emptied on close)."""
        return self.home / ".spill"

    @property
    def lock_path(self) -> Path:
        return self.home / ".lock"
