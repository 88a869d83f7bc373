"""``segments drift``: the champion's training reference against the customers as they are now.

Current vectors come from the latest offline snapshot (``segments features`` / ``retrain`` write
one per as-of) or from the online store (what the service reads). The reference is the sample of
training rows stored inside the model files at registration, so drift can be measured on a fresh
machine that has only the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import pandas as pd

from feature_store.coverage import last_event_before
from feature_store.errors import SegmentsError
from feature_store.layout import StoreLayout
from feature_store.online_store import SqliteOnlineStore
from feature_store.timeutil import naive_utc, now_utc, parse_instant, rfc3339
from models.drift import DriftReport
from models.gates import MAX_DATA_LAG_DAYS
from models.model_drift import NoReferenceError, model_drift
from models.registry import CHAMPION, ModelRegistry
from pipelines.feature_pipeline import SNAPSHOT_STAMP

Source = Literal["snapshot", "online"]
# Rows compared at most: PSI over deciles and the Wasserstein distance settle long before this.
MAX_CURRENT_ROWS = 50_000


@dataclass(frozen=True)
class CurrentVectors:
    frame: pd.DataFrame
    source: str  # the snapshot's path, or "online store"
    as_of: str


def latest_snapshot(layout: StoreLayout) -> Path | None:
    found = sorted(layout.snapshots_dir.glob("as_of=*/features.parquet"))
    return found[-1] if found else None


def current_vectors(layout: StoreLayout, source: Source) -> CurrentVectors:
    if source == "online":
        store = SqliteOnlineStore(layout.online_store_path)
        if not layout.online_store_path.is_file() or store.count() == 0:
            raise SegmentsError("the online store is empty; run `segments features --as-of T`")
        frame = store.frame(MAX_CURRENT_ROWS)
        # Each vector has its own as-of (a refresh after `POST /v1/events` moves only its
        # customers'). The newest said "as of now" for a store whose 2,689 other vectors were
        # two months old, and their staleness went unsaid (an ML engineer's review,
        # 2026-12-08): the median is what most vectors are, and the spread is said beside it.
        # ISO 8601 text, with microseconds where the instant has them (`segments features` for
        # today stamps now) and without (a refresh stamps a whole second): one format guessed
        # from the first stamp refused the others
        stamps = pd.to_datetime(frame["as_of"], format="ISO8601")
        median = stamps.sort_values().iloc[(len(stamps) - 1) // 2].to_pydatetime()
        oldest, newest = stamps.min().to_pydatetime(), stamps.max().to_pydatetime()
        source = (
            "online store"
            if oldest == newest
            else f"online store (its vectors as of {rfc3339(oldest)} to {rfc3339(newest)}; "
            "the median said)"
        )
        return CurrentVectors(frame, source, rfc3339(median))
    path = latest_snapshot(layout)
    if path is None:
        raise SegmentsError(
            f"no feature snapshot under {layout.snapshots_dir}; run `segments features --as-of T`"
        )
    frame = pd.read_parquet(path)
    if len(frame) > MAX_CURRENT_ROWS:
        frame = frame.sample(MAX_CURRENT_ROWS, random_state=0)
    # the folder's name is a path-safe stamp (as_of=2026-07-01T000000), said as every stamp is;
    # a folder named otherwise (by hand) is said as it is named
    named = path.parent.name.removeprefix("as_of=")
    try:
        as_of = rfc3339(datetime.strptime(named, SNAPSHOT_STAMP))
    except ValueError:
        as_of = named
    return CurrentVectors(frame, str(path), as_of)


@dataclass(frozen=True)
class DriftCheck:
    version: str
    current: CurrentVectors
    report: DriftReport
    trained_as_of: str | None = None  # the model's features' as-of (None: not recorded)
    trained_at: str | None = None  # when the model was trained (None: not recorded)
    # days of stored events after the current vectors' as-of (up to now; None: not measured):
    # 67 days of new events and drift compared the training snapshot with itself, "overall ok"
    # (an ML engineer's review)
    events_after_days: float | None = None

    @property
    def title(self) -> str:
        """What was compared, for the drift picture's title."""
        trained = f"training as of {self.trained_as_of}" if self.trained_as_of else "training"
        return (
            f"Drift of model version {self.version}: {trained} against the {self.current.source} "
            f"vectors as of {self.current.as_of}"
        )

    @property
    def vectors_stale(self) -> bool:
        """The stored events run past the vectors by more than a training's data-lag gate allows
        (``MAX_DATA_LAG_DAYS``): the check reads data older than the business now is."""
        return self.events_after_days is not None and self.events_after_days > MAX_DATA_LAG_DAYS

    @property
    def current_before_training(self) -> bool:
        """The "current" vectors are older than the model's training data: the check compares
        the past with the model, not what it serves (an ML engineer's review: drift as of
        2025-12-31 against a model of 2026-04-01 printed its levels without a word). A model
        trained as of today has the end of today as its as-of, and vectors built since are
        served as of the moment they were built (``materialize``): they are not older than the
        data it was trained on, which ended when it was trained."""
        try:
            current = parse_instant(self.current.as_of)
            bounds = [parse_instant(t) for t in (self.trained_as_of, self.trained_at) if t]
        except ValueError:  # a snapshot folder named by hand
            return False
        return bool(self.trained_as_of) and bool(bounds) and current < min(bounds)

    def as_dict(self) -> dict[str, object]:
        return {
            "model_version": self.version,
            "current_source": self.current.source,
            "current_as_of": self.current.as_of,
            "trained_as_of": self.trained_as_of,
            "current_before_training": self.current_before_training,
            "events_after_days": self.events_after_days,
            "vectors_stale": self.vectors_stale,
            **self.report.as_dict(),
        }


def check_drift(
    registry: ModelRegistry, layout: StoreLayout, source: Source, version: str | None = None
) -> DriftCheck:
    """Drift of the current vectors against the champion's (or ``version``'s) training sample."""
    resolved = registry.resolve_version(version, CHAMPION)
    model = registry.load_version(resolved)
    current = current_vectors(layout, source)
    missing = [name for name in model.feature_names if name not in current.frame.columns]
    if missing:
        raise SegmentsError(
            f"the current vectors ({current.source}) lack {', '.join(missing)}; recompute them"
        )
    try:
        report = model_drift(model, model.values(current.frame))
    except NoReferenceError:
        raise SegmentsError(
            f"version {resolved} was registered without its training sample; retrain it"
        ) from None
    return DriftCheck(
        resolved,
        current,
        report,
        getattr(model, "features_as_of", None),
        getattr(model, "trained_at", None),
        _events_after(layout, current.as_of),
    )


def _events_after(layout: StoreLayout, as_of: str) -> float | None:
    """Days from the vectors' as-of to the last event stored up to now (0: none after it)."""
    try:
        vectors = parse_instant(as_of)
    except ValueError:  # a snapshot folder named by hand
        return None
    last = last_event_before(layout, now_utc())
    if last is None:
        return 0.0
    return round(max((last - naive_utc(vectors)).total_seconds() / 86_400, 0.0), 3)
