"""Promotion gates: what a challenger must show before it may replace the champion.

Each gate is a value, a threshold and a direction, so ``segments compare`` can print all of them
and ``segments promote`` / ``segments retrain`` can refuse with the reasons. Pure functions of the
two versions' metrics and of how the two versions place the same customers.

- **stability** (bootstrap ARI of the chosen segmentation) at least ``MIN_STABILITY``: a
  segmentation that changes when refitted on resampled customers is not a fact about them;
- **surrogate fidelity** at least ``MIN_FIDELITY``: the explanations come from a surrogate that
  must reproduce the segments on held-out customers, or the CRM is told wrong reasons;
- **outlier share** at most ``MAX_OUTLIER_SHARE``;
- **segments** between 2 and the cap the version was trained with;
- **silhouette** like with like: silhouette falls as the number of segments grows, so a
  challenger with six segments compared with a two-segment champion fails for having more
  segments, not for separating worse. The challenger's silhouette is compared with the champion's
  *at the same setting* (same family and number of segments: every run logs each candidate it
  scored as ``candidate.<name>.silhouette``), at most ``MAX_SILHOUETTE_DROP`` below it; and it must
  always show structure on its own, at least ``MIN_SILHOUETTE`` (Kaufman and Rousseeuw,
  *Finding Groups in Data*, 1990: an average silhouette of 0.25 or less means "no substantial
  structure"). When the champion never scored that setting only the absolute floor applies;
- **unexplained moves** at most ``MAX_UNEXPLAINED_MOVES``: of the customers both versions place in
  a segment that exists in both (a survived id), the share the challenger moves to another such
  segment. A customer moving because their segment split, merged or retired has a reason the
  lineage states; a customer moving between two segments that both carry on does not. Measured on
  the challenger's training sample placed by both models, so a customer's behaviour is the same
  and only the model differs;
- **survivors keep their customers**: for every segment id both versions have (a survived id),
  the share of the customers the champion places in it whom the challenger places there too,
  at least ``MIN_SURVIVOR_KEPT``, the containment lineage asks of a survival. Lineage matches
  segments on each version's *training* members; a retrain on a store whose customers changed
  underneath (another company's export ingested under the same ids) kept id 0 as "survived" while
  none of the customers the champion placed in 0 stayed there, and ``unexplained_moves`` read 0:
  they had all moved to new segments. The value is the lowest share over the survived ids the
  champion places at least ``MIN_SURVIVOR_CUSTOMERS`` customers in, and 0 when no id survives at
  all: every id a CRM holds would change its meaning at once, which a person decides
  (``segments promote --force``), not a scheduled retrain;
- **data freshness** at most ``MAX_DATA_LAG_DAYS`` between the last accepted event and the as-of:
  a model trained on an as-of past the data describes the gap (everyone looks dormant), not the
  customers, and the 30-day windows lose a thirtieth of their days for every day of it;
- **newer data**: the challenger's features date is not before the champion's. A retrain moves
  forward; one backdated by 16 months (254 customers then) passed every other gate, with
  ``survivors_keep`` not measured, was promoted by ``segments retrain`` and renamed a segment a
  CRM held (an ML engineer's walkthrough). Going back is a person's decision
  (``segments promote --force``);
- **customers**: the challenger was segmented on the customers the champion was (the same
  discovery selection), or on all of them. A discovery of team-plan customers compared with an all-customer
  champion is judged on team-plan customers only, so the annual accounts it has no segment for
  cost it nothing there; served, it would place them in segments that do not describe them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np

from models.lineage import SURVIVAL_CONTAINMENT

MIN_STABILITY = 0.75
MIN_FIDELITY = 0.97
MAX_OUTLIER_SHARE = 0.10
MAX_SILHOUETTE_DROP = 0.05
MIN_SILHOUETTE = 0.25
MAX_UNEXPLAINED_MOVES = 0.10
# A week: a store fed by a weekly export still trains a champion. The shortest feature windows
# are 30 days, and every day past the last event empties a thirtieth of them: at 31 days every
# customer looked inactive and a retrain renamed "Typical customers" to "Usage collapsing"
# while this gate (35 then) passed (found by a product team's and a CRM's walkthroughs).
MAX_DATA_LAG_DAYS = 7.0
# The containment lineage asks of a survival, asked again of the customers both versions place.
MIN_SURVIVOR_KEPT = SURVIVAL_CONTAINMENT
# Most of the champion's customers keep their segment id: below it, most ids a CRM holds change
# meaning at once (retired into splits and merges, each explained), and a person decides. A
# retrain told 12 segments kept 20.7% of customers' ids and was promoted by itself (an ML
# engineer's walkthrough); ordinary retrains on the demo keep 100%, three months on 70%.
MIN_SAME_ID_SHARE = 0.5
# A survived id the champion places fewer customers in is not judged: one customer moving there
# moves its share by five points or more, so it would fail by chance.
MIN_SURVIVOR_CUSTOMERS = 20

Rule = Literal[">=", "<=", "in", "=="]

# What each gate checks, in words for a product team (the explorer's Compare page).
GATE_MEANINGS: dict[str, str] = {
    "stability": "the same segments come back when the data is resampled",
    "surrogate_fidelity": "the explanations agree with the segments, on customers they did not "
    "learn from",
    "outlier_share": "the share of customers unlike every segment stays small",
    "n_segments": "how many segments",
    "silhouette": "customers sit closer to their own segment than to the next one",
    "unexplained_moves": "the share of the champion's customers moved to another segment that "
    "neither version's changes (splits, merges) account for",
    "survivors_keep": "every segment that carries on keeps most of the customers the champion "
    "places in it",
    "same_id_share": "most of the champion's customers keep their segment id (below it, most ids "
    "a CRM holds change meaning at once, and a person decides)",
    "data_lag_days": "days between the last event stored before the features' date and it",
    "newer_data": "days the challenger's features date is after the champion's (a retrain moves "
    "forward in time)",
    "customers": "segmented on the champion's customers, or on all of them (a discovery of a "
    "selection describes only those)",
}
# Whom a model was segmented on when no discovery selection is recorded (``segments train``).
ALL_CUSTOMERS = "all customers"
# The customers gate's basis, before the challenger's selection (read back by
# ``models.comparison.different_customers``).
CUSTOMERS_BASIS = "the challenger was segmented on "


# Gates measured in days (shown as "91 days", not "91.000")
DAY_GATES = ("data_lag_days", "newer_data")


@dataclass(frozen=True)
class Gate:
    name: str
    value: float | None  # None: not measured for this version (passes, and says so)
    threshold: str
    rule: Rule
    passed: bool
    basis: str = ""  # where the threshold comes from, when it is not a constant

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def value_text(self) -> str:
        return gate_value_text(self.name, self.value, not self.passed, self.threshold)

    def verdict(self) -> str:
        """ "yes", "no", or "not judged" for a gate that passes because it was not measured: a
        product manager read "yes" beside "not measured" as a check the version had met."""
        return verdict_text(self.value, self.passed)

    def describe(self) -> str:
        if self.rule == "==":  # "customers: the challenger was segmented on …, the champion on …"
            return f"{self.name}: {self.basis}, the champion on {self.threshold}"
        # in the unit the gate tables use: "newer_data -91 days (needs >= 0 days)", where a
        # failing retrain printed "-91.000 (needs >= 0)"
        shown = self.value_text()
        unit = " days" if self.name in DAY_GATES else ""
        basis = f", {self.basis}" if self.basis else ""
        return f"{self.name} {shown} (needs {self.rule} {self.threshold}{unit}{basis})"


def verdict_text(value: object, passed: bool) -> str:
    """A gate's verdict in words, from its stored value and outcome (``Gate.verdict``)."""
    if value is None and passed:
        return "not judged"
    return "yes" if passed else "no"


def _at_least(name: str, value: float | None, minimum: float) -> Gate:
    return Gate(name, value, f"{minimum:g}", ">=", value is None or value >= minimum)


def _at_most(name: str, value: float | None, maximum: float) -> Gate:
    return Gate(name, value, f"{maximum:g}", "<=", value is None or value <= maximum)


def first_version_gates(metrics: Mapping[str, float]) -> list[Gate]:
    """A first version answers to the fidelity and freshness gates only: a service needs some
    champion, but not one whose explanations are wrong, nor one trained so far past the data
    that it describes the gap (everyone looks dormant)."""
    return [
        _at_least("surrogate_fidelity", metrics.get("surrogate_fidelity", 0.0), MIN_FIDELITY),
        _at_most("data_lag_days", metrics.get("data_lag_days"), MAX_DATA_LAG_DAYS),
    ]


def structure_shortfalls(metrics: Mapping[str, float]) -> list[str]:
    """The gates on a version's own structure (stability, outlier share, the silhouette's
    absolute floor) that ``metrics`` fail. A first version is made champion without them (a
    service needs some champion), but a version that fails them would not pass as a challenger:
    its segments are weak, and the user is told so."""
    silhouette = metrics.get("silhouette", -1.0)
    floor = replace(_at_least("silhouette", silhouette, MIN_SILHOUETTE), basis="absolute floor")
    return failures([_stability_gate(metrics), _outlier_gate(metrics), floor])


def _stability_gate(metrics: Mapping[str, float]) -> Gate:
    return _at_least("stability", metrics.get("stability", 0.0), MIN_STABILITY)


def _outlier_gate(metrics: Mapping[str, float]) -> Gate:
    return _at_most("outlier_share", metrics.get("outlier_share", 1.0), MAX_OUTLIER_SHARE)


# A candidate's name (``Candidate.name``: "kmeans(k=5)") in words: the champion re-scored at the
# challenger's setting read "champion's 0.421 at kmeans(k=5) - 0.05" beside a champion trained
# with six segments (a product manager's review).
_SETTING = re.compile(r"(?P<family>\w+)\((?P<key>\w+)=(?P<value>\d+)\)")


def setting_words(setting: str | None) -> str:
    """ "with this version's 5 k-means segments" for "kmeans(k=5)"."""
    found = _SETTING.fullmatch(setting or "")
    if found is None:
        return f"at {setting}"
    # imported here: the families bring scikit-learn and hdbscan, which reading gates needs not
    from models.families import FAMILIES

    words = {family.name: family.words for family in FAMILIES}
    family = words.get(found["family"], found["family"])
    if found["key"] == "k":
        return f"with this version's {found['value']} {family} segments"
    return f"with this version's {family} setting, {found['key']} = {found['value']}"


def silhouette_gate(
    silhouette: float, champion_same_setting: float | None, setting: str | None = None
) -> Gate:
    """The challenger's silhouette against the champion's at the same setting (``setting``, e.g.
    "kmeans k=6"; None when the champion never scored it), and never below ``MIN_SILHOUETTE``
    unless the champion scored below it there itself: a first version is made champion without
    the floor, and on data of weak structure (RavenStack's accounts, 0.221) a retrain on the
    same data then failed for ever, keeping an ever staler champion that was no better. Such a
    challenger must then match the champion, with no allowance: an allowance would let each
    promotion lower the bar for the next."""
    if champion_same_setting is None:
        basis = "absolute floor (the champion never scored this setting)"
        return replace(_at_least("silhouette", silhouette, MIN_SILHOUETTE), basis=basis)
    relative = round(champion_same_setting - MAX_SILHOUETTE_DROP, 3)
    if champion_same_setting < MIN_SILHOUETTE:
        basis = (
            f"the champion's {champion_same_setting:.3f} {setting_words(setting)}, below the "
            f"{MIN_SILHOUETTE:g} floor itself"
        )
        matched = round(champion_same_setting, 3)
        return replace(_at_least("silhouette", silhouette, matched), basis=basis)
    if relative <= MIN_SILHOUETTE:
        basis = (
            f"absolute floor (the champion's {champion_same_setting:.3f} "
            f"{setting_words(setting)} is lower)"
        )
        return replace(_at_least("silhouette", silhouette, MIN_SILHOUETTE), basis=basis)
    basis = (
        f"the champion's {champion_same_setting:.3f} {setting_words(setting)}, less "
        f"{MAX_SILHOUETTE_DROP:g}"
    )
    return replace(_at_least("silhouette", silhouette, relative), basis=basis)


def canonical_selection(text: str) -> str:
    """A selection in words (``Cohort.describe``: "plan in team, pro; interval in month") with
    its filters and their values sorted, so the same selection typed in another order, or
    recorded before ``describe`` sorted them, reads the same."""
    parts = []
    for part in text.split("; "):
        name, found, values = part.partition(" in ")
        parts.append(f"{name} in {', '.join(sorted(values.split(', ')))}" if found else part)
    return "; ".join(sorted(parts))


def customers_gate(challenger_selection: str, champion_selection: str) -> Gate:
    """Whether the challenger was segmented on the champion's customers (a discovery's selection,
    as ``Cohort.describe`` words it, or ``ALL_CUSTOMERS``), or on all of them: a model of every
    customer may replace a discovery's, which is how a team goes back from one. Value 1: the
    same customers; 2: all customers in place of a selection; 0: others."""
    challenger = canonical_selection(challenger_selection)
    champion = canonical_selection(champion_selection)
    value = 1.0 if challenger == champion else 2.0 if challenger == ALL_CUSTOMERS else 0.0
    return Gate(
        "customers",
        value,
        champion_selection,
        "==",
        value > 0,
        basis=f"{CUSTOMERS_BASIS}{challenger_selection}",
    )


def challenger_gates(
    metrics: Mapping[str, float],
    cap: int,
    unexplained_moves: float | None,
    champion_same_setting: float | None = None,
    setting: str | None = None,
    selections: tuple[str, str] = (ALL_CUSTOMERS, ALL_CUSTOMERS),
    survivors_keep: tuple[float, int | None] | None = None,
    days_after_champion: float | None = None,
    same_id_share: float | None = None,
) -> list[Gate]:
    """Every gate of a challenger: its own metrics, how it moves the champion's customers, its
    silhouette against the champion's at the same setting (``silhouette_gate``), and whom both
    were segmented on (``selections``: the challenger's, the champion's). ``survivors_keep``: the
    lowest share of its champion-placed customers a survived id keeps, and that id
    (``survivor_kept_share``; a share of 0 with no id: no id survived at all, which fails;
    None: no survived id with enough customers to judge, or not measured).
    ``days_after_champion``: the challenger's features date minus the champion's, in days (None:
    a version that does not record it). ``same_id_share``: the share of the customers both place
    that keep their segment id (None: not measured)."""
    segments = metrics.get("n_segments", 0.0)
    fidelity, freshness = first_version_gates(metrics)  # as for a first version
    return [
        _stability_gate(metrics),
        fidelity,
        _outlier_gate(metrics),
        Gate("n_segments", segments, f"2..{cap}", "in", 2 <= segments <= cap),
        silhouette_gate(metrics.get("silhouette", -1.0), champion_same_setting, setting),
        _at_most("unexplained_moves", unexplained_moves, MAX_UNEXPLAINED_MOVES),
        _survivors_gate(survivors_keep),
        _at_least("same_id_share", same_id_share, MIN_SAME_ID_SHARE),
        freshness,
        _at_least("newer_data", days_after_champion, 0.0),
        customers_gate(*selections),
    ]


def _survivors_gate(survivors_keep: tuple[float, int | None] | None) -> Gate:
    if survivors_keep is None:
        gate = _at_least("survivors_keep", None, MIN_SURVIVOR_KEPT)
        return replace(gate, basis="no segment id carries on with enough customers to judge")
    share, segment_id = survivors_keep
    gate = _at_least("survivors_keep", share, MIN_SURVIVOR_KEPT)
    if segment_id is None:
        # Every id the CRM holds would change meaning at once: a human decides (``--force``).
        return replace(gate, basis="no segment id carries on")
    return replace(gate, basis=f"lowest: segment {segment_id}")


def survivor_kept_share(
    old_ids: np.ndarray, new_ids: np.ndarray, continuing: Collection[int]
) -> tuple[float, int] | None:
    """For each id in ``continuing`` that the old version places at least
    ``MIN_SURVIVOR_CUSTOMERS`` customers in, the share of them the new version places in the same
    id; the lowest, with its id (None: no such id)."""
    shares = [
        (float(np.mean(new_ids[old_ids == segment_id] == segment_id)), int(segment_id))
        for segment_id in sorted(continuing)
        if (old_ids == segment_id).sum() >= MIN_SURVIVOR_CUSTOMERS
    ]
    return min(shares, default=None)


def gate_value_text(
    name: str, value: float | None, exact: bool = False, threshold: str | None = None
) -> str:
    """A gate's value as the Compare page and ``segments compare`` show it: a count as a whole
    number ("6", "0 days"), a share or score to three decimals, "not measured" for None.
    ``exact`` (a failed gate) with its ``threshold``: as many more decimals as it takes for the
    value not to read as the threshold (a share of 0.49963 read "0.500", failing ">= 0.5")."""
    if value is None:
        return "not measured"
    if name == "n_segments":
        return f"{value:.0f}"
    if name in DAY_GATES:
        if abs(value) < 1:
            return "under a day earlier" if value < 0 else "under a day"
        # whole days as such ("62 days", not "62.0 days"), a tenth where it shows; ``exact``
        # (a failed gate) keeps two decimals, so 7.04 never reads "7 days (needs <= 7 days)"
        shown = round(float(value), 2 if exact else 1)
        if shown.is_integer():
            return f"{shown:.0f} days"
        return f"{shown:.2f} days" if exact else f"{shown:.1f} days"
    if name == "customers":
        return {1.0: "the same", 2.0: "all customers"}.get(value, "others")
    return _decimals_apart(float(value), threshold) if exact else f"{value:.3f}"


def kept_share_text(share: float) -> str:
    """The share of customers who keep their id, as the verdict line says it: to a tenth of a
    percent, as the gate's row rounds, except that a share under the gate's bar is rounded down,
    so 0.4996 beside a failing ">= 0.5" gate never reads "50.0%"."""
    if share < MIN_SAME_ID_SHARE:
        return f"{math.floor(round(share * 1000, 6)) / 10:.1f}%"  # 0.703 * 1000 is 702.99…
    return f"{share:.1%}"


def _decimals_apart(value: float, threshold: str | None) -> str:
    try:
        bar = float(threshold) if threshold is not None else None
    except ValueError:
        bar = None
    for decimals in range(3, 7):
        shown = f"{value:.{decimals}f}"
        if bar is None or float(shown) != bar:
            return shown
    return repr(value)


def failures(gates: list[Gate]) -> list[str]:
    return [gate.describe() for gate in gates if not gate.passed]


def unexplained_move_share(
    old_ids: np.ndarray, new_ids: np.ndarray, continuing: Collection[int]
) -> float:
    """Share of customers placed in a continuing segment by both versions whom the new version
    puts in another continuing segment (``old_ids``/``new_ids``: public ids, one per customer)."""
    keep = np.fromiter(continuing, dtype=int, count=len(continuing))
    both = np.isin(old_ids, keep) & np.isin(new_ids, keep)
    if not both.any():
        return 0.0
    return float(np.mean(old_ids[both] != new_ids[both]))
