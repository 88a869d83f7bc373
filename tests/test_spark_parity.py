"""Spark and DuckDB build the same feature table and the same assignments from the same events.

The Spark SQL is transpiled from the DuckDB SQL (``feature_store.spark_engine``); these tests are
what makes that transpilation trustworthy. Both engines read the Parquet parts that ingestion wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions
from service_support import AS_OF, base_env, cli, trained_home

from feature_store.errors import InputFileError
from feature_store.ingest import ingest_files
from feature_store.layout import StoreLayout
from feature_store.offline_store import OfflineStore
from feature_store.registry import FEATURES
from feature_store.spark_engine import build_features_spark, store_event_sources
from pipelines.feature_pipeline import build_features

ORIGIN = datetime(2025, 1, 1)
BILLING_TYPES = (
    "subscription_started",
    "subscription_changed",
    "subscription_canceled",
    "invoice_paid",
    "payment_failed",
    "refund_issued",
)
USAGE_KINDS = ("login", "api_call", "feature_used", "export_clicked")


def edge_case_company(seed: int, customers: int = 120) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random events on a coarse grid (whole hours, few values) so edge cases are common.

    Ties in time between a customer's events, cancellations (with and without plan fields),
    customers with several subscriptions (and events naming none of them),
    refunds larger than payments, customers with billing only or usage only, NULL users, features
    and quantities, and events on both sides of every window edge and of the as-of instant.
    """
    rng = np.random.default_rng(seed)
    ids = [f"c{i:03d}" for i in range(customers)]

    def hours(n: int) -> list[datetime]:
        return [ORIGIN + timedelta(hours=int(h)) for h in rng.integers(0, 540 * 24, n) // 6 * 6]

    n_billing = customers * 6
    kinds = rng.choice(BILLING_TYPES, n_billing)
    priced = np.isin(kinds, BILLING_TYPES[:2]) | (
        (kinds == BILLING_TYPES[2]) & (rng.random(n_billing) < 0.5)
    )
    money = np.isin(kinds, BILLING_TYPES[3:])
    billing = pd.DataFrame(
        {
            "event_id": [f"b{i}" for i in range(n_billing)],
            "customer_id": rng.choice(ids[: customers * 4 // 5], n_billing),
            "occurred_at": hours(n_billing),
            "type": kinds,
            "plan": np.where(priced, rng.choice(["solo", "team"], n_billing), None),
            "interval": np.where(priced, rng.choice(["month", "year"], n_billing), None),
            "seats": pd.array(np.where(priced, rng.integers(0, 20, n_billing), 0), dtype="Int64"),
            "mrr": np.where(priced, rng.choice([0, 10, 50, 99.5, 200], n_billing), np.nan),
            "amount": np.where(money, rng.choice([1, 10, 49.99, 300], n_billing), np.nan),
            "currency": "USD",
        }
    )
    billing.loc[~priced, "seats"] = pd.NA
    # Several subscriptions: a third of the customers name theirs (two of them, or none on
    # some events, which then belong to the customer's first named one); the others have one.
    # A generator of its own, so the draws above are those of the company before ids existed.
    named = np.random.default_rng(seed + 1).random(customers) < 1 / 3
    draws = np.random.default_rng(seed + 2).choice(
        np.array([None, "sub_a", "sub_b"], dtype=object), n_billing
    )
    owner = billing["customer_id"].str[1:].astype(int).to_numpy()
    billing["subscription_id"] = np.where(named[owner], draws, None)
    n_usage = customers * 30
    usage = pd.DataFrame(
        {
            "event_id": [f"u{i}" for i in range(n_usage)],
            # The last fifth of customers has usage only; a tenth of the rest has none.
            "customer_id": rng.choice(ids[customers // 10 :], n_usage),
            "occurred_at": hours(n_usage),
            "event": rng.choice(USAGE_KINDS, n_usage),
            "user_id": rng.choice(np.array([None, "u1", "u2", "u3"], dtype=object), n_usage),
            "feature": rng.choice(np.array([None, "reports", "alerts"], dtype=object), n_usage),
            "quantity": rng.choice([np.nan, 0, 1, 2.5, 7], n_usage),
        }
    )
    return billing, usage


def _ingested(tmp_path: Path, billing: pd.DataFrame, usage: pd.DataFrame) -> StoreLayout:
    """The events through file ingestion; an empty stream is not ingested at all (a file with no
    rows is refused), which leaves the store with no usage parts."""
    layout = StoreLayout(tmp_path / "home")
    files = {}
    for stream, frame in (("billing", billing), ("usage", usage)):
        if len(frame):
            files[stream] = tmp_path / f"{stream}.parquet"
            frame.to_parquet(files[stream], index=False)
    reports = ingest_files(layout, files)
    assert all(report.quarantined == 0 for report in reports.values())
    return layout


def assert_same_features(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    """Same customers in the same order; integers equal, floats equal to 1e-9."""
    assert list(spark.columns) == list(duck.columns)
    assert spark["customer_id"].tolist() == duck["customer_id"].tolist()
    if "features_as_of" in duck:  # a table as the commands write it says its as-of
        assert spark["features_as_of"].tolist() == duck["features_as_of"].tolist()
    for feature in FEATURES:
        ours, theirs = duck[feature.name].to_numpy(), spark[feature.name].to_numpy()
        if feature.dtype == "int":
            np.testing.assert_array_equal(theirs.astype(np.int64), ours, err_msg=feature.name)
        else:
            np.testing.assert_allclose(theirs, ours, rtol=1e-9, atol=1e-9, err_msg=feature.name)


def spark_table(spark, layout: StoreLayout, as_of: datetime) -> pd.DataFrame:
    sources = store_event_sources(OfflineStore(layout))
    return build_features_spark(spark, sources, as_of).toPandas()


@pytest.fixture(scope="module")
def edge_layout(tmp_path_factory: pytest.TempPathFactory) -> StoreLayout:
    return _ingested(tmp_path_factory.mktemp("edge"), *edge_case_company(seed=11))


@pytest.mark.parametrize(
    "as_of",
    [
        datetime(2026, 6, 1),  # after every event: all windows full
        datetime(2025, 9, 14, 6),  # on an event hour: events at T are excluded
        datetime(2025, 1, 20),  # 19 days in: 30/90/365-day windows reach before the first event
        datetime(2024, 12, 31),  # before every event: no customer at all
    ],
)
def test_edge_case_events_give_equal_features(spark, edge_layout, as_of):
    duck = build_features(edge_layout, as_of)
    assert_same_features(duck, spark_table(spark, edge_layout, as_of))


def test_demo_company_gives_equal_features_written_as_parquet(spark, layout, demo_files, tmp_path):
    from pipelines.feature_pipeline import stamped
    from pipelines.spark_jobs import features_to_parquet

    ingest_files(layout, {"billing": demo_files["billing"], "usage": demo_files["usage"]})
    as_of = datetime(2026, 3, 15, 13, 30)
    duck = stamped(build_features(layout, as_of), as_of)  # as `segments features` writes it
    assert len(duck) > 200
    out = tmp_path / "features.parquet"
    sources = store_event_sources(OfflineStore(layout))
    assert features_to_parquet(spark, sources, as_of, out) == len(duck)
    written = pd.read_parquet(out).sort_values("customer_id", ignore_index=True)
    assert_same_features(duck, written)


def test_a_stream_without_events_is_empty_on_both_engines(spark, tmp_path):
    billing, usage = edge_case_company(seed=3, customers=30)
    layout = _ingested(tmp_path, billing, usage.iloc[:0])
    as_of = datetime(2026, 1, 1)
    duck = build_features(layout, as_of)
    assert (duck["events_30d"] == 0).all()
    assert_same_features(duck, spark_table(spark, layout, as_of))


def test_a_lake_table_with_zoned_timestamps_reads_as_utc(spark, edge_layout):
    """A table whose ``occurred_at`` is a zoned TIMESTAMP, read in a session that is not in UTC."""
    parts = store_event_sources(OfflineStore(edge_layout))
    for stream, paths in parts.items():
        frame = spark.read.parquet(*paths)
        assert dict(frame.dtypes)["occurred_at"] == "timestamp_ntz"
        # The same instants as zoned timestamps, built without reference to any session zone.
        micros = "timestampdiff(MICROSECOND, TIMESTAMP_NTZ '1970-01-01 00:00:00', occurred_at)"
        zoned = frame.withColumn("occurred_at", functions.expr(f"timestamp_micros({micros})"))
        assert dict(zoned.dtypes)["occurred_at"] == "timestamp"
        zoned.createOrReplaceTempView(f"lake_{stream}")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        table = build_features_spark(
            spark, {"billing": "lake_billing", "usage": "lake_usage"}, datetime(2026, 6, 1)
        ).toPandas()
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert_same_features(build_features(edge_layout, datetime(2026, 6, 1)), table)


def test_customers_billed_in_two_currencies_are_counted_alike_on_both_engines(spark, tmp_path):
    """`segments features` warned of them on DuckDB only; a lake built on Spark said nothing."""
    from feature_store.coverage import mixed_currency_note
    from feature_store.spark_engine import mixed_currencies_spark

    billing, usage = edge_case_company(seed=5, customers=40)
    paid = billing["type"] == "invoice_paid"
    # two customers pay in EUR; their other billing events stay in USD
    two = sorted(billing.loc[paid, "customer_id"].unique())[:2]
    billing.loc[paid & billing["customer_id"].isin(two), "currency"] = "EUR"
    layout = _ingested(tmp_path, billing, usage)
    sources = store_event_sources(OfflineStore(layout))
    before, after = datetime(2025, 1, 2), datetime(2026, 6, 1)
    assert mixed_currencies_spark(spark, sources, before) is None
    assert mixed_currency_note(layout, before) is None
    counted = mixed_currencies_spark(spark, sources, after)
    assert (counted.customers, counted.example, counted.currencies) == (2, two[0], ("EUR", "USD"))
    assert counted.describe() == mixed_currency_note(layout, after)
    assert counted.describe().startswith("2 customers' billing events name more than one currency")


def test_a_source_lacking_a_required_column_is_refused_naming_it(spark, edge_layout):
    """Billing and usage swapped: the missing columns were read as NULL, every MRR 0, exit 0."""
    parts = store_event_sources(OfflineStore(edge_layout))
    swapped = {"billing": parts["usage"], "usage": parts["billing"]}
    with pytest.raises(InputFileError, match=r"not billing events: no column\(s\) type \(found"):
        build_features_spark(spark, swapped, datetime(2026, 6, 1))


@pytest.fixture(scope="module")
def demo_model(demo_company):
    """A small model fitted on the demo company's features (no registry needed)."""
    from models.segmenter import CustomerSegmenter
    from pipelines.train import fit_model

    features = demo_features(demo_company)
    return fit_model(features, CustomerSegmenter(random_state=0, n_resamples=2)).model, features


def demo_features(company) -> pd.DataFrame:
    from feature_store.features import compute_customer_features

    events = {"billing": company.billing.to_pandas(), "usage": company.usage.to_pandas()}
    return compute_customer_features(events, datetime(2026, 3, 15))


def test_spark_assignment_agrees_with_local_row_for_row(spark, demo_model, tmp_path):
    from pipelines.assign import assign_table
    from pipelines.spark_jobs import assign_spark, write_spark_table

    model, features = demo_model
    local = assign_table(model, features)
    out = tmp_path / "assignments.parquet"
    write_spark_table(assign_spark(model, spark.createDataFrame(features)), out)
    remote = pd.read_parquet(out).sort_values("customer_id", ignore_index=True)
    assert list(remote.columns) == list(local.columns)
    pd.testing.assert_frame_equal(remote, local, check_dtype=False, rtol=1e-12)


def test_spark_explained_assignment_is_the_local_object(spark, demo_model, tmp_path):
    from models.assignment import ModelRef
    from pipelines.spark_jobs import assign_spark, write_spark_table

    model, features = demo_model
    ref = ModelRef(name="segments", version="1")
    head = features.head(40)
    local = [
        a.model_dump_json()
        for a in model.assignments(head, head["customer_id"].tolist(), ref, top_k=3)
    ]
    out = tmp_path / "explained.jsonl"
    assigned = assign_spark(model, spark.createDataFrame(head), explain_top_k=3, model_ref=ref)
    write_spark_table(assigned, out)
    lines = sorted(
        line for part in sorted(out.glob("part-*")) for line in part.read_text().splitlines()
    )
    assert lines == sorted(local)


def test_a_feature_table_without_a_model_column_is_refused_before_any_job(spark, demo_model):
    from feature_store.errors import InputFileError
    from pipelines.spark_jobs import assign_spark

    model, features = demo_model
    frame = spark.createDataFrame(features.drop(columns=[model.feature_names[0]]))
    with pytest.raises(InputFileError, match=model.feature_names[0]):
        assign_spark(model, frame)


def test_a_tables_as_of_is_written_alike_on_spark_and_refused_alike(spark, demo_model, tmp_path):
    """The table's ``features_as_of`` is written as the contract writes it on both engines
    ("+02:00" and a timestamp as "Z"); a value that is no instant is refused before any job, as
    the local command refuses it (each copied it into every assignment)."""
    from feature_store.errors import InputFileError
    from pipelines.assign import assign_table
    from pipelines.spark_jobs import assign_spark, write_spark_table

    model, features = demo_model
    head = features.head(30).reset_index(drop=True)
    zoned = head.assign(features_as_of="2026-07-01T02:00:00+02:00")
    zoned.loc[::2, "features_as_of"] = None  # a vector from elsewhere says nothing
    out = tmp_path / "zoned.parquet"
    write_spark_table(assign_spark(model, spark.createDataFrame(zoned)), out)
    remote = pd.read_parquet(out).sort_values("customer_id", ignore_index=True)
    local = assign_table(model, zoned).sort_values("customer_id", ignore_index=True)
    assert remote["features_as_of"].tolist() == local["features_as_of"].tolist()
    assert set(local["features_as_of"].dropna()) == {"2026-07-01T00:00:00Z"}
    garbage = spark.createDataFrame(head.assign(features_as_of="yesterday"))
    with pytest.raises(InputFileError, match="features_as_of 'yesterday' is not an ISO 8601"):
        assign_spark(model, garbage)


def test_stratified_sample_keeps_every_stratum_and_repeats(spark, demo_model):
    from pipelines.spark_jobs import MIN_PER_STRATUM, STRATUM_SQL, stratified_sample

    _, features = demo_model
    frame = spark.createDataFrame(features)
    sample = stratified_sample(frame, 60, seed=1)
    strata = frame.selectExpr("customer_id", f"{STRATUM_SQL} AS stratum").toPandas()
    sizes = strata["stratum"].value_counts()
    kept = strata[strata["customer_id"].isin(sample["customer_id"])]["stratum"].value_counts()
    assert set(kept.index) == set(sizes.index)
    assert (kept >= sizes.clip(upper=MIN_PER_STRATUM) * 0.5).all()
    again = stratified_sample(frame, 60, seed=1)
    assert again["customer_id"].tolist() == sample["customer_id"].tolist()
    assert list(sample.columns) == list(features.columns)


# ------------------------------------------------------------------ the commands, as a user runs them
# `segments features --engine spark` and `segments assign --engine spark` on a data home with a
# registered champion agree with what the DuckDB commands wrote. They run in this process, where
# the test session's Spark is active: with no --master they run on that session and leave it
# running (as in a notebook or a Databricks job), which also spares the suite a JVM per command.


def test_the_spark_commands_write_what_the_duckdb_commands_write(
    spark, shared_root, demo_files, tmp_path
):
    home = trained_home(shared_root, demo_files)  # features by DuckDB, a champion registered
    env = base_env(home)
    written = tmp_path / "features-spark.parquet"
    args = ["features", "--engine", "spark", "--as-of", AS_OF, "--out", str(written), "--json"]
    summary = json.loads(cli(args, env))
    duck = pd.read_parquet(home / "features.parquet").sort_values("customer_id", ignore_index=True)
    assert summary["engine"] == "spark"
    assert summary["customers"] == len(duck)
    on_spark = pd.read_parquet(written).sort_values("customer_id", ignore_index=True)
    assert_same_features(duck, on_spark)

    local, remote = tmp_path / "local.parquet", tmp_path / "spark.parquet"
    cli(["assign", "--in", str(home / "features.parquet"), "--out", str(local)], env)
    cli(["assign", "--engine", "spark", "--in", str(written), "--out", str(remote)], env)
    # nullable on both sides: a column with nulls (last_active_segment_id, for the cancelled
    # customers placed when last active) is Int64 as pandas wrote it and float as Spark did
    ours = pd.read_parquet(local, dtype_backend="numpy_nullable")
    theirs = pd.read_parquet(remote, dtype_backend="numpy_nullable")
    ours = ours.sort_values("customer_id", ignore_index=True)
    theirs = theirs.sort_values("customer_id", ignore_index=True)
    assert ours["last_active_segment_id"].notna().any()
    assert len(ours) == len(duck)
    assert (ours["segment_id"] >= 0).all()
    pd.testing.assert_frame_equal(theirs, ours, check_dtype=False, rtol=1e-9)
    assert not spark.sparkContext._jsc.sc().isStopped()  # the caller's session is still running


def test_a_spark_command_that_fails_says_so_in_one_line_not_a_java_stack_trace(tmp_path):
    """A real process with a JVM of its own (the CLI's): Spark's default logging printed a Java
    stack trace and 100 lines of warnings before the command's one-line error."""
    segments = Path(sys.executable).with_name("segments")
    missing = tmp_path / "missing.parquet"
    command = [str(segments), "features", "--engine", "spark", "--as-of", AS_OF,
               "--billing-source", str(missing), "--usage-source", str(missing),
               "--out", str(tmp_path / "f.parquet")]  # fmt: skip
    env = {**os.environ, "SEGMENTS_HOME": str(tmp_path / "home")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: Spark: {missing}: [PATH_NOT_FOUND]")
    assert not [line for line in lines if line.startswith("\tat ") or " WARN " in line]
    assert len(lines) <= 5, lines  # the JVM's own start-up lines, then the error


def test_parts_written_before_subscription_ids_read_beside_newer_ones(spark, tmp_path):
    """A data home from before the contract named subscriptions holds parts without the column.
    With parts that have it, both engines read them (the old events' subscription unnamed),
    agree, and a compaction merges them."""
    import duckdb

    from feature_store.compaction import compact_stream

    billing, usage = edge_case_company(seed=11)
    named = billing["subscription_id"].notna()
    (tmp_path / "old").mkdir()
    layout = _ingested(tmp_path / "old", billing[~named], usage)
    (old,) = OfflineStore(layout).parts("billing")
    with duckdb.connect() as con:  # as a version before the column wrote it
        rewritten = old.with_suffix(".old")
        con.execute(
            f"COPY (SELECT * EXCLUDE (subscription_id) FROM read_parquet('{old}')) "
            f"TO '{rewritten}' (FORMAT parquet)"
        )
        rewritten.replace(old)
        columns = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{old}')").df()
    assert "subscription_id" not in set(columns["column_name"])
    newer = tmp_path / "newer.parquet"
    billing[named].to_parquet(newer, index=False)
    ingest_files(layout, {"billing": newer})
    (tmp_path / "fresh").mkdir()
    expected = build_features(_ingested(tmp_path / "fresh", billing, usage), datetime(2026, 6, 1))

    # an export ingested again, now naming subscriptions: the stored events, not reused ids
    again = tmp_path / "again.parquet"
    billing[~named].assign(subscription_id="sub_x").to_parquet(again, index=False)
    report = ingest_files(layout, {"billing": again})["billing"]
    assert (report.duplicates, report.quarantined) == ((~named).sum(), 0)

    duck = build_features(layout, datetime(2026, 6, 1))
    pd.testing.assert_frame_equal(duck, expected)
    assert_same_features(duck, spark_table(spark, layout, datetime(2026, 6, 1)))
    with duckdb.connect() as con:
        merged = compact_stream(con, layout, "billing", min_parts=2)
    assert merged.merged_parts == 2
    assert len(OfflineStore(layout).parts("billing")) == 1
    pd.testing.assert_frame_equal(build_features(layout, datetime(2026, 6, 1)), expected)


def test_a_lake_is_held_to_the_events_contract_as_ingestion_holds_a_file(spark, tmp_path):
    """A lake with re-sent events, rows that break the contract and times written with an offset:
    Spark's features are those of `segments ingest` + `segments features` on the same rows, and
    what it left out is counted by reason. Read as they were, re-sent events counted twice, a
    NULL customer id made a customer, 12.7 seats became 12 and an offset was dropped."""
    from feature_store.spark_engine import examine_events_spark

    billing, usage = edge_case_company(seed=5, customers=60)
    priced = billing.index[billing["seats"].notna()][:2]
    billing.loc[priced, "seats"] = 10
    layout = _ingested(tmp_path, billing, usage)
    lake_billing = billing.copy()
    lake_billing["occurred_at"] = [  # the same instants, half written at +05:00
        (moment + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S+05:00")
        if row % 2
        else moment.strftime("%Y-%m-%dT%H:%M:%S")
        for row, moment in enumerate(billing["occurred_at"])
    ]
    # seats as text, as a CSV-fed lake holds them: "1e1" is ten seats, as ingestion reads it
    lake_billing["seats"] = [None if pd.isna(n) else str(int(n)) for n in billing["seats"]]
    lake_billing.loc[priced, "seats"] = "1e1"
    usage = usage.copy()
    nobody = usage.index[usage["user_id"].isna()]
    usage["user_id"] = usage["user_id"].fillna("")  # empty text is no user, as when ingested
    usage.loc[nobody[::2], "user_id"] = "NaN"  # and so is pandas' str(NaN), on both engines
    broken = lake_billing.iloc[:5].copy()
    broken["event_id"] = ["x1", "x2", "x3", "x4", "x5"]
    broken.loc[broken.index[0], "customer_id"] = None
    # pandas' str(NaN): no customer, as ingestion reads it (``schema.PLACEHOLDER_IDS``)
    broken.loc[broken.index[4], "customer_id"] = " NaN"
    broken.loc[broken.index[1], "type"] = "bogus"
    broken.loc[broken.index[2], "occurred_at"] = "31/12/2025"
    broken.loc[broken.index[3], ["type", "seats", "plan", "interval", "mrr"]] = [
        "subscription_started", "12.7", "team", "month", 10.0,
    ]  # fmt: skip
    lake_billing = pd.concat([lake_billing, broken, lake_billing.iloc[:25]], ignore_index=True)
    lake_usage = pd.concat([usage, usage.iloc[:40]], ignore_index=True)
    sources = {}
    for stream, frame in (("billing", lake_billing), ("usage", lake_usage)):
        folder = tmp_path / f"lake_{stream}"
        folder.mkdir()
        frame.to_parquet(folder / "part-0.parquet", index=False)
        sources[stream] = str(folder)
    as_of = datetime(2026, 6, 1)
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")  # a notebook's session
    try:
        table = build_features_spark(spark, sources, as_of).toPandas()
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert_same_features(build_features(layout, as_of), table)
    examined = examine_events_spark(spark, sources)
    assert examined.left_out == {
        "invalid_occurred_at": 1, "invalid_seats": 1, "missing_customer_id": 2, "unknown_type": 1,
    }  # fmt: skip
    assert examined.repeated == 25 + 40


def test_an_event_dated_9999_stretches_neither_engines_range(spark, tmp_path):
    """One event of a wrong year made the data's range end in 9999 and let an as-of months past
    the real data through; the store's range and a lake's are read alike, and both count it
    apart."""
    from feature_store.coverage import EventCoverage, store_coverage
    from feature_store.spark_engine import examine_events_spark

    usage = pd.DataFrame({
        "event_id": [f"u{i}" for i in range(13)], "customer_id": [f"c{i}" for i in range(13)],
        "occurred_at": ["2026-03-31T00:00:00Z"] * 12 + ["9999-01-01T00:00:00Z"], "event": "login",
    })  # fmt: skip
    layout = _ingested(tmp_path, usage.iloc[:0], usage)
    lake = tmp_path / "lake"
    lake.mkdir()
    usage.to_parquet(lake / "part-0.parquet", index=False)
    expected = EventCoverage(datetime(2026, 3, 31), datetime(2026, 3, 31), 1, datetime(9999, 1, 1))
    assert store_coverage(layout) == expected
    assert examine_events_spark(spark, {"usage": str(lake)}).coverage == expected
    assert examine_events_spark(spark, {"usage": str(layout.stream_dir("usage"))}).coverage == (
        expected
    )


def test_spark_output_never_overwrites_its_input_and_a_failed_write_keeps_the_last(
    spark, demo_model, tmp_path
):
    """Spark's overwrite deletes the folder before its lazy job reads the input: `--in` =
    `--out` lost the input, and a failed job left the previous result empty."""
    from pipelines.spark_jobs import assign_spark, write_spark_table

    model, features = demo_model
    lake = tmp_path / "lake.parquet"
    lake.mkdir()
    table = lake / "features.parquet"
    features.head(30).to_parquet(table, index=False)
    assigned = assign_spark(model, spark.read.parquet(str(table)))
    for out in (table, lake):  # the input itself, or a folder holding it
        with pytest.raises(InputFileError, match="would overwrite an input"):
            write_spark_table(assigned, out, inputs=[table])
    assert len(pd.read_parquet(table)) == 30
    out = tmp_path / "assigned.parquet"
    write_spark_table(assigned, out, inputs=[table])
    assert len(pd.read_parquet(out)) == 30
    broken = features.head(30).copy()
    broken.loc[3, "mrr"] = np.nan  # the job fails in a worker
    with pytest.raises(Exception, match="missing feature values"):
        write_spark_table(assign_spark(model, spark.createDataFrame(broken)), out)
    assert len(pd.read_parquet(out)) == 30  # the last result, whole
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda table: table.iloc[:0], "has no rows"),
        (lambda table: table.assign(customer_id=[None, *table["customer_id"][1:]]), "no customer_id"),
        (lambda table: pd.concat([table, table.iloc[:1]]), "has 2 rows in the feature table"),
    ],
)  # fmt: skip
def test_spark_assign_refuses_what_local_assign_refuses(spark, demo_model, change, message):
    from pipelines.spark_jobs import assign_spark

    model, features = demo_model
    table = change(features.head(20)).reset_index(drop=True)
    frame = spark.createDataFrame(table, schema=spark.createDataFrame(features.head(1)).schema)
    with pytest.raises(InputFileError, match=message):
        assign_spark(model, frame)


def test_what_a_job_or_the_jvm_refuses_is_one_line_naming_the_reason(spark, demo_model, tmp_path):
    """A worker's refusal came as 185 lines, its reason buried; a CSV given as Parquet (a JVM
    exception PySpark does not convert) as a Py4J traceback and exit 1."""
    from feature_store.errors import SegmentsError
    from pipelines.cli.common import spark_errors_in_one_line
    from pipelines.spark_jobs import assign_spark

    model, features = demo_model
    broken = features.head(10).copy()
    broken.loc[2, "mrr"] = np.nan
    with pytest.raises(SegmentsError) as refused, spark_errors_in_one_line():
        assign_spark(model, spark.createDataFrame(broken)).collect()
    message = str(refused.value)
    assert message.startswith("Spark: missing feature values")
    assert "\n" not in message
    text = tmp_path / "events.csv"
    text.write_text("event_id,customer_id\ne1,c1\n")
    with pytest.raises(SegmentsError) as refused, spark_errors_in_one_line():
        spark.read.parquet(str(text)).collect()
    assert "\n" not in str(refused.value)
    assert "Parquet" in str(refused.value) or "parquet" in str(refused.value)


def read_on_both_engines(spark, rows: pd.DataFrame, names: list[str]) -> tuple[list, list]:
    """``rows`` (a lake's billing columns, all text) read by ingestion's DuckDB expressions and by
    Spark's: per row in ``event_id`` order, the typed ``names`` and the first quarantine reason."""
    import duckdb

    from feature_store.spark_engine import contract_reason_sql, contract_value_sql
    from feature_store.validation import reasons_expression, typed_columns

    types = dict.fromkeys(rows.columns, "VARCHAR")
    typed = typed_columns("billing", types)
    con = duckdb.connect()
    con.register("lake", rows)
    columns = ", ".join(typed[name] for name in names)
    by_duckdb = con.execute(
        f"SELECT {columns}, {reasons_expression('billing', types)}[1] FROM lake ORDER BY event_id"
    ).fetchall()
    frame = spark.createDataFrame(rows)
    values = contract_value_sql("billing", dict(frame.dtypes))
    reason = functions.expr(contract_reason_sql("billing", dict(frame.dtypes)))
    selected = [functions.expr(values[name]) for name in names]
    by_spark = [
        tuple(row) for row in frame.select(*selected, reason).orderBy(frame["event_id"]).collect()
    ]
    return by_duckdb, by_spark


def test_a_lakes_text_numbers_read_as_ingestion_reads_them(spark):
    """Seats and MRR written as text: value and reason the same on both engines. Java's parser
    read "2d", "1.5f" and "0x10" as numbers; "1_000", which DuckDB's cast reads, is refused on
    both (it is no contract number)."""
    texts = ["1", "+3", "5.", " 7 ", "1e3", "1_000", "12.7", "1E-2", ".5", "-2", "1__0", "_1",
             "1_", "2d", "1.5f", "0x10", "inf", "-Infinity", "NaN", "1e", "1.2.3", "",
             "\u00a07\u00a0", "\u20037", "7\u00a0\n", "\t7"]  # fmt: skip
    rows = pd.DataFrame({
        "event_id": [f"e{i}" for i in range(len(texts))], "customer_id": "c",
        "occurred_at": "2025-01-01", "type": "subscription_started", "plan": "team",
        "interval": "month", "seats": texts, "mrr": texts,
    })  # fmt: skip
    by_duckdb, by_spark = read_on_both_engines(spark, rows, ["seats", "mrr"])
    assert by_spark == by_duckdb


def test_a_lakes_types_and_currencies_padded_with_unicode_spaces_read_as_ingestion_reads_them(
    spark,
):
    """A type or currency padded with a no-break space (a spreadsheet's) was stored by ingestion,
    whose trim takes every Unicode space separator, and left out of a lake read on Spark, whose
    trim takes the ASCII space alone, as unknown_type or invalid_currency."""
    padded = [("invoice_paid", "USD"), ("invoice_paid\u00a0", "USD"), ("\u2003invoice_paid", "usd"),
              ("invoice_paid", "\u00a0usd\u202f"), ("INVOICE_PAID ", " eur "),
              ("invoice_paid", "U\u00a0SD"), ("invoice_paid\t", "USD"),
              ("invoice_paid", "USD\u00a0\n"), ("invoice_paid", "zzz"), ("invoice_paid", "HRK")]  # fmt: skip
    rows = pd.DataFrame({
        "event_id": [f"e{i}" for i in range(len(padded))], "customer_id": "c",
        "occurred_at": "2025-01-01", "type": [kind for kind, _ in padded], "amount": "10",
        "currency": [currency for _, currency in padded],
    })  # fmt: skip
    by_duckdb, by_spark = read_on_both_engines(spark, rows, ["type", "currency"])
    assert [reason for _, _, reason in by_duckdb] == [None] * 5 + ["invalid_currency"] + [
        "unknown_type",
        "invalid_currency",
        "invalid_currency",  # three letters that name no ISO 4217 currency
        None,  # a withdrawn one (kuna) is real money in an old export
    ]
    assert by_spark == by_duckdb


def test_a_lakes_text_times_read_as_ingestion_reads_them(spark):
    """Times written as text: instant and reason the same on both engines, in any session time
    zone, on days its clocks change too. Spark's cast read neither an hour and minute followed by a zone ("…T10:00Z") nor
    ISO 8601's end of day ("…T24:00", the next midnight): a lake's events written so were left
    out as invalid_occurred_at where ingestion stored them."""
    import duckdb

    from feature_store.schema import COLUMNS
    from feature_store.spark_engine import _canonical, contract_reason_sql
    from feature_store.validation import reasons_expression, typed_columns

    texts = ["2025-01-01T10:00Z", "2025-01-01T10:00+05:00", "2025-01-01 10:00-0330",
             "2025-01-01T10:00+14", "2025-01-01T24:00", "2025-01-01T24:00:00Z",
             "2025-03-08 24:00:00.000-05:00", "2025-12-31T24:00+01:00", "9999-12-31T24:00",
             "2025-01-01T24:00:01", "2025-01-01T24:30", "2025-01-01T10:00", "2025-01-01",
             "2025-01-01T10:00:00+05", "2025-01-01T10:00:00.5Z", "2025-02-30T10:00Z",
             "2025-01-01T25:00Z", "2025-01-01T10:00Z ", "2025-01-01T10Z",
             "2025-03-09T24:00Z", "2025-11-02T24:00", "2025-03-30T24:00+01:00"]  # fmt: skip
    rows = pd.DataFrame({
        "event_id": [f"e{i:02d}" for i in range(len(texts))], "customer_id": "c",
        "occurred_at": texts, "event": "login",
    })  # fmt: skip
    types = dict.fromkeys(rows.columns, "VARCHAR")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("lake", rows)
    instant = typed_columns("usage", types)["occurred_at"]
    by_duckdb = con.execute(
        f"SELECT {instant}, {reasons_expression('usage', types)}[1] FROM lake ORDER BY event_id"
    ).fetchall()
    assert sum(reason is None for _, reason in by_duckdb) == 15  # what ingestion stores
    [column] = [column for column in COLUMNS["usage"] if column.name == "occurred_at"]
    frame = spark.createDataFrame(rows)
    for zone in ("UTC", "America/New_York"):
        spark.conf.set("spark.sql.session.timeZone", zone)
        reason = functions.expr(contract_reason_sql("usage", dict(frame.dtypes)))
        try:
            by_spark = [
                tuple(row)
                for row in frame.select(  # a row left out has no instant (9999's 24:00 is 10000)
                    functions.when(reason.isNull(), _canonical(column, dict(frame.dtypes))),
                    reason,
                )
                .orderBy(frame["event_id"])
                .collect()
            ]
        finally:
            spark.conf.set("spark.sql.session.timeZone", "UTC")
        assert by_spark == by_duckdb, zone


def test_a_source_spark_cannot_read_is_named_in_the_error(spark, tmp_path):
    """An empty folder read "[UNABLE_TO_INFER_SCHEMA] Unable to infer schema for Parquet. It
    must be specified manually": neither the source nor the folder named (a review)."""
    empty = tmp_path / "lake" / "usage"
    empty.mkdir(parents=True)
    with pytest.raises(InputFileError) as refused:
        build_features_spark(
            spark, {"billing": [], "usage": str(empty) + "/"}, datetime(2026, 7, 1)
        ).count()
    assert str(refused.value).startswith(f"Spark: {empty}/: ")
    assert "UNABLE_TO_INFER_SCHEMA" in str(refused.value)


def test_parts_whose_types_do_not_merge_are_named_with_the_column(spark, tmp_path):
    """Seats written as integers in one part and as text in another: the CLI said "An error
    occurred while calling o35.parquet", naming neither the source nor the column (a data
    engineer's review)."""
    lake = tmp_path / "billing"
    lake.mkdir()
    event = {"customer_id": "c", "occurred_at": "2026-01-01T00:00:00Z", "mrr": 10.0,
             "type": "subscription_started", "plan": "team", "interval": "month", "currency": "USD"}  # fmt: skip
    pd.DataFrame([{**event, "event_id": "e1", "seats": 3}]).to_parquet(lake / "part-0.parquet")
    pd.DataFrame([{**event, "event_id": "e2", "seats": "3"}]).to_parquet(lake / "part-1.parquet")
    with pytest.raises(InputFileError) as refused:
        build_features_spark(spark, {"billing": str(lake)}, datetime(2026, 7, 1)).count()
    assert str(refused.value) == (
        f"Spark: {lake}: parts whose column types differ (seats is BIGINT in some, STRING in "
        "others); write them alike"
    )


def test_a_lake_of_epoch_numbers_for_times_leaves_those_rows_out_as_ingestion_does(spark, tmp_path):
    """`occurred_at` as integers (epoch milliseconds): ingestion quarantines the rows as
    `invalid_occurred_at`, while Spark stopped the build with "cannot cast BIGINT to
    TIMESTAMP_NTZ", naming no source (a data engineer's review)."""
    from feature_store.spark_engine import examine_events_spark

    usage = pd.DataFrame({
        "event_id": [f"u{i}" for i in range(4)], "customer_id": ["c1", "c1", "c2", "c3"],
        "occurred_at": [1_767_225_600_000 + i for i in range(4)], "event": "login",
    })  # fmt: skip
    layout = StoreLayout(tmp_path / "home")
    files = tmp_path / "usage.parquet"
    usage.to_parquet(files, index=False)
    report = ingest_files(layout, {"usage": files})["usage"]
    assert report.reasons == {"invalid_occurred_at": 4}
    lake = tmp_path / "lake"
    lake.mkdir()
    usage.to_parquet(lake / "part-0.parquet", index=False)
    assert examine_events_spark(spark, {"usage": str(lake)}).left_out == {"invalid_occurred_at": 4}
    table = build_features_spark(spark, {"usage": str(lake)}, datetime(2026, 6, 1)).toPandas()
    assert table.empty
