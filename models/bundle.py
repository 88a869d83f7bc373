"""``SegmentModel``: everything needed to assign and explain a customer, as one object swapped whole.

The segmenter, the explainer, the feature list and the segment profiles travel together, so an
assignment can never mix a segmenter of one version with the names or explanations of another.

The model works by segment *position* (0..k-1, the segmenter's columns); everything it emits carries
the segment's *public* id instead (``SegmentProfile.segment_id``, stable across versions and never
reused, ``models.lineage``). A model not registered yet has public ids equal to its positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from feature_store.currency import CurrencyLevels
from models.assignment import (
    Assignment,
    Contribution,
    Explanation,
    ModelRef,
    RunnerUp,
    SegmentRef,
)
from models.business import CANCELED, ChurnedCustomers, SegmentBacktest
from models.columns import ordered_values
from models.lineage import THIS_VERSION, Lineage, SegmentTransition, bind_version
from models.population import PopulationQuantiles
from models.profiles import SegmentProfile
from models.segmenter import CustomerSegmenter
from models.summaries import reporting_currency
from models.wording import (
    AGAINST_CONTRAST,
    AGAINST_SEGMENT,
    assignment_summary,
    contribution_text,
    describe,
    percentile_of,
    standing_text,
)

if TYPE_CHECKING:  # shap is only imported where explanations are made
    from models.explainer import Attribution, SegmentExplainer

ExplanationView = Literal["contrast", "segment"]
# An unusual customer's summary names at most this many features that make it so.
UNUSUAL_NAMED = 2


@dataclass(frozen=True)
class Placement:
    """The numbers behind a batch of assignments, one entry per row."""

    segment: np.ndarray
    confidence: np.ndarray
    is_outlier: np.ndarray
    runner_up: np.ndarray | None  # None when the model has a single segment
    margin: np.ndarray | None
    # how typical a member: the share of training customers fitting their segment less well
    # (``CustomerSegmenter.placement_and_typicality_from_matrix``); None for older models
    typicality: np.ndarray | None = None

    def rows(self, rows: Sequence[int]) -> Placement:
        """The placement of ``rows`` alone, in their order."""

        def pick(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[list(rows)]

        return Placement(
            self.segment[list(rows)],
            self.confidence[list(rows)],
            self.is_outlier[list(rows)],
            pick(self.runner_up),
            pick(self.margin),
            pick(self.typicality),
        )


@dataclass
class SegmentModel:
    segmenter: CustomerSegmenter
    feature_names: list[str]
    profiles: list[SegmentProfile]
    metrics: dict[str, float] = field(default_factory=dict)
    explainer: SegmentExplainer | None = None
    trained_at: str | None = None
    population: PopulationQuantiles | None = None
    # What happened to every segment since the previous champion, and the lineages before it
    # (oldest first); both set at registration (``pipelines.lifecycle``).
    lineage: Lineage | None = None
    history: tuple[Lineage, ...] = ()
    # A sample of the training feature rows (the model's columns, then the other registry features
    # the table had): what drift compares with, and what a comparison places both versions on.
    reference: pd.DataFrame | None = None
    # Customers cancelled as of training, reported beside the segments (never a segment), and
    # the per-segment backtest; None for models trained before they existed or without history.
    churned: ChurnedCustomers | None = None
    backtest: list[SegmentBacktest] | None = None
    # The price levels its customers' money was converted to one currency by (None: they paid
    # in one): a vector computed from events for this model is converted by the same.
    currency: CurrencyLevels | None = None
    # The one currency every customer paid in, when they paid in one (``currency`` is then None):
    # what the pages say money is in. None with several, or for older models.
    money_currency: str | None = None
    # The instant its training features were computed as of (RFC 3339, UTC; ``--as-of 2026-06-30``
    # is the end of that day): the date its segments and medians describe. None for older models.
    features_as_of: str | None = None
    # For each customer cancelled as of training whom the backtest could place, the segment
    # (position) it was in when last active, from its features then (``churned`` counts them):
    # what a CRM needs of a cancelled account. Its vector now, with no MRR and no seats, is
    # nearest a segment of customers who never paid, not the one it left (a new user's
    # walkthrough: 139 of 142 cancelled customers "in" the free users' segment). None for models
    # trained before it.
    last_active_segment: dict[str, int] | None = None

    def __post_init__(self) -> None:
        # Explanations index features by position: the explainer must share the model's order.
        if self.explainer is not None and list(self.explainer.feature_names_in_) != list(
            self.feature_names
        ):
            raise ValueError("the explainer was fitted on other feature columns than the model")

    def bound_to(self, version: str) -> SegmentModel:
        """This model as registered version ``version``: the segments new in it, and its lineage,
        say so by number (the files say ``THIS_VERSION``, written before MLflow numbered it)."""
        profiles = [
            replace(p, since=version) if p.since == THIS_VERSION else p for p in self.profiles
        ]
        lineage = bind_version(self.lineage, version) if self.lineage else None
        return replace(self, profiles=profiles, lineage=lineage)

    @property
    def segment_names(self) -> list[str]:
        return [profile.name for profile in self.profiles]

    @property
    def segment_ids(self) -> list[int]:
        """The public id of the segment at each position."""
        return [int(profile.segment_id) for profile in self.profiles]

    def known_segment_ids(self) -> set[int]:
        """Every public id this model's lineage and history name: served, or retired on the
        way. An id outside it was served, if at all, by a version a roll-back went past."""
        lineages = (*self.history, *([self.lineage] if self.lineage else []))
        return set(self.segment_ids) | {t.id for lineage in lineages for t in lineage.transitions}

    def traced_versions(self) -> set[str]:
        """The versions this model's lineage was traced through (its ancestors, and itself):
        every id they served or retired is in ``known_segment_ids``."""
        lineages = (*self.history, *([self.lineage] if self.lineage else []))
        return {str(v) for lineage in lineages for v in (lineage.version, lineage.previous) if v}

    def segment_history(self, segment_id: int) -> list[tuple[Lineage, SegmentTransition]]:
        """Every recorded transition of ``segment_id`` (as parent, child or itself), oldest
        first, with the lineage it belongs to."""
        lineages = [*self.history, *([self.lineage] if self.lineage else [])]
        return [
            (lineage, t)
            for lineage in lineages
            for t in lineage.transitions
            if t.id == segment_id or segment_id in t.parents or segment_id in t.children
        ]

    def _ref(self, position: int) -> SegmentRef:
        profile = self.profiles[position]
        return SegmentRef(id=profile.segment_id, name=profile.name, since=profile.since)

    def values(self, features: pd.DataFrame) -> np.ndarray:
        """The model's feature columns of ``features`` as a float matrix, in model order."""
        return ordered_values(features, self.feature_names)

    def place(self, values: np.ndarray) -> Placement:
        """Segment, confidence, outlier flag, runner-up and margin for each row of ``values``."""
        # Preprocess once: probabilities and outlier flags read the same matrix.
        Z = self.segmenter.transform(values)
        proba, is_outlier, typicality = self.segmenter.placement_and_typicality_from_matrix(Z)
        if self.population is not None:
            # far outside what the model was trained on: unusual, whatever the clipped vector
            # looks like (``PopulationQuantiles.beyond``)
            beyond = self.population.beyond(self.feature_names, values)
            is_outlier = is_outlier | beyond
            if typicality is not None:
                typicality = np.where(beyond, 0.0, typicality)
        rows = np.arange(len(values))
        order = self.segmenter.segment_order_from_matrix(Z, proba)
        best = order[:, 0]
        confidence = proba[rows, best]
        runner = order[:, 1] if proba.shape[1] > 1 else None
        return Placement(
            segment=best,
            confidence=confidence,
            is_outlier=is_outlier,
            runner_up=runner,
            margin=None if runner is None else confidence - proba[rows, runner],
            typicality=typicality,
        )

    def assign(self, features: pd.DataFrame) -> pd.DataFrame:
        """The placement as a table: segment_id, segment_name, is_outlier, confidence, runner-up."""
        placed = self.place(self.values(features))
        names, ids = self.segment_names, np.array(self.segment_ids, dtype=int)
        out = pd.DataFrame(
            {
                "segment_id": ids[placed.segment],
                "segment_name": [names[i] for i in placed.segment],
                "is_outlier": placed.is_outlier,
                "confidence": placed.confidence,
            },
            index=features.index,
        )
        if placed.runner_up is not None:
            out["runner_up_id"] = ids[placed.runner_up]
            out["runner_up_name"] = [names[i] for i in placed.runner_up]
            out["margin"] = placed.margin
        return out

    def assignments(
        self,
        features: pd.DataFrame,
        customer_ids: Sequence[str | None],
        model_ref: ModelRef,
        *,
        explain: bool = True,
        top_k: int = 5,
        view: ExplanationView = "contrast",
    ) -> list[Assignment]:
        """The assignment object of ``docs/contracts/api.md`` for each row of ``features``."""
        return self.assignments_from_values(
            self.values(features), customer_ids, model_ref, explain=explain, top_k=top_k, view=view
        )

    def assignments_from_values(
        self,
        values: np.ndarray,
        customer_ids: Sequence[str | None],
        model_ref: ModelRef,
        *,
        explain: bool = True,
        top_k: int = 5,
        view: ExplanationView = "contrast",
    ) -> list[Assignment]:
        """``assignments`` for a matrix already in ``feature_names`` order (the service's path).

        ``view="contrast"`` explains why each customer is in its segment rather than the
        runner-up (a single-segment model falls back to the segment view); ``"segment"`` explains
        the segment's own log-odds. A cancelled customer is in no segment, so there is no
        runner-up to prefer its nearest one to: it is explained by the per-segment view whatever
        ``view`` asks, as its page in the explorer explains it (a contrast argued why a cancelled
        account was "Dormant" rather than the segment it had been in, to a CRM).
        """
        if len(customer_ids) != len(values):
            raise ValueError(f"{len(customer_ids)} customer ids for {len(values)} feature rows")
        if explain and self.explainer is None:
            raise ValueError("this model was registered without an explainer; retrain it")
        placed = self.place(values)
        explanations: list[Explanation | None] = [None] * len(values)
        if explain:
            explanations = list(self._explanations(values, placed, top_k, view))
            canceled = [row for row in range(len(values)) if self._canceled(values[row])]
            if canceled and view == "contrast":
                fits = self._explanations(values[canceled], placed.rows(canceled), top_k, "segment")
                for row, fit in zip(canceled, fits, strict=True):
                    explanations[row] = fit
        unusual = self._unusual_in(values, placed)
        return [
            self._assignment(
                row,
                customer_ids[row],
                values[row],
                placed,
                explanations[row],
                model_ref,
                unusual.get(row, []),
            )
            for row in range(len(values))
        ]

    def _unusual_in(self, values: np.ndarray, placed: Placement) -> dict[int, list[str]]:
        """Per unusual row, the features that make it so, at most ``UNUSUAL_NAMED``: those more
        than a range outside the training customers' range (``PopulationQuantiles.beyond``'s
        rule), the farthest out first (``ranges_outside``), else
        the largest parts of its distance from its segment's centre
        (``CustomerSegmenter.outlier_terms``; none for a model whose outlier score is no such
        sum). An unusual customer's page said only "unlike the members of every segment", and a
        product manager could not tell why (a review in Chromium)."""
        rows = np.flatnonzero(placed.is_outlier)
        if not len(rows):
            return {}
        outside = (
            self.population.ranges_outside(self.feature_names, values[rows])
            if self.population is not None
            else np.zeros((len(rows), len(self.feature_names)))
        )
        terms = self.segmenter.outlier_terms(values[rows], placed.segment[rows])
        named: dict[int, list[str]] = {}
        for at, row in enumerate(rows):
            # the farthest out first: events sent at 10^12 were named after MRR at 1.35 ranges out
            farthest = np.argsort(-outside[at], kind="stable")
            columns = [int(c) for c in farthest if outside[at, c] > 1]
            if not columns and terms is not None:
                largest = np.argsort(-terms[at], kind="stable")
                columns = [int(c) for c in largest if terms[at, c] > 0]
            named[int(row)] = [self.feature_names[c] for c in columns[:UNUSUAL_NAMED]]
        return named

    def _assignment(
        self,
        row: int,
        customer_id: str | None,
        values: np.ndarray,
        placed: Placement,
        explanation: Explanation | None,
        model_ref: ModelRef,
        unusual_in: Sequence[str] = (),
    ) -> Assignment:
        segment = self._ref(int(placed.segment[row]))
        runner_up = None
        if placed.runner_up is not None and placed.margin is not None:
            other = self._ref(int(placed.runner_up[row]))
            runner_up = RunnerUp(
                **other.model_dump(), margin=float(np.clip(placed.margin[row], 0.0, 1.0))
            )
        is_outlier = bool(placed.is_outlier[row])
        confidence = float(np.clip(placed.confidence[row], 0.0, 1.0))
        typicality = None if placed.typicality is None else float(placed.typicality[row])
        canceled = self._canceled(values)
        last = None
        if canceled and customer_id is not None and self.last_active_segment:
            position = self.last_active_segment.get(customer_id)
            last = None if position is None else self._ref(position)
        return Assignment(
            customer_id=customer_id,
            segment=segment,
            confidence=confidence,
            is_outlier=is_outlier,
            is_canceled=canceled,
            last_active_segment=last,
            typicality=typicality,
            runner_up=runner_up,
            explanation=explanation,
            features=dict(zip(self.feature_names, values.tolist(), strict=True)),
            model=model_ref,
            summary=assignment_summary(
                segment.name,
                confidence,
                is_outlier,
                runner_up.name if runner_up else None,
                canceled=bool(canceled),
                last_active=last.name if last else None,
                tenure_days=self._value_of("tenure_days", values),
                never_paid=self._never_paid(values),
                unusual_in=unusual_in,
                reasons_favour=runner_up.name
                if runner_up
                and explanation
                and explanation.versus is not None
                and explanation.supports_segment is False
                else None,
                reasons_against=explanation is not None
                and explanation.versus is None
                and explanation.supports_segment is False,
            ),
        )

    def _never_paid(self, values: np.ndarray) -> bool:
        """No MRR, no revenue and no day as a paying customer, where the model reads all three
        (a model without one of them cannot tell, and says nothing)."""
        read = [self._value_of(name, values) for name in ("tenure_days", "mrr", "ltv")]
        return all(value is not None and value <= 0 for value in read)

    def _value_of(self, name: str, values: np.ndarray) -> float | None:
        """This row's value of feature ``name``; None when the model does not read it."""
        if name not in self.feature_names:
            return None
        return float(values[self.feature_names.index(name)])

    def _canceled(self, values: np.ndarray) -> bool | None:
        """Whether this row's subscription is cancelled; None when the model does not read it."""
        if CANCELED not in self.feature_names:
            return None
        return bool(values[self.feature_names.index(CANCELED)] == 1)

    def _moves_with(self, name: str, position: dict[str, int]) -> list[str]:
        """The model's features that rank its training customers as ``name`` does."""
        if self.population is None:
            return []
        return [other for other in self.population.alike.get(name, ()) if other in position]

    def _contrast(
        self, values: np.ndarray, segments: np.ndarray, rivals: np.ndarray
    ) -> tuple[Attribution, np.ndarray]:
        """Why each row's segment rather than its runner-up, and how that was computed.

        The surrogate's TreeSHAP contrast, where it prefers the assigned segment; it learned the
        segmentation from the training customers and can prefer the runner-up for a customer
        unlike them (a lead with one event, a customer scored as of a past date: all five
        reasons "pointed to the runner-up" beside a segment given with 99% confidence). There a
        model whose segments are nearest centres explains its own decision instead: its log-odds
        of the segment over the runner-up split exactly by feature
        (``CustomerSegmenter.contrast_terms``; ``method`` "exact_contrast"). A model with no such
        split keeps the surrogate's, and ``supports_segment`` says it argues for the runner-up.
        Not used for every row: on the training customers the surrogate's reasons name what
        defines a planted persona more often (``docs/explanations.md``)."""
        assert self.explainer is not None
        surrogate = self.explainer.explain_contrast(values, segments, rivals)
        disagree = surrogate.outputs <= 0
        exact = None
        if disagree.any():
            exact = self.segmenter.contrast_terms(
                values[disagree], segments[disagree], rivals[disagree]
            )
        return _contrast_of_decision(surrogate, exact, disagree)

    def _explanations(
        self, values: np.ndarray, placed: Placement, top_k: int, view: ExplanationView
    ) -> list[Explanation]:
        assert self.explainer is not None
        segments, rivals = placed.segment, placed.runner_up
        # The explainer was fitted on the model's feature columns in this same order.
        contrast = view == "contrast" and rivals is not None
        if contrast:
            attribution, methods = self._contrast(values, segments, rivals)  # type: ignore[arg-type]
        else:
            attribution = self.explainer.explain(values, segments)
            methods = np.full(len(values), "tree_shap_surrogate", dtype=object)
        names = self.feature_names
        position = {name: i for i, name in enumerate(names)}
        # Product events in the last 30 days, where the model has them: a share or trend of a
        # customer with none reads as "no activity" (``FeatureDefinition.idle``).
        activity = (
            [float(v) for v in values[:, position["events_30d"]]]
            if "events_30d" in position
            else None
        )
        currency = reporting_currency(self)
        # Largest |contribution| first; a stable sort keeps ties in registry order.
        ranked = np.argsort(-np.abs(attribution.contributions), axis=1, kind="stable")[:, :top_k]
        out = []
        for row, segment in enumerate(segments):
            ranges = self.profiles[int(segment)].typical_ranges
            canceled = bool(self._canceled(values[row]))
            # The contrast's other side: its ranges show which of the two the value is nearer.
            rival_ranges = None
            if contrast:
                rival_ranges = self.profiles[int(rivals[row])].typical_ranges  # type: ignore[index]
            contributions = []
            for column in ranked[row]:
                name, value = names[column], float(values[row, column])
                typical = _typical_range(ranges, name, value)
                # Unknown rather than invented: never the customer's own value as the runner-up's.
                versus_typical = None if rival_ranges is None else _known_range(rival_ranges, name)
                share = float(attribution.contributions[row, column])
                standing = self.population.standing(name, value) if self.population else None
                alike = self._moves_with(name, position)
                contributions.append(
                    Contribution(
                        feature=name,
                        value=value,
                        contribution=share,
                        typical_range=list(typical),
                        versus_typical_range=None
                        if versus_typical is None
                        else list(versus_typical),
                        text=contribution_text(
                            name,
                            value,
                            typical,
                            [(n, float(values[row, position[n]])) for n in alike],
                            versus_typical,
                            events_30d=activity[row] if activity is not None else None,
                            currency=currency,
                            canceled=canceled,
                            against=None
                            if share >= 0
                            else AGAINST_CONTRAST
                            if contrast
                            else AGAINST_SEGMENT,
                        ),
                        direction="towards" if share >= 0 else "away",
                        description=describe(name),
                        percentile=percentile_of(name, standing),
                        standing=None if standing is None else standing_text(name, standing),
                        moves_with=alike,
                    )
                )
            versus = None
            if contrast:
                versus = self._ref(int(rivals[row]))  # type: ignore[index]
            out.append(
                Explanation(
                    base_value=float(attribution.base_values[row]),
                    output_value=float(attribution.outputs[row]),
                    contributions=contributions,
                    method=methods[row],
                    versus=versus,
                    # the segmentation's own contrast supports its decision by construction
                    # (at a tie of two segments its output is 0, to rounding); per segment,
                    # whether the surrogate gives the segment better than even odds (a cancelled
                    # customer 99.997% "in" its nearest segment read -7.2, every reason against,
                    # with nothing said: a CRM's review)
                    supports_segment=bool(
                        attribution.outputs[row] > 0 or methods[row] == "exact_contrast"
                    ),
                )
            )
        return out


def _contrast_of_decision(
    surrogate: Attribution, exact: np.ndarray | None, disagree: np.ndarray
) -> tuple[Attribution, np.ndarray]:
    """The surrogate's contrast, with the segmenter's own exact terms (``exact``, for the rows of
    ``disagree``) in place of the surrogate's where the surrogate prefers the runner-up; and each
    row's method."""
    methods = np.full(len(disagree), "tree_shap_contrast", dtype=object)
    if exact is None or not disagree.any():
        return surrogate, methods
    contributions = surrogate.contributions.copy()
    base_values, outputs = surrogate.base_values.copy(), surrogate.outputs.copy()
    contributions[disagree] = exact
    base_values[disagree] = 0.0  # the terms are measured from the two centres' midpoint
    outputs[disagree] = exact.sum(axis=1)
    methods[disagree] = "exact_contrast"
    decided = replace(
        surrogate, contributions=contributions, base_values=base_values, outputs=outputs
    )
    return decided, methods


def _typical_range(ranges: dict[str, list[float]], name: str, value: float) -> tuple[float, float]:
    low, high = ranges.get(name, (value, value))
    return (float(low), float(high))


def _known_range(ranges: dict[str, list[float]], name: str) -> tuple[float, float] | None:
    """A segment's typical range of ``name`` when its profile has a finite one; None for a model
    profiled without the feature or a segment left with no member (its quartiles are NaN)."""
    found = ranges.get(name)
    if found is None or not all(math.isfinite(v) for v in found):
        return None
    return (float(found[0]), float(found[1]))
