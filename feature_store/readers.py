"""Load an event file of any accepted format into a DuckDB table of raw rows, losing none.

Rows that cannot even be split into columns (a CSV line with the wrong number of fields, a JSON
Lines line that is not a JSON object) are set aside in a table of their own so that ingestion
quarantines them. They stay in the database, never in a Python list: a file of millions of such
lines would otherwise hold all of them as Python objects until the quarantine was written.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_store import formats
from feature_store.engine import sql_identifier, sql_string
from feature_store.errors import InputFileError
from feature_store.formats import (
    KEPT_CHARACTERS,
    FileFormat,
    bounded_lines,
    file_format,
    first_line,
    kept_line,
    open_text,
    require_file,
)
from feature_store.schema import STREAMS, column_names

ROW_NUMBER = "__row"


# The columns of a table of rows set aside (``RawRows.malformed_table``).
MALFORMED_COLUMNS = {"source_row": pa.int64(), "text": pa.string()}


@dataclass
class RawRows:
    """A file loaded into ``table``: source columns plus ``__row`` (1-based position in the file).

    ``malformed_table`` names the rows that did not split into columns (``source_row``, ``text``:
    its position and the text the quarantine keeps), in the connection that loaded them."""

    table: str
    columns: list[str]
    types: dict[str, str]
    row_count: int
    malformed_count: int = 0

    @property
    def malformed_table(self) -> str:
        return malformed_table_of(self.table)

    @property
    def received(self) -> int:
        """Every data row of the file, whether or not it split into columns."""
        return self.row_count + self.malformed_count


def malformed_table_of(table: str) -> str:
    """Where the rows of ``table`` that did not split into columns are set aside."""
    return f"{table}_malformed"


def describe_columns(columns: list[str], shown: int = 5, width: int = 40) -> str:
    """Column names for a one-line message: a file of random text has long, many "columns"."""
    names = [name if len(name) <= width else name[: width - 1] + "…" for name in columns[:shown]]
    more = f" and {len(columns) - shown} more" if len(columns) > shown else ""
    return (", ".join(names) or "none") + more


def load_raw_rows(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    table: str,
    check_header: Callable[[RawRows], None] | None = None,
) -> RawRows:
    """Load ``path`` into the temporary table ``table`` and describe what was loaded.
    ``check_header`` sees a CSV's columns (``csv_headers``) before its rows are loaded, and may
    refuse the file then."""
    require_file(path)
    kind = file_format(path)
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: the file is empty")
    if kind is not FileFormat.PARQUET:
        _require_utf8_text(path)
    loader = _LOADERS[kind]
    try:
        if kind is FileFormat.CSV and check_header is not None:
            headers = csv_headers(con, path)
            # refused early only when every reading of the header is: else the load decides
            if headers and all(_refuses(check_header, header) for header in headers):
                check_header(headers[-1])
        loader(con, path, table)
    except (duckdb.Error, OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
        # EOFError: a gzip file cut short (click would report it as "interrupted"); zlib.error:
        # one damaged inside
        raise InputFileError(f"{path}: cannot read as {kind}: {first_line(error)}") from None
    described = con.execute(f"DESCRIBE {table}").fetchall()
    types = {name: sql_type for name, sql_type, *_ in described if name != ROW_NUMBER}
    (row_count,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    (malformed_count,) = con.execute(f"SELECT count(*) FROM {malformed_table_of(table)}").fetchone()
    return RawRows(table, list(types), types, row_count, malformed_count)


def _as_file_column(name: str) -> str:
    """A file's column named as the readers' row number (in any case: DuckDB's names ignore it)
    renamed, to be reported as an unknown column like any other: kept so it refused the file,
    or, in another case, DuckDB read its values as the row numbers."""
    return f"{name} (in the file)" if name.lower() == ROW_NUMBER else name


def refuse_a_contract_column_twice(
    path: Path | str, names: Iterable[str], what: str = "file"
) -> None:
    """Refuse a file that names a column of the contract twice, ignoring case (``amount`` and
    ``Amount``; a CSV header's fields come trimmed, as DuckDB reads them), naming the column:
    DuckDB holds one column per name so spelt, and left to it the first copy's values were
    stored whichever the file meant.
    ``names`` are the file's own (a header's fields, a Parquet schema's, a batch of JSON keys):
    DuckDB renames a second copy ``amount_1``, which a file may also name on purpose."""
    seen: set[str] = set()
    for name in names:
        base = name.lower()
        if base in _CONTRACT_COLUMNS and base in seen:
            raise InputFileError(
                f"{path}: the {what} names column {base!r} twice (ignoring case and spaces); "
                "keep the one meant"
            )
        seen.add(base)


_CONTRACT_COLUMNS = frozenset(name for stream in STREAMS for name in column_names(stream))


def _set_aside(con: duckdb.DuckDBPyConnection, table: str, select: str | None = None) -> None:
    """Create the table of ``table``'s rows set aside, from ``select`` (``source_row``, ``text``)
    or empty."""
    query = select or "SELECT NULL::BIGINT AS source_row, NULL::VARCHAR AS text WHERE false"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {malformed_table_of(table)} AS {query}")


def _load_parquet(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> None:
    try:  # the top-level columns as the file names them (DuckDB's view renames a second copy)
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as error:
        raise InputFileError(f"{path}: cannot read as parquet: {first_line(error)}") from None
    refuse_a_contract_column_twice(path, names)
    # A view, not a copy: Parquet is already columnar and typed, and DuckDB scans it in place.
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {table} AS "
        f"SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS {ROW_NUMBER} "
        f"FROM read_parquet({sql_string(str(path))}, file_row_number = true)"
    )
    _set_aside(con, table)  # a Parquet file has no rows that fail to split into columns


def _load_csv(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> None:
    try:
        _load_csv_file(con, path, table)
    except duckdb.Error:
        if not mixes_line_endings(path):
            raise
        # DuckDB's reader takes one kind of line ending per file, and a file whose lines end in
        # both CRLF and LF (an export with rows appended by another tool) failed whole with
        # "Error when sniffing file". Read from a copy whose lines all end in LF: the same lines,
        # so the same row numbers.
        # Where the connection spills (the data home's, ``StoreLayout.spill_dir``), not a small
        # system /tmp: the copy is the whole file, uncompressed.
        (spill,) = con.execute("SELECT current_setting('temp_directory')").fetchone()
        near = Path(spill) if spill and Path(spill).is_absolute() else None  # not DuckDB's ".tmp"
        if near is not None:
            near.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=near) as folder:
            copy = Path(folder) / "line-feeds.csv"
            _write_with_line_feeds(path, copy)
            try:
                _load_csv_file(con, copy, table)
            except (InputFileError, duckdb.Error) as error:
                # said of the user's file, not of the copy
                text = first_line(error).replace(str(copy), str(path))
                raise InputFileError(
                    text
                    if isinstance(error, InputFileError)
                    else f"{path}: cannot read as csv: {text}"
                ) from None


def mixes_line_endings(path: Path) -> bool:
    """Whether some lines of a text file end in CRLF and others in a bare LF."""
    crlf = bare_lf = False
    last = b""
    with formats.open_binary(path) as handle:
        while chunk := handle.read(1 << 20):
            joined = last + chunk
            feeds = joined.count(b"\n")
            pairs = joined.count(b"\r\n")
            crlf = crlf or pairs > 0
            bare_lf = bare_lf or feeds > pairs
            if crlf and bare_lf:
                return True
            last = joined[-1:]  # a CR that the next chunk's LF ends
            if last == b"\n":
                last = b""
    return False


def _write_with_line_feeds(source: Path, target: Path) -> None:
    """Copy ``source`` (through gzip if named so) to ``target`` with every CRLF written as LF,
    a chunk at a time."""
    with formats.open_binary(source) as reading, target.open("wb") as writing:
        held = b""
        while chunk := reading.read(1 << 20):
            joined = held + chunk
            held = b"\r" if joined.endswith(b"\r") else b""
            writing.write(joined[: len(joined) - len(held)].replace(b"\r\n", b"\n"))
        writing.write(held)


def _load_csv_file(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> None:
    # Every field is read as text so that validation, not the CSV sniffer, decides what is a
    # number or a timestamp; lines that do not split into the header's columns are kept aside.
    rejects_table, rejects_scan = f"{table}_rejects", f"{table}_reject_scans"
    options = (
        f"all_varchar = true, header = true, store_rejects = true, "
        f"rejects_table = '{rejects_table}', rejects_scan = '{rejects_scan}'"
    )
    source = sql_string(str(path))
    told = _csv_read_options(con, path)
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM read_csv({source}, "
            f"{options}{told})"
        )
    except duckdb.Error as error:
        if told or not _LINE_TOO_LONG.search(str(error)):
            raise
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM read_csv({source}, "
            f"{options}{_told_the_header(path)})"
        )
    refuse_a_contract_column_twice(path, [name.strip() for name in _header_fields(path).names])
    for name, *_ in con.execute(f"DESCRIBE {table}").fetchall():
        if name != _as_file_column(name):  # it refused the whole file ("already exists")
            con.execute(
                f"ALTER TABLE {table} RENAME COLUMN {sql_identifier(name)} TO "
                f"{sql_identifier(_as_file_column(name))}"
            )
    # A table keeps insertion order, so rowid is the position among the well-formed data rows.
    con.execute(f"ALTER TABLE {table} ADD COLUMN {ROW_NUMBER} BIGINT")
    con.execute(f"UPDATE {table} SET {ROW_NUMBER} = rowid + 1")
    if _table_is_empty_of_columns(con, table):
        _set_aside(con, table)
        return
    # The text kept as ``formats.kept_line`` keeps it, in SQL: the lines stay in the database.
    # DuckDB's text of a rejected line in a CRLF file starts with the line feed before it.
    kept = KEPT_CHARACTERS
    _set_aside(
        con,
        table,
        f"""SELECT line - 1 AS source_row, CASE
                WHEN over_long THEN left(text, {kept}) || {sql_string(_CUT_CSV_LINE)}
                WHEN length(text) <= {kept} THEN text
                ELSE left(text, {kept}) || format('… [cut: {{:,}} characters in all, md5 {{}}]',
                                                  length(text), md5(text))
            END AS text
            FROM (SELECT line, ltrim(any_value(csv_line), chr(13) || chr(10)) AS text,
                         bool_or(error_type = 'LINE SIZE OVER MAXIMUM') AS over_long
                  FROM {rejects_table} GROUP BY line)
            ORDER BY line""",
    )
    if con.execute(f"SELECT count(*) FROM {malformed_table_of(table)}").fetchone()[0]:
        _number_rows_around(con, table)  # a copy of the table: not for a file with none


# The most lines of one CSV file set aside as malformed. DuckDB's reader holds 2-3 KB per rejected
# line outside its memory limit until the scan ends (2.5 GB for 900,001 short lines in
# ``bench/bench_malformed.py`` before this bound), so the
# number is bounded before the file is read; a file with more is not the export it claims to be.
MAX_MALFORMED_CSV_LINES = 250_000


def _told_the_header(path: Path) -> str:
    """Options that tell DuckDB's CSV reader the header's columns and delimiter. The sniffer stops
    at a line over the size limit before any row is read; told these instead, the reader sets
    that line aside like any other malformed line and reads the rest. In one pass: read in
    parallel after such a line, DuckDB lost the rows of whole buffers without a word (60,497 of
    a file's 400,001)."""
    header = _header(path)
    columns = ", ".join(f"{sql_string(name)}: 'VARCHAR'" for name in header.names)
    return (
        f", auto_detect = false, delim = {sql_string(header.delimiter)}, quote = '\"', "
        f"escape = '\"', columns = {{{columns}}}, parallel = false"
    )


def _csv_read_options(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """The options a CSV file must be read with (``_told_the_header`` when it has a line the
    sniffer stops at, else none), after refusing one with more than ``MAX_MALFORMED_CSV_LINES``
    lines that do not split into its header's columns, by counting instead of reading them.
    The file's lines bound its records; past the bound, a scan that skips malformed lines
    (bounded in memory) counts the rows that split and the line breaks inside their quoted
    fields: the lines neither account for are malformed or blank. Only when they are too many,
    a scan that pads and cuts every record to the header counts the records, which blank lines
    are not."""
    lines = _count_lines(path) - 1  # the header
    if lines <= MAX_MALFORMED_CSV_LINES:
        return ""
    source = sql_string(str(path))
    scan = "SELECT {} FROM read_csv({}, all_varchar = true, header = true, {}{})"
    # line breaks in a field: CRLF, lone CR and lone LF, one each
    one_kind = "replace(COLUMNS(*), chr(13) || chr(10), chr(10))"
    breaks = (
        f"sum(length({one_kind}) - length(replace(replace({one_kind}, chr(13), ''), chr(10), '')))"
    )
    # A bare count(*) reads no field, so it counted lines that are not UTF-8 as rows, which the
    # reading rejects; reading every field (a hash is never NULL) counts what the reading keeps.
    kept = "count(*) FILTER (WHERE hash(COLUMNS(*)) IS NOT NULL)"
    told = ""
    try:
        try:
            (rows,) = con.execute(
                scan.format(kept, source, "ignore_errors = true", told)
            ).fetchone()
        except duckdb.Error as error:
            if not _LINE_TOO_LONG.search(str(error)):
                raise
            told = _told_the_header(path)
            (rows,) = con.execute(
                scan.format(kept, source, "ignore_errors = true", told)
            ).fetchone()
        if lines - rows <= MAX_MALFORMED_CSV_LINES:  # the usual file: a count is enough
            return told
        found = con.execute(scan.format(breaks, source, "ignore_errors = true", told)).fetchone()
        unaccounted = lines - rows - sum(int(count or 0) for count in found)
        if unaccounted <= MAX_MALFORMED_CSV_LINES:
            return told
        tolerant = "ignore_errors = true, null_padding = true, strict_mode = false"
        tolerant += "" if told else ", parallel = false"  # told: in one pass already
        (records,) = con.execute(scan.format("count(*)", source, tolerant, told)).fetchone()
    except duckdb.Error:
        return told  # what the scans cannot read, the reading itself refuses
    # A line with a quote it does not close reads, padded, as one record with the next line,
    # and as two malformed lines to the real reading: twice the records beyond the rows is a
    # bound (490,000 such lines counted as 245,000 records, and were all set aside).
    malformed = min(unaccounted, 2 * (records - rows))
    if malformed > MAX_MALFORMED_CSV_LINES:
        raise InputFileError(
            f"{path}: about {malformed:,} of its {lines:,} lines do not split into the header's "
            f"columns, more than the {MAX_MALFORMED_CSV_LINES:,} a file may set aside: check "
            "its delimiter and header, or send it in smaller files"
        )
    return told


def _count_lines(path: Path) -> int:
    """The number of lines in a text file, ended by LF, CRLF or a lone CR (as a Mac
    spreadsheet's "CSV (Macintosh)" ends them; DuckDB splits rows on each); a last line without
    a line break counts."""
    lines, last = 0, b"\n"
    with formats.open_binary(path) as handle:
        while chunk := handle.read(1 << 20):
            crlf = chunk.count(b"\r\n") + (last == b"\r" and chunk[:1] == b"\n")
            lines += chunk.count(b"\n") + chunk.count(b"\r") - crlf
            last = chunk[-1:]
    return lines + (last not in (b"\n", b"\r"))


def _number_rows_around(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Give each well-formed row its position in the file, counting the rows set aside: the
    table numbers them among themselves (the 2,049th well-formed row is the file's 2,050th when
    one line before it was malformed). Read so, a row after a malformed line was reported one
    row early, and a mapped export placed it over the malformed line, losing one of the two.

    With the set-aside positions p1 < p2 < ..., the i-th stands where the well-formed row
    numbered p_i - (i - 1) would; a well-formed row k moves down by how many of those are <= k."""
    set_aside = malformed_table_of(table)
    # An as-of join finds, for each row, the last set-aside position at or before it in one
    # pass; a count per row (a correlated subquery) took minutes on a file with many malformed
    # lines. Consecutive malformed lines share a standing: the largest count is the one.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT t.* REPLACE "
        f"(t.{ROW_NUMBER} + coalesce(s.before, 0) AS {ROW_NUMBER}) FROM {table} AS t "
        f"ASOF LEFT JOIN (SELECT standing, max(before) AS before FROM ("
        f"  SELECT source_row - (row_number() OVER (ORDER BY source_row) - 1) AS standing, "
        f"         row_number() OVER (ORDER BY source_row) AS before FROM {set_aside}"
        f") GROUP BY standing) AS s ON t.{ROW_NUMBER} >= s.standing ORDER BY t.{ROW_NUMBER}"
    )


@dataclass(frozen=True)
class _Header:
    names: list[str]
    delimiter: str


# The longest header line read by hand (when the sniffer cannot be used): far beyond any events
# file's, and a bound on what is read.
_MAX_HEADER_CHARACTERS = 65_536


def _header(path: Path) -> _Header:
    """A CSV file's column names and delimiter from its first line, or a refusal."""
    header = _header_fields(path)
    if len(set(header.names)) != len(header.names) or not all(header.names):
        raise InputFileError(f"{path}: the header names a column twice, or names none")
    return header


def csv_delimiter(path: Path) -> str:
    """The delimiter a CSV file's header line uses."""
    return _header_fields(path).delimiter


def csv_headers(con: duckdb.DuckDBPyConnection, path: Path) -> list[RawRows]:
    """A CSV file's columns before any row is loaded, as two readings of its header line, each a
    ``RawRows`` of one row standing for the rest: Python's (the header line split by its
    delimiter) and DuckDB's sniffer's. Empty when nothing follows the header line, or when the
    sniffer cannot name them without reading on (the load decides then). A file refused for its
    columns was loaded whole first: 150 MB of one column took 1.2 GB of memory to be told it
    lacked three (a review). Two readings, because each misreads some headers the load reads
    rightly: Python's a quoted or single-quoted header, the sniffer's one whose rows are ragged.
    A contract column named twice is refused first, as the load refuses it."""
    with formats.open_binary(path) as handle:
        start = handle.read(4 * _MAX_HEADER_CHARACTERS + 2)
    rest = re.split(rb"\r\n|\r|\n", start, maxsplit=1)[1:]
    if not rest or not rest[0].strip():
        return []
    try:
        described = con.execute(
            f"DESCRIBE SELECT * FROM read_csv({sql_string(str(path))}, all_varchar = true, "
            "header = true)"
        ).fetchall()
    except duckdb.Error:
        return []
    written = [name.strip() for name in _header_fields(path).names]
    refuse_a_contract_column_twice(path, written)
    readings = [written, [str(name) for name, *_ in described]]
    return [RawRows("", names, dict.fromkeys(names, "VARCHAR"), 1) for names in readings]


def _refuses(check: Callable[[RawRows], None], header: RawRows) -> bool:
    try:
        check(header)
    except InputFileError:
        return True
    return False


def _header_fields(path: Path) -> _Header:
    """A CSV file's first line split into fields, as written, with the delimiter it uses. Its
    bytes are decoded alone: decoding a text file's first block, a line not UTF-8 in the
    first 8 KB refused the whole file, where one further on is set aside as malformed."""
    with formats.open_binary(path) as handle:
        start = handle.read(4 * _MAX_HEADER_CHARACTERS)  # UTF-8: at most 4 bytes a character
    first, *rest = re.split(rb"\r\n|\r|\n", start, maxsplit=1)
    line = first.decode("utf-8", "replace").lstrip("\ufeff")
    whole_block = not rest and len(start) == 4 * _MAX_HEADER_CHARACTERS  # no line end in it
    if len(line) >= _MAX_HEADER_CHARACTERS - 2 or whole_block:
        raise InputFileError(f"{path}: the header line is longer than {_MAX_HEADER_CHARACTERS:,}")
    try:
        delimiter = csv.Sniffer().sniff(line, delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    return _Header(next(csv.reader([line], delimiter=delimiter), []), delimiter)


def _require_utf8_text(path: Path) -> None:
    """Refuse text in another encoding by its first bytes: UTF-16 (a spreadsheet's "Unicode
    text") puts a NUL beside every ASCII character, which the readers would otherwise split into
    columns named " e v e n t _ i d" and report as an unknown file."""
    try:
        with formats.open_binary(path) as handle:
            start = handle.read(_ENCODING_PROBE_BYTES)
    except (OSError, EOFError, zlib.error) as error:
        raise InputFileError(f"{path}: cannot read: {first_line(error)}") from None
    utf16 = start.startswith((b"\xff\xfe", b"\xfe\xff")) or _every_other_byte_nul(start)
    if utf16:
        raise InputFileError(
            f"{path}: not UTF-8 text (it looks like UTF-16, as spreadsheets save "
            '"Unicode text"): save or export it as UTF-8'
        )
    if start.startswith(b"\x1f\x8b"):
        raise InputFileError(f"{path}: gzip-compressed; name it {path.name}.gz")
    if b"\x00" in start:
        raise InputFileError(f"{path}: not text (it holds NUL bytes); export it as UTF-8 text")
    try:
        start.decode("utf-8")
    except UnicodeDecodeError as error:
        # A character cut where the read stopped is no error; at the end of a smaller file, or
        # anywhere else, the byte is not UTF-8.
        cut = len(start) == _ENCODING_PROBE_BYTES and error.reason == "unexpected end of data"
        if not cut:
            raise InputFileError(
                f"{path}: not UTF-8 text (byte 0x{start[error.start]:02X} at position "
                f"{error.start:,}; it looks like Latin-1 or Windows-1252, as older spreadsheets "
                "save): save or export it as UTF-8"
            ) from None


# How much of a text file's start is read to judge its encoding.
_ENCODING_PROBE_BYTES = 4096


def _every_other_byte_nul(start: bytes) -> bool:
    """UTF-16 without a byte order mark: mostly ASCII text puts a NUL in every other byte."""
    half = len(start) // 2
    return half >= 2 and max(start[0::2].count(0), start[1::2].count(0)) >= 0.9 * half


# DuckDB's CSV sniffer fails a whole file over one line longer than its maximum (2,000,000 bytes),
# before its rejects table can take the line (``_load_csv`` then reads without the sniffer).
_LINE_TOO_LONG = re.compile(r"Maximum line size of \d+ bytes exceeded")
MAX_CSV_LINE_BYTES = 2_000_000
# DuckDB keeps only the start of a line over its limit (10,000 characters), so its length and
# digest are not known; the marker says the text is cut.
_CUT_CSV_LINE = f"… [cut: a line over {MAX_CSV_LINE_BYTES:,} bytes]"


def _table_is_empty_of_columns(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return len(con.execute(f"DESCRIBE {table}").fetchall()) <= 1


def _load_jsonl(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> None:
    # Parsed line by line in Python: a bulk JSON reader either fails the whole file on one bad
    # line or skips it silently, and neither is acceptable here. Stored a batch at a time, the
    # lines set aside too, so the Python objects a file costs are bounded whatever its length.
    records: list[dict[str, str | None]] = []
    positions: list[int] = []
    set_aside: list[tuple[int, str]] = []
    held, held_aside = 0, 0  # characters of the lines held, of each kind
    columns: list[str] | None = None  # the table's, once created
    _set_aside(con, table)
    with open_text(path, "r") as lines:
        for number, line, over_long in bounded_lines(lines):
            if not line.strip():
                continue
            record = None if over_long else _parse_json_object(line)
            if record is None:
                kept = line if over_long else kept_line(line)
                set_aside.append((number, kept))
                held_aside += len(kept)
                if len(set_aside) == JSONL_BATCH_ROWS or held_aside >= JSONL_BATCH_CHARACTERS:
                    _append_set_aside(con, table, set_aside)
                    set_aside, held_aside = [], 0
                continue
            # The rows' batches do not depend on the lines set aside: a column first named in a
            # later batch comes last in the table, and so in a quarantined row's content.
            records.append(record)
            positions.append(number)
            held += len(line)
            if len(records) == JSONL_BATCH_ROWS or held >= JSONL_BATCH_CHARACTERS:
                columns = _store_records(con, records, positions, table, columns, path)
                records, positions, held = [], [], 0
    if records or columns is None:
        _store_records(con, records, positions, table, columns, path)
    _append_set_aside(con, table, set_aside)


# Lines parsed before they are stored: about 50 MB of Python objects for lines of 1 KB, and at
# most about 100 million characters of text, whatever the lines' length (rows of 2 KB and more
# are stored in smaller batches).
JSONL_BATCH_ROWS = 50_000
JSONL_BATCH_CHARACTERS = 100_000_000


def _append_set_aside(
    con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple[int, str]]
) -> None:
    if not rows:
        return
    positions, texts = zip(*rows, strict=True)
    batch = pa.table(
        [pa.array(positions, pa.int64()), pa.array(texts, pa.string())],
        names=list(MALFORMED_COLUMNS),
    )
    con.register(f"{table}_set_aside_arrow", batch)
    try:
        con.execute(
            f"INSERT INTO {malformed_table_of(table)} SELECT * FROM {table}_set_aside_arrow"
        )
    finally:
        con.unregister(f"{table}_set_aside_arrow")


def _store_records(
    con: duckdb.DuckDBPyConnection,
    records: list[dict[str, str | None]],
    positions: list[int],
    table: str,
    columns: list[str] | None,
    path: Path,
) -> list[str]:
    """Create ``table`` from a batch of records, or append them to it (``columns``: its columns
    so far), adding the columns this batch names first; the table's columns after."""
    names = sorted({key for record in records for key in record})
    # Every batch against the columns before it, so a key spelt two ways is refused wherever in
    # the file its second spelling first appears.
    before = columns or []
    refuse_a_contract_column_twice(path, [*before, *(n for n in names if n not in before)])
    arrays = {
        _as_file_column(name): pa.array([r.get(name) for r in records], pa.string())
        for name in names
    }
    stored = list(arrays)  # the names as the table holds them
    arrays[ROW_NUMBER] = pa.array(positions, pa.int64())
    con.register(f"{table}_arrow", pa.table(arrays))
    try:
        if columns is None:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {table}_arrow")
            return stored
        known = {name.lower() for name in columns}
        added = [name for name in stored if name.lower() not in known]
        for name in added:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {sql_identifier(name)} VARCHAR")
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {table}_arrow")
        return columns + added
    except duckdb.Error as error:
        raise InputFileError(f"{path}: cannot read as jsonl: {first_line(error)}") from None
    finally:
        con.unregister(f"{table}_arrow")


# Distinct field names the events of one stream of a request may have in all. Each becomes a column built
# over every event (names x events): 300,000 distinct names took 151 s of the ingestion process
# and held up every other request meanwhile (a hostile client, 2026-12-06).
MAX_REQUEST_NAMES = 500


def refuse_unusable_names(source: Path | str, items: Sequence[object]) -> None:
    """Refuse events whose field names no table can hold, before any column is built: more than
    ``MAX_REQUEST_NAMES`` distinct names, an empty name or one with a control character, or two
    names that differ only in case (a table's names ignore it). Each failed, inside the write,
    every request written with it (a 500 for all of them)."""
    names: set[str] = set()
    for item in items:
        if isinstance(item, dict):
            names.update(str(key) for key in item)
            if len(names) > MAX_REQUEST_NAMES:
                raise InputFileError(
                    f"{source}: the events name more than {MAX_REQUEST_NAMES:,} distinct fields; "
                    "send the contract's columns (docs/contracts/events.md) and few others"
                )
    # as a file's: `quantity` and `Quantity` in one request, the second was dropped unseen
    refuse_a_contract_column_twice(source, sorted(names), "request")
    for name in sorted(names):
        if not name or any(ord(character) < 32 or ord(character) == 127 for character in name):
            raise InputFileError(
                f"{source}: a field name is empty or holds a control character ({name!r}); "
                "name every field with printable text"
            )
    first_of: dict[str, str] = {}
    for name in sorted(names):
        other = first_of.setdefault(name.lower(), name)
        if other != name:
            raise InputFileError(
                f"{source}: the events name fields {other!r} and {name!r}, which differ only in "
                "case; keep one"
            )


def records_table(items: Sequence[object]) -> tuple[pa.Table, pa.Table]:
    """Parsed JSON values (an HTTP request's events) read like the lines of a JSON Lines file:
    the rows as an Arrow table of text columns (and ``__row``), and the items that are not JSON
    objects, or whose id is an object or a list (as a line's is, ``SINGLE_VALUE_COLUMNS``), set aside with
    their JSON text (``MALFORMED_COLUMNS``). Item N (0-based) is row N + 1."""
    records: list[dict[str, object]] = []
    positions: list[int] = []
    set_aside: list[int] = []
    texts: list[str] = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict) and not _an_id_is_not_one_value(item):
            records.append(item)
            positions.append(number)
        else:
            set_aside.append(number)
            texts.append(json.dumps(item, ensure_ascii=False))
    names = sorted({key for record in records for key in record})
    arrays = {_as_file_column(str(name)): _text_column(records, name) for name in names}
    arrays[ROW_NUMBER] = pa.array(positions, pa.int64())
    malformed = pa.table(
        [pa.array(set_aside, pa.int64()), pa.array(texts, pa.string())],
        names=list(MALFORMED_COLUMNS),
    )
    return pa.table(arrays), malformed


def _text_column(records: list[dict[str, object]], name: str) -> pa.Array:
    """One column as text, as ``json_value_text`` writes each value. Arrow converts a column of strings
    (nulls allowed) or of integers at C speed, to the same text; anything else (floats, whose
    text Arrow may spell otherwise, booleans, objects, mixed kinds) goes value by value."""
    values = [record.get(name) for record in records]
    with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        column = pa.array(values)
        if pa.types.is_string(column.type) or pa.types.is_null(column.type):
            return column.cast(pa.string())
        if pa.types.is_int64(column.type):
            return pc.cast(column, pa.string())
    return pa.array([json_value_text(value) for value in values], pa.string())


def raw_rows_of(rows: pa.Table, table: str, malformed: pa.Table) -> RawRows:
    """The description of a ``records_table`` to be registered as ``table``, its rows set aside
    as ``malformed_table_of(table)``."""
    types = {name: "VARCHAR" for name in rows.column_names if name != ROW_NUMBER}
    return RawRows(table, list(types), types, rows.num_rows, malformed.num_rows)


# Columns that name one thing each: an object or a list there is an expanded resource where its
# id was meant ({"customer": {"id": ...}}), not an id; stored as its JSON text it would split or
# merge customers unseen, so the line is set aside as malformed. The same for the names a feature
# counts by (a plan, an event, a feature): ``"plan": ["team"]`` was stored as the text
# ``["team"]`` (a review, 2026-12-06; a Parquet list there is quarantined by ``validation``).
SINGLE_VALUE_COLUMNS = frozenset(
    {"event_id", "customer_id", "subscription_id", "user_id", "plan", "event", "feature"}
)


def _parse_json_object(line: str) -> dict[str, str | None] | None:
    try:
        value = json.loads(
            line, object_pairs_hook=formats.names_once, parse_constant=formats.refuse_json_constant
        )
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        return None
    if not isinstance(value, dict) or formats.holds_unencodable_text(line, value):
        return None
    if _an_id_is_not_one_value(value):
        return None
    return {str(key): json_value_text(item) for key, item in value.items()}


def _an_id_is_not_one_value(value: dict[str, object]) -> bool:
    return any(isinstance(value.get(name), dict | list) for name in SINGLE_VALUE_COLUMNS)


def json_value_text(value: object) -> str | None:
    """A JSON value as the text it is stored and validated as (None stays None)."""
    # Values become text so one validation path serves every format; JSON numbers keep their
    # JSON spelling, so "amount": "abc" and "amount": 12.5 are judged alike.
    kind = type(value)
    if kind is str or value is None:
        return value  # type: ignore[return-value]
    if kind is int or (kind is float and math.isfinite(value)):  # type: ignore[arg-type]
        return repr(value)  # what json.dumps writes for them, at a fraction of the cost
    return json.dumps(value)


_LOADERS = {
    FileFormat.CSV: _load_csv,
    FileFormat.PARQUET: _load_parquet,
    FileFormat.JSONL: _load_jsonl,
}
