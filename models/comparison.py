"""Champion against challenger, pure: both models place the same customers.

The comparison ``segments compare`` prints and logs (``compare/comparison.json`` in the challenger's
run) and the explorer's Compare page reads back: the migration matrix (champion id -> challenger
id), the segments side by side with their business figures, the challenger's lineage and every
promotion gate (``models.gates``). Both models place the challenger's reference customers (its
training sample, stored with it), so the migration and the moves are the models' doing, not the
customers'.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from feature_store.timeutil import read_stamp
from models.bundle import SegmentModel
from models.business import BACKTEST_WINDOW_DAYS, BUYERS, PAYING, too_few_text, window_days_of
from models.gates import (
    ALL_CUSTOMERS,
    CUSTOMERS_BASIS,
    Gate,
    challenger_gates,
    survivor_kept_share,
    unexplained_move_share,
)
from models.lineage import SURVIVED_RENAMED, Lineage
from models.model_drift import NoReferenceError

# The run param a discovery records its selection in (``pipelines.discover``).
DISCOVERY_SELECTION = "discovery.selection"
COMPARE_FOLDER = "compare"
COMPARISON_FILE = "comparison.json"
# The business figures shown side by side for each segment.
SIDE_BY_SIDE = ("size", "share", "mrr_share", "churn_rate", "ltv_median")


def candidate_metric(candidate: str, criterion: str) -> str:
    """The run metric holding ``criterion`` of ``candidate`` (e.g. "kmeans(k=6)", "silhouette"),
    as training logs it for every candidate it scored."""
    return f"candidate.{re.sub(r'[^A-Za-z0-9_]+', '_', candidate).strip('_')}.{criterion}"


@dataclass
class Comparison:
    challenger: str
    champion: str
    lineage: Lineage | None
    migration: pd.DataFrame  # rows: champion ids, columns: challenger ids, customers
    segments: list[dict[str, object]]
    gates: list[Gate]
    customers_compared: int
    same_id_share: float
    champion_names: dict[int, str] = field(default_factory=dict)
    challenger_names: dict[int, str] = field(default_factory=dict)
    # each version's features date (RFC 3339): its backtest covers the 90 days before it, so two
    # versions trained a week apart measured churn over different days
    champion_as_of: str | None = None
    challenger_as_of: str | None = None

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)

    def as_dict(self) -> dict[str, object]:
        return {
            "challenger": self.challenger,
            "champion": self.champion,
            "passed": self.passed,
            "gates": [gate.as_dict() for gate in self.gates],
            "customers_compared": self.customers_compared,
            "same_id_share": self.same_id_share,
            "migration": {
                str(old): {str(new): int(n) for new, n in row.items() if n}
                for old, row in self.migration.iterrows()
            },
            "segments": self.segments,
            "lineage": self.lineage.as_dict() if self.lineage else None,
            "names": {
                "champion": {str(i): n for i, n in self.champion_names.items()},
                "challenger": {str(i): n for i, n in self.challenger_names.items()},
            },
            "features_as_of": {
                "champion": self.champion_as_of,
                "challenger": self.challenger_as_of,
            },
        }


OUTSIDE_SELECTION = "outside the selection"


def worded_transitions(document: Mapping[str, Any]) -> Callable[..., str]:
    """Each segment's transition as the CLI and the explorer word it, from a comparison
    (``Comparison.as_dict``). A discovery segments a selection, so the
    champion's segments none of its customers are in have no successor and are traced as
    "retired"; a product team read that as segments gone from the business. They are outside the
    selection (promoting the challenger would retire them from service, which the failing
    customers gate already says). Judged on the customers the comparison places, the
    challenger's training sample of its selection: a champion segment with a handful of the
    selection's customers, none of them in the sample, reads outside it too. A survived segment
    whose name changed reads "survived, renamed". A retired segment whose customers went to
    others says where ("retired: into 7, 8"): side by side, "retired" alone read as a segment
    gone from the business, where the lineage table below said it had split (a product team's
    walkthrough)."""
    other_customers = any(
        g["name"] == "customers" and float(g["value"]) == 0 for g in document["gates"]
    )
    placed = {int(old) for old, row in document["migration"].items() if any(row.values())}
    # A survived segment keeps its id, and its name unless its customers moved materially
    # (``models.lineage.kept_names``); one renamed read "survived" beside two different names.
    renamed = {
        int(row["id"])
        for row in document["segments"]
        if "champion_name" in row
        and "challenger_name" in row
        and row["champion_name"] != row["challenger_name"]
    }

    lineage = document.get("lineage") or {}
    went_to = {
        int(t["id"]): [int(child) for child in t.get("children") or ()]
        for t in lineage.get("transitions", [])
    }

    def happened(segment_id: int, transition: str, successors: bool = False) -> str:
        """``successors``: name where a retired segment went (the side-by-side rows; the lineage
        rows say it beside the word)."""
        if other_customers and transition == "retired" and segment_id not in placed:
            return OUTSIDE_SELECTION
        if transition == "survived" and segment_id in renamed:
            return SURVIVED_RENAMED
        if successors and transition == "retired" and went_to.get(segment_id):
            return "retired: into " + ", ".join(map(str, went_to[segment_id]))
        return transition

    return happened


def side_churn(
    row: Mapping[str, object], side: str, rate_text: Callable[[float], str] = "{:.1%}".format
) -> str:
    """A side-by-side row's backtested churn for ``side`` ("champion" or "challenger"), or, in a
    business of invoices alone, the share who bought again (``of_buyers``): "-" where
    that side has no such segment; where the backtest placed too few paying customers in it, the
    words ``segments train`` prints ("too few: would have held 0 paying then"); "not measured"
    where there was no backtest; never 0% (the CLI's table and the explorer's). ``rate_text``
    words a rate: one decimal as the CLI prints every rate, or the explorer's ``percent``, as its
    cards word the same segment's churn (a product team read "11%" on a card, "10.6%" here)."""
    if f"{side}_name" not in row:
        return "-"
    rate = row.get(f"{side}_churn_rate")
    if rate is not None:
        return rate_text(float(rate))  # type: ignore[arg-type]
    cohort = row.get(f"{side}_backtest_cohort")
    if row.get(f"{side}_backtest_kind") == BUYERS:  # invoices alone: who bought again
        if f"{side}_repurchase_rate" not in row:  # compared before the figure was recorded
            return "not recorded: compare again"
        again = row.get(f"{side}_repurchase_rate")
        if again is not None:
            return rate_text(float(again))  # type: ignore[arg-type]
        return too_few_text(int(cohort or 0), BUYERS)  # type: ignore[call-overload]
    return "not measured" if cohort is None else too_few_text(int(cohort))  # type: ignore[call-overload]


def of_revenue(rows: Sequence[Mapping[str, object]], side: str) -> bool:
    """Whether ``side``'s money column is the share of revenue to date: nobody holds MRR on it
    and it recorded that share, the cards' rule (``summaries.money_share_of``), so a retailer
    too young for the buyers' backtest reads the same share on every page."""
    present = [row for row in rows if f"{side}_name" in row]
    return (
        bool(present)
        and not any(row.get(f"{side}_mrr_share") for row in present)
        and all(row.get(f"{side}_ltv_share") is not None for row in present)
    )


def of_buyers(rows: Sequence[Mapping[str, object]], side: str) -> bool:
    """Whether ``side`` ("champion" or "challenger") of a side-by-side comparison is of a
    business of invoices alone: its backtest column is then who bought again, its money column
    the share of revenue to date. Judged per side: a subscription champion beside a buyers'
    challenger keeps its MRR and churn (a review found them relabelled)."""
    return any(row.get(f"{side}_backtest_kind") == BUYERS for row in rows)


def selection(model: SegmentModel, recorded: str | None = None) -> str:
    """Whom ``model`` was segmented on: a discovery's selection (``recorded``, its run's
    ``discovery.selection`` param, for discoveries registered before the model kept it), else all
    customers."""
    churned = getattr(model, "churned", None)
    kept = churned.selection if churned is not None else None
    return kept or recorded or ALL_CUSTOMERS


def compare_models(
    new_version: str,
    new: SegmentModel,
    new_metrics: dict[str, float],
    old_version: str,
    old: SegmentModel,
    old_metrics: dict[str, float],
    cap: int,
    setting: str | None = None,
    selections: tuple[str, str] | None = None,
) -> Comparison:
    """The comparison itself, pure: both models place the challenger's reference customers.
    ``selections``: whom the challenger and the champion were segmented on (default: what the
    models record, ``selection``).

    ``setting``: the challenger's chosen candidate (e.g. "kmeans(k=6)"); its silhouette is judged
    against the champion's run's silhouette for that same candidate, when the champion scored it
    (``models.gates.silhouette_gate``)."""
    if new.reference is None:
        raise NoReferenceError(
            f"version {new_version} was registered without its training sample; retrain it"
        )
    lacking = [name for name in old.feature_names if name not in new.reference.columns]
    if lacking:  # a sample saved with the challenger's columns only (registered before 2026-12-03)
        raise NoReferenceError(
            f"version {new_version}'s training sample lacks features version {old_version} "
            f"uses ({', '.join(lacking)}); retrain version {new_version} to compare them"
        )
    old_ids = _placed_ids(old, new.reference)
    new_ids = _placed_ids(new, new.reference)
    continuing = set(old.segment_ids) & set(new.segment_ids)
    moved = unexplained_move_share(old_ids, new_ids, continuing)
    kept = survivor_kept_share(old_ids, new_ids, continuing) if continuing else (0.0, None)
    same_setting = old_metrics.get(candidate_metric(setting, "silhouette")) if setting else None
    same_ids = round(float(np.mean(old_ids == new_ids)), 6) if len(new_ids) else 1.0
    gates = challenger_gates(
        new_metrics,
        cap,
        round(moved, 6),
        same_setting,
        setting,
        selections or (selection(new), selection(old)),
        None if kept is None else (round(kept[0], 6), kept[1]),
        days_between(getattr(old, "features_as_of", None), getattr(new, "features_as_of", None)),
        same_ids,
    )
    migration = pd.crosstab(
        pd.Series(old_ids, name="champion"), pd.Series(new_ids, name="challenger")
    )
    return Comparison(
        challenger=new_version,
        champion=old_version,
        lineage=new.lineage,
        migration=migration,
        segments=side_by_side(old, new, old_version),
        gates=gates,
        customers_compared=len(new_ids),
        same_id_share=same_ids,
        champion_names=dict(zip(old.segment_ids, old.segment_names, strict=True)),
        challenger_names=dict(zip(new.segment_ids, new.segment_names, strict=True)),
        champion_as_of=getattr(old, "features_as_of", None),
        challenger_as_of=getattr(new, "features_as_of", None),
    )


def different_customers(gates: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """Whom the champion and the challenger segmented, from a comparison's customers gate
    (``Gate.as_dict``), when the challenger segmented others than the champion's customers (value
    0; 2, all customers in place of a selection, passes). Their shares and churn then describe
    different customers: a product team read a discovery of team and enterprise plans at 0% churn
    beside the champion's 6.8% as a better model, where every churner was on the starter plan,
    outside the selection."""
    for gate in gates:
        if gate["name"] == "customers" and float(gate["value"]) == 0:
            basis = str(gate.get("basis") or "")
            return str(gate["threshold"]), basis.removeprefix(CUSTOMERS_BASIS)
    return None


DIFFERENT_CUSTOMERS_NOTE = (
    "each side's shares and churn are of its own customers, so they do not compare: a lower "
    "churn can be the churn of customers the challenger left out"
)


def backtest_window_text(document: Mapping[str, Any], side: str) -> str | None:
    """The days ``side``'s backtest covered ("2026-04-01 to 2026-06-29"): each version's window
    ends on its own features date, so two versions trained a week apart measured churn over
    different days. None for a comparison stored before the dates were recorded."""
    window = window_days_of((document.get("features_as_of") or {}).get(side))
    return None if window is None else f"{window[0]} to {window[1]}"


def backtest_heading(document: Mapping[str, Any], side: str) -> str:
    """The heading of ``side``'s backtest column in ``segments compare``'s side-by-side table:
    what it measures and over which days ("churn, 90-day backtest, 2026-04-01 to 2026-06-29")."""
    kind = "bought again" if of_buyers(document["segments"], side) else "churn"
    heading = f"{kind}, {BACKTEST_WINDOW_DAYS}-day backtest"
    window = backtest_window_text(document, side)
    return heading if window is None else f"{heading}, {window}"


def days_between(earlier: str | None, later: str | None) -> float | None:
    """``later`` minus ``earlier`` in days, for two features dates as models record them (RFC
    3339); None when either is not recorded."""
    if not earlier or not later:
        return None
    delta = read_stamp(later) - read_stamp(earlier)
    return round(delta.total_seconds() / 86_400, 3)


def _placed_ids(model: SegmentModel, rows: pd.DataFrame) -> np.ndarray:
    placed = model.place(model.values(rows))
    return np.array(model.segment_ids, dtype=int)[placed.segment]


# A row's transition when the challenger's lineage was traced against another version than the
# one compared (`segments compare 4 3` of a version traced against 2): which side has the id
IN_BOTH, CHAMPION_ONLY, CHALLENGER_ONLY = "in both", "champion only", "challenger only"


def side_by_side(
    old: SegmentModel, new: SegmentModel, old_version: str | None = None
) -> list[dict[str, object]]:
    """One row per public id of either version: its name and business figures in both, and
    what the challenger's lineage says happened to it, when that lineage was traced against
    ``old_version`` (or it is not given); otherwise which side has the id: the lineage's
    "survived" beside a champion with no such segment misled (an ML engineer's walkthrough)."""
    rows: dict[int, dict[str, object]] = {}
    for which, model in (("champion", old), ("challenger", new)):
        for profile in model.profiles:
            row = rows.setdefault(int(profile.segment_id), {"id": int(profile.segment_id)})
            row[f"{which}_name"] = profile.name
            for key in SIDE_BY_SIDE:
                row[f"{which}_{key}"] = getattr(profile, key)
            # whom the backtest placed there, so an unmeasured churn can say why
            backtest = getattr(profile, "backtest", None) or {}
            row[f"{which}_backtest_cohort"] = backtest.get("cohort")
            row[f"{which}_backtest_kind"] = backtest.get("cohort_kind", PAYING)
            # a business of invoices alone: its money share and who bought again, in place of
            # MRR share and churn (a retailer compared two versions on "0%" and nothing else)
            row[f"{which}_ltv_share"] = getattr(profile, "ltv_share", None)
            again = backtest.get("repurchase")
            row[f"{which}_repurchase_rate"] = None if again is None else again["rate"]
    traced = new.lineage is not None and (
        old_version is None or str(new.lineage.previous) == str(old_version)
    )
    transitions = {t.id: t.transition for t in new.lineage.transitions} if traced else {}
    for segment_id, row in rows.items():
        if traced:
            row["transition"] = transitions.get(segment_id, "-")
        elif "champion_name" in row and "challenger_name" in row:
            row["transition"] = IN_BOTH
        else:
            row["transition"] = CHAMPION_ONLY if "champion_name" in row else CHALLENGER_ONLY
    return [rows[i] for i in sorted(rows)]
