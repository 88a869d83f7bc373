"""Money in one reporting currency when customers pay in several (``feature_store.currency``).

The company is the demo's, with a third of its customers billed in rupees at 40 rupees per
dollar of list price: after conversion each of them must read as the customer it is in dollars,
in training, in its backtest, in the online store's refresh and in scoring by events.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from feature_store.currency import (
    MIN_PRICED_CUSTOMERS,
    MONEY_FEATURES,
    CurrencyLevels,
    estimate_levels,
    extended,
    given_levels,
    levels_of,
    read_levels,
    reanchored,
    single_currency,
    to_reporting_currency,
    write_levels,
)
from feature_store.errors import SegmentsError
from feature_store.ingest import ingest_files
from feature_store.layout import StoreLayout
from feature_store.registry import FEATURE_NAMES
from feature_store.timeutil import parse_as_of

AS_OF = parse_as_of("2026-06-30")
RUPEES_PER_DOLLAR = 40.0


def _company(demo_company, rupees: bool) -> tuple[pd.DataFrame, pd.DataFrame, set[str]]:
    billing = demo_company.billing.to_pandas()
    usage = demo_company.usage.to_pandas()
    in_rupees = set(sorted(billing["customer_id"].unique())[1::3])
    if rupees:
        mine = billing["customer_id"].isin(in_rupees)
        billing.loc[mine, "currency"] = "INR"
        for column in ("amount", "mrr"):
            billing.loc[mine, column] = billing.loc[mine, column] * RUPEES_PER_DOLLAR
    return billing, usage, in_rupees


def _latest_subscription_events(billing: pd.DataFrame) -> pd.DataFrame:
    """Each customer's last subscription event (its state: a cancellation, or not)."""
    from feature_store.schema import SUBSCRIPTION_TYPES

    subscriptions = billing[billing["type"].isin(SUBSCRIPTION_TYPES)]
    return subscriptions.sort_values(["occurred_at", "event_id"]).groupby("customer_id").tail(1)


def _store(billing: pd.DataFrame, usage: pd.DataFrame, folder) -> StoreLayout:
    folder.mkdir(parents=True)
    files = {"billing": folder / "billing.parquet", "usage": folder / "usage.parquet"}
    billing.to_parquet(files["billing"], index=False)
    usage.to_parquet(files["usage"], index=False)
    layout = StoreLayout(folder / "home")
    ingest_files(layout, files)
    return layout


@pytest.fixture(scope="module")
def stores(demo_company, tmp_path_factory):
    """The company in dollars only, and with a third of it in rupees."""
    folder = tmp_path_factory.mktemp("currency")
    dollars = _store(*_company(demo_company, False)[:2], folder / "dollars")
    billing, usage, in_rupees = _company(demo_company, True)
    return dollars, _store(billing, usage, folder / "mixed"), in_rupees, billing, usage


def test_a_customer_reads_the_same_in_rupees_as_in_dollars(stores):
    from pipelines.feature_pipeline import build_features

    dollars, mixed, in_rupees, *_ = stores
    plain = build_features(dollars, AS_OF)
    assert levels_of(plain) is None  # one currency: nothing converted
    assert single_currency(plain) == "USD"  # ... and named on the pages
    converted = build_features(mixed, AS_OF)
    assert single_currency(converted) is None
    levels = levels_of(converted)
    assert levels.reporting == "USD"
    assert levels.customers == {
        "USD": len(plain) - len(in_rupees & set(plain.customer_id)),
        "INR": len(in_rupees & set(plain.customer_id)),
    }
    # the level is measured from the data, the median price per seat of two different groups of
    # customers: near the true 40, not equal to it
    level = levels.levels["INR"]
    assert abs(level / RUPEES_PER_DOLLAR - 1) < 0.1
    a = plain.set_index("customer_id")
    b = converted.set_index("customer_id")
    rupee = b.index.isin(in_rupees)
    assert rupee.sum() > 50
    # every money feature of a rupee customer is its dollar value times 40 / level, exactly;
    # every other feature, and every dollar customer, is untouched
    scale = RUPEES_PER_DOLLAR / level
    for name in MONEY_FEATURES:
        assert np.allclose(b.loc[rupee, name], a.loc[rupee, name] * scale, rtol=1e-9, atol=1e-9)
    others = [n for n in FEATURE_NAMES if n not in MONEY_FEATURES]
    pd.testing.assert_frame_equal(b[others], a[others])
    pd.testing.assert_frame_equal(b.loc[~rupee], a.loc[~rupee])
    # unconverted, the rupee customers' MRR is 40 times their dollar MRR
    local = a.loc[rupee, "mrr"] * RUPEES_PER_DOLLAR
    assert local.max() > 10 * a["mrr"].max()


def test_price_levels_from_a_feature_table():
    from pipelines.cli.training import currency_text

    def table(rows: list[tuple[str | None, float, int]]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "customer_id": [f"c{i}" for i in range(len(rows))],
                "currency": [r[0] for r in rows],
                "mrr": [r[1] for r in rows],
                "mrr_per_seat": [r[1] / 2 for r in rows],
                "is_canceled": [r[2] for r in rows],
                "ltv": [r[1] * 10 for r in rows],
                "seats": [2] * len(rows),
            }
        )

    n = MIN_PRICED_CUSTOMERS
    one = table([("EUR", 10.0, 0)] * 8 + [(None, 0.0, 0)])
    assert estimate_levels(one) is None  # one currency (and a customer without billing)
    mixed = table(
        [("USD", 10.0, 0)] * (n + 2)
        + [("BRL", 25.0, 0)] * n
        + [("BRL", 999.0, 1)] * 3  # cancelled: not a price anyone pays now
        + [("JPY", 1500.0, 0)] * (n - 1)  # too few to measure
    )
    levels = estimate_levels(mixed)
    assert levels == CurrencyLevels(
        "USD", {"BRL": 2.5, "USD": 1.0}, ("JPY",), {"USD": n + 2, "BRL": n + 3, "JPY": n - 1}
    )
    assert list(levels.customers) == ["BRL", "USD", "JPY"]  # most customers first
    converted = to_reporting_currency(mixed, levels)
    brl = mixed["currency"] == "BRL"
    assert np.allclose(converted.loc[brl, "mrr"], mixed.loc[brl, "mrr"] / 2.5)
    assert np.allclose(converted.loc[brl, "ltv"], mixed.loc[brl, "ltv"] / 2.5)
    assert (converted.loc[brl, "seats"] == 2).all()  # not money
    jpy = mixed["currency"] == "JPY"
    assert converted.loc[jpy, "mrr"].tolist() == mixed.loc[jpy, "mrr"].tolist()
    assert "JPY" in levels.describe()
    assert "BRL 2.5 per USD" in levels.describe()
    assert CurrencyLevels.from_dict(levels.as_dict()) == levels
    # the reporting currency is the one most customers pay in, ties to the first code
    tied = table([("USD", 10.0, 0)] * n + [("EUR", 9.0, 0)] * n)
    assert estimate_levels(tied).reporting == "EUR"
    assert to_reporting_currency(one, None) is one
    # several currencies, none with enough paying customers: nothing converted, and said so
    thin = table([("USD", 10.0, 0)] * (n - 1) + [("EUR", 9.0, 0)] * 2)
    unmeasured = estimate_levels(thin)
    assert not unmeasured.converts
    assert unmeasured.unpriced == ("EUR", "USD")
    assert "own currency" in unmeasured.describe()
    assert to_reporting_currency(thin, unmeasured) is thin
    assert currency_text(None) is None


def test_training_refresh_and_scoring_by_events_convert_alike(stores, tmp_path, monkeypatch):
    """The model keeps the levels it was trained with: its backtest, a refreshed online vector
    and a vector computed from posted events use them, and equal the offline table's."""
    from feature_store.engine import SessionFactory, connect
    from feature_store.refresh import customer_features
    from models.assignment import ModelRef
    from models.explainer import SegmentExplainer
    from models.families.kmeans import KMeansFamily
    from models.registry import ModelRegistry
    from models.segmenter import CustomerSegmenter
    from pipelines.cli.training import currency_text
    from pipelines.feature_pipeline import build_features, materialize
    from pipelines.tracking import registry_config
    from pipelines.train import train
    from service.catalog import describe_model
    from service.events import EventsJob, vectors_from_events
    from service.schemas.events import CustomerEvents

    _, mixed, in_rupees, billing, usage = stores
    offline = build_features(mixed, AS_OF)
    levels = levels_of(offline)
    materialize(mixed, offline, AS_OF)
    assert read_levels(mixed) == levels

    segmenter = CustomerSegmenter(
        n_resamples=2, candidates=[KMeansFamily().candidate(k) for k in (4, 5)], random_state=0
    )
    explainer = SegmentExplainer(leaf_ladder=(8,), n_folds=2, max_iter=60)
    registry = ModelRegistry(registry_config(mixed, {}))
    result = train(mixed, AS_OF, segmenter, registry, explainer=explainer)
    assert result.currency_levels == levels.as_dict()
    text = currency_text(result.currency_levels)
    assert text is not None
    assert text.startswith("customers pay in 2 currencies (USD ")
    assert "money in USD: INR" in text
    model = registry.load_version(result.model_version)
    assert model.currency == levels
    # GET /v1/model says which currency money is in, and by which levels it was converted
    described = describe_model(
        model,
        ModelRef(name="customer-segments", version=result.model_version),
        "champion",
        "now",
        "registry",
    )
    assert described.currency is not None
    assert described.currency.reporting == "USD"
    assert described.currency.levels == dict(levels.levels)
    assert "currency" in described.model_dump(mode="json")

    customer = sorted(in_rupees & set(offline.customer_id))[0]
    expected = offline.set_index("customer_id").loc[customer]
    con = connect()
    try:
        refreshed = customer_features(con, mixed, [customer], AS_OF).set_index("customer_id")
    finally:
        con.close()
    assert np.allclose(refreshed.loc[customer, list(FEATURE_NAMES)], expected[list(FEATURE_NAMES)])

    def records(frame: pd.DataFrame) -> list[dict]:
        rows = frame[frame["customer_id"] == customer].drop(columns=["customer_id"])
        out = []
        for row in rows.to_dict("records"):
            clean = {
                k: v
                for k, v in row.items()
                if not (v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA)
            }
            clean["occurred_at"] = pd.Timestamp(clean["occurred_at"]).isoformat() + "Z"
            out.append(clean)
        return out

    events = CustomerEvents.model_validate({"billing": records(billing), "usage": records(usage)})
    sessions = SessionFactory()
    try:
        [scored] = vectors_from_events(
            [EventsJob(customer, events, AS_OF)], FEATURE_NAMES, sessions, model.currency
        )
        [unconverted] = vectors_from_events(
            [EventsJob(customer, events, AS_OF)], FEATURE_NAMES, sessions
        )
    finally:
        sessions.close()
    for name in FEATURE_NAMES:
        assert scored.vector[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-9), name
    assert unconverted.vector["mrr"] == pytest.approx(expected["mrr"] * levels.levels["INR"])

    # `segments assign --billing --usage` converts as the service does, by the model's levels,
    # even when the data home no longer keeps them (a deleted levels file, a shared registry)
    from pipelines.cli import main

    files = {"billing": tmp_path / "b.parquet", "usage": tmp_path / "u.parquet"}
    billing[billing["customer_id"] == customer].to_parquet(files["billing"], index=False)
    usage[usage["customer_id"] == customer].to_parquet(files["usage"], index=False)
    kept_file = mixed.currency_levels_path
    aside = kept_file.with_name("aside.json")
    kept_file.rename(aside)
    out = tmp_path / "assigned.jsonl"
    monkeypatch.setenv("SEGMENTS_HOME", str(mixed.home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        with pytest.raises(SystemExit) as exit_:
            main(
                [
                    "assign",
                    *("--billing", str(files["billing"]), "--usage", str(files["usage"])),
                    *("--as-of", "2026-06-30", "--out", str(out), "--explain", "--top-k", "100"),
                ]
            )
    finally:
        aside.rename(kept_file)
    assert exit_.value.code == 0
    [explained] = pd.read_json(out, lines=True).to_dict("records")
    by_model = model.assign(pd.DataFrame([expected[list(FEATURE_NAMES)]]))
    assert explained["segment"]["id"] == by_model["segment_id"].iloc[0]
    mrr = next(c for c in explained["explanation"]["contributions"] if c["feature"] == "mrr")
    assert mrr["value"] == pytest.approx(expected["mrr"], rel=1e-9)


def test_spark_converts_as_duckdb_does(stores, spark):
    """Both engines measure the same levels and convert the same money."""
    from test_spark_parity import assert_same_features, spark_table

    from pipelines.feature_pipeline import build_features

    mixed = stores[1]
    duck = build_features(mixed, AS_OF)
    assert levels_of(duck).converts
    assert_same_features(duck, spark_table(spark, mixed, AS_OF))


def test_a_spark_training_sample_carries_the_levels(stores, spark):
    """The recipe of ``docs/scale-out.md``: levels measured on Spark, features converted by
    them, and a stratified sample that says so, as ``build_features``' table does."""
    from feature_store.offline_store import OfflineStore
    from feature_store.spark_engine import (
        billing_currencies_spark,
        build_features_spark,
        price_levels_spark,
        store_event_sources,
    )
    from pipelines.feature_pipeline import build_features
    from pipelines.spark_jobs import stratified_sample

    dollars, mixed = stores[:2]
    expected = levels_of(build_features(mixed, AS_OF))
    sources = store_event_sources(OfflineStore(mixed))
    levels = price_levels_spark(spark, sources, AS_OF)
    assert (levels.reporting, levels.levels) == (expected.reporting, expected.levels)
    currencies = billing_currencies_spark(spark, sources, AS_OF)
    assert currencies == ["INR", "USD"]
    sample = stratified_sample(
        build_features_spark(spark, sources, AS_OF, levels),
        60,
        levels=levels,
        currencies=currencies,
    )
    assert levels_of(sample) == levels
    assert single_currency(sample) is None  # several: the pages do not name one
    # In one currency the sample names it, as the DuckDB-built table does, and a model fitted on
    # it records it for its pages (models.bundle.SegmentModel.money_currency).
    one = store_event_sources(OfflineStore(dollars))
    plain = stratified_sample(
        build_features_spark(spark, one, AS_OF, None),
        60,
        currencies=billing_currencies_spark(spark, one, AS_OF),
    )
    assert single_currency(plain) == single_currency(build_features(dollars, AS_OF)) == "USD"
    converted = build_features(mixed, AS_OF).set_index("customer_id")
    ids = sample["customer_id"]
    assert np.allclose(sample.set_index("customer_id").loc[ids, "mrr"], converted.loc[ids, "mrr"])


def test_segments_features_says_when_money_is_converted(stores, tmp_path, monkeypatch, capsys):
    """`segments features` converted money in several currencies without a word; a new user
    found it only through `segments currency show` (train said so, features did not)."""
    import shutil

    from pipelines.cli import main

    dollars, mixed, *_ = stores
    said = {}
    for name, layout in (("dollars", dollars), ("mixed", mixed)):
        home = shutil.copytree(layout.home, tmp_path / name)  # the fixture's stay as they are
        monkeypatch.setenv("SEGMENTS_HOME", str(home))
        with pytest.raises(SystemExit) as exit_:
            main(["features", "--as-of", "2026-06-30", "--out", str(home / "f.parquet")])
        assert exit_.value.code == 0
        said[name] = capsys.readouterr().err
    assert "money in USD: INR" in said["mixed"]
    assert "`segments currency show` has them" in said["mixed"]
    assert "money in USD" not in said["dollars"]


def test_the_spark_command_extends_given_levels_as_the_duckdb_build_does(
    stores, spark, tmp_path, monkeypatch
):
    """`segments features --engine spark` after levels that name only the reporting currency:
    the rupees are measured and converted as the DuckDB engine converts them."""
    from test_spark_parity import assert_same_features

    from pipelines.cli import main
    from pipelines.feature_pipeline import build_features

    _, _, _, billing, usage = stores
    home = _store(billing, usage, tmp_path / "partial")
    monkeypatch.setenv("SEGMENTS_HOME", str(home.home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    written = tmp_path / "spark.parquet"
    for argv in (
        ["currency", "set", "--reporting", "USD"],
        ["features", "--engine", "spark", "--as-of", "2026-06-30", "--out", str(written)],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
    duck = build_features(home, AS_OF)
    assert levels_of(duck).levels.keys() == {"USD", "INR"}
    on_spark = pd.read_parquet(written).drop(columns=["features_as_of"], errors="ignore")
    assert_same_features(duck, on_spark.sort_values("customer_id", ignore_index=True))


def test_the_data_home_keeps_its_levels_and_every_batch_path_uses_them(stores, tmp_path):
    """Levels measured once are kept (a later table with other medians does not move them), so
    the discovery's MRR bounds and an events file assigned later convert as training did."""
    from feature_store.cohort import Cohort, cohort_customers
    from pipelines.assign import converted_events_features, local_features_from_events
    from pipelines.feature_pipeline import build_features

    _, mixed, in_rupees, billing, usage = stores
    levels = levels_of(build_features(mixed, AS_OF))
    earlier = build_features(mixed, parse_as_of("2026-03-31"))
    kept = read_levels(mixed)
    for other in (levels_of(earlier), kept):
        assert (other.reporting, other.levels) == (levels.reporting, levels.levels)
    # what changes with the table is the customers counted per currency
    assert levels_of(earlier).customers != levels.customers

    # the MRR bounds of a discovery are in the reporting currency
    table = build_features(mixed, AS_OF)
    active = table[table["is_canceled"] == 0]
    bounds = (float(active["mrr"].quantile(0.25)), float(active["mrr"].quantile(0.75)))
    inside = active[active["mrr"].between(*bounds)]
    assert inside["customer_id"].isin(in_rupees).sum() > 20
    assert len(inside) < len(active)
    chosen = cohort_customers(mixed, Cohort(mrr_min=bounds[0], mrr_max=bounds[1]), AS_OF)
    assert sorted(chosen) == sorted(inside["customer_id"])
    # and so they are in a data home that has kept no levels yet: the cohort measures them,
    # and keeps nothing (it runs in the check before a discovery is queued); the first build
    # keeps the same
    fresh = _store(billing, usage, tmp_path / "fresh")
    assert read_levels(fresh) is None
    chosen = cohort_customers(fresh, Cohort(mrr_min=bounds[0], mrr_max=bounds[1]), AS_OF)
    assert sorted(chosen) == sorted(inside["customer_id"])
    assert read_levels(fresh) is None
    build_features(fresh, AS_OF)
    assert read_levels(fresh) == kept

    # `segments assign --billing --usage`: a file of three customers converts by the kept levels
    few = sorted(in_rupees & set(table["customer_id"]))[:3]
    files = {"billing": tmp_path / "b.parquet", "usage": tmp_path / "u.parquet"}
    billing[billing["customer_id"].isin(few)].to_parquet(files["billing"], index=False)
    usage[usage["customer_id"].isin(few)].to_parquet(files["usage"], index=False)
    local, _ = local_features_from_events(files, AS_OF)
    assigned = converted_events_features(local, read_levels(mixed), AS_OF).set_index("customer_id")
    expected = table.set_index("customer_id").loc[few]
    assert np.allclose(assigned.loc[few, list(MONEY_FEATURES)], expected[list(MONEY_FEATURES)])


def cohort_bounds(cohort) -> tuple[float, float]:
    return float(cohort.mrr_min), float(cohort.mrr_max)


def test_levels_are_extended_through_any_currency_both_price():
    """Given levels whose reporting currency the table does not price still take in the
    currencies it measures, through one both price."""
    kept = given_levels("GBP", {"USD": 1.25})
    measured = CurrencyLevels("USD", {"USD": 1.0, "INR": 40.0, "EUR": 0.95}, (), {"USD": 9})
    grown = extended(kept, measured)
    assert grown.reporting == "GBP"
    assert grown.levels["USD"] == 1.25  # given, kept
    assert grown.levels["INR"] == pytest.approx(50.0)  # 40 rupees per dollar, 1.25 dollars a pound
    assert grown.levels["EUR"] == pytest.approx(0.95 * 1.25)
    assert grown.given == ("GBP", "USD")
    assert "USD given with `segments currency set`; EUR, INR estimated" in grown.describe()


def test_kept_levels_gain_new_currencies_and_never_move():
    kept = CurrencyLevels(
        "USD", {"USD": 1.0, "INR": 40.0}, ("BRL",), {"USD": 9, "INR": 6, "BRL": 2}
    )
    measured = CurrencyLevels(
        "INR", {"INR": 1.0, "USD": 0.025, "BRL": 0.0625}, (), {"USD": 9, "INR": 12, "BRL": 7}
    )
    grown = extended(kept, measured)
    assert grown.reporting == "USD"
    assert grown.levels["INR"] == 40.0  # kept, though this table's median says otherwise
    assert grown.levels["BRL"] == pytest.approx(2.5)  # new, against the kept reporting currency
    assert grown.unpriced == ()
    assert extended(None, measured) == measured
    assert extended(kept, None) == kept
    # a table that does not price the kept reporting currency places a new one through another
    # kept currency it prices (0.06 BRL per INR, 40 INR per USD)
    orphan = CurrencyLevels("INR", {"INR": 1.0, "BRL": 0.06}, ("USD",), {"INR": 9, "BRL": 9})
    assert extended(kept, orphan).levels["BRL"] == pytest.approx(2.4)
    # and one that prices no kept currency places none
    alone = CurrencyLevels("BRL", {"BRL": 1.0, "MXN": 3.0}, (), {"BRL": 9, "MXN": 9})
    assert dict(extended(kept, alone).levels) == dict(kept.levels)


def test_the_levels_file_is_written_when_a_level_is_added_and_read_with_a_clear_error(
    stores, tmp_path
):
    from feature_store.errors import SegmentsError
    from pipelines.feature_pipeline import build_features

    mixed = stores[1]
    build_features(mixed, AS_OF)
    path = mixed.currency_levels_path
    written = path.stat().st_mtime_ns
    build_features(mixed, parse_as_of("2026-05-31"))  # other counts, no new level: not rewritten
    assert path.stat().st_mtime_ns == written
    assert not list(path.parent.glob("*.partial"))

    broken = StoreLayout(tmp_path / "broken")
    broken.currency_levels_path.parent.mkdir(parents=True)
    broken.currency_levels_path.write_text("{not json")
    with pytest.raises(SegmentsError, match=r"currency_levels\.json is not a price-levels file"):
        read_levels(broken)


def test_scoring_by_events_converts_by_the_levels_the_data_home_kept_since_training(stores):
    """A currency the home learned to price after the model was trained converts as the online
    store's vectors do; the model's own levels are never moved."""
    import dataclasses

    from feature_store.engine import SessionFactory
    from models.assignment import ModelRef
    from models.explainer import SegmentExplainer
    from models.families.kmeans import KMeansFamily
    from models.segmenter import CustomerSegmenter
    from pipelines.feature_pipeline import build_features
    from pipelines.train import fit_model
    from service.catalog import describe_model
    from service.lifecycle import LoadedModel
    from service.scoring import Scorer

    mixed = stores[1]
    segmenter = CustomerSegmenter(n_resamples=2, candidates=[KMeansFamily().candidate(3)])
    explainer = SegmentExplainer(leaf_ladder=(8,), n_folds=2, max_iter=30)
    fitted = fit_model(build_features(mixed, AS_OF), segmenter, explainer).model
    kept = read_levels(mixed)
    assert kept is not None
    assert fitted.currency.levels == kept.levels
    # as if trained while the home could not price rupees yet
    older = CurrencyLevels("USD", {"USD": 1.0}, ("INR",), {"USD": 180, "INR": 3})
    model = dataclasses.replace(fitted, currency=older)
    ref = ModelRef(name="customer-segments", version="1")
    loaded = LoadedModel(
        model,
        ref,
        tuple(model.feature_names),
        (),
        describe_model(model, ref, "champion", "now", "registry"),
    )
    sessions = SessionFactory()
    try:
        # online store and metrics are not read by the levels
        scorer = Scorer(None, sessions, None, layout=mixed)  # type: ignore[arg-type]
        levels = scorer._levels(loaded)
        assert levels.levels == {"USD": 1.0, "INR": kept.levels["INR"]}
        # a level the home adds later reaches the scorer; the file is read again only then
        grown = CurrencyLevels("USD", {**kept.levels, "BRL": 2.5}, (), dict(kept.customers))
        write_levels(mixed, grown)
        try:
            assert scorer._levels(loaded).levels["BRL"] == 2.5
        finally:
            write_levels(mixed, kept)
        assert "BRL" not in scorer._levels(loaded).levels
        assert Scorer(None, sessions, None)._levels(loaded) == older  # type: ignore[arg-type]
    finally:
        sessions.close()


def test_levels_the_user_gives_convert_every_table_until_forgotten(stores, tmp_path, monkeypatch):
    """`segments currency set/show/forget`: given exchange rates replace the measured levels,
    a reporting currency alone re-anchors the measured ones, and forgetting measures again."""

    from pipelines.cli import main
    from pipelines.feature_pipeline import build_features

    dollars, _, in_rupees, billing, usage = stores
    home = _store(billing, usage, tmp_path / "given")
    monkeypatch.setenv("SEGMENTS_HOME", str(home.home))

    def segments(*argv: str) -> int:
        with pytest.raises(SystemExit) as exit_:
            main(list(argv))
        return int(exit_.value.code)

    plain = build_features(dollars, AS_OF).set_index("customer_id")
    rupee = plain.index.isin(in_rupees)
    # before any table has counted customers per currency, the levels alone are described
    assert given_levels("USD", {"EUR": 0.9}).describe() == (
        "money in USD: EUR 0.9 per USD (levels given with `segments currency set`)"
    )

    assert segments("currency", "set", "--reporting", "USD", "INR=50") == 0
    table = build_features(home, AS_OF).set_index("customer_id")
    levels = levels_of(table)
    assert dict(levels.levels) == {"INR": 50.0, "USD": 1.0}
    assert "INR" in levels.given
    assert "levels given with `segments currency set`" in levels.describe()
    # rupee customers: 40 rupees per dollar of list price, divided by the given 50
    scale = RUPEES_PER_DOLLAR / 50.0
    assert np.allclose(table.loc[rupee, "mrr"], plain.loc[rupee, "mrr"] * scale, rtol=1e-9)
    assert np.allclose(table.loc[~rupee, "mrr"], plain.loc[~rupee, "mrr"], rtol=1e-9)

    # a discovery's MRR bounds convert by the given levels
    from feature_store.cohort import Cohort, cohort_customers

    active = table[table["is_canceled"] == 0]
    bounds = (float(active["mrr"].quantile(0.3)), float(active["mrr"].quantile(0.7)))
    inside = active[active["mrr"].between(*bounds)].index
    chosen = cohort_customers(home, Cohort(mrr_min=bounds[0], mrr_max=bounds[1]), AS_OF)
    assert sorted(chosen) == sorted(inside)

    # the reporting currency alone re-expresses the kept levels against it
    assert segments("currency", "set", "--reporting", "INR") == 0
    kept = read_levels(home)
    assert kept.reporting == "INR"
    assert kept.levels["USD"] == pytest.approx(1 / 50)
    # a code the kept levels do not price is refused: nothing to re-express them against
    assert segments("currency", "set", "--reporting", "GBP") == 2
    assert read_levels(home) == kept

    # with none kept, the reporting currency alone: the others are measured against it, by a
    # cohort's bounds first, then by the table, alike
    assert segments("currency", "forget") == 0
    assert segments("currency", "set", "--reporting", "INR") == 0
    cohort = Cohort(mrr_min=bounds[0] * 40, mrr_max=bounds[1] * 40)
    chosen = cohort_customers(home, cohort, AS_OF)
    table = build_features(home, AS_OF).set_index("customer_id")
    active = table[table["is_canceled"] == 0]
    assert sorted(chosen) == sorted(active[active["mrr"].between(*cohort_bounds(cohort))].index)
    levels = levels_of(table)
    assert levels.reporting == "INR"
    assert abs(levels.levels["USD"] * RUPEES_PER_DOLLAR - 1) < 0.1
    assert levels.sources() == "price levels estimated from the median price per seat"
    # the file now counts customers per currency, so `show` can name what is not converted
    assert read_levels(home) == CurrencyLevels("INR", levels.levels, (), levels.customers, ("INR",))

    # a reporting currency the data cannot price: money goes into the measured one instead
    assert segments("currency", "forget") == 0
    assert segments("currency", "set", "--reporting", "GBP") == 0
    assert levels_of(build_features(home, AS_OF)).reporting == "USD"

    # forgotten: measured again from the data, in dollars
    assert segments("currency", "forget") == 0
    assert read_levels(home) is None
    assert levels_of(build_features(home, AS_OF)).reporting == "USD"

    # a damaged or hand-edited file is named in one line, and forgetting it mends it
    for damage in ("{not json", '{"reporting": "USD", "levels": {"USD": 1.0, "INR": 0.0}}'):
        home.currency_levels_path.write_text(damage)
        with pytest.raises(SegmentsError, match="segments currency forget"):
            read_levels(home)
    assert segments("currency", "forget") == 0
    assert not home.currency_levels_path.exists()
    assert segments("currency", "show", "--json") == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--reporting", "usd"], "'usd' is not an ISO 4217 currency code"),
        (["--reporting", "USD", "ZZZ=2"], "'ZZZ' is not an ISO 4217 currency code"),
        (["--reporting", "USD", "EUR"], "'EUR' is not CODE=LEVEL"),
        (["--reporting", "USD", "EUR=-2"], "the level of EUR must be a number from 1e-06 to 1e+09"),
        (
            ["--reporting", "USD", "EUR=inf"],
            "the level of EUR must be a number from 1e-06 to 1e+09",
        ),
        (["--reporting", "USD", "USD=2"], "the reporting currency USD is 1 USD per USD"),
        (["--reporting", "USD", "EUR=1e-320"], "the level of EUR must be a number from 1e-06"),
        (["--reporting", "USD", "EUR=0.9", "EUR=0.8"], "EUR given more than once"),
    ],
)
def test_given_levels_are_refused_in_one_line(argv, message, tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit) as exit_:
        main(["currency", "set", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "home" / "currency_levels.json").exists()


def test_a_refresh_prices_a_currency_the_kept_levels_have_not_seen(stores, tmp_path, monkeypatch):
    """Customers of a new currency arrive after the levels were kept (a new market, ingested
    over HTTP): their first refresh measures the currency over the whole store and keeps it, so
    the online vector reads as a full build's does. A currency with too few customers costs a
    count, not a measurement of the store; one with too few paying is measured again only once
    its customers have doubled."""
    from feature_store.engine import connect
    from feature_store.refresh import customer_features
    from pipelines.feature_pipeline import build_features

    dollars, _, in_rupees, billing, usage = stores
    plain = build_features(dollars, AS_OF).set_index("customer_id")
    reais_per_dollar = 5.0
    in_reais = set(sorted(set(billing["customer_id"]) - in_rupees)[::4])
    late = billing["customer_id"].isin(in_reais)
    home = _store(billing[~late], usage[~usage["customer_id"].isin(in_reais)], tmp_path / "a")
    build_features(home, AS_OF)
    before = read_levels(home)
    assert set(before.levels) == {"USD", "INR"}

    newcomers = billing[late].copy()
    newcomers["currency"] = "BRL"
    for column in ("amount", "mrr"):
        newcomers[column] = newcomers[column] * reais_per_dollar
    folder = tmp_path / "late"
    folder.mkdir()
    newcomers.to_parquet(folder / "billing.parquet", index=False)
    usage[usage["customer_id"].isin(in_reais)].to_parquet(folder / "usage.parquet", index=False)
    ingest_files(home, {s: folder / f"{s}.parquet" for s in ("billing", "usage")})

    customer = sorted(in_reais & set(plain.index))[0]
    con = connect()
    try:
        refreshed = customer_features(con, home, [customer], AS_OF).set_index("customer_id")
    finally:
        con.close()
    levels = read_levels(home)
    assert abs(levels.levels["BRL"] / reais_per_dollar - 1) < 0.1
    assert levels.levels["INR"] == before.levels["INR"]  # kept levels never move
    full = build_features(home, AS_OF).set_index("customer_id")
    assert np.allclose(
        refreshed.loc[customer, list(FEATURE_NAMES)], full.loc[customer, list(FEATURE_NAMES)]
    )
    assert refreshed.loc[customer, "mrr"] == pytest.approx(
        plain.loc[customer, "mrr"] * reais_per_dollar / levels.levels["BRL"]
    )

    # francs: every measurement of the whole store is counted (the real one, counted)
    import feature_store.refresh as refresh
    from feature_store.currency import kept_levels

    measured = []

    def counted(layout, local):
        measured.append(len(local))
        return kept_levels(layout, local)

    monkeypatch.setattr(refresh, "kept_levels", counted)
    table = build_features(home, AS_OF)
    active = table[table["is_canceled"] == 0]
    paying = set(active[active["mrr"] > 0]["customer_id"])
    cancelled = sorted(set(table[table["is_canceled"] == 1]["customer_id"]))
    spare = sorted(paying - in_reais - in_rupees)

    def francs(customers: list[str], prefix: str) -> str:
        """Ingest ``customers``' events again as new customers paying in francs; one of their ids."""
        events = {"billing": billing, "usage": usage}
        for stream, frame in events.items():
            mine = frame[frame["customer_id"].isin(customers)].copy()
            # new customers: new ids, and new event ids (the store keeps an event's first copy)
            for column in ("customer_id", "event_id"):
                mine[column] = prefix + mine[column]
            if stream == "billing":
                mine["currency"] = "CHF"
            mine.to_parquet(folder / f"{stream}.parquet", index=False)
        ingest_files(home, {s: folder / f"{s}.parquet" for s in ("billing", "usage")})
        return prefix + customers[0]

    def refreshed_mrr(customer: str) -> float:
        con = connect()
        try:
            return float(customer_features(con, home, [customer], AS_OF)["mrr"].iloc[0])
        finally:
            con.close()

    def file_identity() -> tuple[int, int]:
        status = home.currency_levels_path.stat()
        return status.st_ino, status.st_mtime_ns

    # two customers: too few to price; a count of the billing events says so, nothing is measured
    first = francs(spare[:2], "chf1-")
    written = file_identity()
    assert refreshed_mrr(first) == pytest.approx(plain.loc[spare[0], "mrr"])  # unconverted
    assert measured == []
    assert "CHF" not in read_levels(home).levels
    assert "CHF" not in read_levels(home).unpriced
    assert file_identity() == written

    # six customers, four of them cancelled: measured once, too few paying, noted as unpriced;
    # the next refresh does not measure again
    francs(cancelled[:4], "chf2-")
    refreshed_mrr(first)
    assert len(measured) == 1
    assert read_levels(home).unpriced == ("CHF",)
    refreshed_mrr(first)
    assert len(measured) == 1

    # twice as many customers, still too few paying: measured again, the count kept, so the next
    # refresh does not measure
    francs(cancelled[4:10], "chf4-")
    refreshed_mrr(first)
    assert len(measured) == 2
    assert read_levels(home).unpriced == ("CHF",)
    assert read_levels(home).customers["CHF"] == 12
    refreshed_mrr(first)
    assert len(measured) == 2

    # twice as many again, most of them paying: measured again, and now priced
    francs(spare[2:14], "chf3-")
    converted = refreshed_mrr(first)
    assert len(measured) == 3
    levels = read_levels(home)
    assert "CHF" in levels.levels
    assert levels.unpriced == ()
    assert converted == pytest.approx(plain.loc[spare[0], "mrr"] / levels.levels["CHF"])


def test_a_currency_too_few_pay_in_is_noted_once(tmp_path):
    """Seen but not priceable (fewer than MIN_PRICED_CUSTOMERS paying): written to the kept file as
    unpriced, so that a refresh does not measure the store again for it; written once."""
    from feature_store.currency import kept_levels

    layout = StoreLayout(tmp_path / "home")
    layout.currency_levels_path.parent.mkdir(parents=True, exist_ok=True)
    write_levels(layout, CurrencyLevels("USD", {"USD": 1.0, "INR": 40.0}, (), {"USD": 9, "INR": 9}))
    rows = [("USD", 0, 10.0, 10.0)] * 9 + [("INR", 0, 400.0, 400.0)] * 9
    # six customers in francs, two of them paying
    rows += [("CHF", 0, 9.0, 9.0)] * 2 + [("CHF", 1, 0.0, 0.0)] * 4
    local = pd.DataFrame(rows, columns=["currency", "is_canceled", "mrr", "mrr_per_seat"])
    assert kept_levels(layout, local).unpriced == ("CHF",)
    status = layout.currency_levels_path.stat()
    assert read_levels(layout).unpriced == ("CHF",)
    assert kept_levels(layout, local).unpriced == ("CHF",)
    # a write replaces the file (a new inode): not written again
    again = layout.currency_levels_path.stat()
    assert (again.st_ino, again.st_mtime_ns) == (status.st_ino, status.st_mtime_ns)


def test_a_refresh_in_a_one_currency_home_never_measures_the_store(
    demo_company, tmp_path, monkeypatch
):
    """Levels given before any build (`segments currency set --reporting EUR`) on a home whose
    customers all pay in dollars: the dollar is not priced, yet one currency has nothing to
    measure against, so a refresh costs a count of currencies, never a whole-store measurement."""
    import feature_store.refresh as refresh
    from feature_store.engine import connect

    billing, usage, _ = _company(demo_company, False)
    home = _store(billing, usage, tmp_path / "dollars")
    write_levels(home, given_levels("EUR", {}))
    measured = []
    monkeypatch.setattr(refresh, "kept_levels", lambda *args: measured.append(args))
    customer = sorted(billing["customer_id"])[0]
    con = connect()
    try:
        for _ in range(2):
            vector = refresh.customer_features(con, home, [customer], AS_OF)
            assert len(vector) == 1
    finally:
        con.close()
    assert measured == []
    assert read_levels(home) == given_levels("EUR", {})


def test_vectors_at_each_customers_own_date_equal_the_whole_table_at_that_date(stores):
    """``build_features_at`` (the churned customers read when last active) runs the same
    definitions on the listed customers' events only: every row equals the whole store's table
    at that date, converted by the same levels; a key with a time zone means the same instant."""
    from datetime import UTC, timedelta, timezone

    from pipelines.feature_pipeline import build_features, build_features_at

    _, mixed, in_rupees, *_ = stores
    levels = levels_of(build_features(mixed, AS_OF))
    early, late = AS_OF - timedelta(days=200), AS_OF - timedelta(days=31, hours=5)
    tables = {moment: build_features(mixed, moment, levels) for moment in (early, late)}
    customers = sorted(tables[late]["customer_id"])
    newcomers = sorted(set(customers) - set(tables[early]["customer_id"]))
    assert newcomers  # customers with no event before the early date: no row, no error
    at_early = [*customers[::7], *newcomers[:3]]
    at_late = customers[3::7]
    assert any(c in in_rupees for c in at_late)  # money converted, not only dollars
    east = timezone(timedelta(hours=5))
    rows = build_features_at(
        mixed, {early: at_early, late.replace(tzinfo=UTC).astimezone(east): at_late}, levels
    )
    assert sorted(rows["customer_id"]) == sorted(set(at_early) - set(newcomers) | set(at_late))
    assert levels_of(rows) == levels
    for moment, listed in ((early, at_early), (late, at_late)):
        expected = tables[moment].set_index("customer_id")
        got = rows.set_index("customer_id").loc[[c for c in listed if c in expected.index]]
        pd.testing.assert_frame_equal(got, expected.loc[got.index, got.columns])
    empty = build_features_at(mixed, {}, levels)
    assert empty.empty
    assert list(empty.columns) == list(rows.columns)


def test_the_window_start_prices_a_currency_the_model_could_not(stores):
    """A currency whose customers had all cancelled by the features' date has no level in the
    model (unpriced: nobody paying then), yet its customers paying 90 days before are the
    backtest's cohort: their MRR is converted by the level the window's start measures, on the
    model's scale, not counted in rupees as if they were dollars."""
    from datetime import timedelta

    from feature_store.currency import CurrencyLevels
    from pipelines.feature_pipeline import build_features
    from pipelines.train import window_start_features

    dollars, mixed, in_rupees, *_ = stores
    window_start = AS_OF - timedelta(days=90)
    without_rupees = CurrencyLevels("USD", {"USD": 1.0}, unpriced=("INR",))
    start = window_start_features(mixed, window_start, without_rupees)
    levels = levels_of(start)
    assert levels.reporting == "USD"
    assert levels.levels["USD"] == 1.0
    assert abs(levels.levels["INR"] / RUPEES_PER_DOLLAR - 1) < 0.15  # measured, near the truth
    plain = build_features(dollars, window_start).set_index("customer_id")
    got = start.set_index("customer_id")
    rupee = got.index.isin(in_rupees) & (got["mrr"] > 0)
    assert rupee.sum() > 20
    scale = RUPEES_PER_DOLLAR / levels.levels["INR"]
    assert np.allclose(got.loc[rupee, "mrr"], plain.loc[got.index[rupee], "mrr"] * scale)
    # the model's own levels are kept as they are: a currency it prices is not re-measured
    given = CurrencyLevels("USD", {"USD": 1.0, "INR": 50.0})
    assert levels_of(window_start_features(mixed, window_start, given)).levels["INR"] == 50.0


def test_earlier_churners_in_a_currency_nobody_prices_are_left_unplaced(demo_company, tmp_path):
    """Customers who all left before the window, in a currency of their own: no level prices it
    (nobody pays in it at the window's start or after), so they are neither placed nor counted
    in what they paid, rather than read in rupees as if they were dollars."""
    from datetime import timedelta

    from models.business import ChurnedCustomers
    from models.families.kmeans import KMeansFamily
    from models.segmenter import CustomerSegmenter
    from pipelines.feature_pipeline import build_features
    from pipelines.train import fit_model, place_earlier_churn, window_start_features

    billing = demo_company.billing.to_pandas()
    usage = demo_company.usage.to_pandas()
    window_start = AS_OF - timedelta(days=90)
    latest = _latest_subscription_events(billing)
    left = latest[
        (latest["type"] == "subscription_canceled") & (latest["occurred_at"] < window_start)
    ]["customer_id"]
    assert len(left) > 5
    mine = billing["customer_id"].isin(set(left))
    billing.loc[mine, "currency"] = "INR"
    for column in ("amount", "mrr"):
        billing.loc[mine, column] = billing.loc[mine, column] * RUPEES_PER_DOLLAR
    layout = _store(billing, usage, tmp_path / "rupees")
    features = build_features(layout, AS_OF)
    segmenter = CustomerSegmenter(
        n_resamples=2, candidates=[KMeansFamily().candidate(3)], random_state=0
    )
    model = fit_model(features, segmenter).model
    start = window_start_features(layout, window_start, model.currency)
    assert "INR" not in levels_of(start).levels  # nobody paying in it then: no level
    count = int((features["is_canceled"] == 1).sum())
    model.churned = ChurnedCustomers(count, 0.0, {}, count)
    place_earlier_churn(model, layout, AS_OF, window_start, levels_of(start))
    assert model.churned.before_window == len(left)
    assert model.churned.before_window_lost_mrr == 0.0  # not 40 times their dollars
    assert model.churned.last_segment == {}
    assert model.churned.last_segment_unknown == count
    # the same customers paying in dollars are placed and counted
    dollars = _store(
        demo_company.billing.to_pandas(), demo_company.usage.to_pandas(), tmp_path / "dollars"
    )
    model.churned = ChurnedCustomers(count, 0.0, {}, count)
    place_earlier_churn(model, dollars, AS_OF, window_start, None)
    assert model.churned.before_window_lost_mrr > 0
    assert sum(model.churned.last_segment.values()) == len(left)
    assert model.churned.last_segment_unknown == count - len(left)


def test_a_new_reporting_currency_keeps_the_levels_within_the_bounds_a_set_has():
    """EUR at 1e-6 and JPY at 1e9 per USD are each allowed; against JPY, EUR would be 1e-15,
    which `currency set` refuses when given directly: switching the reporting currency took it."""
    kept = given_levels("USD", {"EUR": 1e-6, "JPY": 1e9})
    with pytest.raises(SegmentsError, match="against JPY, the level of EUR would be 1e-15"):
        reanchored(kept, "JPY")
    assert reanchored(given_levels("USD", {"EUR": 0.9, "JPY": 150.0}), "EUR").levels["USD"] == (
        pytest.approx(1 / 0.9)
    )


def test_the_window_start_leaves_out_a_currency_no_level_prices(demo_company, tmp_path):
    """Two customers paying yen, too few for a level at either end of the window: their 15,000
    JPY a month was counted as 15,000 USD in the backtest's lost MRR and MRR kept (an analyst's
    audit). They are left out of the window's start, as ``place_earlier_churn`` leaves out
    earlier churners in such a currency; everyone else is there, in dollars."""
    from datetime import timedelta

    from feature_store.currency import CurrencyLevels
    from pipelines.feature_pipeline import build_features
    from pipelines.train import window_start_features

    billing = demo_company.billing.to_pandas()
    usage = demo_company.usage.to_pandas()
    window_start = AS_OF - timedelta(days=90)
    latest = _latest_subscription_events(billing)
    left_in_window = latest[
        (latest["type"] == "subscription_canceled") & (latest["occurred_at"] >= window_start)
    ]["customer_id"]
    dollars_then = build_features(_store(billing, usage, tmp_path / "dollars"), window_start)
    paying_then = set(dollars_then.loc[dollars_then["mrr"] > 0, "customer_id"])
    in_yen = sorted(set(left_in_window) & paying_then)[:2]
    assert len(in_yen) == 2
    mine = billing["customer_id"].isin(in_yen)
    billing.loc[mine, "currency"] = "JPY"
    for column in ("amount", "mrr"):
        billing.loc[mine, column] = billing.loc[mine, column] * 150.0
    layout = _store(billing, usage, tmp_path / "yen")
    model_levels = CurrencyLevels("USD", {"USD": 1.0}, unpriced=("JPY",))
    start = window_start_features(layout, window_start, model_levels)
    assert "JPY" not in levels_of(start).levels  # two paying customers: too few for a level
    assert not set(in_yen) & set(start["customer_id"])
    others = dollars_then[~dollars_then["customer_id"].isin(in_yen)]
    assert set(start["customer_id"]) == set(others["customer_id"])
    got = start.set_index("customer_id").loc[others["customer_id"], "mrr"].to_numpy()
    assert np.allclose(got, others["mrr"].to_numpy())
