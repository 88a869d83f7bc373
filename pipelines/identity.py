"""Stable segment ids at registration: match a new version's segments to the champion's.

Before a new version is registered, its segments are traced against the champion's
(``models.lineage.trace_lineage``) on the customers both versions were trained on: each version
stores its training membership (``lineage/membership.parquet``: customer_id, segment position, -1
for outliers) as a run artifact, so the next version compares without recomputing the champion's
features. A champion registered before memberships were stored is represented by its own
placement of the new version's customers instead.

Prototypes are segment medians in raw feature units divided by a scale both versions share (see
``models.lineage.prototypes``). The result travels inside the model files: each profile's
``segment_id`` becomes the public id and ``since`` the version it first appeared in, and the model
carries its ``lineage`` and the champion's history, so the service answers with public ids and
serves each segment's history without asking the registry.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from feature_store.formats import first_line
from feature_store.registry import with_other_features
from models.bundle import SegmentModel
from models.lineage import (
    SERVED_KINDS,
    Lineage,
    RolledBackSegment,
    SegmentTransition,
    VersionSegments,
    first_lineage,
    kept_names,
    lineage_tag,
    prototypes,
    robust_scale,
    same_id_share,
    trace_lineage,
)
from models.registry import (
    CHAMPION,
    ModelIntegrityError,
    ModelRegistry,
    RegistryError,
    RegistryUnavailableError,
)

logger = logging.getLogger(__name__)

MEMBERSHIP_FILE = "membership.parquet"
LINEAGE_FILE = "lineage.json"
LINEAGE_FOLDER = "lineage"
# Registered-model and version tag: the first public id no version has used yet.
NEXT_ID_TAG = "next_segment_id"
# Rows of the training features kept with the model as the drift reference.
REFERENCE_ROWS = 5000


@dataclass(frozen=True)
class Predecessor:
    """The champion a new version is traced against."""

    version: str
    model: SegmentModel
    membership: pd.DataFrame | None  # customer_id, position; None for an older champion
    # segments of versions a roll-back went past (``rolled_back_segments``)
    rolled_back: tuple[RolledBackSegment, ...] = ()


@dataclass(frozen=True)
class Identified:
    """A fitted model with public ids, names kept, lineage and reference, and what to store."""

    model: SegmentModel
    membership: pd.DataFrame
    same_id_share: float | None


def predecessor(registry: ModelRegistry) -> Predecessor | None:
    champion = registry.alias_version(CHAMPION)
    if champion is None:
        return None
    model = registry.load_version(champion)
    return Predecessor(
        champion,
        model,
        _stored_membership(registry, champion),
        rolled_back_segments(registry, champion, model),
    )


def check_champion_membership(registry: ModelRegistry) -> None:
    """Refuse now, in one line, a champion whose stored membership cannot be read: a retrain
    checks it before it rewrites the service's vectors, which it did before failing on it."""
    champion = registry.alias_version(CHAMPION)
    if champion is not None:
        _stored_membership(registry, champion)


def _stored_membership(registry: ModelRegistry, version: str) -> pd.DataFrame | None:
    """Who was in which segment of ``version`` (None: registered before memberships were
    stored). A file that is not one this project wrote is refused in one line: it was a
    traceback, after a retrain had already rewritten the service's vectors (an ML engineer's
    review)."""
    path = f"{LINEAGE_FOLDER}/{MEMBERSHIP_FILE}"
    with tempfile.TemporaryDirectory() as tmp:
        found = registry.download_run_file(version, path, Path(tmp))
        if found is None:
            return None
        try:
            membership = pd.read_parquet(found)
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise ModelIntegrityError(
                f"version {version}'s {path} cannot be read ({first_line(error)}): it "
                "is damaged or was not written by this project; restore it from a backup, or "
                "promote another version before training"
            ) from None
    if not {"customer_id", "position"} <= set(membership.columns):
        raise ModelIntegrityError(
            f"version {version}'s {path} lacks the customer_id and position columns: it was not "
            "written by this project; restore it from a backup, or promote another version"
        )
    return membership


def rolled_back_segments(
    registry: ModelRegistry, champion: str, model: SegmentModel
) -> tuple[RolledBackSegment, ...]:
    """The segments a new version may give ids back to: those of the ids
    ``ModelRegistry.served_by_others`` names (served by another version, unknown to the
    champion's lineage, not retired since), read from the version that served each last."""
    offered = registry.served_by_others(champion, model)
    out: list[RolledBackSegment] = []
    for version in dict.fromkeys(offered.values()):  # most recently served first
        try:
            other = registry.load_version(version)
            members = _stored_membership(registry, version)
        except RegistryUnavailableError:
            raise
        except (ModelIntegrityError, RegistryError) as error:
            # a version deleted or damaged since it served: its ids stay unknown, as before
            # roll-backs were traced, and the training goes on
            logger.warning("ids of version %s, which served, not traced: %s", version, error)
            continue
        if members is not None:  # None: registered before memberships were stored
            theirs = {public for public, by in offered.items() if by == version}
            out += [s for s in served_segments(version, other, members) if s.id in theirs]
    return tuple(out)


def served_segments(
    version: str, model: SegmentModel, members: pd.DataFrame
) -> list[RolledBackSegment]:
    """``model``'s segments (``version``, trained membership ``members``) as
    ``models.lineage.trace_lineage`` takes rolled-back segments."""
    customers = members["customer_id"].astype(str).to_numpy()
    positions = members["position"].to_numpy(dtype=int)
    placed = frozenset(customers[positions >= 0])
    return [
        RolledBackSegment(
            int(profile.segment_id),
            profile.since or version,
            version,
            frozenset(customers[positions == position]),
            placed,
            profile.name,
        )
        for position, profile in enumerate(model.profiles)
    ]


def membership(
    customer_ids: Sequence[str], labels: np.ndarray, is_outlier: np.ndarray
) -> pd.DataFrame:
    """Who the version placed where: position, or -1 for an outlier (in no segment)."""
    positions = np.where(np.asarray(is_outlier, bool), -1, np.asarray(labels, int))
    return pd.DataFrame({"customer_id": [str(c) for c in customer_ids], "position": positions})


def version_segments(
    version: str,
    model: SegmentModel,
    members: pd.DataFrame,
    features: Sequence[str],
    scale: np.ndarray,
) -> VersionSegments:
    return VersionSegments(
        version=version,
        customer_ids=members["customer_id"].tolist(),
        labels=members["position"].to_numpy(dtype=int),
        ids=model.segment_ids,
        names=model.segment_names,
        prototypes=prototypes([p.medians for p in model.profiles], features, scale),
    )


def next_free_id(
    tags: Mapping[str, str], champion: SegmentModel | None, versions: Sequence[str] = ()
) -> int:
    """The first public id no registered version used: the registered model's counter, never
    below the champion's own (a champion from before the counter existed), nor below any
    version's own counter (``versions``: their ``NEXT_ID_TAG`` values). The model's counter is
    raised after a version is created, and a training killed in between let the next one give
    the killed version's new ids to other groups (an ML engineer's review, 2026-12-08)."""
    floor = max([int(tags.get(NEXT_ID_TAG, 0)), *(int(v) for v in versions if v.isdigit())])
    if champion is None:
        return floor
    own = champion.lineage.next_id if champion.lineage else 0
    return max(floor, own, max(champion.segment_ids, default=-1) + 1)


def identify(
    model: SegmentModel,
    members: pd.DataFrame,
    version: str,
    before: Predecessor | None,
    next_id: int,
    features: pd.DataFrame,
    held_phrases: Sequence[Collection[str]] | None = None,
) -> Identified:
    """Give ``model``'s segments their public ids, names and lineage against ``before``;
    ``held_phrases`` (per segment position, ``models.profiles.held_phrases``) are what a kept
    name may say (None: any name of a survived segment that did not move is kept)."""
    # The model's columns and every other registry feature the table has: a champion that
    # segments on other features (an older registry, a discovery of one family) must be able to
    # place the same customers when the two are compared.
    reference = features[with_other_features(model.feature_names, features.columns)].sample(
        min(len(features), REFERENCE_ROWS), random_state=0
    )
    if before is None:
        lineage = _shifted(first_lineage(_segments(version, model, members)), next_id)
        return Identified(
            _with_lineage(model, lineage, model.segment_names, (), reference), members, None
        )
    shared = [n for n in model.feature_names if n in before.model.feature_names]
    grids = [m.population.quantiles for m in (before.model, model) if m.population is not None]
    scale = robust_scale(grids, shared)
    old_members = before.membership
    if old_members is None:  # a champion from before memberships were stored
        old_members = membership(
            features["customer_id"].astype(str).tolist(),
            *_placement(before.model, features),
        )
    previous = version_segments(before.version, before.model, old_members, shared, scale)
    current = version_segments(version, model, members, shared, scale)
    since = {int(p.segment_id): p.since or before.version for p in before.model.profiles}
    lineage = trace_lineage(previous, current, since, next_id, before.rolled_back)
    names = kept_names(previous, current, lineage, held_phrases)
    history = (*before.model.history, *([before.model.lineage] if before.model.lineage else []))
    # a survivor against the champion's name; an id given back against the name it was served by
    old_names = {
        **{segment.id: segment.name for segment in before.rolled_back},
        **dict(zip(before.model.segment_ids, before.model.segment_names, strict=True)),
    }
    identified = _with_lineage(model, lineage, names, history, reference, old_names)
    return Identified(identified, members, same_id_share(previous, current, lineage))


def _segments(version: str, model: SegmentModel, members: pd.DataFrame) -> VersionSegments:
    names = list(model.feature_names)
    return version_segments(version, model, members, names, np.ones(len(names)))


def _placement(model: SegmentModel, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    placed = model.place(model.values(features))
    return placed.segment, placed.is_outlier


def _shifted(lineage: Lineage, start: int) -> Lineage:
    """A first lineage numbered from ``start`` (a registry whose earlier versions used ids)."""
    if start == 0:
        return lineage
    ids = tuple(start + i for i in lineage.ids)
    transitions = tuple(replace(t, id=start + t.id) for t in lineage.transitions)
    return replace(lineage, ids=ids, transitions=transitions, next_id=start + lineage.next_id)


def _with_lineage(
    model: SegmentModel,
    lineage: Lineage,
    names: Sequence[str],
    history: tuple[Lineage, ...],
    reference: pd.DataFrame,
    old_names: Mapping[int, str] | None = None,
) -> SegmentModel:
    # The transitions name segments as the new version calls them, and a survivor whose name
    # changed says what it was called (``segments train`` said "4 survived" where `compare`
    # said one was renamed).
    by_id = dict(zip(lineage.ids, names, strict=True))
    old_names = old_names or {}

    def named(t: SegmentTransition) -> SegmentTransition:
        if t.transition == "retired":
            return t
        judged = t.transition == "survived" or t.returned_from is not None
        before = old_names.get(t.id) if judged else None
        renamed = before if before and before != by_id[t.id] else None
        return replace(t, name=by_id[t.id], renamed_from=renamed)

    transitions = tuple(named(t) for t in lineage.transitions)
    lineage = replace(lineage, transitions=transitions)
    profiles = [
        replace(profile, segment_id=int(public), since=since, name=name)
        for profile, public, since, name in zip(
            model.profiles, lineage.ids, lineage.since, names, strict=True
        )
    ]
    return replace(
        model,
        profiles=profiles,
        lineage=lineage,
        history=history,
        reference=reference.reset_index(drop=True),
    )


def lineage_tags(lineage: Lineage) -> dict[str, str]:
    """Version tags that say what the version did to every segment, readable in the MLflow UI."""
    tags = {
        lineage_tag(kind): ",".join(str(t.id) for t in lineage.transitions if t.transition == kind)
        for kind in (*SERVED_KINDS, "retired")
    }
    return {
        **tags,
        # ids given back after a roll-back (counted above under their kind, "new" or "split")
        lineage_tag("returned"): ",".join(
            str(t.id) for t in lineage.transitions if t.returned_from is not None
        ),
        lineage_tag("previous"): lineage.previous or "",
        NEXT_ID_TAG: str(lineage.next_id),
    }


def write_lineage(identified: Identified, folder: Path) -> None:
    """``lineage.json`` and ``membership.parquet``, logged with the version's run."""
    folder.mkdir(parents=True, exist_ok=True)
    model = identified.model
    assert model.lineage is not None
    document = {
        **model.lineage.as_dict(),
        "same_id_share": identified.same_id_share,
        "history": [entry.as_dict() for entry in model.history],
    }
    (folder / LINEAGE_FILE).write_text(json.dumps(document, indent=2))
    identified.membership.to_parquet(folder / MEMBERSHIP_FILE, index=False)
