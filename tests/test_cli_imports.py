"""`segments import stripe` and `segments ingest --mapping` through the CLI, in process."""

from __future__ import annotations

import json

import pytest
from test_mapping import CHARGEBEE_EVENTS, EXAMPLES, write_csv
from test_stripe import history, write_jsonl

from pipelines.cli import main


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path / "home"))
    return tmp_path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


def test_import_stripe_ingests_billing_events_and_counts_the_rest(home, capsys):
    export = write_jsonl(home / "events.jsonl", history("2025-03-31.basil"))
    code, out, _ = run(capsys, "import", "stripe", str(export), "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["billing"]["accepted"] == answer["stripe"]["mapped"] > 0
    assert answer["stripe"]["ignored"]  # customer.updated and a zero invoice are acknowledged
    code, out, _ = run(capsys, "import", "stripe", str(export), "--json")
    assert json.loads(out)["billing"]["duplicates"] == answer["billing"]["accepted"]


def test_ingest_with_a_mapping_file_converts_a_chargebee_export(home, capsys):
    export = write_csv(home / "chargebee.csv", CHARGEBEE_EVENTS)
    mapping = EXAMPLES / "chargebee.toml"
    code, out, _ = run(
        capsys, "ingest", "--billing", str(export), "--mapping", str(mapping), "--json"
    )
    assert code == 0
    report = json.loads(out)["billing"]
    assert report["received"] == report["accepted"] + report["duplicates"] + report["quarantined"]
    assert report["accepted"] >= 4
    assert isinstance(report["left_out"], dict)  # the skip lists' counts, also in JSON


def test_a_mapped_export_of_a_header_only_is_refused_as_an_empty_file_is(home, capsys):
    """It ingested nothing and exited 0; the same file without a mapping is refused."""
    export = home / "chargebee.csv"
    export.write_text(",".join(CHARGEBEE_EVENTS[0]) + "\n")
    code, _, err = run(
        capsys, "ingest", "--billing", str(export), "--mapping", str(EXAMPLES / "chargebee.toml")
    )
    assert code == 2
    assert err.strip().endswith("chargebee.csv: the export has no rows")


def test_a_mapping_for_another_stream_is_one_line_and_exit_2(home, capsys):
    export = write_csv(home / "chargebee.csv", CHARGEBEE_EVENTS)
    code, _, err = run(
        capsys, "ingest", "--usage", str(export), "--mapping", str(EXAMPLES / "chargebee.toml")
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "give the export as --billing" in err


def test_a_missing_stripe_export_is_one_line_and_exit_2(home, capsys):
    code, _, err = run(capsys, "import", "stripe", str(home / "nope.jsonl"))
    assert code == 2
    assert "no such file" in err
