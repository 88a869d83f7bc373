"""After training: compare a challenger with the champion, promote it, pin, and retrain.

- ``compare``: both models place the same customers (the challenger's training sample, stored
  with it as the drift reference), which gives the migration matrix (champion id -> challenger
  id) and the share of customers moved between two segments that both carry on, the one gate no
  single version can answer; every other gate reads the versions' metrics (``models.gates``).
  The comparison is logged to the challenger's run (``compare/``: JSON, CSV, picture, metrics).
- ``promote_by_hand``: moves the champion alias when the gates pass, or with ``force`` and a
  reason (tagged on the version); a hand promotion pins the champion (registered-model tags
  ``pinned_version``, ``pinned_by``, ``pinned_reason``) until ``unpin``.
- ``retrain``: features -> train -> compare -> promote when the gates pass and nothing is pinned.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from feature_store.coverage import check_training_as_of, data_lag_days
from feature_store.errors import SegmentsError
from feature_store.layout import StoreLayout
from models.comparison import (
    CHAMPION_ONLY,
    COMPARE_FOLDER,
    COMPARISON_FILE,
    DISCOVERY_SELECTION,
    Comparison,
    compare_models,
    selection,
)
from models.explainer import SegmentExplainer
from models.gates import (
    MAX_DATA_LAG_DAYS,
    failures,
    first_version_gates,
)
from models.model_drift import NoReferenceError
from models.registry import CHALLENGER, CHAMPION, ModelRegistry
from models.segmenter import CustomerSegmenter
from pipelines.feature_pipeline import build_features, materialize
from pipelines.identity import check_champion_membership
from pipelines.lifecycle_plots import migration_alluvial
from pipelines.tracking import registry_config
from pipelines.train import TrainResult, train

PINNED_VERSION, PINNED_BY, PINNED_REASON, PINNED_AT = (
    "pinned_version",
    "pinned_by",
    "pinned_reason",
    "pinned_at",
)
PIN_TAGS = (PINNED_VERSION, PINNED_BY, PINNED_REASON, PINNED_AT)
DEFAULT_CAP = 12


class GatesFailedError(SegmentsError):
    """A promotion the gates refuse (without ``--force``)."""


@dataclass(frozen=True)
class Pin:
    version: str
    by: str
    reason: str
    at: str


# --- pins ----------------------------------------------------------------------------------------


def current_pin(registry: ModelRegistry) -> Pin | None:
    tags = registry.model_tags()
    if PINNED_VERSION not in tags:
        return None
    return Pin(
        tags[PINNED_VERSION],
        tags.get(PINNED_BY, ""),
        tags.get(PINNED_REASON, ""),
        tags.get(PINNED_AT, ""),
    )


def pin(registry: ModelRegistry, version: str, by: str, reason: str) -> Pin:
    at = _now()
    registry.set_model_tags(
        {PINNED_VERSION: version, PINNED_BY: by, PINNED_REASON: reason, PINNED_AT: at}
    )
    return Pin(version, by, reason, at)


def unpin(registry: ModelRegistry) -> Pin | None:
    """Remove the pin; return the one removed (None when nothing was pinned)."""
    removed = current_pin(registry)
    registry.delete_model_tags(PIN_TAGS)
    return removed


# --- compare -------------------------------------------------------------------------------------


def compare(
    registry: ModelRegistry,
    challenger: str | None = None,
    champion: str | None = None,
    log: bool = True,
) -> Comparison:
    """Compare two versions (default: the challenger and champion aliases) and log the result."""
    new_version = registry.resolve_version(challenger, CHALLENGER)
    old_version = registry.resolve_version(champion, CHAMPION)
    if new_version == old_version and challenger is None and champion is None:
        # the first version is both (or a challenger promoted by hand): nothing waits to be
        # compared, which "name two versions" did not say to a registry of one version
        raise SegmentsError(
            f"no challenger is waiting (version {old_version} is champion, and still holds the "
            "challenger alias from its own training); `segments train` registers one, or name "
            f"two versions: `segments compare VERSION {old_version}`"
        )
    if new_version == old_version:
        # Logged, it would replace the comparison the version was promoted on with one that
        # passes every gate by construction.
        raise SegmentsError(
            f"version {new_version} would be compared with itself (both the challenger and the "
            "champion); name two versions: `segments compare CHALLENGER CHAMPION`"
        )
    registry.refuse_unfinished(new_version)
    new, old = registry.load_version(new_version), registry.load_version(old_version)
    params = registry.version_params(new_version)
    # a discovery's run names its selection, for discoveries older than the model's own record
    old_selection = registry.version_params(old_version).get(DISCOVERY_SELECTION)
    try:
        comparison = compare_models(
            new_version,
            new,
            registry.version_metrics(new_version),
            old_version,
            old,
            registry.version_metrics(old_version),
            int(params.get("max_segments", DEFAULT_CAP)),
            params.get("chosen_candidate"),
            (
                selection(new, params.get(DISCOVERY_SELECTION)),
                selection(old, old_selection),
            ),
        )
    except NoReferenceError as error:
        raise SegmentsError(str(error)) from None
    if log:
        log_comparison(registry, comparison)
    return comparison


def write_comparison(comparison: Comparison, folder: Path) -> None:
    """``comparison.json``, ``migration.csv`` and ``migration.png`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COMPARISON_FILE).write_text(json.dumps(comparison.as_dict(), indent=2))
    comparison.migration.to_csv(folder / "migration.csv")
    migration_alluvial(
        comparison.migration,
        comparison.champion_names,
        comparison.challenger_names,
        f"version {comparison.champion}",
        f"version {comparison.challenger}",
        folder / "migration.png",
    )


def log_comparison(registry: ModelRegistry, comparison: Comparison, latest: bool = True) -> None:
    """The comparison's files and gate values in the challenger's run: the files in
    ``compare/`` (the latest, which the explorer reads) and in ``compare/against-v<champion>/``,
    which keeps each champion's; the gate values as metrics (the latest; each champion's are in
    its folder's ``comparison.json``) with ``compare.champion``, the version they were against.
    A comparison with another champion replaced the one before with nothing saying which
    champion the values were against (an ML engineer's walkthrough). Not a metric step per
    champion: MLflow shows a run's value at its highest step, an older champion's after a
    rollback. ``latest=False`` (a roll-back, by hand or not): the folder of that champion alone,
    so the comparison the version was first promoted on stays its latest and its metrics (a
    roll-back to version 2 left `compare.passed` 0 "against 8" on the run of a version promoted
    on passing gates: an ML engineer's review, 2026-12-08)."""
    run_id = registry.version_run(comparison.challenger)
    if run_id is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        write_comparison(comparison, Path(tmp))
        if latest:
            registry.client.log_artifacts(run_id, tmp, COMPARE_FOLDER)
        against = f"{COMPARE_FOLDER}/against-v{comparison.champion}"
        registry.client.log_artifacts(run_id, tmp, against)
    if not latest:
        return
    registry.log_values(
        run_id,
        metrics={
            **{f"gate.{g.name}": g.value for g in comparison.gates if g.value is not None},
            "compare.same_id_share": comparison.same_id_share,
            "compare.passed": float(comparison.passed),
            **(
                {"compare.champion": float(comparison.champion)}
                if comparison.champion.isdigit()
                else {}
            ),
        },
    )


# --- promotion -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandPromotion:
    version: str
    previous: str | None
    comparison: Comparison | None
    forced: bool
    pin: Pin
    # the version was champion already: only the pin may have changed
    already: bool = False


def promote_by_hand(
    registry: ModelRegistry, version: str, by: str, force: bool = False, reason: str = ""
) -> HandPromotion:
    """Make ``version`` champion when the gates pass (or ``force`` with a reason), and pin it."""
    if force and not reason.strip():
        raise SegmentsError("--force needs --reason TEXT: say why the gates may be overridden")
    with registry.promotion_lock():  # as a retrain's promotion: one move of the alias at a time
        return _promote_by_hand(registry, version, by, force, reason)


def _promote_by_hand(
    registry: ModelRegistry,
    version: str,
    by: str,
    force: bool,
    reason: str,
    rolled_back: bool = False,
) -> HandPromotion:
    resolved = registry.resolve_version(version)
    registry.refuse_unfinished(resolved)
    previous = registry.alias_version(CHAMPION)
    if previous == resolved:
        # Already champion: nothing to compare or move, and its promotion tags stay those of the
        # promotion that made it champion. Pinning it is what the request can still mean.
        held = current_pin(registry)
        if held is not None and held.version == resolved and not reason:
            return HandPromotion(resolved, previous, None, False, held, already=True)
        return HandPromotion(
            resolved,
            previous,
            None,
            False,
            pin(registry, resolved, by, reason or "pinned by hand"),
            already=True,
        )
    comparison = None
    # A version that served before is a roll-back by hand: a retrain after it gives the ids it
    # lacks back (``rolled_back_segments``), as after `segments rollback`.
    served_before = any(str(c.get("version")) == resolved for c in registry.champion_history())
    if previous is not None:
        comparison = compare(registry, resolved, previous, log=False)
        log_comparison(registry, comparison, latest=not (rolled_back or served_before))
    elif previous is None:
        gates = first_version_gates(registry.version_metrics(resolved))
        if failures(gates) and not force:
            raise GatesFailedError(f"version {resolved} fails {'; '.join(failures(gates))}")
    dropped = [] if comparison is None else ids_only_the_champion_has(comparison)
    if dropped and not force and not served_before:
        # Traced against another version, its ids are not the champion's: the champion's
        # segments it also has took new ids, and the ids a CRM holds would never come back
        # (the give-back rule covers roll-backs only). A retrain traces them against the
        # champion; `retrain` refuses such a promotion already (an ML engineer's review).
        listed = ", ".join(map(str, dropped))
        raise GatesFailedError(
            f"version {resolved}'s segment ids were not traced against the champion, version "
            f"{previous}: promoting it would retire id{'s' if len(dropped) > 1 else ''} {listed} "
            "for good, whatever its segments are; `segments retrain` traces a new version "
            "against the champion, or promote anyway with --force --reason TEXT"
        )
    if comparison is not None and not comparison.passed and not force:
        raise GatesFailedError(
            f"version {resolved} fails {'; '.join(failures(comparison.gates))}; "
            "promote anyway with --force --reason TEXT"
        )
    failed = failures(comparison.gates) if comparison else []
    # Pinned and tagged before the alias moves: a promotion killed after the move left a
    # champion promoted by hand that no pin kept from a scheduled retrain, with no promotion
    # tags (an ML engineer's review, 2026-12-08). Killed before it, the pin names a version
    # that is not champion, which a retrain refuses to pass (``retrain``) and says.
    pinned = pin(registry, resolved, by, reason or "promoted by hand")
    registry.set_version_tags(
        resolved,
        {
            "promoted_by": by,
            "promoted_at": _now(),
            "promotion.forced": str(bool(force and failed)).lower(),
            # read back if the alias moves and the history is not written (a kill between):
            # that change is then known for a roll-back, and the next one goes further back
            "promotion.rolled_back": str(rolled_back).lower(),
            **({"promotion.reason": reason} if reason else {}),
            **({"promotion.failed_gates": "; ".join(failed)} if failed else {}),
        },
    )
    registry.make_champion(
        resolved, by, forced=bool(force and failed), reason=reason or None, rolled_back=rolled_back
    )
    return HandPromotion(resolved, previous, comparison, bool(force and failed), pinned)


def ids_only_the_champion_has(comparison: Comparison) -> list[int]:
    """The champion's segment ids a version compared with it lacks, where that version was not
    traced against the champion (the comparison's "champion only" rows): a version traced
    against it says what became of each id instead (retired, merged, split)."""
    return sorted(
        int(row["id"]) for row in comparison.segments if row["transition"] == CHAMPION_ONLY
    )


def roll_back(registry: ModelRegistry, by: str, reason: str = "") -> HandPromotion:
    """Make the champion before this one champion again, past the gates (they compare it with
    the champion it replaces, which it usually fails), pinned, with ``reason`` (by default
    "roll back from version N") in the history. The earlier champion is the one the change that
    made the current champion replaced, unless that change was itself a roll-back: then the one
    its change before replaced (``rolled_back_to``). A second roll-back went to the version just
    rolled back from, forced past the gates it was rolled back for (an ML engineer's review,
    2026-12-07). An ML engineer had to read the history and type `promote N --force --reason
    ...` (a walkthrough, 2026-12-06)."""
    with registry.promotion_lock():
        current = registry.alias_version(CHAMPION)
        if current is None:
            raise SegmentsError("there is no champion to roll back from; `segments train` first")
        history = registry.champion_history()
        earlier = rolled_back_to(history, current)
        if not earlier:
            undone = any(_is_roll_back(c) for c in history if str(c["version"]) == current)
            raise SegmentsError(
                f"version {current} replaced no earlier champion (the registry's history of "
                "champions says so"
                + ("; what it replaced since, it replaced by a roll-back" if undone else "")
                + "): there is nothing to roll back to; `segments models history` lists the "
                "changes, `segments promote VERSION --force --reason TEXT` picks any"
            )
        return _promote_by_hand(
            registry,
            earlier,
            by,
            True,
            reason.strip() or f"roll back from version {current}",
            rolled_back=True,
        )


def rolled_back_to(history: Sequence[Mapping[str, object]], current: str) -> str:
    """The version a roll-back from ``current`` makes champion ("" when none): what the latest
    change that made ``current`` champion replaced, going back past changes that were
    roll-backs themselves (promote 3, promote 5, promote 6, roll back to 5: a roll-back from 5
    goes to 3, not to 6), and never to a version a roll-back to ``current`` left: with 1 made
    champion over 2 twice, by hand and by a roll-back, a second roll-back went back to 2."""
    rolled_back_from: set[str] = set()
    for change in reversed([c for c in history if str(c["version"]) == current]):
        replaced = str(change.get("replaced") or "")
        if _is_roll_back(change):
            rolled_back_from.add(replaced)
            continue
        if replaced == current or replaced in rolled_back_from:
            continue
        return replaced
    return ""


def _is_roll_back(change: Mapping[str, object]) -> bool:
    # a change recorded before roll-backs were marked counts as one by its default reason
    return bool(change.get("rolled_back")) or str(change.get("reason") or "").startswith(
        "roll back from version "
    )


# --- retraining ----------------------------------------------------------------------------------

Outcome = Literal["promoted", "kept_challenger"]


@dataclass
class RetrainResult:
    outcome: Outcome
    training: TrainResult
    comparison: Comparison | None
    reasons: list[str]
    # Why the retrain left the service's vectors and the drift snapshot as they were (None: it
    # wrote those of its as-of).
    vectors_kept: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "reasons": self.reasons,
            "vectors_kept": self.vectors_kept,
            "training": self.training.as_dict(),
            "comparison": self.comparison.as_dict() if self.comparison else None,
        }


def retrain(
    layout: StoreLayout,
    as_of: datetime,
    segmenter: CustomerSegmenter | None = None,
    registry: ModelRegistry | None = None,
    explainer: SegmentExplainer | None = None,
    by: str | None = None,
) -> RetrainResult:
    """Features -> train -> compare -> promote when the gates pass and nothing is pinned.

    Refuses (``SegmentsError``) an as-of the data cannot answer before computing anything. A
    promotion is recorded as by "retrain", with the user who ran it where known (``by``: the
    history said "retrain" alone, not who: an ML engineer's review).
    """
    check_training_as_of(layout, as_of)
    registry = registry or ModelRegistry(registry_config(layout))
    check_champion_membership(registry)
    features = build_features(layout, as_of)
    # The snapshot drift reads and the vectors the service scores by: only for an as-of the
    # data reaches. One 77 days past the last event (refused by its data_lag_days gate) still
    # wrote vectors in which every customer looked dormant, and the champion then served them,
    # while the online store's newer-wins rule kept `segments features` from writing them back
    # (an ML engineer's walkthrough).
    lag = data_lag_days(layout, as_of)
    kept = None
    if lag <= MAX_DATA_LAG_DAYS:
        materialize(layout, features, as_of)
    else:
        kept = (
            f"the service's vectors and the drift snapshot were left as they were: the as-of is "
            f"{lag:.0f} days past the last event stored (at most {MAX_DATA_LAG_DAYS:g})"
        )
    trained = train(layout, as_of, segmenter, registry, features, explainer)
    result = promote_if_better(registry, trained, by)
    result.vectors_kept = kept
    return result


def promote_if_better(
    registry: ModelRegistry, trained: TrainResult, by: str | None = None
) -> RetrainResult:
    """A retrain's last step: ``trained`` becomes champion when its gates pass against the
    champion of this moment and nothing is pinned."""
    if trained.promoted:
        return RetrainResult("promoted", trained, None, [])
    if trained.champion_version is None:  # a first version failing its fidelity gate
        return RetrainResult("kept_challenger", trained, None, trained.gate_failures)
    # Judged under the lock, with the champion as it is when the alias may move: two retrains
    # finishing together both compared with the same champion and both promoted (a review saw
    # v5 and v6 each say "now champion"). Its segment ids were traced against the champion it
    # started from; if another version became champion meanwhile, those ids say nothing about
    # the new one, so it stays challenger and says why.
    with registry.promotion_lock():
        champion = registry.alias_version(CHAMPION)
        if champion == trained.model_version:  # promoted by hand meanwhile
            return RetrainResult("promoted", trained, None, [])
        if champion != trained.traced_against:
            return RetrainResult(
                "kept_challenger",
                trained,
                None,
                [
                    f"the champion changed while this retrain ran (now {_version_text(champion)}; "
                    f"its segment ids were traced against {_version_text(trained.traced_against)})"
                    ": retrain again to compare with it"
                ],
            )
        comparison = compare(registry, trained.model_version, champion)
        reasons = failures(comparison.gates)
        # the training's own record says what the comparison found: its `gate_failures` were []
        # for every challenger (training leaves the judging to this step)
        trained = replace(trained, gate_failures=list(reasons))
        pinned = current_pin(registry)
        if pinned is not None and pinned.version != champion:
            # a promotion by hand killed between its pin and the alias's move
            reasons.append(
                f"version {pinned.version} is pinned by {pinned.by or 'someone'} "
                f"({pinned.reason}) but the champion is {_version_text(champion)}: a promotion "
                f"that did not finish; `segments promote {pinned.version}` finishes it, "
                "`segments unpin` lets retraining go on"
            )
        elif pinned is not None:
            reasons.append(
                f"champion version {pinned.version} is pinned by {pinned.by or 'someone'}"
                f" ({pinned.reason}); `segments unpin` lets retraining replace it"
            )
        if reasons:
            return RetrainResult("kept_challenger", trained, comparison, reasons)
        promoter = f"retrain ({by})" if by else "retrain"
        registry.make_champion(trained.model_version, promoter)
        registry.set_version_tags(
            trained.model_version, {"promoted_by": promoter, "promoted_at": _now()}
        )
    # promoted here, not by training: `training.promoted` read false beside outcome "promoted"
    trained = replace(trained, promoted=True, champion_version=trained.model_version)
    return RetrainResult("promoted", trained, comparison, [])


def _version_text(version: str | None) -> str:
    return f"version {version}" if version else "no champion"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
