"""Readable segment names built from what sets each segment apart ("High MRR · heavy API use").

Each feature's registry entry has a phrase for "clearly above the rest" and one for "clearly below"
(``None`` where that direction says nothing useful). A phrase is used when the segment stands out
relatively (an effect of at least ``MIN_EFFECT``) *and* its median clears the entry's absolute bar,
if it has one: on a company where nobody is very active, the most active segment is still not
"Daily users" unless its median customer is active 20 days in 30. A segment's name joins the
phrases of its strongest differences, one per theme ("Rarely active · Few logins · Seldom active" would say one
thing three times). Names stay unique within a model, in what they say and not only in their
words: "Rarely active" (30 days) and "Seldom active" (90 days) on two segments would read as one
segment twice, so two names that say the same things (``name_meaning``) are told apart as two equal
names are: each takes its next-strongest difference, and as a last resort each takes a number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from string import ascii_uppercase
from typing import Protocol

from feature_store.registry import FEATURES, find

MIN_EFFECT = 0.5  # standardised difference below which a feature does not describe a segment
PARTS = 3
SEPARATOR = " · "
TYPICAL = "Typical customers"  # the name of a segment that no difference describes
# The feature that says a segment's customers went quiet ("Dormant"): other behavioural features
# at the value no activity gives say nothing more of them (``_quiet``).
DORMANCY = "days_since_last_activity"
# The number a name takes as a last resort when it would repeat another's ("Low MRR (3)").
_LAST_RESORT = re.compile(r" \(\d+\)$")


def name_phrases(name: str) -> list[str]:
    """The phrases a segment name joins (the last resort's number left off)."""
    return _LAST_RESORT.sub("", name).split(SEPARATOR)


def _phrase_meaning(text: str) -> str:
    """What a registry phrase says, its feature's theme and direction ("activity below" for both
    "Rarely active" and "Seldom active"); a phrase the registry lacks says only itself."""
    for definition in FEATURES:
        lowest = definition.lowest[1] if definition.lowest else None
        for direction, phrase in (
            ("above", definition.above),
            ("above", definition.most_have),
            ("below", definition.below),
            ("below", lowest),
        ):
            if phrase is not None and phrase == text:
                return f"{definition.meaning} {direction}"
    return text


def name_meaning(name: str) -> frozenset[str]:
    """What a segment name says, phrase by phrase, whatever the words: two names with the same
    meaning describe their segments alike to a reader. The last resort's number is part of it, so
    "Low MRR (3)" and "Low MRR" stay apart."""
    number = _LAST_RESORT.search(name)
    return frozenset(_phrase_meaning(text) for text in name_phrases(name)) | (
        {number.group()} if number else set()
    )


def names_distinct(names: Sequence[str]) -> bool:
    """No two of ``names`` say the same things (``name_meaning``)."""
    return len({name_meaning(name) for name in names}) == len(names)


class Effect(Protocol):
    feature: str
    effect: float


def phrase(feature: str, effect: float, median: float | None = None) -> str | None:
    """The registry's phrase for this direction when ``median`` clears its bar; a column the
    registry lacks reads "High x" or "Low x"."""
    definition = find(feature)
    if definition is None:
        return f"High {feature}" if effect > 0 else f"Low {feature}"
    return definition.phrase(effect > 0, median)


def _meaning(feature: str) -> str:
    definition = find(feature)
    return definition.meaning if definition else feature


def _median_like_everyones(
    item: Effect, medians: Mapping[str, float], overall: Mapping[str, float]
) -> bool:
    """The segment's median customer holds everyone's median of this feature: the difference is
    in its tail, not in the customer its name describes. "Little API use" for a segment whose
    median customer, like everyone's, used none (34% had any against 38% overall) was kept from
    an earlier version by a small leftover effect (a product team's walkthrough); a flag's
    usual value says nothing either: "Monthly plans" for a segment of monthly customers where
    nine in ten are monthly, however strongly it differs (it holds none of the annual ones)."""
    median, usual = medians.get(item.feature), overall.get(item.feature)
    return median is not None and median == usual


def _idle(feature: str, medians: Mapping[str, float]) -> bool:
    """The segment's median customer had no product activity, and this feature's median is the
    value that says only that (``FeatureDefinition.idle``): a dormant segment is not "Little API
    use" for a share of API use that no activity leaves at 0."""
    definition = find(feature)
    median = medians.get(feature)
    return (
        definition is not None
        and median is not None
        and definition.idle(median, medians.get("events_30d"))
    )


def _quiet(feature: str, medians: Mapping[str, float]) -> bool:
    """The segment's median customer had no product event in the last 90 days, and this
    behavioural feature's median is the value no activity gives (0, or its idle value): it says
    only that, which "Dormant" (days since the last activity) says once. A retailer's lapsed
    buyers were "Low volume · Narrow feature use · Seldom active", three words for one fact and
    none for the 199 days since their last purchase (a product team's review); the demo's
    dormant segment "Dormant · Low volume · Narrow feature use"."""
    definition = find(feature)
    if (
        definition is None
        or definition.family != "behavioural"
        or feature == DORMANCY
        or medians.get("events_90d") != 0
    ):
        return False
    quiet_value = definition.idle_value if definition.idle_value is not None else 0.0
    return medians.get(feature) == quiet_value


def _true_phrase(
    item: Effect,
    medians: Mapping[str, float],
    overall: Mapping[str, float],
    shares: Shares | None = None,
) -> str | None:
    """The phrase ``item``'s difference gives its segment under every rule but the size of the
    effect: the absolute bar, a median like everyone's (a flag's usual value among them), the
    idle value and a dormant segment's quiet values; where the median misses the bar, the phrase
    for most of the segment having any (``_most_have``)."""
    if _median_like_everyones(item, medians, overall):
        return None
    if _idle(item.feature, medians) or _quiet(item.feature, medians):
        return None
    if _unsaid(item.feature, medians):
        return None
    return phrase(item.feature, item.effect, medians.get(item.feature)) or _most_have(item, shares)


class Shares(Protocol):
    """Per feature, the share of the segment's customers and of everyone's above 0."""

    def __getitem__(self, feature: str) -> tuple[float, float]: ...

    def __contains__(self, feature: object) -> bool: ...


MOST = 0.5  # "most": at least half of the segment, where fewer than half of everyone


def _most_have(item: Effect, shares: Shares | None) -> str | None:
    """``FeatureDefinition.most_have`` for a segment above the rest where at least half have
    any and fewer than half of everyone do; None otherwise, or without the shares."""
    definition = find(item.feature)
    if definition is None or definition.most_have is None or item.effect <= 0:
        return None
    if shares is None or item.feature not in shares:
        return None
    segment, everyone = shares[item.feature]
    return definition.most_have if segment >= MOST > everyone else None


def _unsaid(feature: str, medians: Mapping[str, float]) -> bool:
    """The segment's median customer is one ``feature`` says nothing of
    (``FeatureDefinition.named_only_above``): a share of seats for one-seat accounts, days as a
    paying customer for customers who never paid."""
    definition = find(feature)
    if definition is None or definition.named_only_above is None:
        return False
    other, bar = definition.named_only_above
    median = medians.get(other)
    return median is not None and median <= bar


def phrases_held(
    effects: Sequence[Effect],
    medians: Mapping[str, float],
    overall: Mapping[str, float],
    min_effect: float = MIN_EFFECT / 2,
    shares: Shares | None = None,
) -> frozenset[str]:
    """Every phrase a segment with these effects and medians can still be called by: each rule of
    ``name_segments`` holds, but only half of the difference a name needs, so that a segment named
    at an effect of 0.6 is not renamed at a retrain for sliding to 0.45, only once it has lost
    most of what its name says. "Typical customers" is held while no phrase would name it.

    A retrained segment that keeps its old name (``models.lineage.kept_names``) keeps it only if
    every phrase of it is held: a name from older rules or older data must still be true."""
    held = {
        text
        for item in effects
        if abs(item.effect) >= min_effect and (text := _true_phrase(item, medians, overall, shares))
    }
    if not _phrases(effects, medians, overall, shares):
        held.add(TYPICAL)
    return frozenset(held)


def _phrases(
    effects: Sequence[Effect],
    medians: Mapping[str, float],
    overall: Mapping[str, float],
    shares: Shares | None = None,
) -> list[str]:
    found: list[str] = []
    meanings: set[str] = set()
    for item in effects:
        if abs(item.effect) < MIN_EFFECT:
            break
        text = _true_phrase(item, medians, overall, shares)
        meaning = _meaning(item.feature)
        if text and text not in found and meaning not in meanings:
            found.append(text)
            meanings.add(meaning)
    return found


def name_segments(
    effects_per_segment: Sequence[Sequence[Effect]],
    medians_per_segment: Sequence[Mapping[str, float]] | None = None,
    overall_medians: Mapping[str, float] | None = None,
    shares_per_segment: Sequence[Shares] | None = None,
) -> list[str]:
    """A unique name per segment from its effects (strongest first) and its feature medians
    (without medians, only the relative test applies), against every customer's medians (without
    them, a flag may name a segment by the value most customers hold); with each segment's shares
    of customers who have any (``Shares``), a phrase for most having any where the median misses
    its bar."""
    medians = medians_per_segment or [{} for _ in effects_per_segment]
    overall = overall_medians or {}
    shares: Sequence[Shares | None] = shares_per_segment or [None for _ in effects_per_segment]
    candidates = [
        _phrases(effects, segment_medians, overall, segment_shares) or [TYPICAL]
        for effects, segment_medians, segment_shares in zip(
            effects_per_segment, medians, shares, strict=True
        )
    ]
    names = [SEPARATOR.join(c[:PARTS]) for c in candidates]
    # First every clashing name says one difference more, the strongest of its further phrases
    # that tells it apart; then what still clashes is lettered, every one of them ("Rarely
    # active (A)" beside "Seldom active (B)" says they are two segments; lettering one only would
    # not). Letters, not numbers: charts and pages add the segment's id in brackets, and a name's
    # "(2)" beside id 1 read as another segment.
    for index in _clashing(names):
        others = [name_meaning(other) for j, other in enumerate(names) if j != index]
        for extra in candidates[index][PARTS:]:
            longer = SEPARATOR.join([*candidates[index][:PARTS], extra])
            if name_meaning(longer) not in others:
                names[index] = longer
                break
    for order, index in enumerate(_clashing(names)):
        names[index] = f"{names[index]} ({_letters(order)})"
    return names


def _letters(order: int) -> str:
    """A, B, …, Z, AA, AB, …: a segmentation may have 30 segments, more than the alphabet."""
    text = ""
    order += 1
    while order:
        order, rest = divmod(order - 1, 26)
        text = ascii_uppercase[rest] + text
    return text


def _clashing(names: Sequence[str]) -> list[int]:
    """The positions of the names whose meaning another name has too."""
    meanings = [name_meaning(name) for name in names]
    return [i for i, meaning in enumerate(meanings) if meanings.count(meaning) > 1]
