"""File formats, chosen by file name: the one place that maps a suffix to CSV, Parquet or JSON Lines.

Every command, pipeline and reader that takes or writes a table goes through here, so a format is
added, or a suffix accepted, in one place. Gzip follows the name too: ``.csv.gz`` is gzipped CSV.
Parquet compresses internally and has no ``.gz`` form.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
from collections.abc import Collection, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TextIO

from feature_store.errors import InputFileError

if TYPE_CHECKING:
    import pandas as pd


class FileFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


SUFFIXES: dict[str, FileFormat] = {
    ".csv": FileFormat.CSV,
    ".csv.gz": FileFormat.CSV,
    ".parquet": FileFormat.PARQUET,
    ".jsonl": FileFormat.JSONL,
    ".jsonl.gz": FileFormat.JSONL,
    ".ndjson": FileFormat.JSONL,
    ".ndjson.gz": FileFormat.JSONL,
}
ALL_FORMATS: tuple[FileFormat, ...] = tuple(FileFormat)


def suffixes(accepted: Collection[FileFormat] = ALL_FORMATS) -> list[str]:
    """The file name endings of the ``accepted`` formats, in ``SUFFIXES`` order."""
    return [suffix for suffix, kind in SUFFIXES.items() if kind in accepted]


def file_format(path: Path, accepted: Collection[FileFormat] = ALL_FORMATS) -> FileFormat:
    """The format ``path``'s name says, or an ``InputFileError`` listing the accepted suffixes."""
    name = path.name.lower()
    for suffix in suffixes(accepted):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    raise InputFileError(
        f"{path}: unsupported file type; expected one of {', '.join(suffixes(accepted))}"
    )


def is_gzipped(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def open_binary(path: Path) -> BinaryIO:
    """Open a file for reading its bytes, through gzip when its name ends in ``.gz``."""
    if is_gzipped(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def open_text(path: Path, mode: Literal["r", "w"]) -> TextIO:
    """Open a text file for reading or writing, through gzip when its name ends in ``.gz``."""
    if is_gzipped(path):
        return gzip.open(path, f"{mode}t", encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")


def read_table(
    path: Path,
    *,
    accepted: Collection[FileFormat] = ALL_FORMATS,
    text_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """Read a table; ``text_columns`` stay text (ids such as ``007`` keep their zeros)."""
    import pandas as pd  # here: checking a suffix (`segments --help`, option checks) needs no pandas

    # A folder of Parquet parts, as Spark writes `--out features.parquet`, is one table (its
    # `_SUCCESS` and `.crc` files are skipped); the local commands refused Spark's own output.
    if not (path.is_dir() and path.name.lower().endswith(".parquet")):
        require_file(path)
    kind = file_format(path, accepted)
    dtypes = dict.fromkeys(text_columns, str)
    try:
        if kind is FileFormat.PARQUET:
            return pd.read_parquet(path)
        if kind is FileFormat.CSV:
            return pd.read_csv(path, dtype=dtypes)
        return pd.read_json(path, lines=True, dtype=dtypes, convert_dates=False)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise InputFileError(f"{path}: cannot read as {kind}: {first_line(error)}") from None


def write_table(
    frame: pd.DataFrame, path: Path, *, accepted: Collection[FileFormat] = ALL_FORMATS
) -> None:
    """Write a table without its index, creating the folder; gzip when the name says so."""
    kind = file_format(path, accepted)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind is FileFormat.PARQUET:
        frame.to_parquet(path, index=False)
    elif kind is FileFormat.CSV:
        frame.to_csv(path, index=False)  # pandas infers gzip from the suffix
    else:
        frame.to_json(path, orient="records", lines=True)


def first_line(error: BaseException) -> str:
    """The first line of an error's message: enough to act on, short enough for one line."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def shortened(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis saying so."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def require_file(path: Path) -> None:
    """Refuse a path that is not a readable regular file, saying which it is instead."""
    if path.is_dir():
        raise InputFileError(f"{path}: a directory, not a file")
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if not path.is_file():
        raise InputFileError(f"{path}: not a regular file")


def strict_json_value(value: Any) -> Any:
    """``value`` with every NaN or infinity, however deeply nested, replaced by None: strict JSON
    (RFC 8259) has no spelling for them, and browsers' ``JSON.parse`` refuses Python's."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json_value(v) for v in value]
    return value


# A quarantined line keeps this much of its text. The quarantine is for a person to read and fix
# a row; a line of megabytes is not an event, and kept whole it would make the quarantine as large
# as the file. Its length and digest stay, so two such lines are never taken for one.
KEPT_CHARACTERS = 10_000

# The longest line read as one (DuckDB's CSV limit is 2,000,000 bytes; the JSON Lines reader takes
# as many characters). A longer line is malformed whatever it holds, and is read in pieces.
MAX_LINE_CHARACTERS = 2_000_000


def kept_text(start: str, length: int, md5_hex: str) -> str:
    """A malformed line's text as the quarantine keeps it: whole when short, else its first
    ``KEPT_CHARACTERS`` characters, then its length and MD5 digest."""
    if length <= KEPT_CHARACTERS:
        return start
    return f"{start[:KEPT_CHARACTERS]}… [cut: {length:,} characters in all, md5 {md5_hex}]"


def bounded_lines(lines: TextIO) -> Iterator[tuple[int, str, bool]]:
    """Each line's number (from 1), its text without the newline, and whether it is longer than
    ``MAX_LINE_CHARACTERS``. Such a line is read a megabyte at a time and given as its
    ``kept_text``, so the memory a line takes is bounded whatever the file holds."""
    number = 0
    while line := lines.readline(MAX_LINE_CHARACTERS + 1):
        number += 1
        if number == 1:
            line = line.removeprefix("\ufeff")  # a byte order mark, as Windows tools write
        if len(line) > MAX_LINE_CHARACTERS and not line.endswith("\n"):
            yield number, _rest_of_long_line(line, lines), True
        else:
            yield number, line.removesuffix("\n"), False


def kept_line(line: str) -> str:
    """A malformed line as the quarantine keeps it (``kept_text``)."""
    if len(line) <= KEPT_CHARACTERS:
        return line
    return kept_text(line, len(line), hashlib.md5(line.encode()).hexdigest())


def _rest_of_long_line(start: str, lines: TextIO) -> str:
    digest, length, piece = hashlib.md5(), 0, start
    while True:
        body = piece.removesuffix("\n")
        digest.update(body.encode())
        length += len(body)
        if body != piece:
            break
        piece = lines.readline(1 << 20)
        if not piece:
            break
    return kept_text(start[:KEPT_CHARACTERS], length, digest.hexdigest())


class NotJsonConstantError(ValueError):
    """NaN, Infinity or -Infinity in JSON text: Python's parser reads them, RFC 8259 has no
    such values."""


NOT_JSON_CONSTANT = "not valid JSON: {name} is no JSON value (RFC 8259); a missing value is null"


def refuse_json_constant(name: str) -> object:
    """``json.loads``'s ``parse_constant``: refuse NaN and the infinities. Read as the float
    NaN, an id became the text "NaN" (one customer of every event a pandas export left without
    one) and a number became "NaN" that was refused later for another reason."""
    raise NotJsonConstantError(NOT_JSON_CONSTANT.format(name=name))


class RepeatedNameError(ValueError):
    """A JSON object that names a key twice."""


def names_once(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """``json.loads``'s ``object_pairs_hook``: an object that names a key twice is not one event
    (``{"amount": 500, "amount": 5}``: the parser kept the last value without a word, a data
    engineer's review; a signed Stripe body so written was recorded under its second id, a
    hostile client's)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        twice = next(name for name, _ in pairs if name in seen or seen.add(name))
        raise RepeatedNameError(f"an object names {twice[:100]!r} twice")
    return found


# JSON's escape of a lone UTF-16 surrogate ("\ud800"): the only way parsed JSON holds text that
# UTF-8 cannot encode.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def holds_unencodable_text(written: str | bytes, value: object) -> bool:
    """Whether ``value``, parsed from the JSON ``written``, holds a lone surrogate, which no
    UTF-8 text can: stored, Arrow and file writes failed on it with a traceback."""
    escaped = written.decode("utf-8", "replace") if isinstance(written, bytes) else written
    if not _SURROGATE_ESCAPE.search(escaped):
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
