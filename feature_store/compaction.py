"""Compaction of the offline store: many small Parquet parts merged into one.

Every ingestion writes one part per stream, so a service taking a trickle of HTTP requests for
months leaves thousands of small parts, and every read of the store (features, the refresh, the
event-id index) lists and opens them all. Compaction merges the small parts of a stream into one.

Readers take no lock (``segments features``, the online refresh, Spark), so the switch must be
atomic for them and the replaced parts must outlive any read that listed them:

1. a manifest ``NAME.replaces.json`` names the merged part and the parts it replaces; it has no
   effect while the merged part does not exist;
2. the merged part ``NAME.parquet`` appears by an atomic rename (``OfflineStore.write_part``):
   from that instant ``OfflineStore.parts`` lists it and hides the parts the manifest names, so a
   reader sees either the small parts or the merged one, never both and never neither;
3. the replaced parts are deleted by a later compaction once the manifest is ``GRACE_SECONDS``
   old, long after any read that listed them has opened its files; the manifest itself stays
   another grace period, since a reader may have listed the parts before their deletion and read
   the manifests after it (a manifest naming parts that are gone hides nothing that exists).

The caller holds the store's lock (as ingestion does), so no write interleaves. A crash leaves
either a manifest without its part (ignored, then deleted) or a half-written ``.partial`` file
(removed like any other).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from feature_store.engine import sql_string
from feature_store.ingest import new_batch_id
from feature_store.layout import StoreLayout
from feature_store.offline_store import MANIFEST_SUFFIX, OfflineStore, read_manifest
from feature_store.schema import Stream

# A part under this size counts as small (a part of a few hundred thousand events is a few MB).
SMALL_PART_BYTES = 8 * 2**20
# Size tiers of the small parts (``_tier``): up to this size one tier; above it, one tier per
# factor of ``TIER_RATIO`` (1-4 MiB, 4-16 MiB, cut at ``SMALL_PART_BYTES``). A merge takes one
# tier's parts (``_small_parts``).
ALWAYS_MERGED_BYTES = 2**20
TIER_RATIO = 4
# Small parts a stream may have before they are merged: reading 64 small files costs little more
# than reading one, and merging on every write would rewrite the same events again and again.
MIN_SMALL_PARTS = 64
# How long replaced parts stay on disk after the switch, for reads that listed them before it.
GRACE_SECONDS = 600.0


@dataclass(frozen=True)
class Compaction:
    """What one call did to one stream."""

    stream: Stream
    merged_parts: int  # small parts replaced by the new one (0: nothing merged)
    events: int  # events in the new part
    part: str | None  # the new part's file name
    deleted_parts: int  # replaced parts deleted after their grace period

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def compaction_due(store: OfflineStore, stream: Stream, min_parts: int = MIN_SMALL_PARTS) -> bool:
    """Whether ``stream`` has enough small parts to merge (a listing, no read)."""
    return bool(_small_parts(store, stream, min_parts))


def compact_stream(
    con: duckdb.DuckDBPyConnection,
    layout: StoreLayout,
    stream: Stream,
    *,
    min_parts: int = MIN_SMALL_PARTS,
    grace_seconds: float = GRACE_SECONDS,
    now: datetime | None = None,
) -> Compaction:
    """Delete what earlier compactions replaced (past their grace), then merge the stream's small
    parts into one if there are at least ``min_parts``. The caller holds the store's lock."""
    now = now or datetime.now(UTC)
    store = OfflineStore(layout)
    deleted = _delete_replaced(layout.stream_dir(stream), grace_seconds, now)
    small = _small_parts(store, stream, min_parts)
    if not small:
        return Compaction(stream, 0, 0, None, deleted)
    name = f"{new_batch_id()}-compacted"
    directory = layout.stream_dir(stream)
    manifest = {
        "part": f"{name}.parquet",
        "replaces": [part.name for part in small],
        "created": now.isoformat(),
    }
    partial = directory / f".{name}{MANIFEST_SUFFIX}.partial"
    partial.write_text(json.dumps(manifest))
    os.replace(partial, directory / f"{name}{MANIFEST_SUFFIX}")  # inert until the part exists
    files = "[" + ", ".join(sql_string(str(part)) for part in small) + "]"
    # by name: parts written before a column joined the contract lack it (NULL in the merge)
    written = store.write_part(
        con, f"SELECT * FROM read_parquet({files}, union_by_name = true)", stream, name
    )
    (events,) = con.execute(
        f"SELECT count(*) FROM read_parquet({sql_string(str(written))})"
    ).fetchone()
    return Compaction(stream, len(small), int(events), written.name, deleted)


def _small_parts(store: OfflineStore, stream: Stream, min_parts: int) -> list[Path]:
    """The parts the next merge takes, in the store's order: the parts under ``SMALL_PART_BYTES``
    of the smallest size tier holding at least ``min_parts`` (and two) of them; none when no tier
    does. Tiers (``_tier``) are fixed bands of size: every part up to ``ALWAYS_MERGED_BYTES``, then
    one band per factor of ``TIER_RATIO`` (size-tiered compaction, as log-structured stores merge).

    Why: taking every part under ``SMALL_PART_BYTES`` rewrote a stream's one merged part of a few
    MB (the demo's 466,690 usage events) with every 64 parts of a few events that a trickle of
    HTTP requests writes, so each merge cost the whole stream (a CRM integrator's review). Tiered,
    a merge rewrites parts of about one size: under a trickle, only the first tier (at most
    1 MiB) again and again, and a part leaves it once it has grown past that. Parts of the same
    middling size (daily files of 2 MB) still merge once a band holds enough of them (a review
    found a first version, which let a larger part join only the smaller ones that added up to
    it, never merging those). Up to ``min_parts`` - 1 parts may wait in each band: about 190 at
    the default.
    """
    parts = store.parts(stream)
    tiers: dict[int, list[Path]] = {}
    for part in parts:
        size = part.stat().st_size
        if size < SMALL_PART_BYTES:
            tiers.setdefault(_tier(size), []).append(part)
    for tier in sorted(tiers):
        if len(tiers[tier]) >= max(min_parts, 2):
            return tiers[tier]
    return []


def _tier(size: int) -> int:
    """0 up to ``ALWAYS_MERGED_BYTES``; then 1, 2, ... for each further factor of ``TIER_RATIO``."""
    if size <= ALWAYS_MERGED_BYTES:
        return 0
    return 1 + int(math.log(size / ALWAYS_MERGED_BYTES, TIER_RATIO))


def _delete_replaced(directory: Path, grace_seconds: float, now: datetime) -> int:
    """Delete the parts replaced by manifests older than the grace period, oldest manifest first
    (a merged part can itself be replaced later: its own replaced parts must go before it does),
    and the manifests a grace period later; manifests whose part does not exist at once."""
    if not directory.is_dir():
        return 0
    deleted = 0
    for path in sorted(directory.glob(f"*{MANIFEST_SUFFIX}")):
        manifest = read_manifest(path)
        if manifest is None or not (directory / manifest.part).exists():
            # Inert: unreadable, its part never appeared (a crash: then the parts it names are
            # the only copy of their events and stay), or its part was itself merged later and
            # deleted (then the parts it names went before it did).
            path.unlink(missing_ok=True)
            continue
        age = (now - manifest.created).total_seconds()
        if age < grace_seconds:
            continue
        for replaced in manifest.replaces:
            target = directory / replaced
            if target.exists():
                target.unlink()
                deleted += 1
        if age >= 2 * grace_seconds:
            path.unlink()
    for partial in directory.glob(f".*{MANIFEST_SUFFIX}.partial"):  # a crash while writing one
        partial.unlink(missing_ok=True)
    return deleted
