"""`make run`'s demo company ends yesterday, and a data home keeps the day its demo was made with.

Events sent to the running service are measured as of now; with a demo history that ended on a
fixed day months before, a demo customer's refreshed vector read as an outlier. The Makefile's
choice of the day is checked with `make -n` (nothing runs), the claim that the day changes
nothing but the dates on the generator itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.demo_data import generate_company

REPO = Path(__file__).resolve().parents[1]


def dry_run(home: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """`make -n run` for this data home: what it would run, nothing run. The Makefile works out
    the day with ``PYTHON`` (python3 wherever the machine keeps it: this test's)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("needs make")
    return subprocess.run(
        [make, "-n", "-C", str(REPO), "run", *overrides],
        env={"PATH": "/usr/bin:/bin", "SEGMENTS_HOME": str(home), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
    )


def run_plan(home: Path, *overrides: str) -> str:
    done = dry_run(home, *overrides)
    assert done.returncode == 0, done.stderr
    return done.stdout


def trained_as_of(plan: str) -> str:
    [as_of] = re.findall(r"segments train --as-of (\S+)", plan)
    return as_of


def planned_as_of(home: Path, *overrides: str) -> str:
    return trained_as_of(run_plan(home, *overrides))


def test_a_new_demo_ends_yesterday_and_records_that_day(tmp_path):
    home = tmp_path / "home"
    before = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    plan = run_plan(home)
    after = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    as_of = trained_as_of(plan)
    assert as_of in {before, after}
    assert f"--end {as_of}" in plan
    # recorded before the demo is written: a demo cut short is never read as of another day
    assert plan.index(f"echo {as_of} > {home / 'demo' / 'last_day.txt'}") < plan.index("demo-data")


def test_a_data_home_keeps_the_day_its_demo_was_made_with(tmp_path):
    demo = tmp_path / "home" / "demo"
    demo.mkdir(parents=True)
    (demo / "billing_events.parquet").touch()
    # made before the day was recorded: the fixed day the demo ended on then
    assert planned_as_of(tmp_path / "home") == "2026-06-30"
    (demo / "last_day.txt").write_text("2026-11-15\n")
    assert planned_as_of(tmp_path / "home") == "2026-11-15"
    assert planned_as_of(tmp_path / "home", "AS_OF=2026-03-31") == "2026-03-31"
    (demo / "last_day.txt").write_text("")  # an empty record is no record
    assert planned_as_of(tmp_path / "home") == "2026-06-30"


def test_make_run_without_a_day_says_so_in_one_line(tmp_path):
    refused = dry_run(tmp_path / "home", "PYTHON=no-such-python")
    assert refused.returncode != 0
    [line] = refused.stderr.strip().splitlines()
    assert "give one: make run AS_OF=YYYY-MM-DD" in line
    assert "segments" not in refused.stdout  # nothing would have run


def test_the_demo_company_is_the_same_whatever_its_last_day():
    first = generate_company(customers=200, months=6, seed=5, end=date(2026, 6, 30))
    later = generate_company(customers=200, months=6, seed=5, end=date(2026, 12, 6))
    for stream in ("billing", "usage"):
        a, b = getattr(first, stream).to_pandas(), getattr(later, stream).to_pandas()
        assert len(a) == len(b) > 0
        assert set(b["occurred_at"] - a["occurred_at"]) == {timedelta(days=159)}
        rest = [column for column in a.columns if column != "occurred_at"]
        assert a[rest].equals(b[rest]), stream
    assert first.truth.equals(later.truth)
