"""Memory and time of ingesting files full of malformed lines, beside the same files all well-formed.

    python bench/bench_malformed.py [--rows 1000000] [--shares 0.2 0.9]

For each share, writes usage events as CSV and as JSON Lines in which that share of the lines do
not split into columns (a CSV line with two fields too many, a JSON line cut in half), and the same
events with every line whole. Each file is ingested into a fresh data home by a process of its
own (``segments ingest`` as the CLI runs it); prints wall time, peak memory and the ratio of the
malformed file to the whole one. Lines set aside are stored in the database a batch at a time, so
they should cost about what well-formed lines cost. A CSV with more malformed lines than a file may
set aside (``readers.MAX_MALFORMED_CSV_LINES``) is refused before it is read: its row says so.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import ingestion_figures, peak_rss_mb, run_child

FORMATS = ("csv", "jsonl")


def write_usage(path: Path, rows: int, malformed_share: float) -> None:
    """``rows`` usage events; every line whose position falls in the share is malformed."""
    ratio_kept = 1 - malformed_share
    with path.open("w") as out:
        if path.suffix == ".csv":
            out.write("event_id,customer_id,occurred_at,event,feature\n")
        for i in range(rows):
            # Spread evenly: line i is malformed when the running share falls behind.
            malformed = malformed_share > 0 and int((i + 1) * ratio_kept) == int(i * ratio_kept)
            customer, day = f"c{i % 20_000}", f"2026-06-{1 + i % 28:02d}T10:00:00Z"
            if path.suffix == ".csv":
                extra = ",EXTRA,MORE" if malformed else ""
                out.write(f"u{i},{customer},{day},feature_used,reports{extra}\n")
            else:
                record = {
                    "event_id": f"u{i}",
                    "customer_id": customer,
                    "occurred_at": day,
                    "event": "feature_used",
                    "feature": "reports",
                }
                line = json.dumps(record)
                out.write((line[: len(line) // 2] if malformed else line) + "\n")


def run_one(path: Path, home: Path) -> dict:
    from feature_store.errors import InputFileError
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout

    started = time.perf_counter()
    try:
        report = ingest_files(StoreLayout(home), {"usage": path})["usage"]
    except InputFileError as error:
        return {
            "seconds": time.perf_counter() - started,
            "refused": str(error).split(": ", 1)[1][:60],
            "peak_rss_mb": peak_rss_mb(),
        }
    return ingestion_figures(started, report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.2, 0.9])
    parser.add_argument("--one", choices=["write", "ingest"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--share", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one == "write":
        write_usage(args.path, args.rows, args.share)
        print(json.dumps({}))
        return
    if args.one == "ingest":
        print(json.dumps(run_one(args.path, args.home)))
        return
    print(f"rows: {args.rows:,} usage events per file; each file ingested by a process of its own")
    print(
        f"{'file':<22}{'wall s':>8}{'peak MB':>9}{'received':>11}{'quarantined':>13}"
        f"{'time x':>8}{'memory x':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for kind in FORMATS:
            whole = None
            for share in (0.0, *args.shares):
                path = folder / f"usage-{share}.{kind}"
                run_child(
                    Path(__file__),
                    ["--one=write", f"--path={path}", f"--rows={args.rows}", f"--share={share}"],
                )
                home = folder / f"home-{kind}-{share}"
                result = run_child(
                    Path(__file__), ["--one=ingest", f"--path={path}", f"--home={home}"]
                )
                path.unlink()
                whole = whole or result
                name = f"{kind}, {share:.0%} malformed"
                if "refused" in result:
                    print(
                        f"{name:<22}{result['seconds']:>8.2f}{result['peak_rss_mb']:>9.0f}"
                        f"  refused: {result['refused']}…"
                    )
                    continue
                print(
                    f"{name:<22}{result['seconds']:>8.2f}{result['peak_rss_mb']:>9.0f}"
                    f"{result['received']:>11,}{result['quarantined']:>13,}"
                    f"{result['seconds'] / whole['seconds']:>8.1f}"
                    f"{result['peak_rss_mb'] / whole['peak_rss_mb']:>10.1f}"
                )


if __name__ == "__main__":
    main()
