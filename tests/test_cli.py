"""The real ``segments`` command in a subprocess: output contracts and clean failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SEGMENTS = [sys.executable, "-m", "pipelines"]


def run(args: list[str], home: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEGMENTS_HOME": str(home), "COLUMNS": "200"}
    result = subprocess.run(SEGMENTS + args, capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli-demo")
    run(
        ["demo-data", "--out", str(out), "--customers", "200", "--months", "6", "--seed", "3"],
        tmp_path_factory.mktemp("unused"),
    )
    return out


def test_demo_data_writes_events_and_truth(demo_dir):
    truth = pd.read_csv(demo_dir / "truth.csv")
    assert len(truth) == 200
    assert truth["persona"].nunique() >= 5
    assert (demo_dir / "billing_events.parquet").exists()


def test_ingest_json_then_features(demo_dir, tmp_path):
    result = run(
        [
            "ingest",
            "--billing",
            str(demo_dir / "billing_events.parquet"),
            "--usage",
            str(demo_dir / "usage_events.parquet"),
            "--json",
        ],
        tmp_path,
    )
    report = json.loads(result.stdout)
    assert set(report) == {"billing", "usage"}
    for stream in report.values():
        assert {"received", "accepted", "duplicates", "quarantined", "reasons"} <= set(stream)
        assert (
            stream["received"] == stream["accepted"] + stream["duplicates"] + stream["quarantined"]
        )
    out = tmp_path / "features.csv"
    summary = json.loads(
        run(["features", "--as-of", "2026-06-30", "--out", str(out), "--json"], tmp_path).stdout
    )
    table = pd.read_csv(out)
    assert summary["customers"] == len(table) == 200
    assert {"customer_id", "mrr", "api_share_30d", "usage_trend"} <= set(table.columns)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["features", "--as-of", "last tuesday", "--out", "x.parquet"], "neither a date"),
        (["features", "--as-of", "2026-01-01", "--out", "x.parquet"], "no events ingested"),
        (["ingest", "--billing", "missing.csv"], "missing.csv: no such file"),
        (["ingest"], "at least one of --billing"),
        (["demo-data", "--out", "d", "--end", "someday"], "is not a date"),
        (["quarantine", "show", "nope"], "no quarantined row"),
    ],
)
def test_bad_input_fails_with_a_message_and_no_traceback(tmp_path, args, message):
    result = run(args, tmp_path, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_quarantine_list_and_export_round_trip(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "event_id,customer_id,occurred_at,event\nu1,c1,2026-01-01,login\nu2,c1,soon,login\n"
    )
    run(["ingest", "--usage", str(bad)], tmp_path)
    listing = json.loads(run(["quarantine", "list", "--json"], tmp_path).stdout)
    assert listing["summary"] == [
        {"stream": "usage", "reason": "invalid_occurred_at", "open": 1, "resolved": 0}
    ]
    exported = tmp_path / "fix.csv"
    run(["quarantine", "export", "--stream", "usage", "--out", str(exported)], tmp_path)
    fixed = pd.read_csv(exported).assign(occurred_at="2026-01-02")
    fixed.to_csv(exported, index=False)
    report = json.loads(run(["ingest", "--usage", str(exported), "--json"], tmp_path).stdout)
    assert report["usage"]["accepted"] == 1
    assert report["usage"]["unknown_columns"] == []
    listing = json.loads(run(["quarantine", "list", "--json"], tmp_path).stdout)
    assert listing["rows"] == []
