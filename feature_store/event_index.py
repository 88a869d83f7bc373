"""Which event ids the offline store holds, answered without reading the store: for HTTP ingestion.

File ingestion joins every batch against all stored event ids, which costs next to nothing per
event in a file of millions but dominates a request of 1,000 events. ``EventIdIndex`` keeps, per
stream, the 64-bit DuckDB ``hash`` of every stored event id, sorted (8 bytes an event: 80 MB for
ten million events), and the names of the Parquet parts it has read. It is a cache of the parts,
nothing more: before each use (under the store's lock) it reads the ids of parts it has not seen,
whoever wrote them (the CLI, another worker), and rebuilds itself when a part it knew is gone. So
it can never be behind the store, and a killed process loses nothing but the cache.

A hash says "maybe stored" (two ids may share a hash) and never "not stored" wrongly: a request
whose ids all miss is certainly new; one with a hit goes through the exact path (the join against
the stored events), which settles duplicates and conflicts by content as for a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np

from feature_store.engine import sql_string
from feature_store.offline_store import OfflineStore
from feature_store.schema import STREAMS, Stream

# New hashes wait in a small sorted side array, merged into the main one when it grows past this:
# inserting into one large sorted array for each 1,000-event request would copy it every time.
_MERGE_AT = 65_536


@dataclass
class _StreamIds:
    parts: set[str] = field(default_factory=set)
    main: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    recent: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))

    def add(self, hashes: np.ndarray) -> None:
        self.recent = _merged(self.recent, hashes.astype(np.uint64, copy=False))
        if len(self.recent) > _MERGE_AT:
            self.main = _merged(self.main, self.recent)
            self.recent = np.empty(0, np.uint64)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        return _member(self.main, hashes) | _member(self.recent, hashes)


def _merged(ordered: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """``np.union1d`` of a sorted array with a few hashes, without sorting the whole again: the
    new ones are inserted where they belong (one copy of ``ordered``; a sort of it cost 8% of
    the ingestion process's CPU)."""
    new = np.unique(hashes)
    new = new[~_member(ordered, new)]
    return np.insert(ordered, np.searchsorted(ordered, new), new)


def _member(ordered: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    if not len(ordered):
        return np.zeros(len(hashes), bool)
    at = np.searchsorted(ordered, hashes)
    return ordered[np.minimum(at, len(ordered) - 1)] == hashes


class EventIdIndex:
    """Hashes of the stored event ids of every stream; use it only while holding the store's lock."""

    def __init__(self, store: OfflineStore) -> None:
        self.store = store
        self._ids: dict[Stream, _StreamIds] = {stream: _StreamIds() for stream in STREAMS}

    def catch_up(self, con: duckdb.DuckDBPyConnection, stream: Stream) -> None:
        """Read the ids of the parts written since the last call (by anyone)."""
        ids = self._ids[stream]
        visible, replaced = self.store.listing(stream)
        on_disk = {path.name: path for path in visible}
        # A merged part holds exactly the events of the parts it replaced: known if they all were.
        for part, sources in replaced.items():
            if part in on_disk and sources <= ids.parts:
                ids.parts.add(part)
        ids.parts -= frozenset().union(*replaced.values())
        if not ids.parts <= on_disk.keys():  # a part was removed: start again from the disk
            ids = self._ids[stream] = _StreamIds()
        new = [on_disk[name] for name in sorted(on_disk.keys() - ids.parts)]
        if new:
            files = "[" + ", ".join(sql_string(str(path)) for path in new) + "]"
            found = con.execute(f"SELECT hash(event_id) AS h FROM read_parquet({files})")
            ids.add(found.fetchnumpy()["h"])
            ids.parts.update(path.name for path in new)

    def contains(self, stream: Stream, hashes: np.ndarray) -> np.ndarray:
        """For each hash, whether a stored event id may have it (call ``catch_up`` first)."""
        return self._ids[stream].contains(hashes.astype(np.uint64, copy=False))

    def written(self, stream: Stream, part: str, hashes: np.ndarray) -> None:
        """Record a part the caller just wrote, with the hashes of its ids (saves reading it)."""
        ids = self._ids[stream]
        ids.add(hashes)
        ids.parts.add(part)
