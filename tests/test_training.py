"""Training through the real CLI: MLflow run, registry, aliases, assignment, integrity checks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from cli_support import segments_in_process


def run(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    result = segments_in_process(args, env)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def assign_by_events(files: dict[str, Path], as_of: str, out: Path) -> list[str]:
    """`segments assign` from the company's raw events as of ``as_of``."""
    return [
        *("assign", "--billing", str(files["billing"]), "--usage", str(files["usage"])),
        *("--as-of", as_of, "--out", str(out)),
    ]


@pytest.fixture(scope="module")
def home(tmp_path_factory, demo_files) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("train-home")
    env = {**os.environ, "SEGMENTS_HOME": str(folder), "COLUMNS": "200"}
    env.pop("MLFLOW_TRACKING_URI", None)
    run(
        ["ingest", "--billing", str(demo_files["billing"]), "--usage", str(demo_files["usage"])],
        env,
    )
    return env


@pytest.fixture(scope="module")
def first_training(home) -> dict:
    return json.loads(run(["train", "--as-of", "2026-06-30", "--json"], home).stdout)


def test_train_records_a_run_and_registers_the_first_version_as_champion(first_training, home):
    result = first_training
    assert {"run_id", "model_version", "n_segments", "metrics"} <= set(result)
    assert result["model_version"] == "1"
    assert result["promoted"] is True
    assert 2 <= result["n_segments"] <= 12
    # a first champion says which of a challenger's structure gates it would fail (none here)
    from models.gates import structure_shortfalls

    assert result["structure_shortfalls"] == structure_shortfalls(result["metrics"]) == []
    assert result["left_out"] == {}  # the demo company has usage and paid invoices
    for metric in (
        "silhouette",
        "stability",
        "dbcv",
        "outlier_share",
        "n_segments",
        "surrogate_fidelity",
        "finish_moved_share",
        "finish_discarded",
    ):
        assert metric in result["metrics"]
    assert 0.0 <= result["metrics"]["finish_moved_share"] < 0.5
    names = [segment["name"] for segment in result["segments"]]
    assert len(set(names)) == len(names)

    from mlflow import MlflowClient

    uri = f"sqlite:///{Path(home['SEGMENTS_HOME']) / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    run_data = client.get_run(result["run_id"]).data
    assert run_data.params["chosen_candidate"]
    # the seed under the name the CLI and the MLproject give it, beside the estimator's own
    assert run_data.params["seed"] == run_data.params["random_state"]
    # a setting left to the segmenter says so, not "None"
    assert run_data.params["n_segments"] == "auto"
    assert "None" not in run_data.params.values()
    # named for what it is, not MLflow's random name
    assert (
        client.get_run(result["run_id"]).info.run_name == "train as of 2026-06-30 (end of day, UTC)"
    )
    # the instant under the one name every run has, however it was started
    assert run_data.params["as_of.resolved"] == run_data.params["as_of"] == "2026-07-01T00:00:00"
    found = client.search_runs(
        [client.get_run(result["run_id"]).info.experiment_id],
        "params.`as_of.resolved` = '2026-07-01T00:00:00'",
    )
    assert result["run_id"] in {r.info.run_id for r in found}
    # Every candidate considered is scored; k-means candidates also by prediction strength.
    assert any(
        key.startswith("candidate.kmeans") and key.endswith(".silhouette")
        for key in run_data.metrics
    )
    assert any(key.endswith(".prediction_strength") for key in run_data.metrics)
    # every column's weight in the distances and its reliability a month apart: tenure is a
    # lasting trait, the MRR change over 90 days much less so, and it weighs less for it
    metrics = run_data.metrics
    assert metrics["reliability.tenure_days"] > 0.95
    assert metrics["reliability.mrr_growth_90d"] < 0.9
    assert metrics["weight.mrr_growth_90d"] < metrics["weight.tenure_days"]
    artifacts = {a.path for a in client.list_artifacts(result["run_id"])}
    assert {
        "profiles.json",
        "candidates.csv",
        "segment_business.png",
        "segment_drivers.json",
        "report.html",
    } <= artifacts
    version = client.get_model_version_by_alias("customer-segments", "champion")
    assert str(version.version) == "1"
    assert any(tag.startswith("sha256.") for tag in version.tags)
    # provenance: which code, who, and which data made the version
    run = client.get_run(result["run_id"])
    assert run.data.tags["mlflow.user"]
    assert run.data.tags["segments.code_version"]
    if (Path(__file__).resolve().parents[1] / ".git").exists():  # run from a checkout
        assert len(run.data.tags.get("mlflow.source.git.commit", "")) == 40
    [training] = run.inputs.dataset_inputs
    assert training.dataset.name == "features as of 2026-07-01T00:00:00Z"
    assert [t.value for t in training.tags] == ["training"]
    assert version.description.startswith(f"{result['n_segments']} segments, features as of ")
    assert all(segment["name"] in version.description for segment in result["segments"])


def test_assign_uses_the_champion_and_never_writes_minus_one(first_training, home, tmp_path):
    features = tmp_path / "features.parquet"
    run(["features", "--as-of", "2026-06-30", "--out", str(features)], home)
    out = tmp_path / "assignments.csv"
    run(["assign", "--in", str(features), "--out", str(out)], home)
    table = pd.read_csv(out)
    assert list(table.columns[:5]) == [
        "customer_id",
        "segment_id",
        "segment_name",
        "is_outlier",
        "confidence",
    ]
    # in no segment (segment_id is the nearest); then where each was when last active
    assert list(table.columns[-2:]) == ["is_canceled", "last_active_segment_id"]
    vectors = pd.read_parquet(features)
    assert len(table) == len(vectors)
    cancelled = set(vectors.loc[vectors["is_canceled"] == 1, "customer_id"].astype(str))
    assert cancelled
    assert set(table.loc[table["is_canceled"], "customer_id"].astype(str)) == cancelled
    known = table["last_active_segment_id"].notna()
    assert known.any()
    assert table.loc[known, "is_canceled"].all()  # a live customer is in its segment
    assert table["segment_id"].between(0, first_training["n_segments"] - 1).all()
    assert table["confidence"].between(0, 1).all()
    # a folder of Parquet parts (as Spark writes a table) is read as one table
    parts = tmp_path / "parts.parquet"
    parts.mkdir()
    half = len(vectors) // 2
    vectors.iloc[:half].to_parquet(parts / "part-00000.parquet", index=False)
    vectors.iloc[half:].to_parquet(parts / "part-00001.parquet", index=False)
    (parts / "_SUCCESS").write_text("")
    again = tmp_path / "again.csv"
    run(["assign", "--in", str(parts), "--out", str(again)], home)
    assert sorted(pd.read_csv(again)["customer_id"]) == sorted(table["customer_id"])
    # the registered MLflow model takes the table `segments features` writes, as typed (its
    # signature declared every column a float and refused the whole-number ones)
    import mlflow

    uri = f"sqlite:///{Path(home['SEGMENTS_HOME']) / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, uri)
    champion = client.get_model_version_by_alias("customer-segments", "champion")
    where = client.get_model_version_download_uri("customer-segments", champion.version)
    served = mlflow.pyfunc.load_model(where)
    inputs = served.metadata.get_input_schema().input_names()
    assert any(vectors[name].dtype.kind == "i" for name in inputs)
    predicted = served.predict(vectors[inputs].head(50))
    assert list(predicted["segment_id"]) == list(table["segment_id"].head(50))


def test_assign_refuses_in_one_line_when_there_is_nobody_to_assign(
    first_training, home, demo_files, tmp_path
):
    """Events that all lie after the as-of, or a feature table with no rows: a refusal that says
    so, not a traceback from inside the model."""
    early = run(assign_by_events(demo_files, "1990-01-01", tmp_path / "a.csv"), home, False)
    assert early.returncode == 2, early.stderr
    assert early.stderr.strip() == (
        "error: no customer has an accepted event by 1990-01-01 (end of day, UTC): "
        "nothing to assign"
    )
    empty = tmp_path / "empty.parquet"
    features = tmp_path / "features.parquet"
    run(["features", "--as-of", "2026-06-30", "--out", str(features)], home)
    pd.read_parquet(features).iloc[:0].to_parquet(empty)
    nobody = run(["assign", "--in", str(empty), "--out", str(tmp_path / "b.csv")], home, False)
    assert nobody.returncode == 2
    assert nobody.stderr.strip() == f"error: {empty}: the feature table has no rows"
    # what the model cannot read is named, not a traceback from inside it or a row per copy
    vectors = pd.read_parquet(features)
    first = vectors["customer_id"].iloc[0]
    broken = {
        "infinite feature values for customer(s) " + first: vectors.assign(
            mrr=[float("inf"), *vectors["mrr"].iloc[1:]]
        ),
        f"customer {first!r} has 2 rows; one per customer": pd.concat([vectors, vectors[:1]]),
        "row 1 has no customer_id": vectors.assign(customer_id=[None, *vectors["customer_id"][1:]]),
    }
    for words, table in broken.items():
        path = tmp_path / "broken.parquet"
        table.to_parquet(path)
        refused = run(["assign", "--in", str(path), "--out", str(tmp_path / "b.csv")], home, False)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.strip().endswith(words), refused.stderr
    assert not (tmp_path / "a.csv").exists()
    assert not (tmp_path / "b.csv").exists()


def test_assign_explain_writes_one_assignment_object_per_customer(first_training, home, tmp_path):
    features = tmp_path / "features.parquet"
    run(["features", "--as-of", "2026-06-30", "--out", str(features)], home)
    plain, explained = tmp_path / "plain.csv", tmp_path / "explained.jsonl"
    run(["assign", "--in", str(features), "--out", str(plain)], home)
    run(
        ["assign", "--in", str(features), "--out", str(explained), "--explain", "--top-k", "3"],
        home,
    )
    objects = [json.loads(line) for line in explained.read_text().splitlines()]
    table = pd.read_csv(plain, dtype={"customer_id": str})
    assert [o["customer_id"] for o in objects] == table["customer_id"].tolist()
    assert [o["segment"]["id"] for o in objects] == table["segment_id"].tolist()
    version = first_training["model_version"]
    for item in objects:
        assert item["model"] == {"name": "customer-segments", "version": version}
        assert len(item["explanation"]["contributions"]) == 3
        assert set(item["features"]) >= {"mrr", "api_share_30d", "usage_trend"}
        # The table from `segments features` says its as-of; each assignment carries it.
        assert item["features_as_of"] == "2026-07-01T00:00:00Z"
        # the API's default; a cancelled customer, in no segment, is explained by its fit with
        # the nearest one
        expected = "tree_shap_surrogate" if item["is_canceled"] else "tree_shap_contrast"
        assert item["explanation"]["method"] == expected
    own = tmp_path / "own.jsonl"
    run(["assign", "--in", str(features), "--out", str(own), "--explain", "--explain-view",
         "segment", "--top-k", "3"], home)  # fmt: skip
    methods = {json.loads(line)["explanation"]["method"] for line in own.read_text().splitlines()}
    assert methods == {"tree_shap_surrogate"}
    refused = run(["assign", "--in", str(features), "--out", str(plain), "--explain"], home, False)
    assert refused.returncode == 2
    assert ".jsonl" in refused.stderr
    wrong = ["--explain", "--explain-view", "both"]
    refused = run(["assign", "--in", str(features), "--out", str(own), *wrong], home, False)
    assert refused.returncode == 2
    assert "both" in refused.stderr


def test_assign_from_events_matches_assign_from_features(
    first_training, home, demo_files, tmp_path
):
    features = tmp_path / "features.parquet"
    run(["features", "--as-of", "2026-06-30", "--out", str(features)], home)
    by_features, by_events = tmp_path / "a.csv", tmp_path / "b.csv"
    run(["assign", "--in", str(features), "--out", str(by_features)], home)
    run(assign_by_events(demo_files, "2026-06-30", by_events), home)
    pd.testing.assert_frame_equal(pd.read_csv(by_features), pd.read_csv(by_events))
    # a row that breaks the contract is not used, and said so (it was dropped without a word)
    billing = pd.read_parquet(demo_files["billing"])
    bad = billing[billing["type"] == "invoice_paid"].head(1).assign(event_id="bad-1", amount=-5.0)
    with_bad = tmp_path / "billing.parquet"
    pd.concat([billing, bad]).to_parquet(with_bad)
    noted = run(
        assign_by_events({**demo_files, "billing": with_bad}, "2026-06-30", by_events), home
    )
    assert f"note: {with_bad}: 1 of {len(billing) + 1:,} rows break the events contract" in (
        " ".join(noted.stderr.split())
    )
    assert "(non_positive_amount 1)" in noted.stderr
    pd.testing.assert_frame_equal(pd.read_csv(by_features), pd.read_csv(by_events))
    # Both carry the as-of of the features they used (the day after 2026-06-30, 00:00 UTC) ...
    assert set(pd.read_csv(by_events)["features_as_of"]) == {"2026-07-01T00:00:00Z"}
    # The snapshot `segments features` keeps says it too: a new user assigned from the snapshot
    # path the output prints, and every features_as_of was empty.
    snapshot = Path(home["SEGMENTS_HOME"]) / "offline/snapshots/as_of=2026-07-01T000000"
    from_snapshot = tmp_path / "s.csv"
    run(["assign", "--in", str(snapshot / "features.parquet"), "--out", str(from_snapshot)], home)
    assert set(pd.read_csv(from_snapshot)["features_as_of"]) == {"2026-07-01T00:00:00Z"}
    # ... and a table with no as-of of its own takes the one stated with --as-of.
    bare, dated = tmp_path / "bare.parquet", tmp_path / "dated.csv"
    pd.read_parquet(features).drop(columns="features_as_of").to_parquet(bare)
    run(["assign", "--in", str(bare), "--out", str(dated), "--as-of", "2026-06-30"], home)
    assert set(pd.read_csv(dated)["features_as_of"]) == {"2026-07-01T00:00:00Z"}
    # A table that says its date keeps it: another --as-of is refused, the same one is taken,
    # however the table writes that instant (a Parquet timestamp, "+00:00")
    run(["assign", "--in", str(features), "--out", str(dated), "--as-of", "2026-06-30"], home)
    typed = tmp_path / "typed.parquet"
    table = pd.read_parquet(features)
    table.assign(features_as_of=pd.to_datetime(table["features_as_of"], utc=True)).to_parquet(typed)
    run(["assign", "--in", str(typed), "--out", str(dated), "--as-of", "2026-06-30"], home)
    other = run(
        ["assign", "--in", str(features), "--out", str(dated), "--as-of", "1971-01-01"], home, False
    )
    assert other.returncode == 2
    assert "its features say they are as of 2026-07-01T00:00:00Z" in " ".join(other.stderr.split())
    # Without --as-of the table's own stamp is written as the contract writes it, and one that
    # is no instant is refused (it was copied into every assignment)
    offset, garbage = tmp_path / "offset.csv", tmp_path / "garbage.csv"
    table.assign(features_as_of="2026-07-01T02:00:00+02:00").to_csv(offset, index=False)
    run(["assign", "--in", str(offset), "--out", str(dated)], home)
    assert set(pd.read_csv(dated)["features_as_of"]) == {"2026-07-01T00:00:00Z"}
    table.assign(features_as_of="yesterday").to_csv(garbage, index=False)
    refused = run(["assign", "--in", str(garbage), "--out", str(dated)], home, False)
    assert refused.returncode == 2
    assert "row 1: features_as_of 'yesterday' is not an ISO 8601 date or instant" in (
        " ".join(refused.stderr.split())
    )


def test_a_tables_as_of_values_are_written_as_the_contract_writes_them_or_refused():
    """Missing in every form (pd.NA from a pandas string column, NaN, None, "") says nothing;
    the same instant in any form is one stamp; a timestamp is held to the contract's years as
    text is; a list is no instant."""
    from datetime import datetime

    from feature_store.errors import InputFileError
    from pipelines.assign import as_of_stamps

    said = as_of_stamps(
        [pd.NA, float("nan"), None, "", "2026-07-01T02:00:00+02:00", pd.Timestamp("2026-07-01")],
        "t.parquet",
    )
    assert said == [None, None, None, None, "2026-07-01T00:00:00Z", "2026-07-01T00:00:00Z"]
    # a date means the end of that day, as `--as-of 2026-06-30` does (it meant its start)
    assert as_of_stamps(["2026-06-30"], "t.parquet") == ["2026-07-01T00:00:00Z"]
    for bad, message in (
        (datetime(1, 1, 1), "outside the years 1970 to 9999"),
        (["2026-07-01"], "is not an instant"),
        ("yesterday", "is not an ISO 8601"),
    ):
        with pytest.raises(InputFileError, match=f"t.parquet: row 2: features_as_of .*{message}"):
            as_of_stamps([None, bad], "t.parquet")


def test_second_training_is_a_challenger_and_promote_moves_the_champion(first_training, home):
    second = json.loads(
        run(["train", "--as-of", "2026-06-30", "--seed", "1", "--json"], home).stdout
    )
    assert second["model_version"] == "2"
    # judged against the champion: `gate_failures` are the comparison's (it was [] for every
    # challenger, however many gates failed)
    assert second["gate_failures"] == second["failed_gates"]
    # one figure under the gate's name, the one the gate judged (0.485 beside "same_id_share
    # 0.488 (needs >= 0.5)": a CRM integrator's review); the lineage's keeps a name of its own
    compared = json.loads(run(["compare", "2", "--json", "--no-log"], home, check=False).stdout)
    assert second["same_id_share"] == compared["same_id_share"]
    assert 0 <= second["lineage_same_id_share"] <= 1
    run(["promote", "1"], home)
    result = run(["promote", "99"], home, check=False)
    assert result.returncode == 2
    assert "no version 99 of model customer-segments" in result.stderr


def test_train_can_be_told_the_number_of_segments(first_training, home):
    # 14, above the default cap of 12: the cap rises with it, so the version is not refused by
    # the promotion gate on the cap (the comparison with the champion is in "failed_gates").
    answer = run(["train", "--as-of", "2026-06-30", "--segments", "14", "--json"], home)
    told = json.loads(answer.stdout)
    # said, not done silently (`--max-segments 3 --segments 5` recorded a cap of 5 unsaid)
    assert "note: --segments 14 is above --max-segments 12: the cap rises to 14" in answer.stderr
    assert told["n_segments"] == 14
    assert len(told["segments"]) == 14
    assert not any("n_segments" in gate for gate in told["failed_gates"] or [])

    from mlflow import MlflowClient

    uri = f"sqlite:///{Path(home['SEGMENTS_HOME']) / 'mlflow.db'}"
    params = MlflowClient(uri, uri).get_run(told["run_id"]).data.params
    assert params["n_segments"] == "14"
    assert params["max_segments"] == "14"
    assert params["chosen_candidate"] in {"kmeans(k=14)", "gmm(k=14)"}
    refused = run(["train", "--as-of", "2026-06-30", "--segments", "31"], home, check=False)
    assert refused.returncode == 2
    assert "--segments" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_too_many_segments_for_the_customers_is_one_clear_refusal():
    from feature_store.errors import SegmentsError
    from models.segmenter import CustomerSegmenter
    from pipelines.train import fit_model

    features = pd.DataFrame(
        {"customer_id": [f"c{i}" for i in range(15)], "mrr": range(15), "seats": range(15)}
    )
    with pytest.raises(SegmentsError, match="8 segments need at least 16 customers, got 15"):
        fit_model(features, CustomerSegmenter(n_segments=8), feature_names=["mrr", "seats"])


def test_a_tampered_model_file_is_refused(first_training, home, tmp_path):
    # Every stored copy is tampered with: other tests register more versions, and which copy
    # belongs to version 1 is MLflow's business.
    artifacts = Path(home["SEGMENTS_HOME"]) / "mlartifacts"
    stored = [p for p in artifacts.rglob("segmenter.joblib") if "model_dir" in p.parts]
    assert stored
    originals = {path: path.read_bytes() for path in stored}
    try:
        for path, content in originals.items():
            path.write_bytes(content + b"tampered")
        features = tmp_path / "f.parquet"
        run(["features", "--as-of", "2026-06-30", "--out", str(features)], home)
        result = run(
            [
                "assign",
                "--in",
                str(features),
                "--out",
                str(tmp_path / "x.csv"),
                "--model-version",
                "1",
            ],
            home,
            check=False,
        )
        assert result.returncode == 2
        assert "sha256" in result.stderr
        assert "Traceback" not in result.stderr
        # the message names the version (it named neither the version nor a folder that lasts)
        assert "version 1 of customer-segments: model file segmenter.joblib" in result.stderr
    finally:
        for path, content in originals.items():
            path.write_bytes(content)


def test_a_version_whose_files_were_deleted_is_one_line_naming_it(first_training, home, tmp_path):
    """An artifact folder moved away: MLflow's "No such artifact: 'model_dir'" reached the user
    as a traceback and exit 1 (an ML engineer's walkthrough)."""
    import shutil

    from models.registry import ModelRegistry, RegistryConfig

    registry = ModelRegistry(RegistryConfig.for_home(Path(home["SEGMENTS_HOME"])))
    source = registry.client.get_model_version_download_uri(registry.model_name, "1")
    folder = Path(source.removeprefix("file://"))
    assert folder.is_dir(), source
    moved = tmp_path / "moved"
    shutil.move(folder, moved)
    try:
        result = run(["drift", "--model-version", "1"], home, check=False)
    finally:
        shutil.move(moved, folder)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: version 1's model files cannot be read from "), line


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_mlproject_entry_point_runs_under_mlflow_run(first_training, home, tmp_path):
    """`mlflow run . -e train -P as_of=2026-06-30`, as the README says: MLflow logs the
    parameter as typed, and the training's own value for it (the end of that day) failed the run
    with "Changing param values is not allowed" (an ML engineer's walkthrough). Into a store of
    the test's own, whose experiment keeps its artifacts under the test's folder."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    experiment = client.create_experiment(
        "customer-segments", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    env = {**home, "MLFLOW_TRACKING_URI": uri}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    repo = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "mlflow", "run", str(repo), "-e", "train"]
    command += ["-P", "as_of=2026-06-30", "--env-manager", "local"]
    command += ["--experiment-name", "customer-segments"]
    launched = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    [logged] = client.search_runs([experiment])
    assert logged.info.status == "FINISHED"
    # the package's version, as on a run `segments train` starts itself
    assert logged.data.tags["segments.code_version"]
    params = logged.data.params
    assert (params["as_of"], params["as_of.resolved"]) == ("2026-06-30", "2026-07-01T00:00:00")
    assert "seed.resolved" not in params  # the entry point's seed and the run's are one value
    [version] = client.search_model_versions("name = 'customer-segments'")
    assert version.run_id == logged.info.run_id
    # what reads the params back (a comparison's cap, its selection) reads them as training did
    from models.registry import ModelRegistry, RegistryConfig

    registry = ModelRegistry(RegistryConfig.for_home(tmp_path, uri))
    assert registry.version_params(version.version)["as_of"] == "2026-07-01T00:00:00"


def test_training_against_a_real_mlflow_server(tmp_path, demo_files):
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--workers",
            "1",
        ],
        # Without this, the server starts its job consumers too: six processes on a small machine.
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail("mlflow server did not start")
                time.sleep(1)
        env = {**os.environ, "SEGMENTS_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": url}
        run(
            [
                "ingest",
                "--billing",
                str(demo_files["billing"]),
                "--usage",
                str(demo_files["usage"]),
            ],
            env,
        )
        result = json.loads(run(["train", "--as-of", "2026-06-30", "--json"], env).stdout)
        assert result["model_version"] == "1"
        assert not (tmp_path / "home" / "mlflow.db").exists()  # nothing went to the embedded store
        assert any((tmp_path / "server-artifacts").rglob("segmenter.joblib"))
        features = tmp_path / "f.parquet"
        run(["features", "--as-of", "2026-06-30", "--out", str(features)], env)
        run(["assign", "--in", str(features), "--out", str(tmp_path / "a.csv")], env)
        assert len(pd.read_csv(tmp_path / "a.csv")) == len(pd.read_parquet(features))
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_report_is_one_self_contained_file_in_plain_words(first_training, home, tmp_path):
    features = tmp_path / "features.parquet"
    run(["features", "--as-of", "2026-06-30", "--out", str(features)], home)
    out = tmp_path / "report.html"
    run(["report", "--out", str(out), "--features", str(features)], home)
    html = out.read_text()
    assert "<script src=" not in html  # plotly.js and the figures are inlined
    assert "http://" not in html.split("<script")[0]  # no stylesheet or font from elsewhere
    for segment in first_training["segments"]:
        assert segment["name"] in html
    for jargon in ("log-odds", "standardised mean", "principal component"):
        assert jargon not in html
    assert "Map of customers" in html
    # cancelled customers are in no segment, and not on the map of segments either
    segmented = sum(segment["size"] for segment in first_training["segments"])
    assert f"The {segmented:,} active customers of the feature table it was given." in html
    # without a feature table, the map of the training sample the model carries (a product
    # manager's review: a report had no map unless given one)
    sampled = tmp_path / "sampled.html"
    run(["report", "--out", str(sampled)], home)
    html = sampled.read_text()
    assert "Map of customers" in html
    assert f"All {segmented:,} customers it segmented, as of the date of its features." in html
    assert "a customer it was trained on" in html
    refused = run(["report", "--out", str(tmp_path / "report.pdf")], home, check=False)
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1
    gaps = tmp_path / "gaps.parquet"
    pd.read_parquet(features).assign(mrr=float("nan")).to_parquet(gaps)
    refused = run(["report", "--out", str(out), "--features", str(gaps)], home, check=False)
    assert refused.returncode == 2  # was a traceback from inside the model
    assert "missing feature values for customer(s)" in refused.stderr


KILLED_MID_RUN = """
import os, signal, sys
from pathlib import Path
from models.registry import ModelRegistry, RegistryConfig

registry = ModelRegistry(RegistryConfig.for_home(Path(sys.argv[1])))
with registry.run() as run_id:
    print(run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the OOM killer's way: no handler runs
"""


def test_a_run_whose_process_was_killed_is_ended_by_the_next_run(tmp_path):
    """A retrain killed with SIGKILL cannot end its own run, which MLflow listed RUNNING for
    ever; the next run on the machine ends it KILLED and says why. A run whose process lives on
    is left alone."""
    from mlflow.entities import RunStatus

    from models.registry import ENDED_BY_TAG, ModelRegistry, RegistryConfig

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_RUN, str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    abandoned = killed.stdout.split()[0]
    registry = ModelRegistry(RegistryConfig.for_home(tmp_path))
    assert registry.client.get_run(abandoned).info.status == "RUNNING"
    # this process is alive: its run is not ended under it by the next one
    with registry.run() as current, registry.run() as nested:
        assert registry.client.get_run(current).info.status == "RUNNING"
    ended = registry.client.get_run(abandoned)
    assert ended.info.status == RunStatus.to_string(RunStatus.KILLED)
    assert ended.data.tags[ENDED_BY_TAG] == "its process was found gone"
    assert registry.client.get_run(nested).info.status == "FINISHED"


def test_the_table_a_month_before_judges_usage_only_where_usage_covers_that_month(
    tmp_path, demo_files
):
    """Training judges each column's reliability on the features a month before. Usage that
    begins a week before that date (an export of the last weeks beside years of invoices) would be
    judged on undercounts and fallbacks, and weigh by the export's start: its columns are left
    out of that table, and billing's are kept. An as-of with a UTC offset is read as the store's
    times are (it crashed comparing naive and aware times)."""
    from datetime import UTC, datetime, timedelta

    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout
    from feature_store.registry import find
    from pipelines.train import earlier_features

    as_of = datetime(2026, 7, 1, tzinfo=UTC)
    usage = pd.read_parquet(demo_files["usage"])
    late = usage[pd.to_datetime(usage["occurred_at"], utc=True) >= as_of - timedelta(days=37)]
    late_file = tmp_path / "late_usage.parquet"
    late.to_parquet(late_file)

    def table(usage_file: Path) -> pd.DataFrame:
        layout = StoreLayout(tmp_path / usage_file.stem)
        ingest_files(layout, {"billing": demo_files["billing"], "usage": usage_file})
        found = earlier_features(layout, as_of, None)
        assert found is not None
        return found

    def usage_columns(frame: pd.DataFrame) -> set[str]:
        return {c for c in frame.columns if (d := find(c)) and d.family == "behavioural"}

    whole, cut = table(demo_files["usage"]), table(late_file)
    assert "active_days_30d" in usage_columns(whole)
    assert usage_columns(cut) == set()
    assert {"mrr", "tenure_days", "mrr_growth_90d"} <= set(cut.columns)
