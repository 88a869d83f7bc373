"""A model's life after training: ``compare``, ``drift``, ``retrain``, ``unpin``.

Exit codes of ``retrain`` (and of ``promote``, in ``training``): 0 the version is champion,
3 it stays challenger (gates failed, or the champion is pinned; the reasons are printed),
2 the request was refused (bad as-of, no data, unknown version; one line on stderr). ``compare``
exits 0 when every gate passes and 3 when one fails.
"""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from models.lineage import lineage_words
from pipelines.cli.common import (
    AsOfOption,
    JsonFlag,
    MaxSegmentsOption,
    SeedOption,
    SegmentsOption,
    console,
    layout,
    print_json,
    print_note,
    print_table,
    quiet_mlflow,
    raised_cap_note,
    registry,
    stdout,
)

if TYPE_CHECKING:  # imported where used: `segments --help` should not load MLflow
    from collections.abc import Callable

    from models.gates import Gate
    from pipelines.lifecycle import Comparison, RetrainResult
    from pipelines.monitor import DriftCheck

app = typer.Typer()

PROMOTED, KEPT_CHALLENGER = 0, 3
# `segments drift --fail-on LEVEL`: the level was reached (3, as a failing gate is)
DRIFTED = 3


class FailOn(StrEnum):
    """The drift levels ``segments drift --fail-on`` may stop at (``models.drift.Level``)."""

    warn = "warn"
    act = "act"


@app.command()
def compare(
    challenger: Annotated[
        str | None, typer.Argument(help="Version to judge; default: the challenger alias.")
    ] = None,
    champion: Annotated[
        str | None, typer.Argument(help="Version to judge against; default: the champion.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Also write comparison.json, migration.csv and migration.png here."),
    ] = None,
    as_json: JsonFlag = False,
    log: Annotated[
        bool,
        typer.Option(
            "--log/--no-log",
            help="Record the comparison in the challenger's run (the Compare page shows the "
            "latest); --no-log only prints it, e.g. to look at two older versions.",
        ),
    ] = True,
) -> int:
    """Migration, segments side by side, lineage and every promotion gate; logged to the
    challenger's MLflow run unless --no-log. Exit 0: every gate passes; 3: some gate fails (a
    CI step can stop on it, as on a retrain kept as challenger); 2: request refused."""
    quiet_mlflow()
    from pipelines.lifecycle import compare as run_compare
    from pipelines.lifecycle import write_comparison

    with contextlib.redirect_stdout(sys.stderr):
        comparison = run_compare(registry(), challenger, champion, log=log)
    if out is not None:
        write_comparison(comparison, out)
    if as_json:
        print_json(comparison.as_dict())
    else:
        print_comparison(comparison)
    return PROMOTED if comparison.passed else KEPT_CHALLENGER


def print_comparison(comparison: Comparison) -> None:
    from models.gates import kept_share_text

    verdict = "all gates pass" if comparison.passed else "gates FAIL"
    stdout.print(
        f"challenger version {comparison.challenger} vs champion version {comparison.champion}: "
        f"{verdict}; {kept_share_text(comparison.same_id_share)} of "
        f"{comparison.customers_compared:,} "
        "customers keep their segment id",
        highlight=False,
    )
    print_gates(comparison.gates)
    from models.comparison import (
        DIFFERENT_CUSTOMERS_NOTE,
        backtest_heading,
        different_customers,
        of_revenue,
        side_churn,
        worded_transitions,
    )

    document = comparison.as_dict()
    happened = worded_transitions(document)
    figures = {side: backtest_heading(document, side) for side in ("champion", "challenger")}
    revenue = {side: of_revenue(comparison.segments, side) for side in ("champion", "challenger")}
    money = {
        side: "revenue share (to date)" if revenue[side] else "MRR share"
        for side in ("champion", "challenger")
    }
    # Each version's own figures, on the customers it was trained on; the migration below places
    # the same customers with both (an ML engineer read the two as one population).
    # a money column too: a retailer comparing versions could not see which segment holds
    # three quarters of its revenue (a review)
    segments = Table(
        "id", "transition",
        "champion segment", "customers when trained", money["champion"], figures["champion"],
        "challenger segment", "customers when trained", money["challenger"], figures["challenger"],
        title="Segments side by side (each version's own training figures)",
    )  # fmt: skip

    def share(row: dict, side: str) -> str:
        value = row.get(f"{side}_ltv_share" if revenue[side] else f"{side}_mrr_share")
        return "-" if value is None else f"{float(value):.1%}"

    for row in comparison.segments:
        segments.add_row(
            str(row["id"]),
            happened(int(row["id"]), str(row["transition"]), successors=True),
            str(row.get("champion_name", "-")),
            _count(row.get("champion_size")),
            share(row, "champion"),
            side_churn(row, "champion"),
            str(row.get("challenger_name", "-")),
            _count(row.get("challenger_size")),
            share(row, "challenger"),
            side_churn(row, "challenger"),
        )
    print_table(segments, whole=["id", "transition"])
    apart = different_customers(document["gates"])
    if apart is not None:
        stdout.print(
            f"the two versions segmented different customers: the champion {apart[0]}, the "
            f"challenger {apart[1]}; {DIFFERENT_CUSTOMERS_NOTE}",
            highlight=False,
        )
    migration = Table(
        "champion \\ challenger",
        *map(str, comparison.migration.columns),
        title="Migration (the challenger's training customers, placed by both versions)",
    )
    for old, row in comparison.migration.iterrows():
        migration.add_row(str(old), *(f"{int(n):,}" if n else "." for n in row))
    print_table(migration, whole=["champion \\ challenger"])
    if comparison.lineage is not None:
        print_lineage(comparison, happened)


def print_lineage(comparison: Comparison, happened: Callable[[int, str], str]) -> None:
    lineage = comparison.lineage
    assert lineage is not None
    counts = Counter(happened(t.id, t.transition) for t in lineage.transitions)
    stdout.print(
        f"lineage of version {lineage.version} (traced against version {lineage.previous or '-'}"
        f" at registration): "
        + lineage_words(
            counts, returned=sum(t.returned_from is not None for t in lineage.transitions)
        ),
        highlight=False,
    )
    # as wide as the longest word, so the names line up ("survived, renamed" pushed its row out)
    width = max(len(happened(t.id, t.transition)) for t in lineage.transitions)
    for t in lineage.transitions:
        relation = ""
        if t.parents and t.transition != "survived":
            relation = f" from {', '.join(map(str, t.parents))}"
        if t.children:
            relation = f" into {', '.join(map(str, t.children))}"
        overlap = f" (Jaccard {t.jaccard:.2f})" if t.jaccard is not None else ""
        if t.returned_from is not None:
            served = f" as {t.renamed_from!r}" if t.renamed_from else ""
            overlap += (
                f" (its id back: version {t.returned_from} served it{served} until it was replaced)"
            )
        stdout.print(
            f"  {t.id:>3} {happened(t.id, t.transition):<{width}} {t.name}{relation}{overlap}, since v{t.since}",
            highlight=False,
        )


def print_gates(gates: list[Gate]) -> None:
    table = Table("gate", "value", "threshold", "pass", "threshold from", title="Promotion gates")
    for gate in gates:
        table.add_row(
            gate.name,
            gate.value_text(),
            f"{gate.rule} {gate.threshold}",
            gate.verdict().upper() if gate.verdict() == "no" else gate.verdict(),
            gate.basis or "-",
        )
    print_table(table, whole=["gate", "pass"])


def _count(value: object) -> str:
    return "-" if value is None else f"{int(value):,}"  # type: ignore[call-overload]


@app.command()
def unpin() -> None:
    """Let automated retraining replace the champion again."""
    quiet_mlflow()
    from pipelines.lifecycle import unpin as remove_pin

    removed = remove_pin(registry())
    if removed is None:
        stdout.print("nothing was pinned")
    else:
        stdout.print(
            f"unpinned version {removed.version} (pinned by {removed.by}: {removed.reason})"
        )


@app.command()
def drift(
    source: Annotated[
        str,
        typer.Option(help="Current vectors: the latest offline `snapshot` or the `online` store."),
    ] = "snapshot",
    model_version: Annotated[
        str | None, typer.Option(help="Registered version; default: champion.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the drift picture (.png) here.")] = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            help="Exit 3 when the overall level is this or worse: for a cron job or CI step; "
            "default: exit 0 whatever the level."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> int:
    """Current feature vectors against the champion's training sample: per-feature drift,
    segment share PSI, outlier and low-margin shares (thresholds: warn 0.1, act 0.25).
    Exit 0, or 3 with --fail-on when the level reaches it; 2: request refused."""
    from feature_store.errors import SegmentsError

    if source not in ("snapshot", "online"):
        raise SegmentsError(f"--source must be snapshot or online, not {source!r}")
    if out is not None and out.suffix.lower() != ".png":
        raise SegmentsError(f"--out writes a PNG picture: give a file ending in .png, not {out}")
    quiet_mlflow()
    from pipelines.monitor import check_drift

    chosen: Literal["snapshot", "online"] = "online" if source == "online" else "snapshot"
    with contextlib.redirect_stdout(sys.stderr):
        checked = check_drift(registry(), layout(), chosen, model_version)
    if out is not None:
        from pipelines.lifecycle_plots import drift_picture

        drift_picture(checked.report, out, checked.title)
        console.print(f"drift picture -> {out}")
    if as_json:
        print_json(checked.as_dict())
    else:
        print_drift(checked)
    # a monitor that exits 0 at "act" cannot stop a pipeline (an ML engineer's walkthrough)
    from models.drift import LEVEL_ORDER

    level = LEVEL_ORDER.index(checked.report.level)
    # vectors weeks behind the events cannot show drift: a cron check on them stayed green for
    # ever (an ML engineer's review); stale vectors fail any --fail-on
    reached = level >= LEVEL_ORDER.index(fail_on.value) if fail_on is not None else False
    return DRIFTED if fail_on is not None and (reached or checked.vectors_stale) else 0


def print_drift(checked: DriftCheck) -> None:
    from models.drift import by_urgency

    report = checked.report
    stdout.print(
        f"model version {checked.version}: {report.reference_customers:,} training customers vs "
        f"{report.current_customers:,} now ({checked.current.source}, as of "
        f"{checked.current.as_of}); overall {report.level}",
        highlight=False,
    )
    if checked.current_before_training:
        stdout.print(
            f"note: these vectors (as of {checked.current.as_of}) are older than the model's "
            f"training data (as of {checked.trained_as_of}): this compares the past with the "
            "model, not what it serves; `segments features --as-of` a recent date first",
            highlight=False,
        )
    if checked.vectors_stale:
        stdout.print(
            f"note: the events stored run {checked.events_after_days:.0f} days past these vectors "
            f"(as of {checked.current.as_of}): the business since is not in them; `segments "
            "features --as-of` the last day of the data first (with --fail-on, this exits 3)",
            highlight=False,
        )
    # each score beside what sampling alone makes of it at this sample size: the level is
    # judged on the excess (``models.drift``)
    features = Table(
        "feature", "PSI (noise)", "Wasserstein / IQR (noise)", "level", title="Feature drift"
    )
    for f in by_urgency(report.features):
        features.add_row(
            f.feature,
            f"{f.psi:.3f} ({f.psi_noise:.3f})",
            f"{f.wasserstein:.3f} ({f.wasserstein_noise:.3f})",
            f.level,
        )
    print_table(features, whole=["feature", "level"])
    shares = Table("id", "segment", "training share", "share now", title="Segment shares")
    for s in report.segments:
        shares.add_row(
            str(s.segment_id), s.name, f"{s.reference_share:.1%}", f"{s.current_share:.1%}"
        )
    print_table(shares, whole=["id"])
    stdout.print(
        f"segment share PSI {report.segment_psi:.3f} ({report.segment_level}); outlier share "
        f"{report.outlier_share:.1%} (training {report.reference_outlier_share:.1%}); low-margin "
        f"share {report.low_margin_share:.1%} (training {report.reference_low_margin_share:.1%})",
        highlight=False,
    )


@app.command()
def retrain(
    as_of: AsOfOption,
    seed: SeedOption = 0,
    max_segments: MaxSegmentsOption = 12,
    segments: SegmentsOption = None,
    as_json: JsonFlag = False,
) -> int:
    """Features -> train -> compare -> promote when the gates pass and nothing is pinned.
    Exit 0: promoted; 3: kept as challenger (reasons printed); 2: request refused."""
    from feature_store.coverage import check_training_as_of
    from feature_store.timeutil import parse_as_of

    store = layout()
    instant = parse_as_of(as_of)
    check_training_as_of(store, instant)  # a refusal before MLflow is even imported
    quiet_mlflow()
    from pipelines.lifecycle import retrain as run_retrain

    models = registry(create=True)
    from models.segmenter import segmenter_for

    segmenter = segmenter_for(segments, max_segments, random_state=seed)
    print_note(raised_cap_note(segments, max_segments))
    with (
        console.status("Retraining: features, segments, lineage, comparison..."),
        contextlib.redirect_stdout(sys.stderr),
    ):
        result = run_retrain(store, instant, segmenter, models, by=getpass.getuser())
    if as_json:
        print_json(result.as_dict())
    else:
        print_retrain(result)
    return PROMOTED if result.outcome == "promoted" else KEPT_CHALLENGER


def print_retrain(result: RetrainResult) -> None:
    trained = result.training
    counts = lineage_words(trained.lineage, trained.renamed, trained.returned)
    stdout.print(
        f"version {trained.model_version}: {trained.n_segments} segments ({counts}), "
        f"{trained.seconds:.1f} s",
        highlight=False,
    )
    if result.comparison is not None:
        print_comparison(result.comparison)
    if trained.left_out:
        from pipelines.cli.training import left_out_text

        stdout.print(left_out_text(trained.left_out), highlight=False)
    if result.vectors_kept:
        stdout.print(result.vectors_kept, highlight=False)
    if result.outcome == "promoted":
        stdout.print(f"version {trained.model_version} is now champion")
    else:
        stdout.print(
            f"version {trained.model_version} stays challenger: " + "; ".join(result.reasons),
            highlight=False,
        )
