"""Models: ``train`` a version, ``promote`` one by hand (gated, pinned), ``models list`` what the
registry holds."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from models.business import (
    BACKTEST_WINDOW_DAYS,
    BUYERS,
    NO_CANCELLATION,
    NO_COHORT,
    NO_SUBSCRIPTIONS,
    too_few_text,
)
from models.gates import failures, structure_shortfalls
from models.lineage import lineage_words
from models.summaries import (
    BOUGHT_AGAIN_CLAUSE,
    NO_SUBSCRIPTION_LINE,
    weak_structure_text,
    with_unit,
)
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
    from models.comparison import Comparison
    from models.registry import ModelRegistry
    from pipelines.lifecycle import HandPromotion
    from pipelines.train import TrainResult

app = typer.Typer()
models_app = typer.Typer(help="Registered model versions.", no_args_is_help=True)
app.add_typer(models_app, name="models")

# The metrics the `models list` table shows, in order; `--json` gives all of a version's own
# metrics (not the per-candidate scores logged next to them).
LISTED_METRICS = ("n_segments", "silhouette", "stability", "outlier_share", "surrogate_fidelity")
# `segments train`: a first version failed a gate, so no champion serves (as `retrain`'s 3)
NOTHING_SERVED = 3


@app.command()
def train(
    as_of: AsOfOption,
    seed: SeedOption = 0,
    max_segments: MaxSegmentsOption = 12,
    segments: SegmentsOption = None,
    as_json: JsonFlag = False,
) -> int:
    """Discover segments from the features as of a date; track and register them in MLflow.
    Exit 0: registered (a first version becomes champion, a later one challenger); 3: a first
    version that fails a gate, so that nothing is served yet; 2: request refused."""
    from feature_store.coverage import (
        check_training_as_of,
        mixed_currency_note,
        same_instant_note,
        unmatched_cancellation_note,
    )
    from feature_store.timeutil import parse_as_of

    store = layout()
    instant = parse_as_of(as_of)
    # before MLflow is even imported: a refusal is quick; the ids warning is printed at the end
    mismatch = check_training_as_of(store, instant)
    currencies = mixed_currency_note(store, instant)
    same_instant = same_instant_note(store, instant)
    unmatched = unmatched_cancellation_note(store, instant)
    quiet_mlflow()
    from pipelines.train import train as run_training

    registry(create=True)  # an unreachable registry is said now, not after minutes of fitting
    from models.segmenter import segmenter_for

    segmenter = segmenter_for(segments, max_segments, random_state=seed)
    print_note(raised_cap_note(segments, max_segments))
    # MLflow prints run links on stdout; keep stdout for our own output (--json).
    with (
        console.status("Training: features, candidate segmentations, profiles, MLflow..."),
        contextlib.redirect_stdout(sys.stderr),
    ):
        result = run_training(store, instant, segmenter)
        comparison = _compare_with_champion(result)
        failed = None if comparison is None else failures(comparison.gates)
    if as_json:
        # a first champion that a challenger's structure gates would fail: what it lacks
        weak = structure_shortfalls(result.metrics) if result.promoted else []
        # `gate_failures`: every gate this version fails, judged as far as it can be: against
        # the champion when there is one (it was [] for every challenger, beside the comparison's
        # failures in `failed_gates`, which a CI script read as all gates passing: an ML
        # engineer's review); `failed_gates` is kept for scripts that read it
        answer = result.as_dict()
        if comparison is not None:
            answer["gate_failures"] = failed
            # one figure under the gate's name, the gate's (a CRM integrator read 0.485 beside
            # "same_id_share 0.488 (needs >= 0.5)"): the lineage's own, of the customers in both
            # versions' training sets as each placed them then, keeps a name of its own
            answer["lineage_same_id_share"] = result.same_id_share
            answer["same_id_share"] = comparison.same_id_share
        print_json({**answer, "failed_gates": failed, "structure_shortfalls": weak})
    else:
        _print_training(result, failed)
    print_note(mismatch)
    print_note(currencies)
    print_note(same_instant)
    print_note(unmatched)
    # nothing is served: as `retrain` says a version kept as challenger (exit 0 read as done to
    # a script; an ML engineer's walkthrough)
    return NOTHING_SERVED if not result.promoted and result.champion_version is None else 0


def _compare_with_champion(result: TrainResult) -> Comparison | None:
    """A new challenger is compared with the champion at once, and the comparison logged to its
    run (what the explorer's Compare page shows); None without a champion."""
    if result.promoted or result.champion_version is None:
        return None
    from pipelines.lifecycle import compare

    return compare(registry(), result.model_version, result.champion_version)


def churn_text(backtest: Mapping[str, Any] | None) -> str:
    """'4.1% (2.6-6.3%, 12 of 290)' or why there is no rate."""
    churn = (backtest or {}).get("churn")
    if churn is None:
        cohort = (backtest or {}).get("cohort", 0)
        # the cohort: customers paying at the window's start whom the model placed here then
        return too_few_text(cohort) if backtest else "not measured"
    return (
        f"{churn['rate']:.1%} ({churn['low']:.1%}-{churn['high']:.1%}, "
        f"{churn['count']:,} of {churn['total']:,})"
    )


def retention_cell(backtest: Mapping[str, Any] | None) -> str:
    """'102% (100%-104%)': MRR kept by the churn figure's cohort over the window, with its 90%
    interval; '-' when churn is not measured (its cell says why)."""
    kept = (backtest or {}).get("net_mrr_retention")
    interval = (backtest or {}).get("net_mrr_retention_interval")
    if kept is None:
        return "-"
    return f"{kept:.0%}" + (f" ({interval[0]:.0%}-{interval[1]:.0%})" if interval else "")


def segments_table(segments: Sequence[Mapping[str, Any]]) -> Table:
    """The segments a run found, with the backtest's churn and MRR kept, window named."""
    days = BACKTEST_WINDOW_DAYS
    # with no MRR anywhere (invoices alone), the share of revenue to date, as the pages show it
    revenue = not any(s["mrr_share"] for s in segments) and all(
        s.get("ltv_share") is not None for s in segments
    )
    share = "revenue share (to date)" if revenue else "MRR share"
    buyers = any((s.get("backtest") or {}).get("cohort_kind") == BUYERS for s in segments)
    if buyers:  # invoices alone: no subscription to churn, the share who bought again instead
        table = Table("id", "segment", "customers", share, f"bought again, {days}-day backtest")
    else:
        table = Table(
            "id",
            "segment",
            "customers",
            share,
            f"churn, {days}-day backtest",
            f"MRR kept, {days} days",
        )
    for segment in segments:
        backtest = segment.get("backtest")
        figures = (
            [repurchase_text(backtest)]
            if buyers
            else [churn_text(backtest), retention_cell(backtest)]
        )
        table.add_row(
            str(segment["id"]),
            str(segment["name"]),
            f"{segment['size']:,}",
            f"{segment['ltv_share' if revenue else 'mrr_share']:.1%}",
            *figures,
        )
    return table


def repurchase_text(backtest: Mapping[str, Any] | None) -> str:
    """'62.1% (55.0-68.7%, 256 of 412)': of the customers who had bought before the window and
    whom the model placed here then, those who paid again within it; or why there is no rate."""
    again = (backtest or {}).get("repurchase")
    if again is None:
        return too_few_text((backtest or {}).get("cohort", 0), BUYERS) if backtest else "-"
    return (
        f"{again['rate']:.1%} ({again['low']:.1%}-{again['high']:.1%}, "
        f"{again['count']:,} of {again['total']:,})"
    )


def churned_text(
    churned: dict[str, Any], cohort: float | None, buyers: bool = False, currency: str | None = None
) -> str:
    """The churned customers beside the segments, saying what the backtest measured: the MRR
    that the customers paying at the window's start (``cohort`` of them; none: nothing measured)
    took when they cancelled, what those who cancelled earlier paid when last active, and the
    segments they were in then. A discovery's (``selection``: its filters) counts only whom they
    selected at the window's start. ``buyers``: a business of invoices alone whose segments got
    a "bought again" backtest. Money in ``currency``, a month, as the pages say it ("took 9,916.34
    MRR" named neither)."""
    days = BACKTEST_WINDOW_DAYS
    if churned.get("selection") is not None:
        text = (
            f"churned (not a segment): {churned['count']:,} of the customers selected "
            f"({churned['selection']}) {days} days before cancelled since"
        )
    else:
        text = f"churned (not a segment): {churned['count']:,} customers cancelled as of this date"
    unmeasured = churned.get("backtest_unmeasured")
    if not cohort:
        if unmeasured == NO_SUBSCRIPTIONS and not churned["count"]:
            return (
                f"churned (not a segment): {NO_SUBSCRIPTION_LINE}"
                + (
                    f"{BOUGHT_AGAIN_CLAUSE.replace('Bought again', 'bought again')}"
                    if buyers
                    else ""
                )
                + "."
            )
        if unmeasured not in (None, NO_COHORT):  # billing that ends before the window does
            return f"{text}; the MRR they took and churn per segment are not measured: {unmeasured}"
        return (
            f"{text}; nobody was paying {days} days before, so the MRR they took and churn per "
            "segment are not measured"
        )
    where = ", ".join(f"segment {s}: {n:,}" for s, n in churned["last_segment"].items())
    earlier = churned.get("before_window")
    return (
        f"{text}; those paying {days} days before who cancelled since took MRR of "
        f"{with_unit('mrr', churned['lost_mrr'], currency)}"
        + (
            f"; the {earlier:,} who cancelled earlier paid "
            f"{with_unit('mrr', churned['before_window_lost_mrr'] or 0.0, currency)} when last active"
            if earlier
            else ""
        )
        + (f"; where they were when last active: {where}" if where else "")
        + (f"\nchurn per segment not measured: {unmeasured}" if unmeasured else "")
        + (f"\n{NO_CANCELLATION}" if churned["count"] == 0 and not churned.get("selection") else "")
    )


def left_out_text(left_out: dict[str, list[str]]) -> str:
    """Which features were not segmented on for want of their kind of event."""
    return "; ".join(
        f"no {kind} events before the date: not segmented on {', '.join(names)} (without them "
        "they would hold only fallbacks)"
        for kind, names in sorted(left_out.items())
    )


def currency_text(levels: dict[str, object] | None) -> str | None:
    """How money in several currencies was made one, or None with one currency."""
    if levels is None:
        return None
    from feature_store.currency import CurrencyLevels

    return CurrencyLevels.from_dict(levels).describe()


def _print_training(result: TrainResult, failed: list[str] | None = None) -> None:
    stdout.print(
        f"run {result.run_id}: model version {result.model_version}, {result.n_segments} segments, "
        f"silhouette {result.metrics['silhouette']:.3f}, stability {result.metrics['stability']:.3f}, "
        f"{result.seconds:.1f} s",
        highlight=False,
    )
    stdout.print(segments_table(result.segments))
    if result.churned:
        cohort = result.metrics.get("backtest_cohort")
        buyers = bool(result.metrics.get("backtest_buyers"))
        stdout.print(
            churned_text(result.churned, cohort, buyers, result.money_currency), highlight=False
        )
    mixed = currency_text(result.currency_levels)
    if mixed:
        stdout.print(mixed, highlight=False)
    if result.left_out:
        stdout.print(left_out_text(result.left_out), highlight=False)
    weak_structure = weak_structure_text(result.metrics.get("silhouette", 1.0))
    if weak_structure:  # champion or not: what the segments are is said beside them
        stdout.print(weak_structure, highlight=False)
    if result.promoted:
        weak = structure_shortfalls(result.metrics)
        stdout.print(
            f"version {result.model_version} is now champion"
            + (
                " (a first version answers to the fidelity and freshness gates only; as a "
                f"challenger to a champion above them it would fail: {'; '.join(weak)})"
                if weak
                else ""
            ),
            highlight=False,
        )
    elif not result.gate_failures:
        lineage = lineage_words(result.lineage, result.renamed, result.returned)
        if failed:  # promote would refuse (exit 3): say what it takes instead
            advice = (
                f"gates fail ({'; '.join(failed)}): `segments compare` shows them; `segments "
                f"promote {result.model_version} --force --reason TEXT` overrides them"
            )
        else:
            advice = (
                "every gate passes: `segments compare` shows them, `segments promote "
                f"{result.model_version}` moves the champion"
            )
        stdout.print(
            f"version {result.model_version} is challenger ({lineage}); champion stays "
            f"{result.champion_version}; {advice}",
            highlight=False,
        )
    else:
        champion = (
            f"champion stays {result.champion_version}"
            if result.champion_version is not None
            # a first version that fails a gate: nothing is served until one passes (or --force)
            else "there is no champion yet"
        )
        stdout.print(
            f"version {result.model_version} is challenger; {champion} "
            f"({'; '.join(result.gate_failures)}); `segments promote {result.model_version} "
            "--force --reason TEXT` overrides the gates",
            highlight=False,
        )


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Registered model version to make champion.")],
    force: Annotated[
        bool, typer.Option("--force", help="Promote even when gates fail (needs --reason).")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why (logged on the version and the pin).")] = "",
) -> int:
    """Move the champion alias to a version when the gates pass (or --force --reason), and pin
    it: automated retraining never replaces a pinned champion (`segments unpin`).
    Exit 0: promoted; 3: gates failed (printed); 2: request refused."""
    quiet_mlflow()
    import getpass

    from pipelines.cli.lifecycle import KEPT_CHALLENGER
    from pipelines.lifecycle import GatesFailedError, promote_by_hand

    models = registry()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            done = promote_by_hand(models, version, getpass.getuser(), force, reason)
    except GatesFailedError as error:
        from pipelines.cli.common import print_error

        print_error(str(error))
        return KEPT_CHALLENGER
    if done.already:
        stdout.print(
            f"version {done.version} is already champion; pinned by {done.pin.by} "
            f"({done.pin.reason})",
            highlight=False,
        )
        return 0
    _print_hand_promotion(done)
    return 0


def _print_hand_promotion(done: HandPromotion) -> None:
    from pipelines.cli.lifecycle import print_gates

    if done.comparison is not None:
        print_gates(done.comparison.gates)
    forced = " (forced past failing gates)" if done.forced else ""
    stdout.print(
        f"champion: version {done.previous or '-'} -> {done.version}{forced}; pinned by "
        f"{done.pin.by} ({done.pin.reason})",
        highlight=False,
    )


@app.command()
def rollback(
    reason: Annotated[
        str, typer.Option(help='Why (default: "roll back from version N"); kept in the history.')
    ] = "",
) -> None:
    """Make the previous champion champion again (the one the current champion replaced, from
    `segments models history`), past the gates, and pin it. Exit 0: rolled back; 2: refused
    (no champion, or none before it)."""
    quiet_mlflow()
    import getpass

    from pipelines.lifecycle import roll_back

    models = registry()
    with contextlib.redirect_stdout(sys.stderr):
        done = roll_back(models, getpass.getuser(), reason)
    _print_hand_promotion(done)


@models_app.command("list")
def models_list(as_json: JsonFlag = False) -> None:
    """Every registered version, newest first, with its aliases, the as-of of its features and
    key metrics."""
    from feature_store.timeutil import as_of_text

    quiet_mlflow()
    versions = _registered_versions(registry())
    if as_json:
        print_json(versions)
        return
    if not versions:
        console.print("no model versions registered yet; run `segments train`")
        return
    table = Table("version", "aliases", "registered", "features as of", *LISTED_METRICS, "run")
    for entry in versions:
        metrics = entry["metrics"]
        table.add_row(
            entry["version"],
            ", ".join(
                [
                    *entry["aliases"],
                    *(["pinned"] if entry["pinned"] else []),
                    *(["forced"] if entry["forced"] else []),
                    *(["unfinished"] if entry["unfinished"] else []),
                ]
            )
            or "-",
            entry["registered_at"],
            as_of_text(entry["features_as_of"]) if entry["features_as_of"] else "-",
            *(_metric_text(metrics.get(name)) for name in LISTED_METRICS),
            entry["run_id"] or "-",
        )
    print_table(table, whole=["version", "aliases", "registered", "features as of", "run"])


@models_app.command("history")
def models_history(as_json: JsonFlag = False) -> None:
    """Every change of champion, oldest first: when, which version, which it replaced, by whom,
    whether gates were overridden and why (the registered model's `champion.history`)."""
    quiet_mlflow()
    models = registry()
    changes = models.champion_history()
    if as_json:
        print_json(changes)
        return
    if not changes:
        from models.registry import CHAMPION

        champion = models.alias_version(CHAMPION)
        console.print(
            f"no change of champion recorded (the registry began recording them on 2026-12-06); "
            f"the champion is version {champion}"
            if champion
            else "no champion yet; `segments promote VERSION` makes one"
        )
        return
    table = Table("at", "champion", "replaced", "by", "forced", "reason")
    for change in changes:
        table.add_row(
            str(change.get("at") or "-"),
            str(change.get("version", "-")),
            str(change.get("replaced") or "-"),
            str(change.get("by", "-")),
            "yes" if change.get("forced") else "no",
            str(change.get("reason") or "-"),
        )
    print_table(table, whole=["at", "champion", "replaced", "by", "forced"])


def _registered_versions(models: ModelRegistry) -> list[dict[str, Any]]:
    client = models.client
    found = client.search_model_versions(f"name = '{models.model_name}'")
    if not found:
        return []
    from models.registry import CHAMPION, UNFINISHED_TAG
    from pipelines.lifecycle import current_pin

    # Search results leave aliases out; the registered model knows them all.
    aliases = client.get_registered_model(models.model_name).aliases
    pin = current_pin(models)
    # the champion's gates were overridden when the change that made it champion was forced
    # (`segments models history` has every change; the list showed none of it)
    history = models.champion_history()
    forced = str(history[-1]["version"]) if history and history[-1].get("forced") else None
    return [
        {
            "version": str(version.version),
            "aliases": sorted(a for a, v in aliases.items() if str(v) == str(version.version)),
            # automated retraining never replaces a pinned champion: say which one is
            "pinned": pin is not None and pin.version == str(version.version),
            "forced": forced == str(version.version) and str(aliases.get(CHAMPION, "")) == forced,
            # its training stopped before its lineage and report: it cannot be promoted
            "unfinished": UNFINISHED_TAG in (version.tags or {}),
            "registered_at": _timestamp(version.creation_timestamp),
            # which data each version saw: choosing a roll-back target meant opening each
            # version's description (an ML engineer's walkthrough)
            "features_as_of": _features_as_of(models, str(version.version)),
            "run_id": version.run_id,
            "metrics": _model_metrics(models.version_metrics(str(version.version))),
        }
        for version in sorted(found, key=lambda v: int(v.version), reverse=True)
    ]


def _features_as_of(models: ModelRegistry, version: str) -> str | None:
    """The instant a version's features were computed as of (RFC 3339), from its run."""
    from feature_store.timeutil import stamp_text

    return stamp_text(models.version_params(version).get("as_of"))


def _model_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The version's own metrics, without the per-candidate scores logged next to them."""
    return {name: value for name, value in metrics.items() if "." not in name}


def _timestamp(milliseconds: int | None) -> str:
    if milliseconds is None:
        return "-"
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _metric_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3f}"
