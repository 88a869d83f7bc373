"""A discovery request: which customers, as of when, on which feature families, how many segments
(at most, or exactly when the user knows); and the cheap check that refuses one the data cannot
answer before any work starts.

Shared by the service (``POST /v1/discoveries`` checks it in the request handler) and the job that
runs it (``segments discover``); a job's request is stored as ``as_dict()`` in its row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, get_args

from feature_store.cohort import Cohort, check_cohort
from feature_store.coverage import MIN_TRAINING_CUSTOMERS, check_training_as_of, event_kinds_before
from feature_store.currency import ESTIMATE, LevelsChoice
from feature_store.errors import SegmentsError
from feature_store.layout import StoreLayout
from feature_store.registry import FEATURES, Family, lacking_events
from feature_store.timeutil import parse_as_of, rfc3339

FAMILIES: tuple[str, ...] = get_args(Family)
MIN_SEGMENTS, MAX_SEGMENTS = 2, 30


class DiscoveryRequestError(SegmentsError):
    """The request itself is malformed (families, segment cap or count)."""


@dataclass(frozen=True)
class DiscoveryRequest:
    as_of: datetime
    cohort: Cohort = field(default_factory=Cohort)
    families: tuple[str, ...] = FAMILIES
    max_segments: int = 12
    # Exactly this many segments when the user knows it; None: discovered, at most max_segments.
    segments: int | None = None

    @property
    def feature_names(self) -> list[str]:
        """The features of the chosen families that a model segments on, in the registry's order."""
        return [f.name for f in FEATURES if f.family in self.families and f.segmented]

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": rfc3339(self.as_of),
            **self.cohort.as_dict(),
            "families": list(self.families),
            "max_segments": self.max_segments,
            "segments": self.segments,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DiscoveryRequest:
        return cls(
            as_of=parse_as_of(str(values["as_of"])),
            cohort=Cohort.from_dict(values),
            families=tuple(values.get("families") or FAMILIES),
            max_segments=int(values.get("max_segments", 12)),
            segments=_whole_number("segments", values.get("segments")),
        )


# A number as a person types it on a keyboard: ASCII digits, an optional sign, point and exponent.
# ``float`` also reads "１２" (full-width), "٣" (Arabic-Indic), "1_000", "nan" and "inf", none of
# which a form's number field means.
_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def plain_number(text: str) -> float:
    """A number written in ASCII digits ("12", "-3.5", "1e3"), around spaces; ``ValueError``
    otherwise."""
    if not _NUMBER_TEXT.fullmatch(text.strip()):
        raise ValueError(f"not a number: {text!r}")
    return float(text)


def whole_number(text: str) -> int:
    """A whole number written as text, "8.0" included (as JSON bodies are read); ``ValueError``
    otherwise, for "3.5", "inf", "nan" and digits other than ASCII ones too. The CLI, the API
    and the Discover form read their counts by it."""
    number = plain_number(text)
    if not number.is_integer():
        raise ValueError(f"not a whole number: {text!r}")
    return int(number)


def _whole_number(name: str, value: object) -> int | None:
    """A form's or a stored request's optional whole number; a one-line refusal otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return whole_number(str(value))
    except ValueError:
        raise DiscoveryRequestError(f"{name} must be a whole number, got {value!r}") from None


def check_shape(families: Sequence[str], max_segments: int, segments: int | None = None) -> None:
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise DiscoveryRequestError(
            f"unknown feature family {unknown[0]!r}; known: {', '.join(FAMILIES)}"
            if unknown
            else "choose at least one feature family"
        )
    if len(set(families)) != len(families):
        raise DiscoveryRequestError(f"name each feature family once, not {', '.join(families)}")
    if not MIN_SEGMENTS <= max_segments <= MAX_SEGMENTS:
        raise DiscoveryRequestError(
            f"max segments must be between {MIN_SEGMENTS} and {MAX_SEGMENTS}, got {max_segments}"
        )
    if segments is not None and not MIN_SEGMENTS <= segments <= MAX_SEGMENTS:
        raise DiscoveryRequestError(
            f"segments must be between {MIN_SEGMENTS} and {MAX_SEGMENTS}, got {segments}"
        )


def check_request(layout: StoreLayout, request: DiscoveryRequest) -> None:
    """The checks that build no feature vectors (the request's shape; the as-of against the
    events' span and customer count): run first, so a malformed request costs no feature build."""
    check_shape(request.families, request.max_segments, request.segments)
    # one family alone reads one stream: ids the other writes differently do not matter to it
    both = len(set(request.families)) > 1
    check_training_as_of(layout, request.as_of, both_streams=both)
    check_families_have_events(layout, request)


def check_families_have_events(layout: StoreLayout, request: DiscoveryRequest) -> None:
    """Refuse families whose every feature reads events the data has none of before the as-of
    (``registry.lacking_events``; behavioural features with no usage event): they would hold
    only fallbacks. Refused before the job is queued; it failed inside the job."""
    names = request.feature_names
    lacking = lacking_events(names, event_kinds_before(layout, request.as_of))
    if names and sum(len(kind) for kind in lacking.values()) == len(names):
        kinds = " or ".join(sorted(lacking))
        raise DiscoveryRequestError(
            f"the families asked for ({', '.join(request.families)}) need {kinds} events, and "
            "the data has none before the date: their features would only hold fallbacks"
        )


def check_discovery(
    layout: StoreLayout, request: DiscoveryRequest, levels: LevelsChoice = ESTIMATE
) -> list[str]:
    """The customers the request selects; one-line ``SegmentsError`` when it cannot run: a
    malformed request, an as-of outside the data, an unknown filter column, too few customers.
    ``levels`` convert MRR for the bounds (``feature_store.cohort.cohort_customers``)."""
    check_request(layout, request)
    return selected_customers(layout, request, levels)


def selected_customers(
    layout: StoreLayout, request: DiscoveryRequest, levels: LevelsChoice = ESTIMATE
) -> list[str]:
    """``check_discovery`` after ``check_request``: the cohort, refused when too small."""
    # Told a number of segments, the selection needs twice as many active customers
    # (``models.segmenter.check_segment_count``): refused now rather than when the job runs.
    needed = max(MIN_TRAINING_CUSTOMERS, 2 * (request.segments or 0))
    return check_cohort(layout, request.cohort, request.as_of, needed, levels)
