"""Segment lineage on hand-built memberships: each MONIC transition, id stability, ids never reused."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.lineage import (
    SegmentTransition,
    VersionSegments,
    first_lineage,
    history_relation,
    same_id_share,
    trace_lineage,
    transition_text,
)


def version(name: str, groups: list[list[str]], ids: list[int] | None = None) -> VersionSegments:
    """A version whose segment at position i holds the customers in ``groups[i]``."""
    customers = [c for group in groups for c in group]
    labels = np.array([i for i, group in enumerate(groups) for _ in group])
    k = len(groups)
    return VersionSegments(
        version=name,
        customer_ids=customers,
        labels=labels,
        ids=ids if ids is not None else list(range(k)),
        names=[f"{name}-segment-{i}" for i in range(k)],
        prototypes=np.eye(k, 6),  # every version's prototypes live in one 6-d space
    )


def people(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


A, B, C = people("a", 100), people("b", 60), people("c", 40)


def test_first_version_numbers_segments_from_zero():
    lineage = first_lineage(version("1", [A, B, C]))
    assert lineage.ids == (0, 1, 2)
    assert {t.transition for t in lineage.transitions} == {"new"}
    assert lineage.next_id == 3


def test_same_groups_in_another_order_keep_their_ids():
    old = version("1", [A, B, C], ids=[0, 1, 2])
    new = version("2", [C, A, B])  # positions shuffled, as a refit with another seed does
    lineage = trace_lineage(old, new, {0: "1", 1: "1", 2: "1"}, next_id=3)
    assert lineage.ids == (2, 0, 1)
    assert lineage.counts() == {"survived": 3}
    assert lineage.next_id == 3
    assert same_id_share(old, new, lineage) == 1.0
    assert lineage.since == ("1", "1", "1")


def test_a_few_customers_changing_sides_is_still_survival():
    moved = A[:10]
    old = version("1", [A, B, C])
    new = version("2", [A[10:], B + moved, C])
    lineage = trace_lineage(old, new, {}, next_id=3)
    assert lineage.ids == (0, 1, 2)
    assert same_id_share(old, new, lineage) == pytest.approx(190 / 200)
    assert lineage.migration["0"] == {"0": 90, "1": 10}


def test_split_gives_children_new_ids_and_retires_the_parent():
    old = version("1", [A, B, C])
    new = version("2", [A[:55], A[55:], B, C])  # 55% and 45% of A
    lineage = trace_lineage(old, new, {}, next_id=3)
    kinds = {t.id: t.transition for t in lineage.transitions if t.transition != "retired"}
    assert lineage.ids == (3, 4, 1, 2)
    assert kinds == {3: "split", 4: "split", 1: "survived", 2: "survived"}
    retired = [t for t in lineage.transitions if t.transition == "retired"]
    assert [(t.id, t.children) for t in retired] == [(0, (3, 4))]
    assert all(t.parents == (0,) for t in lineage.transitions if t.transition == "split")


def test_a_three_way_split_names_all_three_children():
    old = version("1", [A, B, C])
    new = version("2", [A[:40], A[40:70], A[70:], B, C])  # 40%, 30% and 30% of A
    lineage = trace_lineage(old, new, {}, next_id=3)
    split = [t for t in lineage.transitions if t.transition == "split"]
    assert [(t.id, t.parents) for t in split] == [(3, (0,)), (4, (0,)), (5, (0,))]
    retired = next(t for t in lineage.transitions if t.transition == "retired")
    assert (retired.id, retired.children) == (0, (3, 4, 5))
    assert lineage.counts() == {"split": 3, "survived": 2, "retired": 1}


def test_a_segment_breaking_into_small_pieces_is_retired_into_them():
    # A goes to five pieces of 20% each: none takes the 30% a split needs, so A is retired and the
    # pieces are new; lineage still says where A's customers went.
    pieces = [A[i : i + 20] for i in range(0, 100, 20)]
    lineage = trace_lineage(version("1", [A, B, C]), version("2", [*pieces, B, C]), {}, next_id=3)
    kinds = {t.id: (t.transition, t.parents, t.children) for t in lineage.transitions}
    assert [kinds[i] for i in (3, 4, 5, 6, 7)] == [("new", (0,), ())] * 5
    assert kinds[0] == ("retired", (), (3, 4, 5, 6, 7))
    assert kinds[1][0] == kinds[2][0] == "survived"


def test_a_small_piece_breaking_off_is_not_a_split():
    old = version("1", [A, B, C])
    new = version("2", [A[:80], B, C, A[80:]])  # 20% of A is below the 30% a split needs
    lineage = trace_lineage(old, new, {}, next_id=3)
    assert lineage.ids[:3] == (0, 1, 2)
    assert next(t for t in lineage.transitions if t.id == 3).transition == "new"


def test_merge_of_two_comparable_segments_gets_a_new_id():
    old = version("1", [A, B, C])
    new = version("2", [A, B + C])  # B (60) and C (40) together
    lineage = trace_lineage(old, new, {}, next_id=3)
    assert lineage.ids == (0, 3)
    merged = next(t for t in lineage.transitions if t.transition == "merged")
    assert merged.id == 3
    assert sorted(merged.parents) == [1, 2]
    retired = {t.id: t.children for t in lineage.transitions if t.transition == "retired"}
    assert retired == {1: (3,), 2: (3,)}


def test_a_small_segment_absorbed_by_a_large_one_retires_into_it():
    small = people("s", 8)
    old = version("1", [A, B, small])
    new = version("2", [A + small, B])
    lineage = trace_lineage(old, new, {}, next_id=3)
    assert lineage.ids == (0, 1)
    retired = next(t for t in lineage.transitions if t.transition == "retired")
    assert (retired.id, retired.children) == (2, (0,))


def test_a_small_segment_dissolving_unevenly_into_a_large_ones_continuation_keeps_its_id():
    """A small segment sends 65% of itself into the continuation of a large one and 35% into
    another: no split of the small one claims the large one's continuation, whose id a CRM holds
    (it was retired, though 90% of its customers stayed together, 93% of the new segment)."""
    typical, big, small = people("t", 1000), people("b", 400), people("s", 100)
    old = version("1", [typical, big, small])
    new = version("2", [typical[:900] + small[:65], typical[900:] + small[65:], big])
    lineage = trace_lineage(old, new, {0: "1", 1: "1", 2: "1"}, next_id=3)
    assert lineage.ids == (0, 3, 1)
    kinds = {t.id: t for t in lineage.transitions}
    assert kinds[0].transition == "survived"
    assert kinds[2].transition == "retired"
    assert set(kinds[2].children) == {0, 3}  # where its customers went is still said
    # its own split is kept when its pieces continue nothing else
    new = version("2", [typical, big, small[:65], small[65:]])
    lineage = trace_lineage(old, new, {0: "1", 1: "1", 2: "1"}, next_id=3)
    assert next(t for t in lineage.transitions if t.id == 2).transition == "retired"
    assert {t.transition for t in lineage.transitions if t.id in (3, 4)} == {"split"}


def test_new_and_retired_segments_and_ids_are_never_reused():
    D = people("d", 50)
    old = version("1", [A, B, C], ids=[0, 1, 5])  # an earlier version already used ids up to 6
    new = version("2", [A, B, D])  # C's customers left, D are newcomers
    lineage = trace_lineage(old, new, {0: "1", 1: "1", 5: "1"}, next_id=7)
    assert lineage.ids == (0, 1, 7)
    kinds = {(t.id, t.transition) for t in lineage.transitions}
    assert (7, "new") in kinds
    assert (5, "retired") in kinds
    assert lineage.next_id == 8


def test_outliers_belong_to_no_segment():
    old = version("1", [A, B])
    new = VersionSegments(
        "2", A + B, np.array([0] * 100 + [-1] * 60), [0, 1], ["x", "y"], np.eye(2, 6)
    )
    lineage = trace_lineage(old, new, {}, next_id=2)
    assert lineage.ids[0] == 0
    assert lineage.overlap_customers == 100


def effect(feature: str, value: float):
    from models.profiles import Distinction

    return Distinction(feature, value, 0.0, 0.0)


def test_a_survived_segment_keeps_its_name_unless_it_names_what_the_version_cannot_see():
    from dataclasses import replace

    from models.lineage import kept_names
    from models.naming import name_phrases, phrases_held

    old = replace(version("1", [A, B]), names=["Long-tenured · Dormant", "High MRR"])
    new = replace(version("2", [A, B]), names=["Long-tenured", "High MRR · Large teams"])
    lineage = trace_lineage(old, new, {}, next_id=2)
    assert kept_names(old, new, lineage) == ["Long-tenured · Dormant", "High MRR"]
    # the new version segments on billing alone: "Dormant" (days since the last activity) is
    # no difference it measures, so that segment goes by its fresh name; the other keeps its own
    held = [
        phrases_held([effect("tenure_days", 1.2)], {"tenure_days": 900.0}, {}),
        phrases_held([effect("mrr", 1.5), effect("seats", 1.1)], {}, {}),
    ]
    assert "Dormant" not in held[0]
    assert kept_names(old, new, lineage, held) == ["Long-tenured", "High MRR"]
    assert name_phrases("Low MRR · Dormant (3)") == ["Low MRR", "Dormant"]


def test_a_survived_segment_drops_a_name_its_own_naming_now_leaves_out():
    """'Shallow per-user use' named a dormant segment for events per active user that no
    activity leaves at 0; the rule that skips it must reach segments that keep their names."""
    from dataclasses import replace

    from models.lineage import kept_names
    from models.naming import phrases_held

    old = replace(version("1", [A, B]), names=["Dormant · Shallow per-user use", "High MRR"])
    new = replace(version("2", [A, B]), names=["Dormant · Light usage", "High MRR · Large teams"])
    lineage = trace_lineage(old, new, {}, next_id=2)
    effects = [
        effect("days_since_last_activity", 1.8),
        effect("events_per_active_user_30d", -1.2),
        effect("events_30d", -0.9),
    ]
    dormant = {"events_30d": 0.0, "events_per_active_user_30d": 0.0, "api_share_30d": 0.0}
    active = {"events_30d": 40.0, "events_per_active_user_30d": 0.0}
    assert "Shallow per-user use" not in phrases_held(effects, dormant, {})
    assert "Shallow per-user use" in phrases_held(effects, active, {})
    held = [phrases_held(effects, dormant, {}), phrases_held([effect("mrr", 1.5)], {}, {})]
    assert kept_names(old, new, lineage, held) == ["Dormant · Light usage", "High MRR"]


def test_a_kept_name_must_still_be_true_but_may_slide_towards_its_bar():
    """A name kept across a retrain says what its segment is now: "Little API use" goes once the
    segment uses the API like everyone, and "Daily users" once its median customer is no longer
    active 20 days in 30; a difference that shrank from 0.6 to 0.4 keeps the name (half the 0.5 a
    fresh name needs), so names do not flip at every retrain."""
    from dataclasses import replace

    from models.lineage import kept_names
    from models.naming import TYPICAL, phrases_held

    old = replace(version("1", [A, B]), names=["Little API use", "Daily users"])
    new = replace(version("2", [A, B]), names=["Large teams", "Low MRR"])
    lineage = trace_lineage(old, new, {}, next_id=2)
    slid = [
        phrases_held([effect("api_share_30d", -0.4)], {}, {}),
        phrases_held([effect("active_days_30d", 0.4)], {"active_days_30d": 24.0}, {}),
    ]
    assert kept_names(old, new, lineage, slid) == ["Little API use", "Daily users"]
    gone = [
        phrases_held([effect("api_share_30d", 0.1), effect("seats", 0.9)], {}, {}),
        phrases_held([effect("active_days_30d", 0.9)], {"active_days_30d": 12.0}, {}),
    ]
    assert kept_names(old, new, lineage, gone) == ["Large teams", "Low MRR"]
    # "Typical customers" holds only while no phrase would name the segment
    assert TYPICAL in phrases_held([effect("mrr", 0.3)], {}, {})
    assert TYPICAL not in phrases_held([effect("mrr", 0.8)], {}, {})


def test_a_kept_name_that_says_what_another_segment_says_gives_way_alone():
    """A and B survive; C is new. B's old name "Seldom active" would say what C's fresh name
    "Rarely active" says, so B takes its fresh name; A keeps its old one."""
    from dataclasses import replace

    from models.lineage import kept_names

    C = people("c2", 60)
    old = replace(version("1", [A, B]), names=["High MRR", "Seldom active"])
    new = replace(
        version("2", [A, B, C]), names=["High MRR · Large teams", "Low MRR", "Rarely active"]
    )
    lineage = trace_lineage(old, new, {}, next_id=2)
    assert kept_names(old, new, lineage) == ["High MRR", "Low MRR", "Rarely active"]


def test_names_given_up_in_turn_leave_the_other_kept_names_alone():
    """a's kept "Seldom active" says what the new d's "Rarely active" says, so a takes its fresh
    "High MRR", which b's kept name holds: b gives way in turn. c keeps its old name; before, the
    second clash sent every segment to its fresh name (a review)."""
    from dataclasses import replace

    from models.lineage import kept_names

    D = people("d2", 50)
    old = replace(version("1", [A, B, C]), names=["Seldom active", "High MRR", "Annual plans"])
    fresh = ["High MRR", "Low MRR", "Annual plans · Heavy API use", "Rarely active"]
    new = replace(version("2", [A, B, C, D]), names=fresh)
    lineage = trace_lineage(old, new, {}, next_id=3)
    assert [t.transition for t in lineage.transitions if t.id in (0, 1, 2)] == ["survived"] * 3
    assert kept_names(old, new, lineage) == ["High MRR", "Low MRR", "Annual plans", "Rarely active"]


def test_a_segment_mostly_made_of_a_retired_one_names_it_among_its_parents():
    """Segment 1 splits in two; one half also takes all of segment 0, which is retired into it.
    The half is a split of 1 by its kind, and its parents named only 1 while retired 0 named it
    as a child: a CRM read "split from 1" of a segment 43% made of 0. Parents now name 0 too,
    after the split's parent, the larger giver first. (Were the half mostly 0, it would continue
    0 and be no child of 1: ``test_a_small_segment_dissolving_unevenly_...``.)"""
    small, first, second = people("x", 30), people("y", 40), people("z", 40)
    old = version("1", [small, first + second], ids=[0, 1])
    new = version("2", [small + first, second])
    lineage = trace_lineage(old, new, {0: "1", 1: "1"}, next_id=2)
    kinds = {t.id: t for t in lineage.transitions}
    retired = kinds[0]
    assert retired.transition == "retired"
    for child in retired.children:
        assert 0 in kinds[child].parents
    half = next(t for t in lineage.transitions if t.transition == "split" and 0 in t.parents)
    assert half.parents == (1, 0)


def test_each_transition_reads_as_a_sentence_and_says_how_it_concerns_a_segment():
    """A segment's history lists its parents' retirements and its children's births beside its
    own transitions; a CRM read a parent's "retired" as the segment's own. Each now says whose
    it is, and reads as a sentence naming versions and ids."""
    old = version("1", [A, B, C])
    split = trace_lineage(old, version("2", [A[:55], A[55:], B, C]), {}, next_id=3)
    by_id = {t.id: t for t in split.transitions}
    words = {i: transition_text("2", "1", t) for i, t in by_id.items()}
    assert words[0] == "version 2 retired segment 0: its customers went to 3 and 4"
    assert words[3] == "version 2 made segment 3 from part of segment 0"
    assert words[1] == (
        "version 2 kept segment 1 (100% of the customers in its segment of either version 1 or 2 "
        "are in both)"
    )
    nearly = replace(by_id[1], jaccard=0.9953)
    assert transition_text("2", "1", nearly).startswith("version 2 kept segment 1 (over 99% of")
    assert transition_text("2", "1", replace(by_id[1], jaccard=0.874)).startswith(
        "version 2 kept segment 1 (87% of"
    )
    assert (history_relation(3, by_id[0]), history_relation(3, by_id[3])) == ("parent", "itself")
    assert history_relation(0, by_id[4]) == "child"
    merged = trace_lineage(old, version("2", [A, B + C]), {}, next_id=3)
    [merge] = [t for t in merged.transitions if t.transition == "merged"]
    assert (
        transition_text("2", "1", merge) == "version 2 made segment 3 by merging segments 1 and 2"
    )
    first = first_lineage(version("1", [A, B]))
    assert transition_text("1", None, first.transitions[1]) == "version 1 made segment 1"
    # a split that also took customers of a retired segment; an id given back after a roll-back
    wider = SegmentTransition(7, "split", "x", "3", parents=(2, 4, 5))
    assert transition_text("3", "2", wider) == (
        "version 3 made segment 7 from part of segment 2, with customers of segments 4 and 5"
    )
    back = SegmentTransition(6, "new", "x", "2", returned_from="2")
    assert transition_text("3", "2", back) == (
        "version 3 gave id 6 back to the customers version 2 served under it before a roll-back"
    )
