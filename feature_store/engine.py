"""DuckDB connections configured the one way this project needs: UTC, bounded threads."""

from __future__ import annotations

import os

import duckdb


def connect(database: str = ":memory:", *, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection whose session time zone is UTC.

    UTC matters: naive timestamps in the contract mean UTC, and ``occurred_at::DATE`` must be the
    UTC calendar day.
    """
    con = duckdb.connect(database)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET threads = {threads or os.cpu_count() or 1}")
    # Progress bars are ours (rich) at the CLI edge; DuckDB's would interleave with them.
    con.execute("SET enable_progress_bar = false")
    return con


def sql_string(value: str) -> str:
    """Quote a value as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"
