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

    def parts(self, stream: Stream) -> list[Path]:
        """The parts holding the stream's events: every part, but those a compaction replaced
        by a merged part that exists (which holds the same events)."""
        visible, _ = self.listing(stream)
        return visible

    def listing(self, stream: Stream) -> tuple[list[Path], dict[str, frozenset[str]]]:
        """The visible parts, and for each merged part that exists the names of those it replaced
        (the event-id index uses them to know a merged part without reading it)."""
        directory = self.layout.stream_dir(stream)
        if not directory.is_dir():
            return [], {}
        parts = sorted(directory.glob("*.parquet"))
        names = {part.name for part in parts}
        replaced: dict[str, frozenset[str]] = {}
        for path in sorted(directory.glob(f"*{MANIFEST_SUFFIX}")):
            manifest = read_manifest(path)
            if manifest is not None and manifest.part in names:
                replaced[manifest.part] = manifest.replaces
        hidden = frozenset().union(*replaced.values())
        return [part for part in parts if part.name not in hidden], replaced

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
