"""What a clustering family owns, in one place: its grid of settings, how it fits a setting, the
assigner it leaves for new customers, how it picks its own favourite, and how it is refitted.

The selection (``models.selection``) and the segmenter only ever call these methods, so a family
is added by writing one subclass and listing an instance in ``models.families.FAMILIES``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from models.candidates import Candidate, CandidateScore, FittedCandidate


class ClusteringFamily(ABC):
    """One clustering algorithm, tried at several settings.

    Subclasses are stateless frozen dataclasses, so two instances of a family compare equal and
    a pickled ``Candidate`` keeps its family.
    """

    name: ClassVar[str]  # in candidate names, metric keys and the comparison table
    words: ClassVar[str]  # the name in words, for people ("k-means" in a gate's threshold)
    setting_name: ClassVar[str]  # what ``Candidate.setting`` means, e.g. "k"
    # The family's own selection criteria, recorded for each of its candidates (None when not
    # measured) next to the ones every candidate gets (silhouette, Calinski-Harabasz, stability).
    criteria: ClassVar[tuple[str, ...]] = ()
    # Refit policy of the final model: whether the chosen setting is refitted on the (larger) fit
    # sample. False where a setting only means something at the size it was chosen on.
    refits_on_more_rows: ClassVar[bool] = True
    # When no candidate at all is admissible, the fallback family's candidates compete on
    # silhouette.
    is_fallback: ClassVar[bool] = False
    # Whether the setting is the number of segments itself, so the family can be told one
    # (``CustomerSegmenter(n_segments=...)``); a density method cannot.
    sets_segment_count: ClassVar[bool] = False
    # Whether the family cuts any cloud of points into parts, segments or not (k-means, mixtures):
    # it then reproduces its own cuts on resamples even of data with no segments, and its
    # stability is compared with a density method's only beyond that (``models.selection``).
    partitions_any_cloud: ClassVar[bool] = True

    def candidate(self, setting: int) -> Candidate:
        return Candidate(self, setting)

    @abstractmethod
    def settings(self, n_rows: int, max_segments: int, n_columns: int) -> list[int]:
        """The settings to try on ``n_rows`` x ``n_columns``; empty when the family should not be
        proposed on such data at all."""

    def grid(self, n_rows: int, max_segments: int, n_columns: int) -> list[Candidate]:
        return [self.candidate(s) for s in self.settings(n_rows, max_segments, n_columns)]

    @abstractmethod
    def fit(self, setting: int, Z: np.ndarray, random_state: int) -> FittedCandidate:
        """Labels ordered by size (``models.candidates.size_order``), the assigner, and any
        criteria measured while fitting (named in ``criteria``)."""

    def refit(self, candidate: Candidate, Z: np.ndarray, random_state: int) -> FittedCandidate:
        """The candidate fitted again on other rows: a stability resample, a half of the data,
        the final fit sample. By default the same setting, fitted afresh with the seed given."""
        return self.fit(candidate.setting, Z, random_state)

    def finish(self, fitted: FittedCandidate, Z: np.ndarray, random_state: int) -> FittedCandidate:
        """The final model made from the chosen candidate, ``fitted`` on the rows ``Z``: by default
        the candidate as it is. A family whose fit is a first approximation refines it here; the
        selection judged the unrefined candidate, so a refinement keeps its number of segments
        and only moves customers between them."""
        return fitted

    def measure(
        self, fitted: FittedCandidate, Z: np.ndarray, random_state: int
    ) -> dict[str, float | tuple[float, ...]]:
        """Criteria that are too costly for every candidate, measured for admissible ones only: a
        number, or the repeated measurements whose mean is the criterion
        (``CandidateScore.record``)."""
        return {}

    @abstractmethod
    def favourite(self, members: list[int], scores: list[CandidateScore]) -> int:
        """Which of ``members`` (indices of this family's admissible candidates in ``scores``)
        the family proposes, once their criteria are measured."""

    def propose(
        self, members: list[int], scores: list[CandidateScore], measure: Callable[[int], object]
    ) -> int | None:
        """The favourite, with ``measure(i)`` filling in candidate ``i``'s costly criteria
        (``measure``) first; None when the family's criterion makes no proposal. By default
        every member is measured; a family whose rule needs the costly criterion for only some
        candidates overrides this and measures only those."""
        for member in members:
            measure(member)
        return self.favourite(members, scores)


def segment_counts(n_rows: int, max_segments: int) -> list[int]:
    """k from 2 to the cap; prediction strength fits every k on half of the rows, so k stops at
    half the sample."""
    return list(range(2, min(max_segments, n_rows // 2) + 1))
