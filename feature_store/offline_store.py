"""The offline store: accepted events as Parquet parts, one file per ingestion batch and stream.

DuckDB scans the parts directly; nothing is loaded into memory until a query needs it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from feature_store.engine import sql_string
from feature_store.layout import StoreLayout
from feature_store.schema import COLUMNS, STREAMS, Stream

PARTIAL_SUFFIX = ".parquet.partial"
# A compaction's manifest (feature_store/compaction.py): the merged part and the parts it replaces.
MANIFEST_SUFFIX = ".replaces.json"

# The table names the feature definitions read from; both the batch and the single-customer
# path provide relations under these names.
EVENT_VIEWS: dict[Stream, str] = {"billing": "billing_events", "usage": "usage_events"}


def empty_events_sql(stream: Stream) -> str:
    """A zero-row relation with the stored schema of ``stream``."""
    columns = ", ".join(f"CAST(NULL AS {c.sql_type}) AS {c.name}" for c in COLUMNS[stream])
    return f"SELECT {columns} WHERE false"


class OfflineStore:
    """Accepted events of every stream under ``layout.events_dir``."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        # Manifests read, by folder and name: a manifest appears whole (renamed into place) and
        # is never changed, only deleted, so one store that lists again (the ingestion process's,
        # between writes) reads each once. Each listing keeps only those it found: the ingestion
        # process lives for days, and a merge a minute would otherwise grow it by megabytes a day.
        self._manifests: dict[Path, dict[str, Manifest]] = {}

    def parts(self, stream: Stream) -> list[Path]:
        """The parts holding the stream's events: every part, but those a compaction replaced
        by a merged part that exists (which holds the same events)."""
        visible, _ = self.listing(stream)
        return visible

    def listing(self, stream: Stream) -> tuple[list[Path], dict[str, frozenset[str]]]:
        """The visible parts, and for each merged part that exists the names of those it replaced
        (the event-id index uses them to know a merged part without reading it)."""
        directory = self.layout.stream_dir(stream)
        # One pass over the names, as text: the parts a merge replaced stay for its grace period
        # (``compaction.GRACE_SECONDS``), so a trickle of one-event requests leaves thousands,
        # and two globs of Path objects, sorted, then every manifest read again, took most of a
        # write's time (ingestion slowed from 24 to 10 requests a second in five minutes).
        try:
            with os.scandir(directory) as entries:
                names = sorted(entry.name for entry in entries)
        except (FileNotFoundError, NotADirectoryError):
            return [], {}
        parts = [name for name in names if name.endswith(".parquet")]
        present = set(parts)
        known = self._manifests.get(directory, {})
        kept: dict[str, Manifest] = {}
        replaced: dict[str, frozenset[str]] = {}
        for name in names:
            if not name.endswith(MANIFEST_SUFFIX):
                continue
            manifest = known.get(name) or read_manifest(directory / name)
            if manifest is None:  # unreadable now; not kept, so that it is read again
                continue
            kept[name] = manifest
            if manifest.part in present:
                replaced[manifest.part] = manifest.replaces
        self._manifests[directory] = kept
        hidden = frozenset().union(*replaced.values())
        return [directory / name for name in parts if name not in hidden], replaced

    def events_sql(self, stream: Stream) -> str:
        """SQL for every accepted event of ``stream`` (canonical columns only)."""
        parts = self.parts(stream)
        if not parts:
            return empty_events_sql(stream)
        names = ", ".join(column.name for column in COLUMNS[stream])
        files = "[" + ", ".join(sql_string(str(part)) for part in parts) + "]"
        # Parts written before a column joined the contract (``schema.ADDED_COLUMNS``) lack it:
        # read by name, and the empty relation of every canonical column makes it NULL there
        # even when no part has it yet. Filters still reach the Parquet scan.
        return (
            f"SELECT {names} FROM (SELECT * FROM read_parquet({files}, union_by_name = true) "
            f"UNION ALL BY NAME {empty_events_sql(stream)})"
        )

    def register_views(self, con: duckdb.DuckDBPyConnection) -> None:
        """Expose the stored events as the views the feature definitions read."""
        for stream in STREAMS:
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {EVENT_VIEWS[stream]} AS {self.events_sql(stream)}"
            )

    def write_part(
        self, con: duckdb.DuckDBPyConnection, relation_sql: str, stream: Stream, batch_id: str
    ) -> Path:
        """Write one batch's accepted events; the part appears whole or not at all."""
        directory = self.layout.stream_dir(stream)
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"{batch_id}.parquet"
        partial = directory / f".{batch_id}{PARTIAL_SUFFIX}"
        con.execute(
            f"COPY ({relation_sql}) TO {sql_string(str(partial))} "
            "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 262144)"
        )
        os.replace(partial, final)
        return final


@dataclass(frozen=True)
class Manifest:
    part: str
    replaces: frozenset[str]
    created: datetime


def read_manifest(path: Path) -> Manifest | None:
    """A compaction manifest, or None when it is unreadable (then it hides nothing)."""
    try:
        data = json.loads(path.read_text())
        return Manifest(
            str(data["part"]),
            frozenset(str(name) for name in data["replaces"]),
            datetime.fromisoformat(data["created"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_stale_partials(layout: StoreLayout) -> list[Path]:
    """Delete the half-written parts a killed ingestion left behind; the caller holds the store's
    lock, so no running ingestion owns them. Returns what was removed."""
    folders = [layout.stream_dir(stream) for stream in STREAMS] + [layout.customers_dir]
    stale = [p for folder in folders if folder.is_dir() for p in folder.glob(f".*{PARTIAL_SUFFIX}")]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
