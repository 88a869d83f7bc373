"""Events converted from another format (a Stripe export, a billing system's CSV), ingested like a file.

An adapter turns every source row into one of three things, kept at the source row's position:

- a canonical row (a dict of canonical columns): validated, deduplicated and quarantined by the
  ordinary ingestion, exactly like a row of a canonical file;
- a ``MalformedSource``: a source row the adapter cannot read at all; quarantined as
  ``malformed_row`` with its text, never lost;
- ``None``: a row the adapter skips on purpose (an ignored Stripe event type, a row a mapping file
  lists under ``skip``); the adapter counts those itself.

The rows are written as a canonical JSON Lines file (line N holds source row N; skipped rows are
blank lines, which the reader passes over) and that file goes through ``ingest_files``: one
validation, one dedupe, one quarantine for every source of events.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from feature_store.errors import InputFileError
from feature_store.ingest import StepCallback, StreamReport, ingest_files
from feature_store.layout import StoreLayout
from feature_store.schema import Stream

CanonicalRow = Mapping[str, object]


@dataclass(frozen=True)
class MalformedSource:
    """A source row with nothing to map: only its text survives, for the quarantine."""

    text: str


ConvertedRow = CanonicalRow | MalformedSource | None


def canonical_jsonl_line(row: ConvertedRow) -> str:
    """One line of the canonical JSON Lines file (no newline)."""
    if row is None:
        return ""
    if isinstance(row, MalformedSource):
        return _malformed_line(row.text)
    return json.dumps(dict(row), default=_json_default, ensure_ascii=False)


def _malformed_line(text: str) -> str:
    # The reader quarantines a line that is not a JSON object as malformed_row with its text. The
    # text goes verbatim when that holds for it; otherwise as a JSON string, which never is one.
    single_line = "\n" not in text and "\r" not in text and text.strip() != ""
    if single_line and not _is_json_object(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        return False


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def write_canonical_jsonl(rows: Iterable[ConvertedRow], path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(canonical_jsonl_line(row) + "\n")


def ingest_converted(
    layout: StoreLayout,
    stream: Stream,
    rows: Iterable[ConvertedRow],
    *,
    source_name: str,
    on_step: StepCallback | None = None,
    unreadable: str = "no row of it is one",
) -> StreamReport:
    """Ingest converted rows through the ordinary ingestion, as one batch.

    ``rows`` are written out as they come (a generator costs no memory per row). ``source_name``
    names the original input (a path, ``stripe-webhook``); the report and the quarantine record
    it with ``.canonical.jsonl`` appended (the rows quarantined are the converted ones), and a
    row's ``source_row`` is its position in the original input. No rows (an export of events
    that are all acknowledged but not billing events) is an ingestion of nothing, not an empty
    file to refuse; rows of which none could be read at all (every one a ``MalformedSource``)
    are a file to refuse, with ``unreadable`` saying what the rows should have been and how many
    rows were read and left out (``None``).
    """
    counts = {"kept": 0, "malformed": 0, "skipped": 0}

    def counted() -> Iterator[ConvertedRow]:
        for row in rows:
            if row is None:  # a row the adapter read and left out on purpose
                counts["skipped"] += 1
            else:
                counts["malformed" if isinstance(row, MalformedSource) else "kept"] += 1
            yield row

    with tempfile.TemporaryDirectory(prefix="segments-converted-") as directory:
        path = Path(directory) / f"{Path(source_name).name}.canonical.jsonl"
        write_canonical_jsonl(counted(), path)
        if not counts["kept"] and not counts["malformed"]:  # ``None`` keeps a skipped line's place
            return StreamReport(stream=stream, source_file=source_name)
        if not counts["kept"]:
            # Nothing to store, so nothing to quarantine beside: the whole export is refused,
            # saying what was left out on purpose (a customer.* event, a declined authorisation)
            # so a file of such rows and one bad line is not called unreadable.
            left_out = (
                f" ({counts['skipped']:,} other rows read and left out, or blank)"
                if counts["skipped"]
                else ""
            )
            raise InputFileError(
                f"{source_name}: none of its {counts['malformed']:,} rows that could be events "
                f"can be read{left_out}: {unreadable}"
            )
        names = {stream: f"{source_name}.canonical.jsonl"}
        return ingest_files(layout, {stream: path}, on_step=on_step, source_names=names)[stream]
