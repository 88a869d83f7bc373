"""`segments features --engine spark` and `segments assign --engine spark`, as a user runs them,
on a data home with a registered champion: they agree with what the DuckDB commands wrote.

The commands run in this process, where the test session's Spark is active: with no ``--master``
they run on that session and leave it running (as in a notebook or a Databricks job), which also
spares the suite a JVM start per command.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from service_support import AS_OF, trained_home
from test_spark_parity import assert_same_features

from pipelines.cli import main


def segments(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    captured = capsys.readouterr()
    assert stop.value.code == 0, captured.err
    return captured.out


def test_the_spark_commands_write_what_the_duckdb_commands_write(
    spark, shared_root, demo_files, tmp_path, monkeypatch, capsys
):
    home = trained_home(shared_root, demo_files)  # features by DuckDB, a champion registered
    monkeypatch.setenv("SEGMENTS_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    written = tmp_path / "features-spark.parquet"
    args = ["features", "--engine", "spark", "--as-of", AS_OF, "--out", str(written), "--json"]
    summary = json.loads(segments(capsys, *args))
    duck = pd.read_parquet(home / "features.parquet").sort_values("customer_id", ignore_index=True)
    assert summary["engine"] == "spark"
    assert summary["customers"] == len(duck)
    on_spark = pd.read_parquet(written).sort_values("customer_id", ignore_index=True)
    assert_same_features(duck, on_spark)

    local, remote = tmp_path / "local.parquet", tmp_path / "spark.parquet"
    segments(capsys, "assign", "--in", str(home / "features.parquet"), "--out", str(local))
    segments(capsys, "assign", "--engine", "spark", "--in", str(written), "--out", str(remote))
    ours = pd.read_parquet(local).sort_values("customer_id", ignore_index=True)
    theirs = pd.read_parquet(remote).sort_values("customer_id", ignore_index=True)
    assert len(ours) == len(duck)
    assert (ours["segment_id"] >= 0).all()
    pd.testing.assert_frame_equal(theirs, ours, check_dtype=False, rtol=1e-9)
    assert not spark.sparkContext._jsc.sc().isStopped()  # the caller's session is still running
