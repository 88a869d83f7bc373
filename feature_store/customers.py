"""The optional customer attribute table: ``customer_id`` plus any firmographic columns.

Attributes change over time (a company grows), so a later ingestion replaces a customer's stored
attributes; re-sending identical attributes is a duplicate. Within one file a later row replaces
an earlier one of the same id too (a history appended to: ``superseded`` in the report; the first
row won, and 20 moves from US to DE were counted as duplicates, a data engineer's review). The id
is read as the events' is: spaces around it are not part of it, and one of white space only or a
tool's word for no value ("nan", "NULL") is missing. Rows without a usable ``customer_id`` are
quarantined.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from feature_store import quarantine
from feature_store.engine import sql_string
from feature_store.errors import InputFileError
from feature_store.layout import StoreLayout
from feature_store.offline_store import PARTIAL_SUFFIX
from feature_store.readers import ROW_NUMBER, describe_columns, load_raw_rows
from feature_store.schema import MAX_ID_LENGTH, RAW_LINE_COLUMN, Reason
from feature_store.validation import names_something, raw_json_expression

STREAM = "customers"


def stored_customers_sql(layout: StoreLayout) -> str | None:
    """Latest attributes per customer (``customer_id``, ``attributes`` JSON), or None if none."""
    parts = sorted(layout.customers_dir.glob("*.parquet")) if layout.customers_dir.is_dir() else []
    if not parts:
        return None
    files = "[" + ", ".join(sql_string(str(p)) for p in parts) + "]"
    return (
        f"SELECT customer_id, arg_max(attributes, batch_id) AS attributes "
        f"FROM read_parquet({files}) GROUP BY customer_id"
    )


def ingest_customers(
    con: duckdb.DuckDBPyConnection, layout: StoreLayout, path: Path, batch_id: str
) -> dict[str, object]:
    """Ingest one attribute file; returns the same counts as an event stream's report."""
    raw = load_raw_rows(con, path, "raw_customers")
    if "customer_id" not in raw.types:
        raise InputFileError(
            f"{path}: not a customers file: required column customer_id missing "
            f"(found: {describe_columns(raw.columns)})"
        )
    if not raw.received:
        raise InputFileError(f"{path}: no rows; expected customer attributes")
    attributes = raw_json_expression({k: v for k, v in raw.types.items()}, raw.table)
    # as an event's id is read (``validation``): an accounts export with a space after every id
    # joined no event's customer, and a discovery's filter on its attributes selected nobody
    customer = f"trim(CAST({raw.table}.customer_id AS VARCHAR), ' ')"
    reason = (
        f"CASE WHEN NOT {names_something(customer)} THEN '{Reason.MISSING_CUSTOMER_ID.value}' "
        f"WHEN length({customer}) > {MAX_ID_LENGTH} THEN '{Reason.INVALID_CUSTOMER_ID.value}' END"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE staged_customers AS SELECT {ROW_NUMBER}, "
        f"{customer} AS customer_id, {attributes} AS attributes, {reason} AS reason "
        f"FROM {raw.table}"
    )
    stored = (
        stored_customers_sql(layout)
        or "SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS attributes WHERE false"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE accepted_customers AS
            SELECT s.customer_id, s.attributes FROM (
                SELECT * FROM staged_customers WHERE reason IS NULL
                QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY {ROW_NUMBER} DESC) = 1
            ) AS s ANTI JOIN ({stored}) AS st
              ON st.customer_id = s.customer_id AND st.attributes = s.attributes"""
    )
    (valid,) = con.execute("SELECT count(*) FROM staged_customers WHERE reason IS NULL").fetchone()
    # rows a later row of the same id with other attributes replaced (identical copies are
    # duplicates)
    (superseded,) = con.execute(
        f"""SELECT count(*) FROM (
                SELECT attributes, last_value(attributes) OVER (
                    PARTITION BY customer_id ORDER BY {ROW_NUMBER}
                    ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS kept
                FROM staged_customers WHERE reason IS NULL)
            WHERE attributes IS DISTINCT FROM kept"""
    ).fetchone()
    (accepted,) = con.execute("SELECT count(*) FROM accepted_customers").fetchone()
    reasons = dict(
        con.execute(
            "SELECT reason, count(*) FROM staged_customers WHERE reason IS NOT NULL GROUP BY 1"
        ).fetchall()
    )
    if raw.malformed_count:
        reasons[Reason.MALFORMED_ROW.value] = raw.malformed_count
    quarantine.quarantine_rows(
        con,
        f"""SELECT md5('{STREAM}' || attributes) AS quarantine_id, '{STREAM}' AS stream, reason,
                   [reason] AS reasons, NULL AS event_id, customer_id,
                   {sql_string(str(path))} AS source_file, {ROW_NUMBER} AS source_row,
                   attributes AS raw, {sql_string(batch_id)} AS batch_id
            FROM staged_customers WHERE reason IS NOT NULL
            UNION ALL
            SELECT md5('{STREAM}' || text), '{STREAM}', '{Reason.MALFORMED_ROW.value}',
                   ['{Reason.MALFORMED_ROW.value}'], NULL, NULL, {sql_string(str(path))}, source_row,
                   to_json(struct_pack({RAW_LINE_COLUMN} := text)), {sql_string(batch_id)}
            FROM {raw.malformed_table}""",
    )
    if accepted:
        layout.customers_dir.mkdir(parents=True, exist_ok=True)
        partial = layout.customers_dir / f".{batch_id}{PARTIAL_SUFFIX}"
        con.execute(
            f"COPY (SELECT customer_id, attributes, {sql_string(batch_id)} AS batch_id "
            f"FROM accepted_customers) TO {sql_string(str(partial))} (FORMAT parquet)"
        )
        os.replace(partial, layout.customers_dir / f"{batch_id}.parquet")
    quarantined = sum(reasons.values())
    return {
        "stream": STREAM,
        "source_file": str(path),
        "received": raw.received,
        "accepted": int(accepted),
        "duplicates": int(valid - accepted - superseded),
        "superseded": int(superseded),
        "quarantined": int(quarantined),
        "reasons": {str(k): int(v) for k, v in reasons.items()},
        "unknown_columns": [],
        "resolved_from_quarantine": 0,
    }
