"""Batch jobs that read a user's file hold a bounded amount of memory and spill the rest to the
data home (``SEGMENTS_MEMORY_LIMIT``; ``feature_store.engine``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from feature_store.engine import (
    MAX_SPILLING_MEMORY,
    MIN_MEMORY_LIMIT,
    connect,
    default_spilling_memory,
    memory_limit_bytes,
)
from feature_store.layout import StoreLayout
from pipelines.cli import main

SEGMENTS = [sys.executable, "-m", "pipelines"]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GB", 2 * 1000**3),
        ("512MiB", 512 * 1024**2),
        (" 1.5 gib ", int(1.5 * 1024**3)),
        ("64MiB", MIN_MEMORY_LIMIT),
    ],
)
def test_a_memory_limit_is_read_in_duckdbs_units(text, size):
    assert memory_limit_bytes(text) == size


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("3", "is not a size"),
        ("2 gigabytes", "is not a size"),
        ("-1GB", "is not a size"),
        ("10MB", "below 64MiB"),
    ],
)
def test_a_memory_limit_that_is_no_size_or_too_small_is_refused_with_its_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        memory_limit_bytes(text)


def test_a_spilling_connection_holds_the_limit_it_is_given_and_others_duckdbs_own(tmp_path):
    def limit(con) -> str:
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    given = connect(spill_to=tmp_path, memory_limit=300 * 1024**2)
    assert limit(given) == "300.0 MiB"
    assert MIN_MEMORY_LIMIT <= default_spilling_memory() <= MAX_SPILLING_MEMORY
    default = connect(spill_to=tmp_path)
    assert limit(default) == limit(
        connect(spill_to=tmp_path, memory_limit=default_spilling_memory())
    )
    # a connection that does not spill to a data home keeps DuckDB's default (80% of memory),
    # which is above the spilling limit on any machine of more than 5 GB
    assert limit(connect()) != limit(given)


def test_a_spilling_connection_runs_one_thread_per_64_mib_of_its_limit(tmp_path):
    def threads(con) -> int:
        return int(con.execute("SELECT current_setting('threads')").fetchone()[0])

    assert threads(connect(spill_to=tmp_path, memory_limit=64 * 1024**2, threads=8)) == 1
    assert threads(connect(spill_to=tmp_path, memory_limit=128 * 1024**2, threads=8)) == 2
    assert threads(connect(spill_to=tmp_path, memory_limit=4 * 1024**3, threads=8)) == 8
    assert threads(connect(threads=8)) == 8  # not spilling: as asked


def test_the_default_limit_is_half_a_containers_cap_not_half_the_host(tmp_path, monkeypatch):
    """Sized from the host's memory, the default of a 2 GiB container on a large host was past
    the container's cap, and the process was killed where DuckDB would have spilled."""
    import feature_store.engine

    capped, unlimited = tmp_path / "memory.max", tmp_path / "v1-limit"
    capped.write_text("2147483648\n")
    unlimited.write_text("max\n")
    at_the_root = tmp_path / "cgroup"
    at_the_root.write_text("0::/\n")  # no nested group: the root files alone
    monkeypatch.setattr(feature_store.engine, "PROC_CGROUP", at_the_root)
    monkeypatch.setattr(feature_store.engine, "CGROUP_MEMORY_FILES", (unlimited, capped))
    assert default_spilling_memory() == 1024**3
    monkeypatch.setattr(feature_store.engine, "CGROUP_MEMORY_FILES", (unlimited,))
    assert default_spilling_memory() == min(
        MAX_SPILLING_MEMORY, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    )


def test_a_cap_on_the_process_s_own_nested_cgroup_counts(tmp_path, monkeypatch):
    """Only the root's files were read: a systemd unit's MemoryMax (a nested group, under a root
    with no cap) left the default sized from the host (a note's open item)."""
    import feature_store.engine
    from feature_store.engine import cgroup_memory_files

    root = tmp_path / "sys-fs-cgroup"
    unit = root / "system.slice" / "segments.service"
    unit.mkdir(parents=True)
    (unit / "memory.max").write_text("1073741824\n")  # 1 GiB on the unit
    (root / "system.slice" / "memory.max").write_text("max\n")
    membership = tmp_path / "cgroup"
    membership.write_text("0::/system.slice/segments.service\n")
    monkeypatch.setattr(feature_store.engine, "CGROUP_ROOT", root)
    monkeypatch.setattr(feature_store.engine, "CGROUP_MEMORY_FILES", (root / "memory.max",))
    monkeypatch.setattr(feature_store.engine, "PROC_CGROUP", membership)
    assert default_spilling_memory() == 512 * 1024**2
    # cgroup v1: the memory controller's line, its group and the groups above it
    assert cgroup_memory_files("4:memory:/jobs/42\n3:cpu:/other\n", root) == [
        root / "memory" / "jobs" / "42" / "memory.limit_in_bytes",
        root / "memory" / "jobs" / "memory.limit_in_bytes",
    ]
    assert cgroup_memory_files("0::/\n", root) == []


def test_running_out_of_memory_is_one_line_naming_the_limit(monkeypatch, capsys):
    """DuckDB's OutOfMemoryException reached the user as a 53-line traceback and exit 1."""
    import duckdb

    from pipelines.cli.common import USAGE_ERROR, run_command

    monkeypatch.setenv("SEGMENTS_MEMORY_LIMIT", "64MiB")

    def fail() -> None:
        raise duckdb.OutOfMemoryException("Out of Memory Error: failed to pin block of 256 KiB")

    assert run_command(fail) == USAGE_ERROR
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "DuckDB ran out of memory (Out of Memory Error: failed to pin block" in line
    assert "SEGMENTS_MEMORY_LIMIT bounds it (SEGMENTS_MEMORY_LIMIT=64MiB): raise that" in line

    def python_fails() -> None:  # numpy's, in training: not DuckDB's limit, so not named
        raise MemoryError("Unable to allocate 728. TiB for an array")

    assert run_command(python_fails) == USAGE_ERROR
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "out of memory (Unable to allocate 728. TiB" in line
    assert "SEGMENTS_MEMORY_LIMIT" not in line


def test_the_layout_reads_the_limit_from_the_environment_and_names_the_variable(tmp_path):
    home = str(tmp_path)
    assert StoreLayout.from_environment({"SEGMENTS_HOME": home}).memory_limit is None
    read = StoreLayout.from_environment({"SEGMENTS_HOME": home, "SEGMENTS_MEMORY_LIMIT": "1GiB"})
    assert read.memory_limit == 1024**3
    with pytest.raises(ValueError, match=r"^SEGMENTS_MEMORY_LIMIT: 'lots' is not a size"):
        StoreLayout.from_environment({"SEGMENTS_HOME": home, "SEGMENTS_MEMORY_LIMIT": "lots"})


def billing_file(path: Path, rows: int) -> Path:
    """Paid invoices of 5,000 customers, about 65 bytes a row."""
    with path.open("w") as out:
        out.write("event_id,customer_id,occurred_at,type,amount,currency\n")
        for i in range(rows):
            out.write(f"b{i},cus_{i % 5000},2025-0{1 + i % 9}-1{i % 10}T10:00:00Z,")
            out.write("invoice_paid,49.00,USD\n")
    return path


def test_ingestion_under_the_smallest_limit_spills_and_stores_every_row(
    tmp_path, monkeypatch, capsys
):
    """A file whose reading needs more than the limit is stored whole, not refused: DuckDB spills
    to the data home. At 16 MB the same reading failed ("could not allocate block"), so the
    limit is applied, and 64 MiB, the smallest accepted, is enough, on a machine of 8 cores too:
    each thread pins buffers of its own, and on 4 threads it failed ("failed to pin block", a
    review), so a spilling connection runs one thread per 64 MiB of its limit."""
    import feature_store.engine

    monkeypatch.setattr(feature_store.engine.os, "cpu_count", lambda: 8)
    billing = billing_file(tmp_path / "billing.csv", 300_000)  # 19 MB, read into more than 64 MiB
    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEGMENTS_MEMORY_LIMIT", "64MiB")
    with pytest.raises(SystemExit) as stop:
        main(["ingest", "--billing", str(billing), "--json"])
    out = capsys.readouterr().out
    assert stop.value.code == 0
    report = json.loads(out)["billing"]
    assert (report["received"], report["accepted"]) == (300_000, 300_000)
    assert not any((tmp_path / "home" / ".spill").glob("**/*.tmp"))  # emptied on close


def test_a_memory_limit_that_is_no_size_is_one_line_from_the_cli_and_the_service(tmp_path):
    env = {**os.environ, "SEGMENTS_HOME": str(tmp_path / "home"), "SEGMENTS_MEMORY_LIMIT": "3"}
    env["SEGMENTS_API_KEYS"] = '{"k": ["score"]}'
    billing = billing_file(tmp_path / "billing.csv", 10)
    for command in (["ingest", "--billing", str(billing)], ["serve", "--port", "59317"]):
        result = subprocess.run(
            [*SEGMENTS, *command], capture_output=True, text=True, env=env, timeout=120
        )
        assert result.returncode == 2, (command, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert "SEGMENTS_MEMORY_LIMIT: '3' is not a size" in line, line
    assert not (tmp_path / "home" / "offline").exists()
