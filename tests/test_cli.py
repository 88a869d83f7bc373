"""The real ``segments`` command: output contracts and clean failures.

Subprocesses where the process is the point (exit codes, no traceback, terminal width); the
command's own ``main`` in-process for the many refusals, which each take milliseconds there.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import segments_in_process
from rich.console import Console

from pipelines.cli import main

SEGMENTS = [sys.executable, "-m", "pipelines"]
Segments = Callable[..., tuple[int, str, str]]


def run(
    args: list[str], home: Path, check: bool = True, columns: int = 200, process: bool = True
) -> subprocess.CompletedProcess:
    """``segments ARGS`` on the data home ``home``: a process of its own, or (``process=False``,
    for a test about what a command prints rather than how a process ends) this one."""
    env = {**os.environ, "SEGMENTS_HOME": str(home), "COLUMNS": str(columns)}
    env.pop("MLFLOW_TRACKING_URI", None)
    if process:
        result = subprocess.run(
            SEGMENTS + args, capture_output=True, text=True, env=env, timeout=300
        )
    else:
        result = segments_in_process(args, env)
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


@pytest.fixture(scope="module")
def ingested(demo_dir, tmp_path_factory) -> tuple[Path, dict]:
    """A data home holding the demo company, and what `ingest --json` said about it."""
    home = tmp_path_factory.mktemp("cli-home")
    result = run(
        [
            "ingest",
            "--billing",
            str(demo_dir / "billing_events.parquet"),
            "--usage",
            str(demo_dir / "usage_events.parquet"),
            "--json",
        ],
        home,
    )
    return home, json.loads(result.stdout)


def test_ingest_json_then_features(ingested, tmp_path):
    home, report = ingested
    assert set(report) == {"billing", "usage"}
    for stream in report.values():
        assert {"received", "accepted", "duplicates", "quarantined", "reasons"} <= set(stream)
        assert (
            stream["received"] == stream["accepted"] + stream["duplicates"] + stream["quarantined"]
        )
    out = tmp_path / "features.csv"
    summary = json.loads(
        run(["features", "--as-of", "2026-06-30", "--out", str(out), "--json"], home).stdout
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
        # 1 or 2 months crashed with a traceback (a review)
        (["demo-data", "--out", "d", "--months", "2"], "'--months': Input should be greater"),
        (["quarantine", "show", "nope"], "no quarantined row"),
        (["train"], "Missing option '--as-of'"),
        (["assign", "--in", "missing.parquet"], "missing.parquet: no such file"),
        # a hostile probe's: numpy's and scikit-learn's tracebacks, a date past year 9999
        (["train", "--as-of", "2026-06-30", "--seed", "-1"], "'--seed': Input should be"),
        (["retrain", "--as-of", "2026-06-30", "--seed", "4294967296"], "'--seed': Input should"),
        (["discover", "--as-of", "2026-06-30", "--history-days", "740000"], "'--history-days'"),
        (["ingest", "--billing", "b.csv", "--mapping", "."], "not a regular file"),
        (
            ["discover", "--as-of", "2026-06-30", "--families", "value,value"],
            "each feature family once",
        ),
    ],
)
def test_bad_input_fails_with_one_line_and_no_traceback(tmp_path, args, message):
    result = run(args, tmp_path, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_train_before_the_data_fails_early_stating_the_data_range(ingested):
    home, _ = ingested
    result = run(["train", "--as-of", "1990-01-01"], home, check=False)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "not after the first accepted event" in line
    assert "accepted events run from 2026-01-" in line
    assert "to 2026-06-30" in line


def test_quarantine_list_summarises_what_it_lists_and_cuts_long_ids(segments, tmp_path):
    """`--stream usage` listed usage rows under a summary of every stream; a 300-character event
    id took the table's width and left 4 characters of the raw content (a 250-character one here)."""
    usage, billing = tmp_path / "usage.csv", tmp_path / "billing.csv"
    usage.write_text("event_id,customer_id,occurred_at,event\nu1,c1,soon,login\n")
    billing.write_text(
        "event_id,customer_id,occurred_at,type,amount,currency\n"
        f"{'b' * 250},c1,2026-01-01,invoice.paid,10,USD\n"
    )
    segments("ingest", "--usage", str(usage), "--billing", str(billing))
    code, out, _ = segments("quarantine", "list", "--stream", "usage", "--json")
    assert code == 0
    assert [s["stream"] for s in json.loads(out)["summary"]] == ["usage"]
    code, out, _ = segments("quarantine", "list", "--reason", "unknown_type", "--json")
    assert [s["reason"] for s in json.loads(out)["summary"]] == ["unknown_type"]
    # a reason among a row's reasons, not its first: the summary counts the rows listed
    late = tmp_path / "late.csv"
    late.write_text(
        "event_id,customer_id,occurred_at,type,plan,interval,seats,mrr,currency\n"
        "b2,c1,2026-01-01,subscription_started,,month,2,20,dollars\n"
    )
    segments("ingest", "--billing", str(late))
    code, out, _ = segments("quarantine", "list", "--reason", "invalid_currency", "--json")
    listed = json.loads(out)
    assert [r["reasons"] for r in listed["rows"]] == [["missing_plan", "invalid_currency"]]
    assert [(s["reason"], s["open"]) for s in listed["summary"]] == [("missing_plan", 1)]
    code, out, _ = segments("quarantine", "list", "--stream", "billing")
    assert code == 0
    assert "b" * 39 + "…" in out
    assert "b" * 41 not in out
    # in a pipe (80 columns) the stream was "billi…" and the raw content `{"e…`: readable now
    assert "│ billing │" in out
    assert '{"event_id": "' in out


def test_quarantined_rows_no_correction_resolves_are_dismissed_with_a_note(segments, tmp_path):
    """A footer line ("Total,3") or another system's row is no event a correction can resolve:
    it stayed open for ever, in every list and ingestion report. Dismissed with a note, it is
    closed and kept for the record; the same row received again is open again."""
    usage = tmp_path / "usage.csv"
    usage.write_text(
        "event_id,customer_id,occurred_at,event\n"
        "u1,c1,2026-01-01,login\nu2,c1,soon,login\nu3,c1,later,login\n"
        "Total,3\n"
    )
    segments("ingest", "--usage", str(usage))
    rows = json.loads(segments("quarantine", "list", "--json")[1])["rows"]
    by_reason = {row["reason"]: row["quarantine_id"] for row in rows}
    assert set(by_reason) == {"malformed_row", "invalid_occurred_at"}
    # refused, with nothing closed: no note, an unknown id, ids together with a reason
    refused(segments("quarantine", "dismiss", by_reason["malformed_row"]))
    line = refused(segments("quarantine", "dismiss", "q-nope", "--note", "footer"))
    assert "'q-nope' (no such entry)" in line
    refused(segments("quarantine", "dismiss", "--note", "footer"))
    refused(segments("quarantine", "dismiss", "x", "--reason", "malformed_row", "--note", "f"))
    assert len(json.loads(segments("quarantine", "list", "--json")[1])["rows"]) == 3
    code, _, err = segments(
        "quarantine", "dismiss", by_reason["malformed_row"], "--note", "the export's footer"
    )
    assert code == 0
    assert "dismissed 1 quarantined rows (the export's footer)" in err
    line = refused(segments("quarantine", "dismiss", by_reason["malformed_row"], "--note", "again"))
    assert "(already resolved)" in line
    # every open row of a reason at once
    code, out, _ = segments(
        "quarantine", "dismiss", "--reason", "invalid_occurred_at", "--note", "test rows", "--json"
    )
    assert json.loads(out) == {"dismissed": 2, "note": "test rows"}
    listing = json.loads(segments("quarantine", "list", "--all", "--json")[1])
    assert listing["summary"] == [
        {"stream": "usage", "reason": "invalid_occurred_at", "open": 0, "resolved": 2,
         "open_times_seen": 0},
        {"stream": "usage", "reason": "malformed_row", "open": 0, "resolved": 1,
         "open_times_seen": 0},
    ]  # fmt: skip
    assert {row["resolved_by"] for row in listing["rows"]} == {
        "dismissed: the export's footer", "dismissed: test rows",
    }  # fmt: skip
    code, out, _ = segments("quarantine", "list", "--all")
    assert "dismissed: test rows" in out
    # received again: open again
    segments("ingest", "--usage", str(usage))
    reopened = json.loads(segments("quarantine", "list", "--json")[1])["rows"]
    assert {row["quarantine_id"] for row in reopened} == set(by_reason.values()) | {
        row["quarantine_id"] for row in rows
    }


def test_table_headers_and_paths_are_never_cut(tmp_path):
    """At 80 columns the ingestion table read "quarantin…" and "duplicat…" beside a long reason
    code (a new user's walkthrough): every header keeps its width, the table grows instead."""
    longer = tmp_path / "longer.csv"
    longer.write_text(
        "event_id,customer_id,occurred_at,type,amount,currency\n"
        "b1,c1,2026-01-01,invoice_paid,-1,USD\nb2,c1,2026-01-01,invoice.paid,1,USD\n"
        "b3,c1,2026-01-01,invoice_paid,1,USD\n"
    )
    table = run(["ingest", "--billing", str(longer)], tmp_path, columns=80).stdout
    for header in ("received", "accepted", "duplicates", "quarantined", "quarantine reasons"):
        assert header in table, header
    # nor a path broken across lines, which could not be pasted
    out = tmp_path / ("a-long-folder-name-" * 4) / "features.csv"
    lines = run(
        ["features", "--as-of", "2026-01-02", "--out", str(out)], tmp_path, columns=80
    ).stdout
    assert f"out: {out}" in lines.splitlines()


def test_quarantine_list_and_export_round_trip(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "event_id,customer_id,occurred_at,event\nu1,c1,2026-01-01,login\nu2,c1,soon,login\n"
    )
    run(["ingest", "--usage", str(bad)], tmp_path, process=False)
    listing = json.loads(run(["quarantine", "list", "--json"], tmp_path, process=False).stdout)
    assert listing["summary"] == [
        {
            "stream": "usage",
            "reason": "invalid_occurred_at",
            "open": 1,
            "resolved": 0,
            "open_times_seen": 1,
        }
    ]
    # On a narrow terminal the table still shows ids and codes whole, ready to paste.
    narrow = run(["quarantine", "list"], tmp_path, columns=40, process=False).stdout
    [row] = listing["rows"]
    assert row["quarantine_id"] in narrow
    assert "invalid_occurred_at" in narrow
    # and every header whole
    for header in ("stream", "open", "received", "resolved", "file:row", "event_id"):
        assert header in narrow, header
    exported = tmp_path / "fix.csv"
    run(
        ["quarantine", "export", "--stream", "usage", "--out", str(exported)],
        tmp_path,
        process=False,
    )
    # sent back as exported, unfixed: counted again against its own entry, not a second one (a
    # file of which no row could be stored is refused, exit 2)
    assert (
        run(["ingest", "--usage", str(exported)], tmp_path, check=False, process=False).returncode
        == 2
    )
    listing = json.loads(run(["quarantine", "list", "--json"], tmp_path, process=False).stdout)
    [again] = listing["rows"]
    assert (again["quarantine_id"], again["times_seen"]) == (row["quarantine_id"], 2)
    # one row to fix, received twice: what the two ingestion reports add up to
    assert (listing["summary"][0]["open"], listing["summary"][0]["open_times_seen"]) == (1, 2)
    fixed = pd.read_csv(exported).assign(occurred_at="2026-01-02")
    fixed.to_csv(exported, index=False)
    report = json.loads(
        run(["ingest", "--usage", str(exported), "--json"], tmp_path, process=False).stdout
    )
    assert report["usage"]["accepted"] == 1
    assert report["usage"]["unknown_columns"] == []
    listing = json.loads(run(["quarantine", "list", "--json"], tmp_path, process=False).stdout)
    assert listing["rows"] == []


# ---------------------------------------------------------------- in-process: `main` itself


@pytest.fixture
def segments(tmp_path, monkeypatch, capsys) -> Segments:
    """Run ``segments ARGS`` in this process with a fresh data home: (exit code, stdout, stderr)."""
    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path / "home"))

    def invoke(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as stop:
            main(list(args))
        captured = capsys.readouterr()
        return stop.value.code, captured.out, captured.err

    return invoke


def refused(outcome: tuple[int, str, str]) -> str:
    """The one error line of a refused command."""
    code, _, err = outcome
    assert code == 2, err
    [line] = err.strip().splitlines()
    assert line.startswith("error: ")
    return line


def test_a_file_of_decimal_commas_is_told_to_use_a_decimal_point_not_a_mapping(segments, tmp_path):
    """The hint sent a user to mapping files, which read decimals only, and the same refusal
    came back word for word with one (a data engineer's review)."""
    billing = tmp_path / "billing.csv"
    billing.write_text(
        "event_id;customer_id;occurred_at;type;amount;currency\n"
        "e1;c1;2025-01-01T10:00:00Z;invoice_paid;1.234,00;EUR\n"
        "e2;c1;2025-02-01T10:00:00Z;invoice_paid;12,50;EUR\n"
    )
    line = refused(segments("ingest", "--billing", str(billing)))
    assert "numbers are read with a decimal point, 10.50 not 10,50" in line
    assert "export the file with a decimal point" in line
    assert "mapping" not in line
    # thousands with a point in a semicolon file: stored as decimals, as the contract reads
    # them, but said (1.234 EUR was stored for 1,234 without a word)
    thousands = tmp_path / "thousands.csv"
    thousands.write_text(
        "event_id;customer_id;occurred_at;type;amount;currency\n"
        "t1;c1;2025-01-01T10:00:00Z;invoice_paid;1.234;EUR\n"
        "t2;c1;2025-04-01T10:00:00Z;invoice_paid;1.500;EUR\n"
        "t3;c1;2025-05-01T10:00:00Z;invoice_paid;12.5;EUR\n"
    )
    code, out, err = segments("ingest", "--billing", str(thousands))
    assert code == 0, err
    said = " ".join((out + err).split())
    assert "2 of its numbers read like thousands with a point (1.234)" in said, said
    plain = tmp_path / "plain.csv"
    plain.write_text(thousands.read_text().replace(";", ","))
    code, out, err = segments("ingest", "--billing", str(plain))
    assert "thousands" not in out + err  # a comma-separated file's 1.234 is one and a bit
    # a decimal comma in some rows of a semicolon file: those rows quarantined, the rest stored,
    # exit 0, and nothing said why (a data engineer's review)
    commas = tmp_path / "commas.csv"
    commas.write_text(
        "event_id;customer_id;occurred_at;type;amount;currency\n"
        "k1;c1;2025-01-01T10:00:00Z;invoice_paid;100,50;EUR\n"
        "k2;c1;2025-04-01T10:00:00Z;invoice_paid;80;EUR\n"
    )
    code, out, err = segments("ingest", "--billing", str(commas))
    assert code == 0, err
    said = " ".join((out + err).split())
    assert "1 of the file's numbers are written with a decimal comma (100,50)" in said, said
    assert "decimal comma" not in " ".join(segments("ingest", "--billing", str(plain))[1:])


def test_a_file_none_of_whose_rows_is_stored_is_refused_and_features_say_why(segments, tmp_path):
    """Dates written 15/01/2024: every row quarantined, exit 0, and the next step said "run
    `segments ingest` first" to a user who just had (a new user's walkthrough)."""
    usage = tmp_path / "usage.csv"
    usage.write_text(
        "event_id,customer_id,occurred_at,event\nu1,c1,15/01/2024,login\nu2,c2,16/01/2024,login\n"
    )
    line = refused(segments("ingest", "--usage", str(usage)))
    assert "every one of the 2 usage rows" in line
    assert "2 for invalid_occurred_at (times are read as ISO 8601" in line
    assert line.endswith(
        "; nothing was stored. `segments quarantine list` shows them; once fixed, "
        "`segments ingest` again accepts them"
    )
    line = refused(segments("features", "--as-of", "2024-02-01", "--out", str(tmp_path / "f.csv")))
    assert "the 2 rows ingested are all in quarantine" in line
    # beside a file that was stored, the refusal says so (a script reads exit 2 as all failed)
    billing = tmp_path / "billing.csv"
    billing.write_text(
        "event_id,customer_id,occurred_at,type,amount,currency\n"
        "b1,c1,2024-01-15T00:00:00Z,invoice_paid,10,USD\n"
    )
    line = refused(segments("ingest", "--usage", str(usage), "--billing", str(billing)))
    assert "the billing file's rows were stored" in line


def test_an_event_dated_after_now_is_kept_and_said(segments, tmp_path):
    """A row of 2031 (for 2021) was accepted without a word; later messages named 2031 as the
    data's end (a new user's walkthrough)."""
    usage = tmp_path / "usage.csv"
    usage.write_text(
        "event_id,customer_id,occurred_at,event\n"
        "u1,c1,2031-01-15T00:00:00Z,login\nu2,c2,2024-01-16T00:00:00Z,login\n"
    )
    code, _, err = segments("ingest", "--usage", str(usage))
    assert code == 0
    said = " ".join(err.split())
    assert (
        "1 of the events just stored are dated after now (the latest 2031-01-15 00:00 UTC)" in said
    )
    # Said of the ingestion that stored it, not of every later one (it was said after a file
    # that stored nothing, and after a clean file, as if theirs)
    code, _, err = segments("ingest", "--usage", str(usage))
    assert (code, "after now" in err) == (0, False)
    clean = tmp_path / "clean.csv"
    clean.write_text("event_id,customer_id,occurred_at,event\nu3,c3,2024-02-01T00:00:00Z,login\n")
    code, _, err = segments("ingest", "--usage", str(clean))
    assert (code, "after now" in err) == (0, False)


def test_version_comes_from_the_package_metadata(segments):
    code, out, _ = segments("--version")
    assert code == 0
    assert out.strip() == f"segments {metadata.version('customer-segments')}"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("random.csv", "Zm9vYmFyIGJheg== qwerty\nasdf;lkj\n\x7fuiop\n", "no known column"),
        ("lorem.csv", "lorem ipsum, dolor\nsit amet\na, b, c\n", "no known column"),
        ("random.jsonl", "not json\n[1, 2]\n", "all 2 row(s) are malformed (not a JSON object"),
        ("empty.csv", "", "the file is empty"),
        ("header.csv", "event_id,customer_id,occurred_at,event\n", "no rows"),
    ],
)
def test_a_file_that_is_not_events_is_refused_not_quarantined(
    segments, tmp_path, name, content, message
):
    path = tmp_path / name
    path.write_text(content)
    line = refused(segments("ingest", "--usage", str(path)))
    assert str(path) in line
    assert message in line
    code, out, _ = segments("quarantine", "list", "--json")
    assert (code, json.loads(out)["rows"]) == (0, [])


def test_an_unknown_reason_code_is_refused_naming_the_known_ones(segments):
    for command in (["list"], ["export", "--stream", "usage", "--out", "x.csv"]):
        line = refused(segments("quarantine", *command, "--reason", "nope"))
        assert "'nope' is not a reason code" in line
        assert "malformed_row" in line
        assert "conflicting_duplicate" in line


@pytest.mark.parametrize(
    "args",
    [
        ["features", "--as-of", "2026-06-30", "--out", "features.xlsx"],
        ["quarantine", "export", "--stream", "usage", "--out", "rows.parquet"],
        ["ingest", "--billing", "billing.xlsx"],
    ],
)
def test_an_unsupported_file_type_is_refused_naming_the_accepted_ones(segments, tmp_path, args):
    (tmp_path / "billing.xlsx").write_text("x")
    args = [str(tmp_path / a) if a == "billing.xlsx" else a for a in args]
    assert "unsupported file type; expected one of" in refused(segments(*args))


def test_an_unwritable_output_is_one_line(segments, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = refused(segments("demo-data", "--out", str(blocker / "demo"), "--customers", "5"))
    assert str(blocker) in line


def usage_rows(customers: int, day: str, start: int = 0) -> list[str]:
    return [f"u{start + i},c{start + i},{day},login" for i in range(customers)]


def write_company(
    tmp_path: Path, seats: list[int], cancelled: int = 0, login_days: list[int] | None = None
) -> list[str]:
    """A small company: customer i starts on ``seats[i]`` seats at 10 a seat in January, the
    first ``cancelled`` of them cancel in March, and each logs in on ``login_days[i]`` days of
    June (3 when not given). The `ingest` arguments that store it."""
    billing, usage = [], []
    for i, n in enumerate(seats):
        billing.append(
            f"s{i},c{i},2026-01-05T00:00:00Z,subscription_started,team,month,{n},{10 * n},EUR"
        )
        if i < cancelled:
            billing.append(
                f"x{i},c{i},2026-03-05T00:00:00Z,subscription_canceled,team,month,0,0,EUR"
            )
        for day in range((login_days or [3] * len(seats))[i]):
            usage.append(f"u{i}-{day},c{i},2026-06-{day + 1:02d}T10:00:00Z,login")
    files = {
        "billing": "event_id,customer_id,occurred_at,type,plan,interval,seats,mrr,currency\n",
        "usage": "event_id,customer_id,occurred_at,event\n",
    }
    rows = {"billing": billing, "usage": usage}
    arguments = []
    for stream, header in files.items():
        path = tmp_path / f"{stream}.csv"
        path.write_text(header + "\n".join(rows[stream]) + "\n")
        arguments += [f"--{stream}", str(path)]
    return arguments


def test_train_refuses_in_one_line_a_company_with_nothing_to_segment(segments, tmp_path):
    """Not a traceback: every customer cancelled, every customer alike, or all alike but one."""
    assert segments("ingest", *write_company(tmp_path, [2] * 50, cancelled=50))[0] == 0
    line = refused(segments("train", "--as-of", "2026-06-30"))
    assert "only 0 of the 50 customers are active as of the date" in line
    assert "at least 10" in line


def test_train_refuses_customers_who_are_all_alike(segments, tmp_path):
    assert segments("ingest", *write_company(tmp_path, [2] * 50))[0] == 0
    line = refused(segments("train", "--as-of", "2026-06-30"))
    assert "the 50 active customers have the same value of every feature" in line


def test_train_refuses_customers_who_form_one_segment(segments, tmp_path):
    days = [20] + [3] * 49  # one customer differs; the rest are one point
    assert segments("ingest", *write_company(tmp_path, [9] + [2] * 49, login_days=days))[0] == 0
    line = refused(segments("train", "--as-of", "2026-06-30"))
    assert "the 50 active customers form no segments" in line
    code, out, _ = segments("models", "list", "--json")
    assert code == 0
    assert json.loads(out) == []  # nothing registered


def test_train_refuses_an_as_of_the_data_cannot_answer(segments, tmp_path):
    events = tmp_path / "usage.csv"
    rows = usage_rows(3, "2026-01-01") + usage_rows(12, "2026-03-31", start=3)
    events.write_text("event_id,customer_id,occurred_at,event\n" + "\n".join(rows) + "\n")
    assert segments("ingest", "--usage", str(events))[0] == 0
    data_range = "accepted events run from 2026-01-01 00:00:00 UTC to 2026-03-31 00:00:00 UTC"

    before = refused(segments("train", "--as-of", "2025-12-31"))
    assert "not after the first accepted event" in before
    assert data_range in before
    after = refused(segments("train", "--as-of", "2026-07-01"))
    assert "more than 90 days after the last accepted event" in after
    assert data_range in after
    few = refused(segments("train", "--as-of", "2026-01-01"))
    assert "only 3 customer(s) have events before" in few
    assert "at least 10" in few
    # features too: the online store keeps each customer's latest vectors, so a mistyped year
    # written there would hide every correct build after it
    out = str(tmp_path / "f.parquet")
    late = refused(segments("features", "--as-of", "2026-07-01", "--out", out))
    assert "more than 90 days after the last accepted event" in late
    future = refused(segments("features", "--as-of", "2030-01-01", "--out", out))
    assert "more than 90 days after the last accepted event" in future
    assert not (tmp_path / "home" / "online.sqlite").exists()


def test_an_event_in_the_year_9999_does_not_break_the_as_of_checks(segments, tmp_path):
    """The contract takes instants up to the year 9999: a store holding one builds its features
    (the overflow of the as-of check on such an event: the test after this one)."""
    events = tmp_path / "usage.csv"
    rows = [*usage_rows(12, "2026-03-31"), "late,c-late,9999-12-31T23:59:59Z,login"]
    events.write_text("event_id,customer_id,occurred_at,event\n" + "\n".join(rows) + "\n")
    assert segments("ingest", "--usage", str(events))[0] == 0
    # within 90 days of the last event up to now (the 9999 one is counted apart)
    code, out, err = segments("features", "--as-of", "2026-06-01", "--out", str(tmp_path / "f.csv"))
    assert (code, err) == (0, "")
    assert "customers: 12" in out


def test_the_as_of_check_takes_a_range_ending_in_9999():
    """Adding the 90 days' tolerance to an event at the end of 9999 overflowed (a traceback,
    and a 500 on every later discovery); a range whose events are all after now still ends
    there, and says so."""
    from datetime import datetime

    from feature_store.coverage import EventCoverage, TrainingWindowError, check_as_of_covered

    end = datetime(9999, 12, 31, 23, 59, 59)
    check_as_of_covered(EventCoverage(datetime(2026, 3, 31), end), datetime(2026, 7, 2))
    future = EventCoverage.of(datetime(2031, 3, 31), end, None, 12)
    with pytest.raises(TrainingWindowError) as refused:
        check_as_of_covered(future, datetime(2026, 7, 2))
    assert str(refused.value).endswith(
        "all 12 accepted events are dated after now, from 2031-03-31 00:00:00 UTC to "
        "9999-12-31 23:59:59 UTC (a wrong year?)"
    )


def test_features_refuse_an_as_of_after_today_on_current_data(segments, tmp_path):
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    events = tmp_path / "usage.csv"
    rows = usage_rows(12, (today - timedelta(days=3)).isoformat())
    events.write_text("event_id,customer_id,occurred_at,event\n" + "\n".join(rows) + "\n")
    assert segments("ingest", "--usage", str(events))[0] == 0
    out = str(tmp_path / "f.parquet")
    soon = (today + timedelta(days=30)).isoformat()
    said = refused(segments("features", "--as-of", soon, "--out", out))
    # the day as the user gave it: `--as-of D` read back as "D+1 00:00:00 UTC"
    assert f"as-of {soon} (end of day, UTC) is in the future" in said, said
    assert segments("features", "--as-of", today.isoformat(), "--out", out)[0] == 0


def test_an_as_of_after_today_is_refused_and_today_is_not():
    from datetime import datetime

    from feature_store.coverage import TrainingWindowError, check_not_future

    now = datetime(2026, 12, 4, 20, 0)
    check_not_future(datetime(2026, 12, 5), now)  # `--as-of 2026-12-04`: the end of today
    with pytest.raises(TrainingWindowError, match="in the future"):
        check_not_future(datetime(2026, 12, 5, 0, 0, 1), now)


def test_table_columns_of_ids_and_codes_are_never_cut():
    from feature_store.ingest import StreamReport
    from pipelines.cli.common import print_table
    from pipelines.cli.data import _ingest_table

    report = StreamReport("usage", "u.csv", 3, 0, 0, 3, {"conflicting_duplicate": 2, "a" * 60: 1})
    screen = io.StringIO()
    narrow = Console(file=screen, width=30, color_system=None)
    print_table(_ingest_table({"usage": report}), whole=["quarantine reasons"], on=narrow)
    assert "conflicting_duplicate: 2" in screen.getvalue()
    assert "a" * 60 + ": 1" in screen.getvalue()


def test_models_list_shows_versions_with_aliases_and_key_metrics(tmp_path):
    from mlflow import MlflowClient

    from models import registry as tracking

    home = tmp_path / "home"
    home.mkdir()
    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    experiment = client.create_experiment(tracking.EXPERIMENT_NAME)
    client.create_registered_model(tracking.MODEL_NAME)
    for silhouette, as_of in ((0.31, "2026-06-01T00:00:00"), (0.42, None)):
        run_id = client.create_run(experiment).info.run_id
        client.log_metric(run_id, "silhouette", silhouette)
        if as_of:
            client.log_param(run_id, "as_of", as_of)
        client.log_metric(run_id, "candidate.kmeans_k_2.silhouette", 0.1)
        client.create_model_version(tracking.MODEL_NAME, f"runs:/{run_id}/model", run_id)
    client.set_registered_model_alias(tracking.MODEL_NAME, tracking.CHAMPION, "1")
    client.set_registered_model_alias(tracking.MODEL_NAME, tracking.CHALLENGER, "2")

    listed = json.loads(run(["models", "list", "--json"], home, process=False).stdout)
    assert [(v["version"], v["aliases"]) for v in listed] == [
        ("2", ["challenger"]),
        ("1", ["champion"]),
    ]
    assert [v["metrics"] for v in listed] == [{"silhouette": 0.42}, {"silhouette": 0.31}]
    assert [v["pinned"] for v in listed] == [False, False]
    assert [v["forced"] for v in listed] == [False, False]
    # which data each version saw, for choosing one to roll back to
    assert [v["features_as_of"] for v in listed] == [None, "2026-06-01T00:00:00Z"]
    assert "2026-05-31 (end of day, UTC)" in run(["models", "list"], home, process=False).stdout
    from models.registry import ModelRegistry, RegistryConfig
    from pipelines.lifecycle import pin

    models = ModelRegistry(RegistryConfig.for_home(home))
    pin(models, "1", "tester", "quarter close")
    assert "champion, pinned |" in run(["models", "list"], home, process=False).stdout.replace(
        "│", "|"
    )
    # a champion made so over failing gates says so in the list (only `models history` did)
    models.make_champion("1", "tester", forced=True, reason="gates overridden")
    listed = json.loads(run(["models", "list", "--json"], home, process=False).stdout)
    assert [v["forced"] for v in listed] == [False, True]
    assert "champion, pinned, forced" in run(["models", "list"], home, process=False).stdout
    # a champion set outside the CLI (no recorded change): no earlier champion to roll back to
    refused = run(["rollback"], home, process=False, check=False)
    assert refused.returncode == 2
    assert "replaced no earlier champion" in refused.stderr


def _mlproject_command(entry_point: str, **parameters: str) -> str:
    """The shell command `mlflow run . -e ENTRY_POINT -P ...` would run, rendered by MLflow."""
    from mlflow.projects._project_spec import load_project

    project = load_project(str(Path(__file__).parents[1]))
    return project.get_entry_point(entry_point).compute_command(parameters, storage_dir="")


@pytest.mark.parametrize("entry_point", ["main", "train", "retrain"])
@pytest.mark.parametrize(
    ("parameters", "refusal"),
    [
        # discovered: the command parses and reaches the data check
        ({}, "no events ingested"),
        ({"segments": ""}, "no events ingested"),
        ({"segments": "4"}, "no events ingested"),
        ({"segments": "1"}, "Invalid value for '--segments'"),
        ({"max_segments": "1"}, "Invalid value for '--max-segments'"),
        # a value stays one argument: not more options, not file names, not a command
        ({"segments": "4 --max-segments 1"}, "Invalid value for '--segments'"),
        ({"segments": "*"}, "Invalid value for '--segments'"),
        ({"segments": "4; echo injected"}, "Invalid value for '--segments'"),
    ],
)
def test_mlproject_entry_points_pass_their_parameters_to_the_cli(
    tmp_path, entry_point, parameters, refusal
):
    command = _mlproject_command(entry_point, as_of="2026-06-30", **parameters)
    # The entry point's shell line runs in bash as `mlflow run` runs it; the `segments` it finds
    # first on PATH records the arguments the shell passed (one per NUL-ended line), and the
    # command line is then parsed by the CLI itself, in this process: 24 interpreters starting
    # and importing the CLI cost a minute of the suite (the console script is run as a process
    # by other tests).
    recorder = tmp_path / "bin" / "segments"
    recorder.parent.mkdir()
    recorder.write_text('#!/bin/sh\nprintf \'%s\\0\' "$@" > "$SEGMENTS_ARGV"\necho ran\n')
    recorder.chmod(0o755)
    argv = tmp_path / "argv"
    path = f"{recorder.parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "SEGMENTS_HOME": str(tmp_path / "home"), "PATH": path}
    env.pop("MLFLOW_TRACKING_URI", None)
    (tmp_path / "--json").touch()  # what a glob in the value would expand to
    shell = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        env={**env, "SEGMENTS_ARGV": str(argv)},
        cwd=tmp_path,
        timeout=60,
    )
    assert shell.stdout == "ran\n", shell.stderr  # one command ran, nothing injected after it
    args = argv.read_bytes().decode().split("\0")[:-1]
    result = segments_in_process(args, env)
    assert result.returncode == 2
    assert refusal in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_terminated_command_exits_as_interrupted_and_its_mlflow_run_ends_killed(
    tmp_path, monkeypatch, capsys
):
    """`kill` of a running retrain left its MLflow run RUNNING for ever: SIGTERM is now taken as
    Ctrl-C, whose exception ends the run in progress KILLED on its way out. In process, the
    command's work replaced by one that signals its own process, so the signal comes while the
    command runs whatever the load; a handler of the test's own is there before and after."""
    import signal
    import time

    import pipelines.demo_data
    from models.registry import ModelRegistry, RegistryConfig
    from pipelines.cli import main

    def terminated(*args: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler's exception ends this at once
        raise AssertionError("SIGTERM did not interrupt the command")

    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(pipelines.demo_data, "generate_company", terminated)
    late: list[int] = []

    def catch(signum: int, frame: object) -> None:
        late.append(signum)

    own = signal.signal(signal.SIGTERM, catch)
    try:
        with pytest.raises(SystemExit) as stop:
            main(["demo-data", "--out", str(tmp_path / "d"), "--customers", "10"])
        assert signal.getsignal(signal.SIGTERM) is catch  # the command gave the handler back
    finally:
        signal.signal(signal.SIGTERM, own)
    assert stop.value.code == 130  # as after Ctrl-C (typer's code), not killed by the signal
    assert not late  # the command's handler took it
    # and says so: typer's exit status alone left a killed retrain with nothing said
    [said] = capsys.readouterr().err.strip().splitlines()
    assert said.startswith("error: interrupted; what finished before stays")

    registry = ModelRegistry(RegistryConfig.for_home(tmp_path / "registry"))
    with pytest.raises(KeyboardInterrupt), registry.run() as run_id:
        raise KeyboardInterrupt
    assert registry.client.get_run(run_id).info.status == "KILLED"


def test_a_first_version_that_fails_a_gate_says_nothing_is_served_yet(segments, tmp_path):
    """Twelve customers: segments of one or two, which the explainer cannot learn (fidelity
    gate). Training finishes (no traceback from a one-customer segment's density score) and
    says there is no champion, not "champion stays None"."""
    seats = [1, 2, 3, 5, 8, 13, 1, 2, 3, 5, 8, 13]
    days = [1, 3, 9, 27, 2, 6, 18, 4, 12, 24, 7, 21]
    assert segments("ingest", *write_company(tmp_path, seats, login_days=days))[0] == 0
    code, out, err = segments("train", "--as-of", "2026-06-30")
    assert code == 3, err  # nothing is served: a script must not read it as done (exit 0)
    assert "Traceback" not in err
    assert "None" not in out
    assert "there is no champion yet (surrogate_fidelity" in out
    assert "--force --reason TEXT` overrides the gates" in out
    # the commands that need a champion say which version waits, not "run segments train"
    line = refused(segments("compare"))
    assert "no champion model yet: version 1 is the challenger; `segments promote 1`" in line


def test_a_segment_of_one_sampled_customer_counts_as_noise_in_the_density_score():
    from pipelines.train import _dbcv

    rng = np.random.default_rng(0)
    Z = np.vstack([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2)), [[10.0, 10.0]]])
    labels = np.array([0] * 20 + [1] * 20 + [2])
    score = _dbcv(Z, labels, seed=0)
    assert 0.5 < score <= 1.0  # two dense, far-apart segments; the lone customer is noise
    assert _dbcv(Z, np.array([0] * 40 + [1]), seed=0) == -1.0  # one segment left: undefined


def test_a_version_that_does_not_exist_is_named_not_passed_through_from_mlflow(segments, tmp_path):
    from models.registry import ModelRegistry, RegistryConfig

    # a data home with no registry yet says so (a reader does not create one)
    assert "no model registry in the data home" in refused(segments("promote", "7"))
    ModelRegistry(RegistryConfig.for_home(tmp_path / "home")).alias_version("champion")
    line = refused(segments("promote", "7", "--force", "--reason", "test"))
    assert line == (
        "error: no version 7 of model customer-segments; `segments models list` shows the "
        "registered versions"
    )


def test_a_feature_table_with_a_numeric_id_twice_names_its_count(tmp_path):
    """Parquet ids may be numbers: the count compared them with their text and said 0 rows."""
    from feature_store.errors import InputFileError
    from pipelines.assign import read_feature_table

    path = tmp_path / "f.parquet"
    pd.DataFrame({"customer_id": [7, 8, 7], "mrr": [1.0, 2.0, 3.0]}).to_parquet(path)
    with pytest.raises(InputFileError, match="customer '7' has 2 rows; one per customer"):
        read_feature_table(path)


def test_an_export_of_lines_that_did_not_split_has_the_columns_to_fill_in(segments, tmp_path):
    """Only malformed lines open: the export held quarantine_id, _reasons and _raw_line, and
    sent back it was refused for lacking every required column."""
    bad = tmp_path / "bad.csv"
    bad.write_text("event_id,customer_id,occurred_at,event\nu1,c1,2026-01-01,login,extra\n")
    assert "every one of the 1 usage rows" in refused(segments("ingest", "--usage", str(bad)))
    exported = tmp_path / "fix.csv"
    assert segments("quarantine", "export", "--stream", "usage", "--out", str(exported))[0] == 0
    table = pd.read_csv(exported, dtype=str)
    assert {"event_id", "customer_id", "occurred_at", "event"} <= set(table.columns)
    fixed = table.assign(event_id="u1", customer_id="c1", occurred_at="2026-01-01", event="login")
    fixed.to_csv(exported, index=False)
    code, out, _ = segments("ingest", "--usage", str(exported), "--json")
    assert code == 0
    assert json.loads(out)["usage"]["accepted"] == 1
    code, out, _ = segments("quarantine", "list", "--json")
    assert json.loads(out)["rows"] == []


def test_features_warn_of_a_customer_billed_in_two_currencies(segments, tmp_path):
    """One currency per customer (the events contract): a customer with a USD plan and a EUR
    invoice had its USD MRR read as EUR, unsaid. `features` and `train` now say so."""
    assert segments("ingest", *write_company(tmp_path, [2] * 12))[0] == 0  # plans in EUR
    invoice = tmp_path / "invoice.csv"
    invoice.write_text(
        "event_id,customer_id,occurred_at,type,amount,currency\n"
        "i0,c0,2026-02-01T00:00:00Z,invoice_paid,20,USD\n"
    )
    assert segments("ingest", "--billing", str(invoice))[0] == 0
    code, _, err = segments("features", "--as-of", "2026-06-30", "--out", str(tmp_path / "f.csv"))
    assert code == 0
    note = " ".join(err.split())
    assert "1 customer's billing events name more than one currency ('c0': EUR and USD)" in note
    assert "one currency per customer" in note


def test_features_say_when_a_subscription_has_two_states_at_one_instant(segments, tmp_path):
    """Integer ids: "10" sorts before "9", so the start (9) was taken as later than the upgrade
    (10) on the same day, and the customer kept MRR 10 unsaid (a data engineer's review; Stripe
    Checkout's creation and activation in one second did the same with MRR 0)."""
    billing = tmp_path / "tie.csv"
    billing.write_text(
        "event_id,customer_id,occurred_at,type,plan,interval,seats,mrr,currency\n"
        "9,c1,2026-01-01,subscription_started,team,month,1,10,USD\n"
        "10,c1,2026-01-01,subscription_changed,team,month,5,50,USD\n"
        "11,c2,2026-01-01,subscription_started,team,month,1,10,USD\n"
        "12,c2,2026-01-05,subscription_changed,team,month,2,20,USD\n"
    )
    assert segments("ingest", "--billing", str(billing))[0] == 0
    code, _, err = segments("features", "--as-of", "2026-02-01", "--out", str(tmp_path / "f.csv"))
    assert code == 0, err
    said = " ".join(err.split())
    assert (
        "note: subscriptions have events at the same instant that say different things (1 such "
        "instant, the first customer 'c1' at 2026-01-01T00:00:00Z)"
    ) in said
    assert '"10" sorts before "9"' in said


def test_features_warn_when_billing_and_usage_name_different_customers(demo_dir, tmp_path):
    """A mapped export wrote customer 17850 as "17850.0" in one stream: every customer was
    counted twice (8,710 for 4,372), with no word. Ids written two ways are now said."""
    billing = pd.read_parquet(demo_dir / "billing_events.parquet")
    usage = pd.read_parquet(demo_dir / "usage_events.parquet")
    agreeing = run(
        [
            "ingest",
            "--billing",
            str(demo_dir / "billing_events.parquet"),
            "--usage",
            str(demo_dir / "usage_events.parquet"),
        ],
        tmp_path / "same",
    )
    assert agreeing.returncode == 0
    quiet = run(
        ["features", "--as-of", "2026-06-30", "--out", str(tmp_path / "f.parquet")],
        tmp_path / "same",
    )
    assert "note:" not in quiet.stderr
    prefixed = tmp_path / "usage.parquet"
    usage.assign(customer_id="acct-" + usage["customer_id"]).to_parquet(prefixed, index=False)
    run(
        ["ingest", "--billing", str(demo_dir / "billing_events.parquet"), "--usage", str(prefixed)],
        tmp_path / "apart",
    )
    noted = run(
        ["features", "--as-of", "2026-06-30", "--out", str(tmp_path / "g.parquet")],
        tmp_path / "apart",
    )
    line = " ".join(noted.stderr.split())
    customers = billing["customer_id"].nunique()
    assert f"note: only 0 of the {customers:,} customers with billing events" in line
    assert "do the two write customer ids the same way?" in line
    assert "usage 'acct-" in line


def test_another_companys_events_under_the_same_ids_are_called_out(segments, tmp_path):
    """A second demo company (another seed) reuses the first one's event ids: most of it is
    quarantined as conflicting duplicates and the rest mixes in. Ingest said only the counts (an
    ML engineer then retrained on the mixture); it now says what it looks like."""
    for seed in ("1", "2"):
        out = tmp_path / f"demo{seed}"
        arguments = ["--out", str(out), "--customers", "60", "--months", "3", "--seed", seed]
        assert segments("demo-data", *arguments)[0] == 0
    first = tmp_path / "demo1" / "billing_events.parquet"
    code, _, err = segments("ingest", "--billing", str(first))
    assert code == 0
    assert "another company" not in err
    code, _, err = segments(
        "ingest", "--billing", str(tmp_path / "demo2" / "billing_events.parquet")
    )
    assert code == 0
    assert "reuse the ids of stored events with other contents" in " ".join(err.split())
    assert "another company's data?" in " ".join(err.split())
    # the same file again is a re-send, not a clash
    code, _, err = segments("ingest", "--billing", str(first))
    assert code == 0
    assert "another company" not in " ".join(err.split())


def test_ids_repeated_within_one_file_are_not_taken_for_another_company(segments, tmp_path):
    """A first file whose every id comes three times with other contents conflicts with itself,
    not with stored events: the note about another company's data is not for it (a review)."""
    rows = [
        {
            "event_id": f"e{i}",
            "customer_id": f"c{i}",
            "event": "login",
            "occurred_at": f"2026-01-0{1 + copy} 10:00:00Z",
        }
        for i in range(20)
        for copy in range(3)
    ]
    path = tmp_path / "usage.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    code, out, err = segments("ingest", "--usage", str(path))
    assert code == 0
    assert "conflicting_duplicate: 40" in out  # the later copies, counted in the table
    assert "another company" not in " ".join(err.split())


def test_a_registry_that_does_not_answer_is_one_line_within_seconds(tmp_path):
    """A dead tracking server cost MLflow's seven retries (4 minutes), then a traceback of 129
    lines and exit 1 (an ML engineer's walkthrough)."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SEGMENTS_HOME": str(tmp_path), "COLUMNS": "200"}
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        env.pop(name, None)
    result = subprocess.run(
        [*SEGMENTS, "models", "list"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: model registry")
    assert "Connection refused" in line


def test_retrain_asks_the_registry_before_any_work(ingested):
    """`segments retrain` rebuilt the features, the snapshot and the online store for 10 s, then
    found the registry down (an ML engineer's walkthrough): it asks first, and says why short."""
    home, _ = ingested
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SEGMENTS_HOME": str(home), "COLUMNS": "200"}
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
    before = sorted(p.name for p in home.rglob("*"))
    result = subprocess.run(
        [*SEGMENTS, "retrain", "--as-of", "2026-06-30"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line == (
        f"error: model registry http://127.0.0.1:{port} cannot be reached (Connection refused); "
        "nothing was computed"
    )
    assert sorted(p.name for p in home.rglob("*")) == before  # no snapshot, no online store


def test_an_error_of_mlflow_or_its_database_is_one_line_and_exit_2(capsys):
    """An artifact deleted from the store ("No such artifact") and a read-only store (SQL after
    the message) were tracebacks and exit 1."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import OperationalError

    from pipelines.cli.common import run_command

    def deleted() -> None:
        raise MlflowException("No such artifact: 'model_dir'\n  at some/path")

    def read_only() -> None:
        raise OperationalError("DELETE FROM registered_model_tags", {}, Exception("readonly"))

    for fails in (deleted, read_only):
        assert run_command(fails) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("error: model registry: ")
    with pytest.raises(ZeroDivisionError):  # anything else is a bug, and stays a traceback
        run_command(lambda: 1 / 0)


def test_a_mistyped_sqlite_store_is_refused_not_created_by_a_reading_command(tmp_path):
    """`MLFLOW_TRACKING_URI=sqlite:////nonexistent/x.db segments models list` created a 950 KB
    store there and said "no model versions registered yet"."""
    missing = tmp_path / "typo" / "mlflow.db"
    env = {**os.environ, "SEGMENTS_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{missing}"
    result = subprocess.run(
        [*SEGMENTS, "models", "list"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 2
    assert "names a store that does not exist" in result.stderr
    assert not missing.parent.exists()


@pytest.mark.parametrize("command", [["models", "list"], ["models", "history"], ["unpin"]])
def test_a_mistyped_data_home_is_refused_not_given_an_empty_registry(tmp_path, command):
    """`SEGMENTS_HOME=/tmp/typo segments models list` created a registry there and said "no
    model versions registered yet", exit 0 (an ML engineer's walkthrough)."""
    typo = tmp_path / "typo"
    env = {**os.environ, "SEGMENTS_HOME": str(typo), "COLUMNS": "200"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [*SEGMENTS, *command], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert f"no model registry in the data home {typo}" in line
    assert "the folder does not exist" in line
    assert not typo.exists()


def test_a_data_home_that_is_a_file_is_named_as_one(tmp_path):
    """SEGMENTS_HOME naming a file read "the folder does not exist" and "no events ingested
    under …" (an ML engineer's review)."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    env = {**os.environ, "SEGMENTS_HOME": str(afile), "COLUMNS": "200"}
    env.pop("MLFLOW_TRACKING_URI", None)
    for command in (["models", "list"], ["train", "--as-of", "2026-06-30"]):
        result = subprocess.run(
            [*SEGMENTS, *command], capture_output=True, text=True, env=env, timeout=120
        )
        assert result.returncode == 2, command
        [line] = result.stderr.strip().splitlines()
        assert f"the data home {afile} is a file, not a folder" in line, command
    assert afile.read_text() == "not a folder"


def test_the_train_table_shows_revenue_shares_when_no_segment_holds_mrr():
    """A retailer's invoices make no MRR: every row read "0.0%" under "MRR share"."""
    from pipelines.cli.training import segments_table

    def shown(segments: list[dict]) -> str:
        buffer = io.StringIO()
        Console(file=buffer, width=200).print(segments_table(segments))
        return buffer.getvalue()

    rows = [
        {"id": 0, "name": "Seldom buying", "size": 10, "mrr_share": 0.0, "ltv_share": 0.25},
        {"id": 1, "name": "Frequent buyers", "size": 5, "mrr_share": 0.0, "ltv_share": 0.75},
    ]
    text = shown(rows)
    assert "revenue share (to date)" in text
    assert "75.0%" in text
    subscribed = [{**row, "mrr_share": share} for row, share in zip(rows, (0.4, 0.6), strict=True)]
    assert "MRR share" in shown(subscribed)
    assert "60.0%" in shown(subscribed)


def test_a_first_champion_of_weak_structure_is_said_so_in_words(capsys):
    """On RavenStack's accounts (silhouette 0.214) the only hint was a gate line for engineers;
    a product analyst read two halves of one activity gradient as two kinds of customer."""
    from types import SimpleNamespace

    from models.summaries import structure_line, weak_structure_text
    from pipelines.cli.training import _print_training
    from pipelines.train import TrainResult

    def result(silhouette: float) -> TrainResult:
        metrics = {"silhouette": silhouette, "stability": 0.99, "outlier_share": 0.0}
        return TrainResult("run", "1", 2, metrics, True, "1", [], [], 1.0)

    _print_training(result(0.214))
    weak = " ".join(capsys.readouterr().out.split())
    assert "version 1 is now champion" in weak
    assert " ".join(weak_structure_text(0.214).split()) in weak
    assert "silhouette 0.21; at most 0.25" in weak
    _print_training(result(0.42))
    assert "continuum" not in capsys.readouterr().out
    # the explorer's segments page and the report say it with the same words (structure_line)
    said = structure_line(SimpleNamespace(metrics={"silhouette": 0.214}))
    assert said == "The" + weak_structure_text(0.214)[3:] + "."
    assert structure_line(SimpleNamespace(metrics={"silhouette": 0.42})) is None
    assert structure_line(SimpleNamespace(metrics={})) is None
    assert weak_structure_text(float("nan")) is None  # not measured is not weak


def test_quarantine_commands_wait_for_an_ingestion_holding_the_data_home(tmp_path):
    """`quarantine list` opened the catalog without the store's lock: run while the service
    ingested, it failed with DuckDB's lock error, or made the ingestion fail (a 500 to every
    request written with it). It now waits for the write to end; past its wait, one line."""
    import time

    from concurrency_support import lock_held_elsewhere

    from feature_store import quarantine
    from feature_store.errors import StoreBusyError
    from feature_store.layout import StoreLayout

    bad = tmp_path / "bad.csv"
    bad.write_text("event_id,customer_id,occurred_at,event\nu1,c1,soon,login\n")
    run(["ingest", "--usage", str(bad)], tmp_path, check=False, process=False)
    layout = StoreLayout(tmp_path)
    with lock_held_elsewhere(layout.lock_path, 3) as released:  # an ingestion writing
        with (
            pytest.raises(StoreBusyError, match=r"held by another process .* for 0.2 s"),
            quarantine.catalog_for_reading(layout, wait_seconds=0.2),
        ):
            pass
        listed = run(["quarantine", "list", "--json"], tmp_path, process=False)
        finished = time.monotonic()
    assert finished > released[0]
    assert [row["reason"] for row in json.loads(listed.stdout)["rows"]] == ["invalid_occurred_at"]


def test_quarantine_commands_refuse_a_data_home_that_does_not_exist(
    segments, tmp_path, monkeypatch
):
    """A mistyped SEGMENTS_HOME was created, and said to hold no quarantined rows."""
    typo = tmp_path / "typo"
    monkeypatch.setenv("SEGMENTS_HOME", str(typo))
    for command in (["quarantine", "list"], ["quarantine", "show", "q1"]):
        line = refused(segments(*command))
        assert f"no data home at {typo} (the folder does not exist" in line
    assert not typo.exists()


def test_an_event_dated_in_year_9999_does_not_stretch_the_datas_range(segments, tmp_path):
    """A CRM's probe: one event of a wrong year made every message name 9999 as the data's end,
    and an as-of months past the real data passed the range check."""
    events = tmp_path / "usage.csv"
    rows = [*usage_rows(12, "2026-03-31"), "late,c0,9999-01-01T00:00:00Z,login"]
    events.write_text("event_id,customer_id,occurred_at,event\n" + "\n".join(rows) + "\n")
    assert segments("ingest", "--usage", str(events))[0] == 0
    after = refused(segments("train", "--as-of", "2026-07-01"))
    assert "more than 90 days after the last accepted event" in after
    assert (
        "accepted events run from 2026-03-31 00:00:00 UTC to 2026-03-31 00:00:00 UTC, besides 1 "
        "dated after now (the latest 9999-01-01 00:00:00 UTC: a wrong year?)"
    ) in after


def test_a_billing_event_dated_9999_does_not_hide_that_billing_ended_long_before(tmp_path):
    """The backtest's window end is observed only if billing reaches it: one billing event of a
    wrong year made billing look current, and the rates would read 0% (a review)."""
    from datetime import datetime

    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout
    from pipelines.train import window_end_shortfall

    rows = [f"b{i},c{i},2026-03-31T00:00:00Z,invoice_paid,10,EUR" for i in range(3)]
    rows.append("late,c0,9999-01-01T00:00:00Z,invoice_paid,10,EUR")
    billing = tmp_path / "billing.csv"
    billing.write_text("event_id,customer_id,occurred_at,type,amount,currency\n" + "\n".join(rows))
    layout = StoreLayout(tmp_path / "home")
    ingest_files(layout, {"billing": billing})
    said = window_end_shortfall(layout, datetime(2026, 6, 29))
    assert said is not None
    assert said.startswith("billing events end on 2026-03-31, 90 days before")
    assert window_end_shortfall(layout, datetime(2026, 4, 2)) is None
    # billing after a past as-of shows the export reaches it (a review: it was read as ending)
    later = "b9,c1,2026-08-01T00:00:00Z,invoice_paid,10,EUR"
    (tmp_path / "later.csv").write_text(billing.read_text().splitlines()[0] + "\n" + later)
    ingest_files(layout, {"billing": tmp_path / "later.csv"})
    assert window_end_shortfall(layout, datetime(2026, 6, 29)) is None


@pytest.mark.parametrize("missing", ["sqlglot", "pyspark"])
def test_the_spark_engine_without_the_spark_extra_is_one_line(tmp_path, monkeypatch, missing):
    """The Docker image installs the service's extras, not Spark's: `--engine spark` ended in a
    traceback naming sqlglot (an operator's review)."""
    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed: importing it fails
    features = run(
        ["features", "--engine", "spark", "--as-of", "2026-06-30",
         "--out", str(tmp_path / "f.parquet")],
        tmp_path / "home", check=False, process=False,
    )  # fmt: skip
    assign = run(
        ["assign", "--engine", "spark", "--in", str(tmp_path / "f.parquet"),
         "--out", str(tmp_path / "a.parquet")],
        tmp_path / "home", check=False, process=False,
    )  # fmt: skip
    for result in (features, assign):
        assert result.returncode == 2
        assert result.stderr.strip() == (
            f"error: --engine spark needs the spark extra ({missing} is not installed): pip "
            "install 'customer-segments[spark]', and Java 17 or later"
        )


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--billing", "b.parquet"], "not events: leave out --billing"),
        (["--usage", "u.parquet", "--billing", "b.parquet"], "leave out --billing and --usage"),
        (["--as-of", "2025-01-01"], "cannot check or set another: leave out --as-of"),
    ],
)
def test_spark_assignment_refuses_the_options_it_would_drop(segments, tmp_path, extra, said):
    """`segments assign --engine spark` wrote the table's own as-of beside --as-of 2025-01-01
    and never read --billing, exit 0 (a data engineer's review): each is now refused in one
    line, before any Spark work."""
    table = tmp_path / "f.parquet"
    command = ["assign", "--engine", "spark", "--in", str(table), "--out", "a.parquet", *extra]
    assert said in refused(segments(*command))


@pytest.mark.parametrize(
    ("master", "said"),
    [
        ("bogus", "'bogus' is not a master URL"),
        ("local[x]", "'local[x]' is not a master URL"),
        ("mesos://h:5050", "'mesos://h:5050' is not a master URL"),  # gone in Spark 4
    ],
)
def test_a_master_spark_would_refuse_is_one_line_before_its_jvm(segments, tmp_path, master, said):
    """ "bogus" printed spark-submit's Java stack trace and then "Java gateway process exited
    before sending its port number", which does not say what was wrong (a data engineer's
    review). Every form Spark takes passes."""
    from feature_store.spark_engine import refuse_unknown_master

    for valid in (
        "local", "local[4]", "local[*]", "local[4,2]", "local[*, 3]", "local[4 ,2]", "yarn",
        "local-cluster[2,1,1024]", "local-cluster[ 2,1,1024 ]", "spark://h1:7077,h2:7077",
        "k8s://https://host:443", "sc://host:15002/;token=abc",
    ):  # fmt: skip
        refuse_unknown_master(valid)
    command = ["features", "--engine", "spark", "--master", master, "--as-of", "2026-06-30"]
    line = refused(segments(*command, "--out", str(tmp_path / "f.parquet")))
    assert said in line
    assert "gateway" not in line
