"""Segment lineage: what happened to every segment between two model versions.

A CRM stores ``segment.id``; a retrain must not silently give that id another meaning. The new
version's segments are matched to the previous version's by **member overlap** on the customers
both versions assigned (Jaccard), blended with **prototype similarity** (how close the segments'
typical customers are), solved as an assignment problem (Hungarian method). Every segment then gets
one transition, after MONIC (Spiliopoulou, Ntoutsi, Theodoridis and Schult, "MONIC: modeling and
monitoring cluster transitions", KDD 2006):

- ``survived``: one old segment continues as one new segment; it keeps its public id;
- ``split``: one old segment's customers went to several new segments, each receiving at least
  ``SPLIT_SHARE`` of the parent; the children get new ids and name their parent;
- ``merged``: several old segments each sent most of their customers to one new segment;
- ``new``: a new segment with no predecessor;
- ``retired``: an old segment with no successor (also the parent of a split and the parents of a
  merge, which are retired into their children).

Where customers went is recorded even when no MONIC rule applies: a new segment made mostly of one
old segment's customers names it as its parent (``new`` from it), and a retired segment names every
new segment that took at least ``SPLIT_SHARE`` of it or is mostly made of it. A segment that broke
into five pieces of 13-38% each is no split by the 30% rule, but reads "retired into 2, 3, 4, 5,
6" and each piece "new from 0", so a CRM still learns where its customers are.

Public ids are never given to other customers: new ones start above the highest id any earlier
version used. One exception keeps an id's meaning rather than breaking it: after a roll-back (an
earlier version promoted again), the segments the rolled-back version served are unknown to the
champion's lineage, and a CRM may hold their ids. A segment of a later version made of the same
customers as one of those (each mostly the other, as for survival) takes that id back
(``returned_from`` names the version that served it) instead of a new one.
Everything here is pure: labels and prototypes in, a ``Lineage`` out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from models.naming import name_meaning, name_phrases, names_distinct
from models.wording import overlap_text

Transition = Literal["survived", "split", "merged", "new", "retired"]
SURVIVED_RENAMED = "survived, renamed"

# Weight of member overlap in the match score; the rest is prototype similarity. Overlap is the
# direct evidence that two segments are "the same customers"; prototypes break ties and carry the
# match when few customers are present in both versions.
OVERLAP_WEIGHT = 0.7
# A matched pair survives when the old segment's customers mostly stay together (MONIC's tau_match:
# containment of the old segment in the new one).
SURVIVAL_CONTAINMENT = 0.5
# A split needs each child to receive at least this share of the parent (the 30%).
SPLIT_SHARE = 0.3
# What a version's files call the version itself. MLflow numbers a version only when it is created,
# after its files are written and hashed, so a number written before would be a guess (wrong when
# two trainings race, or after a version was deleted). Loading a registered version replaces this
# with the number the registry gave it (``bind_version``), so ``since`` is always exact.
THIS_VERSION = "this"


@dataclass(frozen=True)
class VersionSegments:
    """One version's segments as lineage needs them.

    ``labels`` maps each customer to a segment *position* (0..k-1; negative for outliers, which
    belong to no segment). ``ids`` gives each position its public id, ``prototypes`` its typical
    customer as a vector in a space shared by both versions (for example feature medians divided by
    a common scale), ``names`` its name.
    """

    version: str
    customer_ids: Sequence[str]
    labels: np.ndarray
    ids: Sequence[int]
    names: Sequence[str]
    prototypes: np.ndarray

    def members(self) -> dict[str, int]:
        return {
            customer: int(label)
            for customer, label in zip(self.customer_ids, self.labels, strict=True)
            if label >= 0
        }


@dataclass(frozen=True)
class SegmentTransition:
    """What happened to one segment; ``id`` is the public id it has (or had, when retired)."""

    id: int
    transition: Transition
    name: str
    since: str
    parents: tuple[int, ...] = ()
    children: tuple[int, ...] = ()
    jaccard: float | None = None
    customers: int = 0
    # a survived segment, or one whose id came back, whose name changed: the name it had (a
    # CRM shows names beside ids)
    renamed_from: str | None = None
    # a segment whose id a rolled-back version served (``RolledBackSegment``): that version
    returned_from: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "parents": list(self.parents), "children": list(self.children)}


@dataclass(frozen=True)
class RolledBackSegment:
    """A segment served by a version that a roll-back went past (an earlier version promoted
    again): the champion's lineage does not know its id, and a CRM may hold it. ``members`` are
    the customers that version trained into the segment, ``placed`` every customer it placed."""

    id: int
    since: str
    version: str
    members: frozenset[str]
    placed: frozenset[str]
    name: str = ""  # as that version served it


@dataclass(frozen=True)
class Lineage:
    """The transition of every segment from ``previous`` to ``version``.

    ``ids[position]`` is the public id of the new version's segment at ``position``;
    ``next_id`` is the first id no version has used yet.
    """

    version: str
    previous: str | None
    ids: tuple[int, ...]
    since: tuple[str, ...]
    transitions: tuple[SegmentTransition, ...]
    next_id: int
    overlap_customers: int = 0
    migration: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "previous": self.previous,
            "ids": list(self.ids),
            "since": list(self.since),
            "next_id": self.next_id,
            "overlap_customers": self.overlap_customers,
            "transitions": [t.as_dict() for t in self.transitions],
            "migration": self.migration,
        }

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.transitions:
            out[t.transition] = out.get(t.transition, 0) + 1
        return out


# What a version served, by kind, as version tags (``pipelines.identity.lineage_tags``)
SERVED_KINDS: tuple[Transition, ...] = ("survived", "split", "merged", "new")


def lineage_tag(kind: str) -> str:
    return f"lineage.{kind}"


def served_ids(tags: Mapping[str, str], kinds: Sequence[str] = SERVED_KINDS) -> set[int]:
    """The public ids a version's lineage tags say it served (or, with ``kinds=("retired",)``,
    retired); empty for a version registered before them."""
    return {int(i) for kind in kinds for i in tags.get(lineage_tag(kind), "").split(",") if i}


def lineage_words(counts: Mapping[str, int], renamed: int = 0, returned: int = 0) -> str:
    """Transitions counted by kind, in words: "2 retired, 2 split, 4 survived (1 renamed)".
    ``counts`` may count renamed survivors apart, under ``SURVIVED_RENAMED`` (the word
    ``segments compare`` shows beside each), or ``renamed`` says how many survivors were. Both
    ``segments train`` and ``compare`` say it so (train said "4 survived" where compare said "3
    survived, 1 survived, renamed"). ``returned``: how many took an id back after a roll-back
    (else a user read their ids as newly made)."""
    renamed += counts.get(SURVIVED_RENAMED, 0)
    kinds = {kind: n for kind, n in counts.items() if kind != SURVIVED_RENAMED}
    if counts.get(SURVIVED_RENAMED):
        kinds["survived"] = kinds.get("survived", 0) + counts[SURVIVED_RENAMED]
    words = ", ".join(
        f"{n} {kind}" + (f" ({renamed} renamed)" if kind == "survived" and renamed else "")
        for kind, n in sorted(kinds.items())
    )
    back = "id" if returned == 1 else "ids"
    return f"{words}; {returned} {back} given back after a roll-back" if returned else words


HistoryRelation = Literal["itself", "parent", "child"]


def history_relation(segment_id: int, transition: SegmentTransition) -> HistoryRelation:
    """How a transition in ``segment_id``'s history is related to it: about the segment
    ``itself``, about a ``parent`` (a segment whose customers it took: the parent's retirement
    names it among its children), or about a ``child`` (a segment made of its customers). A CRM
    read a parent's "retired" in a segment's history as the segment's own retirement (a CRM
    integrator's walkthrough, 2026-12-06)."""
    if transition.id == segment_id:
        return "itself"
    return "parent" if segment_id in transition.children else "child"


def _ids_in_words(ids: Sequence[int]) -> str:
    words = [str(i) for i in ids]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def transition_text(version: str, previous: str | None, transition: SegmentTransition) -> str:
    """One transition as a sentence a salesperson reads, naming the versions and ids:
    "version 3 split segment 2: its customers went to 7 and 8"."""
    t, at = transition, f"version {version}"
    segments = "segment" if len(t.parents) == 1 else "segments"
    if t.transition == "survived":
        common = (
            f" ({overlap_text(t.jaccard or 0.0)} of the customers in its segment of either version {previous} "
            f"or {version} are in both)"
            if t.jaccard is not None and previous
            else ""
        )
        text = f"{at} kept segment {t.id}{common}"
    elif t.transition == "retired":
        went = f": its customers went to {_ids_in_words(t.children)}" if t.children else ""
        text = f"{at} retired segment {t.id}{went}"
    elif t.transition == "split":
        # the segment it split from, then retired ones it took customers of (``_with_every_parent``)
        first, *others = t.parents
        taken = f", with customers of segment{'s' if len(others) > 1 else ''} " if others else ""
        text = f"{at} made segment {t.id} from part of segment {first}"
        text += f"{taken}{_ids_in_words(others)}" if others else ""
    elif t.transition == "merged":
        text = f"{at} made segment {t.id} by merging {segments} {_ids_in_words(t.parents)}"
    elif t.parents:
        text = f"{at} made segment {t.id}, mostly of customers of {segments} {_ids_in_words(t.parents)}"
    else:
        text = f"{at} made segment {t.id}"
    if t.returned_from is not None:
        # its id back: "made segment 6" read as an id never seen
        text = (
            f"{at} gave id {t.id} back to the customers version {t.returned_from} served under "
            "it before a roll-back"
        )
    if t.renamed_from:
        text += f", renamed from {t.renamed_from!r}"
    return text


def bind_version(lineage: Lineage, version: str) -> Lineage:
    """``lineage`` with ``THIS_VERSION`` replaced by ``version`` (its registered number)."""

    def bound(value: str) -> str:
        return version if value == THIS_VERSION else value

    return replace(
        lineage,
        version=bound(lineage.version),
        since=tuple(bound(s) for s in lineage.since),
        transitions=tuple(replace(t, since=bound(t.since)) for t in lineage.transitions),
    )


def first_lineage(current: VersionSegments) -> Lineage:
    """The lineage of a first version: every segment is new, ids are 0..k-1."""
    k = len(current.names)
    counts = _sizes(current.labels, k)
    return Lineage(
        version=current.version,
        previous=None,
        ids=tuple(range(k)),
        since=(current.version,) * k,
        transitions=tuple(
            SegmentTransition(i, "new", current.names[i], current.version, customers=int(counts[i]))
            for i in range(k)
        ),
        next_id=k,
    )


def trace_lineage(
    previous: VersionSegments,
    current: VersionSegments,
    previous_since: Mapping[int, str],
    next_id: int,
    rolled_back: Sequence[RolledBackSegment] = (),
) -> Lineage:
    """Match ``current``'s segments to ``previous``'s and give each a public id and a transition.

    ``previous_since`` is the version in which each of ``previous``'s ids first appeared;
    ``next_id`` the first id no earlier version used (ids are never reused, except that a segment
    that is one of ``rolled_back`` again takes its id back: ``_returning``). The rules, in order:
    a parent with two or more children of at least ``SPLIT_SHARE`` each has split (a new segment
    that continues another old segment, each mostly the other, is not its child); a new segment
    made of two or more old ones, each at least ``SPLIT_SHARE`` of it and each sending it most of
    their customers, is a merge; of the remaining pairs the Hungarian match survives when each side
    is mostly the other (``SURVIVAL_CONTAINMENT`` both ways); what is left is new or retired.
    """
    overlap, shared = _overlap_counts(previous, current)
    old_share = _share(overlap, overlap.sum(axis=1)[:, None])  # of the old segment
    new_share = _share(overlap, overlap.sum(axis=0)[None, :])  # of the new segment
    splits = _splits(old_share, new_share)
    merges = _merges(old_share, new_share, set(splits))
    taken_rows = set(splits) | {r for rows in merges.values() for r in rows}
    taken_cols = set(merges) | {c for cols in splits.values() for c in cols}
    jaccard = _jaccard(overlap)
    score = OVERLAP_WEIGHT * jaccard + (1 - OVERLAP_WEIGHT) * _prototype_similarity(
        previous.prototypes, current.prototypes
    )
    survived = {
        int(c): int(r)
        for r, c in zip(*linear_sum_assignment(-score), strict=True)
        if r not in taken_rows
        and c not in taken_cols
        and min(old_share[r, c], new_share[r, c]) >= SURVIVAL_CONTAINMENT
    }
    returned = _returning(current, survived, rolled_back)
    ids, since, next_id = _public_ids(
        previous, current, previous_since, next_id, survived, returned
    )
    transitions = _transitions(
        previous, current, ids, since, survived, splits, merges, jaccard, new_share, returned
    )
    transitions += _retirements(
        previous, previous_since, ids, survived, splits, merges, old_share, new_share
    )
    transitions = _with_every_parent(transitions, previous, ids, overlap)
    return Lineage(
        version=current.version,
        previous=previous.version,
        ids=tuple(ids),
        since=tuple(since),
        transitions=tuple(sorted(transitions, key=lambda t: (t.transition == "retired", t.id))),
        next_id=next_id,
        overlap_customers=shared,
        migration=_migration(previous, ids, overlap),
    )


def _splits(old_share: np.ndarray, new_share: np.ndarray) -> dict[int, list[int]]:
    """Old row -> the new columns that each took at least ``SPLIT_SHARE`` of it (two or more).

    A new segment that is mostly another old segment, which mostly went into it (the survival
    test, both ways), continues that one: it is no child of this row. Otherwise a small segment
    dissolving unevenly into a large one's continuation took it as a "split child", and the
    large segment's id, stored by a CRM, was retired though its customers stayed together
    (a CRM walkthrough, 2026-12-06: 78% of a segment's customers, 62% of the new one)."""
    continues = (old_share >= SURVIVAL_CONTAINMENT) & (new_share >= SURVIVAL_CONTAINMENT)
    out = {}
    for row in range(old_share.shape[0]):
        others = np.delete(continues, row, axis=0).any(axis=0)
        children = [int(c) for c in np.flatnonzero(old_share[row] >= SPLIT_SHARE) if not others[c]]
        if len(children) >= 2:
            out[row] = children
    return out


def _merges(
    old_share: np.ndarray, new_share: np.ndarray, split_rows: set[int]
) -> dict[int, list[int]]:
    """New column -> old rows that each sent it most of their customers and make up a fair part."""
    out = {}
    for col in range(old_share.shape[1]):
        parents = [
            int(r)
            for r in range(old_share.shape[0])
            if r not in split_rows
            and old_share[r, col] >= SURVIVAL_CONTAINMENT
            and new_share[r, col] >= SPLIT_SHARE
        ]
        if len(parents) >= 2:
            out[col] = parents
    return out


def _public_ids(
    previous: VersionSegments,
    current: VersionSegments,
    previous_since: Mapping[int, str],
    next_id: int,
    survived: dict[int, int],
    returned: Mapping[int, RolledBackSegment],
) -> tuple[list[int], list[str], int]:
    ids, since = [], []
    for col in range(len(current.names)):
        if col in survived:
            old_id = int(previous.ids[survived[col]])
            ids.append(old_id)
            since.append(previous_since.get(old_id, previous.version))
        elif col in returned:
            ids.append(returned[col].id)
            since.append(returned[col].since)
        else:
            ids.append(next_id)
            since.append(current.version)
            next_id += 1
    return ids, since, next_id


def _transitions(
    previous: VersionSegments,
    current: VersionSegments,
    ids: list[int],
    since: list[str],
    survived: dict[int, int],
    splits: dict[int, list[int]],
    merges: dict[int, list[int]],
    jaccard: np.ndarray,
    new_share: np.ndarray,
    returned: Mapping[int, RolledBackSegment],
) -> list[SegmentTransition]:
    """One transition per segment of the new version; a new one names the old segment it is
    mostly made of, when there is one."""
    sizes = _sizes(current.labels, len(current.names))
    parent_of_child = {c: r for r, cols in splits.items() for c in cols}
    out = []
    for col, name in enumerate(current.names):
        kind: Transition = "new"
        parents: tuple[int, ...] = ()
        overlap: float | None = None
        if col in survived:
            kind, parents = "survived", (ids[col],)
            overlap = round(float(jaccard[survived[col], col]), 4)
        elif col in merges:
            kind, parents = "merged", tuple(int(previous.ids[r]) for r in merges[col])
        elif col in parent_of_child:
            kind, parents = "split", (int(previous.ids[parent_of_child[col]]),)
        else:
            origin = np.flatnonzero(new_share[:, col] >= SURVIVAL_CONTAINMENT)
            parents = tuple(int(previous.ids[r]) for r in origin)
        back = returned[col].version if col in returned else None
        out.append(
            SegmentTransition(
                ids[col],
                kind,
                name,
                since[col],
                parents,
                (),
                overlap,
                int(sizes[col]),
                returned_from=back,
            )
        )
    return out


def _returning(
    current: VersionSegments,
    survived: Mapping[int, int],
    rolled_back: Sequence[RolledBackSegment],
) -> dict[int, RolledBackSegment]:
    """Segments of ``current`` (by position) that did not survive and are a rolled-back
    version's segment again; one each, by the best Jaccard. "Again" is survival's test, each
    mostly the other (``SURVIVAL_CONTAINMENT`` both ways) on the customers both versions placed,
    and those customers must be most of each segment: a segment of customers the rolled-back
    version never saw (it was a discovery of a selection) is no continuation of one it served.
    A CRM that stored the id while that version served gets its meaning back, not an orphan (an
    ML engineer's roll-back left every id of the rolled-back version unknown, and the next
    retrain gave the same segments new ids)."""
    open_positions = [c for c in range(len(current.names)) if c not in survived]
    if not rolled_back or not open_positions:
        return {}
    position_of = current.members()
    k = len(current.names)
    sizes = _sizes(current.labels, k).astype(float)

    def positions(customers: Collection[str]) -> np.ndarray:
        found = np.fromiter((position_of.get(c, -1) for c in customers), int, len(customers))
        return found[found >= 0]

    # per rolled-back population (a version's placed customers, shared by its segments): how
    # many of each of ours it holds
    ours_shared: dict[str, np.ndarray] = {}
    both = np.zeros((k, len(rolled_back)))  # ours x theirs, on customers both placed
    theirs = np.zeros(len(rolled_back))
    for j, segment in enumerate(rolled_back):
        if segment.version not in ours_shared:
            ours_shared[segment.version] = np.bincount(
                positions(segment.placed), minlength=k
            ).astype(float)
        found = positions(segment.members)
        both[:, j] = np.bincount(found, minlength=k)
        theirs[j] = len(found)
    # The lineage rules hold here too: a rolled-back segment that split (two of ours took
    # SPLIT_SHARE of it each) or ours that merged rolled-back segments (SPLIT_SHARE of it from
    # each of two) gives no id back. A split's larger half took the parent's id: 487 of 907
    # "Typical customers" came back under it as "Long-tenured · Recently active", and the name
    # went to a new id (an ML engineer's walkthrough).
    sent = _share(both, theirs[None, :])  # of each of theirs, the share each of ours took
    split = (sent >= SPLIT_SHARE).sum(axis=0) >= 2
    merged = np.zeros(k, dtype=bool)
    for version in {segment.version for segment in rolled_back}:
        columns = [j for j, seg in enumerate(rolled_back) if seg.version == version]
        shared = ours_shared[version]
        # as ``_merges``: each parent a fair part of ours and sending it most of its customers
        parents = (_share(both[:, columns], shared[:, None]) >= SPLIT_SHARE) & (
            sent[:, columns] >= SURVIVAL_CONTAINMENT
        )
        merged |= parents.sum(axis=1) >= 2
    score = np.zeros((len(open_positions), len(rolled_back)))
    for j, segment in enumerate(rolled_back):
        if split[j] or theirs[j] < SURVIVAL_CONTAINMENT * len(segment.members):
            continue  # split, or most of theirs are not in this version
        shared = ours_shared[segment.version]
        for i, position in enumerate(open_positions):
            b = both[position, j]
            if (
                b > 0
                and not merged[position]
                and shared[position] >= SURVIVAL_CONTAINMENT * sizes[position]
                and min(b / shared[position], b / theirs[j]) >= SURVIVAL_CONTAINMENT
            ):
                score[i, j] = b / (shared[position] + theirs[j] - b)
    rows, cols = linear_sum_assignment(-score)
    return {
        open_positions[r]: rolled_back[c] for r, c in zip(rows, cols, strict=True) if score[r, c]
    }


def _with_every_parent(
    transitions: list[SegmentTransition],
    previous: VersionSegments,
    ids: list[int],
    overlap: np.ndarray,
) -> list[SegmentTransition]:
    """Each new segment's ``parents`` also name every retired segment whose ``children`` name
    it, after the parents its kind gives (a split's parent), the one that gave it most customers
    first: the relation reads the same from both ends. A CRM read "segment 6: split from 4" while
    retired segment 0 said its customers went to 6, and 648 of 6's customers came from 0 against
    197 from 4."""
    row_of = {int(old_id): row for row, old_id in enumerate(previous.ids)}
    col_of = {public: col for col, public in enumerate(ids)}
    gave: dict[int, list[int]] = {}
    for t in transitions:
        if t.transition == "retired":
            for child in t.children:
                gave.setdefault(child, []).append(t.id)
    out = []
    for t in transitions:
        extra = [r for r in gave.get(t.id, []) if r not in t.parents]
        if t.transition == "retired" or not extra:
            out.append(t)
            continue
        col = col_of[t.id]
        extra.sort(key=lambda r: -int(overlap[row_of[r], col]))
        out.append(replace(t, parents=(*t.parents, *extra)))
    return out


def _retirements(
    previous: VersionSegments,
    previous_since: Mapping[int, str],
    ids: list[int],
    survived: dict[int, int],
    splits: dict[int, list[int]],
    merges: dict[int, list[int]],
    old_share: np.ndarray,
    new_share: np.ndarray,
) -> list[SegmentTransition]:
    """One transition per old segment that did not survive, naming where its customers went."""
    kept = set(survived.values())
    merged_into = {r: c for c, rows in merges.items() for r in rows}
    out = []
    for row, old_id in enumerate(previous.ids):
        if row in kept:
            continue
        if row in splits:
            children = tuple(ids[c] for c in splits[row])
        elif row in merged_into:
            children = (ids[merged_into[row]],)
        else:  # absorbed or scattered: every segment that took a fair part or is mostly it
            took = (old_share[row] >= SPLIT_SHARE) | (new_share[row] >= SURVIVAL_CONTAINMENT)
            children = tuple(ids[c] for c in np.flatnonzero(took))
        out.append(
            SegmentTransition(
                int(old_id),
                "retired",
                previous.names[row],
                previous_since.get(int(old_id), previous.version),
                children=children,
            )
        )
    return out


def _overlap_counts(previous: VersionSegments, current: VersionSegments) -> tuple[np.ndarray, int]:
    """Customers in old segment i and new segment j, over customers both versions placed."""
    old, new = previous.members(), current.members()
    shared = [c for c in new if c in old]
    counts = np.zeros((len(previous.ids), len(current.names)), dtype=float)
    if shared:
        np.add.at(counts, ([old[c] for c in shared], [new[c] for c in shared]), 1.0)
    return counts, len(shared)


def _jaccard(overlap: np.ndarray) -> np.ndarray:
    union = overlap.sum(axis=1)[:, None] + overlap.sum(axis=0)[None, :] - overlap
    return _share(overlap, union)


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    whole = np.broadcast_to(whole, part.shape)
    return np.divide(part, whole, out=np.zeros_like(part), where=whole > 0)


def _prototype_similarity(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """1 for identical typical customers, falling towards 0 with distance (scaled by the spread)."""
    distance = np.linalg.norm(old[:, None, :] - new[None, :, :], axis=2)
    scale = float(np.median(distance)) or 1.0
    return np.exp(-distance / scale)


def _sizes(labels: np.ndarray, k: int) -> np.ndarray:
    present = labels[labels >= 0].astype(int)
    return np.bincount(present, minlength=k)


def _migration(
    previous: VersionSegments, ids: list[int], overlap: np.ndarray
) -> dict[str, dict[str, int]]:
    """Customers moving from each old public id to each new public id (non-zero cells only)."""
    return {
        str(int(previous.ids[r])): {
            str(ids[c]): int(overlap[r, c]) for c in range(overlap.shape[1]) if overlap[r, c] > 0
        }
        for r in range(overlap.shape[0])
    }


def same_id_share(previous: VersionSegments, current: VersionSegments, lineage: Lineage) -> float:
    """Share of customers present in both versions whose public segment id did not change."""
    old, new = previous.members(), current.members()
    shared = [c for c in new if c in old]
    if not shared:
        return 1.0
    same = sum(previous.ids[old[c]] == lineage.ids[new[c]] for c in shared)
    return same / len(shared)


def transition_from_dict(document: Mapping[str, object]) -> SegmentTransition:
    return SegmentTransition(
        id=int(document["id"]),  # type: ignore[call-overload]
        transition=document["transition"],  # type: ignore[arg-type]
        name=str(document["name"]),
        since=str(document["since"]),
        parents=tuple(document.get("parents", ())),  # type: ignore[arg-type]
        children=tuple(document.get("children", ())),  # type: ignore[arg-type]
        jaccard=document.get("jaccard"),  # type: ignore[arg-type]
        customers=int(document.get("customers", 0)),  # type: ignore[call-overload]
        renamed_from=document.get("renamed_from"),  # type: ignore[arg-type]
        returned_from=document.get("returned_from"),  # type: ignore[arg-type]
    )


def lineage_from_dict(document: Mapping[str, object]) -> Lineage:
    """The inverse of ``Lineage.as_dict`` (what a version stores in ``lineage.json``)."""
    return Lineage(
        version=str(document["version"]),
        previous=None if document.get("previous") is None else str(document["previous"]),
        ids=tuple(int(i) for i in document["ids"]),  # type: ignore[attr-defined]
        since=tuple(str(s) for s in document["since"]),  # type: ignore[attr-defined]
        transitions=tuple(transition_from_dict(t) for t in document["transitions"]),  # type: ignore[attr-defined]
        next_id=int(document["next_id"]),  # type: ignore[call-overload]
        overlap_customers=int(document.get("overlap_customers", 0)),  # type: ignore[call-overload]
        migration=dict(document.get("migration", {})),  # type: ignore[call-overload]
    )


# --- prototypes and names ------------------------------------------------------------------------
#
# A prototype is a segment's median customer (``SegmentProfile.medians``, raw feature units) divided
# by a robust scale both versions share: the mean of the two training populations' interquartile
# ranges per feature (a flag or a count with no IQR falls back to its 5-95% range, then to 1). Raw
# medians rather than centroids in a preprocessed space because every version has its own
# preprocessing (log decisions, weights, dropped columns): the raw space is the only one the two
# versions share, and the medians are already stored with every version.

# Quantile levels of ``PopulationQuantiles`` (201 levels, every 0.5%) used for the scale.
_IQR_LEVELS, _WIDE_LEVELS = (50, 150), (10, 190)
# A survived segment keeps its old name unless its prototype moved by more than this (root mean
# square over features, in the shared robust scale): half a typical spread means its customers now
# look different enough that the name describing them should be rebuilt.
MATERIAL_SHIFT = 0.5


def robust_scale(
    quantile_grids: Sequence[Mapping[str, Sequence[float]]], features: Sequence[str]
) -> np.ndarray:
    """Per feature, the mean over ``quantile_grids`` (one per version) of its IQR (or wide range)."""
    scales = []
    for name in features:
        spreads = []
        for grid in quantile_grids:
            values = grid.get(name)
            if values is None or len(values) < 201:
                continue
            iqr = values[_IQR_LEVELS[1]] - values[_IQR_LEVELS[0]]
            wide = values[_WIDE_LEVELS[1]] - values[_WIDE_LEVELS[0]]
            spreads.append(iqr or wide)
        scales.append(float(np.mean(spreads)) if spreads and np.mean(spreads) > 0 else 1.0)
    return np.array(scales, dtype=float)


def prototypes(
    medians: Sequence[Mapping[str, float]], features: Sequence[str], scale: np.ndarray
) -> np.ndarray:
    """Segments x features: each segment's medians divided by the shared scale."""
    raw = np.array([[m.get(name, 0.0) for name in features] for m in medians], dtype=float)
    return np.nan_to_num(raw) / scale


def kept_names(
    previous: VersionSegments,
    current: VersionSegments,
    lineage: Lineage,
    held: Sequence[Collection[str]] | None = None,
) -> list[str]:
    """The names the new version's segments go by: a survived segment keeps its old name unless
    its prototype moved materially (``MATERIAL_SHIFT``) or, for the segment at position i, the
    name says something ``held[i]`` does not (``naming.phrases_held``: what the segment's data
    still supports under this version's naming rules; a phrase of a feature the version no longer
    segments on is never held, and the prototypes, which compare only the features both versions
    share, could not see it); the others keep their fresh names. A kept name that would say what
    another segment's name says (``naming.name_meaning``) gives way to its fresh name; if the
    names still clash, every segment takes its fresh name."""
    old_position = {int(public): row for row, public in enumerate(previous.ids)}
    survived = {t.id for t in lineage.transitions if t.transition == "survived"}
    names = list(current.names)
    for col, public in enumerate(lineage.ids):
        if public not in survived:
            continue
        row = old_position[public]
        shift = np.sqrt(np.mean((previous.prototypes[row] - current.prototypes[col]) ** 2))
        true = held is None or set(name_phrases(previous.names[row])) <= set(held[col])
        if shift <= MATERIAL_SHIFT and true:
            names[col] = previous.names[row]
    # Only the kept names that clash are given up, until none does: a name given up may clash in
    # turn with another kept one. Each round gives up at least one, so it ends.
    while not names_distinct(names):
        meanings = [name_meaning(name) for name in names]
        clashing = [
            col
            for col, name in enumerate(names)
            if name != current.names[col] and meanings.count(meanings[col]) > 1
        ]
        if not clashing:
            return list(current.names)  # fresh names clash among themselves: leave them as made
        for col in clashing:
            names[col] = current.names[col]
    return names
