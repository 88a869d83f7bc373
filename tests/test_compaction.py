"""Compaction of the offline store: small parts merged, readers never see an event twice or miss
one, replaced parts kept through their grace period, and the service compacting by itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pandas as pd
import pytest
from cli_support import segments_in_process
from ingest_http_support import in_process, settings_for

from feature_store.compaction import MIN_SMALL_PARTS, _tier, compact_stream
from feature_store.engine import connect
from feature_store.event_index import EventIdIndex
from feature_store.ingest import ingest_files
from feature_store.layout import StoreLayout
from feature_store.offline_store import MANIFEST_SUFFIX, OfflineStore
from feature_store.records import ingest_records
from feature_store.timeutil import parse_as_of
from pipelines.feature_pipeline import build_features

AS_OF = parse_as_of("2026-11-30")


def usage(first: int, count: int) -> list[dict]:
    return [
        {
            "event_id": f"u-{i}",
            "customer_id": f"cus_{i % 7}",
            "occurred_at": f"2026-11-{1 + i % 28:02d}T10:00:00Z",
            "event": ("login", "api_call", "feature_used")[i % 3],
            "user_id": f"user_{i % 11}",
            "quantity": 1 + i % 4,
        }
        for i in range(first, first + count)
    ]


def billing(customer: int) -> dict:
    return {
        "event_id": f"b-{customer}",
        "customer_id": f"cus_{customer}",
        "occurred_at": "2026-10-01T00:00:00Z",
        "type": "subscription_created",
        "plan": "team",
        "interval": "month",
        "seats": 3,
        "mrr": 90.0,
        "currency": "EUR",
    }


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def store_in_parts(home: Path, tmp: Path, parts: int, per_part: int = 20) -> StoreLayout:
    """``parts`` usage parts (one ingestion each) and one billing part."""
    layout = StoreLayout(home)
    ingest_files(layout, {"billing": write_jsonl(tmp / "b.jsonl", [billing(c) for c in range(7)])})
    for part in range(parts):
        rows = usage(part * per_part, per_part)
        ingest_files(layout, {"usage": write_jsonl(tmp / f"u{part}.jsonl", rows)})
    return layout


def query(sql: str) -> pd.DataFrame:
    con = connect(threads=1)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def stored_usage(layout: StoreLayout) -> pd.DataFrame:
    return query(f"{OfflineStore(layout).events_sql('usage')} ORDER BY event_id")


def compact(layout: StoreLayout, **kwargs):
    con = connect(threads=1)
    try:
        return compact_stream(con, layout, "usage", **kwargs)
    finally:
        con.close()


def test_compaction_merges_small_parts_and_readers_see_the_same_events_and_features(tmp_path):
    layout = store_in_parts(tmp_path / "home", tmp_path, parts=6)
    store = OfflineStore(layout)
    before_parts = store.parts("usage")
    before, features_before = stored_usage(layout), build_features(layout, AS_OF)
    listed_before = store.events_sql("usage")  # a reader that listed the parts before the switch

    done = compact(layout, min_parts=5)

    assert (done.merged_parts, done.events, done.deleted_parts) == (6, 120, 0)
    assert [part.name for part in store.parts("usage")] == [done.part]
    pd.testing.assert_frame_equal(stored_usage(layout), before)
    pd.testing.assert_frame_equal(build_features(layout, AS_OF), features_before)
    # The replaced parts stay through the grace period: the early reader still reads them all.
    assert all(part.exists() for part in before_parts)
    assert len(query(listed_before)) == 120


def test_replaced_parts_are_deleted_after_their_grace_and_merged_parts_merge_again(tmp_path):
    layout = store_in_parts(tmp_path / "home", tmp_path, parts=4)
    store = OfflineStore(layout)
    replaced = store.parts("usage")
    first = compact(layout, min_parts=3)
    for part in range(4, 7):  # more small parts after the first merge
        rows = usage(part * 20, 20)
        ingest_files(layout, {"usage": write_jsonl(tmp_path / f"u{part}.jsonl", rows)})
    later = datetime.now(UTC) + timedelta(hours=1)
    second = compact(layout, min_parts=3, now=later)

    assert second.deleted_parts == len(replaced)  # the first merge's sources, past their grace
    assert not any(part.exists() for part in replaced)
    assert second.merged_parts == 4  # the first merged part and the three new ones
    assert [part.name for part in store.parts("usage")] == [second.part]
    assert len(stored_usage(layout)) == 140
    third = compact(layout, min_parts=3, now=later + timedelta(hours=1))
    assert third.deleted_parts == 4  # the first merged part went after its own sources
    assert not (layout.stream_dir("usage") / str(first.part)).exists()
    assert len(stored_usage(layout)) == 140
    assert not list(layout.stream_dir("usage").glob(f"*{MANIFEST_SUFFIX}"))


def test_a_manifest_whose_part_never_appeared_hides_nothing_and_is_removed(tmp_path):
    layout = store_in_parts(tmp_path / "home", tmp_path, parts=3)
    store = OfflineStore(layout)
    parts = store.parts("usage")
    orphan = layout.stream_dir("usage") / f"crashed{MANIFEST_SUFFIX}"
    orphan.write_text(
        json.dumps(
            {
                "part": "crashed.parquet",
                "replaces": [part.name for part in parts],
                "created": datetime.now(UTC).isoformat(),
            }
        )
    )
    assert store.parts("usage") == parts
    later = datetime.now(UTC) + timedelta(hours=1)  # past its grace: the parts it names stay
    compact(layout, min_parts=10, now=later)  # nothing to merge; the orphan goes
    assert not orphan.exists()
    assert all(part.exists() for part in parts)
    assert len(stored_usage(layout)) == 60


def test_ingestion_after_compaction_counts_resent_events_as_duplicates(tmp_path):
    layout = store_in_parts(tmp_path / "home", tmp_path, parts=5)
    index = EventIdIndex(OfflineStore(layout))
    con = connect(threads=1)
    try:
        index.catch_up(con, "usage")
        done = compact(layout, min_parts=5)
        index.catch_up(con, "usage")  # knows the merged part from its manifest, without reading
        assert index._ids["usage"].parts == {done.part}
    finally:
        con.close()
    # Re-sent through the service's path with the same index: it must still know them all.
    rows = usage(0, 20) + usage(500, 5)  # a whole old part again, and five new events
    report = ingest_records(layout, {"usage": rows}, source="test", index=index)
    assert (report.streams["usage"].accepted, report.streams["usage"].duplicates) == (5, 20)
    assert len(stored_usage(layout)) == 105
    file_report = ingest_files(layout, {"usage": write_jsonl(tmp_path / "again.jsonl", rows)})
    assert file_report["usage"].duplicates == 25  # and the file path, which reads the store


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
def test_the_service_compacts_by_itself(tmp_path, anyio_backend):
    home = tmp_path / "home"
    requests = MIN_SMALL_PARTS + 1

    async def scenario() -> None:
        async with in_process(settings_for(home)) as (_, http):
            for number in range(requests):
                answer = await http.post(
                    "/v1/events",
                    json={"usage": usage(number * 3, 3)},
                    headers={"X-API-Key": "ingest-key"},
                )
                assert answer.status_code == 200, answer.text

    anyio.run(scenario)
    layout = StoreLayout(home)
    assert len(OfflineStore(layout).parts("usage")) < MIN_SMALL_PARTS
    assert len(list(layout.stream_dir("usage").glob(f"*{MANIFEST_SUFFIX}"))) >= 1
    assert len(stored_usage(layout)) == 3 * requests


def test_the_cli_compacts_and_refuses_a_home_without_events(tmp_path):
    layout = store_in_parts(tmp_path / "home", tmp_path, parts=3)
    env = {"SEGMENTS_HOME": str(layout.home), "PATH": "/usr/bin:/bin"}
    done = segments_in_process(["compact", "--min-parts", "3", "--json"], env)
    assert done.returncode == 0, done.stderr
    usage_row = next(row for row in json.loads(done.stdout) if row["stream"] == "usage")
    assert (usage_row["merged_parts"], usage_row["events"]) == (3, 60)
    empty = segments_in_process(["compact"], {**env, "SEGMENTS_HOME": str(tmp_path / "none")})
    assert empty.returncode == 2
    assert len(empty.stderr.strip().splitlines()) == 1
    assert "no events stored" in empty.stderr


def test_a_manifest_outlives_the_parts_it_replaced_by_a_grace_period(tmp_path):
    """A reader may list the parts before they are deleted and the manifests after: the manifest
    must still hide them then (names of parts that are gone hide nothing that exists)."""
    layout = store_in_parts(tmp_path / "home", tmp_path, parts=3)
    replaced = OfflineStore(layout).parts("usage")
    done = compact(layout, min_parts=3)
    manifest = layout.stream_dir("usage") / f"{Path(str(done.part)).stem}{MANIFEST_SUFFIX}"
    assert manifest.exists()
    start = datetime.now(UTC)
    compact(layout, min_parts=100, now=start + timedelta(minutes=15))  # past one grace period
    assert not any(part.exists() for part in replaced)
    assert manifest.exists()
    compact(layout, min_parts=100, now=start + timedelta(minutes=25))  # past two
    assert not manifest.exists()
    assert len(stored_usage(layout)) == 60


def test_parts_merge_with_parts_of_about_their_size(tmp_path, monkeypatch):
    """A stream's one merged part of a few MB was rewritten with every 64 parts of a few events
    (the demo's 466,690 usage events, over and over, under a trickle of HTTP requests; a CRM
    integrator's review). Size-tiered: parts merge with parts of about their size, and parts of
    one middling size still merge once there are enough of them (a first version never merged
    them: a review)."""
    import feature_store.compaction as compaction

    layout = store_in_parts(tmp_path / "home", tmp_path, parts=1, per_part=20_000)
    (large,) = OfflineStore(layout).parts("usage")
    # the test's parts stand for MB-sized ones: above this size a part is in a higher tier
    monkeypatch.setattr(compaction, "ALWAYS_MERGED_BYTES", large.stat().st_size // 2)
    monkeypatch.setattr(compaction, "TIER_RATIO", 100)  # parts of 20,000 events alike
    for part in range(1, 5):
        rows = usage(100_000 + part * 5, 5)
        ingest_files(layout, {"usage": write_jsonl(tmp_path / f"s{part}.jsonl", rows)})
    first = compact(layout, min_parts=3)
    assert first.merged_parts == 4  # the four small parts, not the large one
    assert large in OfflineStore(layout).parts("usage")
    assert len(stored_usage(layout)) == 20_020
    # two more parts of the large one's size: its tier now holds three, merged together
    for part in range(2):
        rows = usage(200_000 + part * 20_000, 20_000)
        ingest_files(layout, {"usage": write_jsonl(tmp_path / f"m{part}.jsonl", rows)})
    sizes = [p.stat().st_size for p in OfflineStore(layout).parts("usage")]
    assert sorted(compaction._tier(size) for size in sizes) == [0, 1, 1, 1]
    later = datetime.now(UTC) + timedelta(hours=1)
    second = compact(layout, min_parts=3, now=later)
    assert second.merged_parts == 3
    assert len(OfflineStore(layout).parts("usage")) == 2  # the merged tiny ones stay apart
    assert len(stored_usage(layout)) == 60_020


def test_size_tiers_at_the_shipped_edges_and_due_means_a_merge(tmp_path):
    """The bands as shipped (1 MiB, then each factor of 4), and ``compaction_due`` says yes only
    when a merge would take something: a band of its own, not the sum of several."""
    from feature_store.compaction import compaction_due

    mib = 2**20
    tiers = [_tier(size) for size in (1, mib, mib + 1, 4 * mib - 1, 4 * mib, 8 * mib - 1)]
    assert tiers == [0, 0, 1, 1, 2, 2]
    layout = store_in_parts(tmp_path / "home", tmp_path, parts=3)
    store = OfflineStore(layout)
    assert compaction_due(store, "usage", min_parts=3)
    assert not compaction_due(store, "usage", min_parts=4)  # three parts in one band
    assert compact(layout, min_parts=4).merged_parts == 0
    assert compact(layout, min_parts=3).merged_parts == 3


def test_a_store_that_lists_again_keeps_only_the_manifests_it_still_finds(tmp_path):
    """The ingestion process keeps one store for days: the manifests it had read stayed in its
    memory after compaction deleted them (a review counted 30 kept against 2 on disk)."""
    layout = store_in_parts(tmp_path / "home", tmp_path, parts=3)
    store = OfflineStore(layout)
    later = datetime.now(UTC)
    for round_ in range(4):
        for part in range(3):
            first = (round_ * 3 + part + 3) * 20
            ingest_files(
                layout, {"usage": write_jsonl(tmp_path / f"r{first}.jsonl", usage(first, 20))}
            )
        later += timedelta(hours=1)
        compact(layout, min_parts=3, now=later)
        store.parts("usage")
    on_disk = {p.name for p in layout.stream_dir("usage").glob(f"*{MANIFEST_SUFFIX}")}
    assert set(store._manifests[layout.stream_dir("usage")]) == on_disk
    assert len(on_disk) < 4
    assert len(stored_usage(layout)) == 300
