"""Drift as Prometheus gauges: the online store's vectors and the scored traffic against the served
model's training reference, the same figures as ``segments drift`` (``models.model_drift``).

``TrafficReservoir`` keeps the most recently scored customers' vectors (bounded: memory stays
flat under any load); ``DriftMonitor.refresh`` runs in a worker thread on the schedule the lifespan
sets (``drift_interval_seconds``), never on the event loop, and sets the gauges with label
``source`` = ``online_store`` or ``traffic``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import pandas as pd
from prometheus_client import CollectorRegistry, Gauge

from models.drift import LEVEL_ORDER, DriftReport
from models.model_drift import model_drift
from service.lifecycle import ModelHolder
from service.online import OnlineVectors

logger = logging.getLogger("service.drift")

# Fewer rows than this say nothing about a distribution: the gauges keep their last value.
MIN_ROWS = 50
LEVELS = {level: urgency for urgency, level in enumerate(LEVEL_ORDER)}


class TrafficReservoir:
    """The last ``size`` customers scored, each by the vector it was last scored with (any
    thread may add; ``frame`` copies under a lock). A customer scored a thousand times counts
    once: traffic drift describes the customers a CRM asks about, not how often it asks (81
    customers scored 1,000 times read as 1,000 vectors, an ML engineer's walkthrough). Vectors
    sent without a customer id each count on their own."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._rows: OrderedDict[object, dict[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, version: str, scored: Iterable[tuple[str | None, dict[str, float]]]) -> None:
        """``scored``: (customer id or None, vector) pairs."""
        with self._lock:
            for customer, vector in scored:
                key: object = customer if customer is not None else object()
                self._rows.pop(key, None)  # the latest vector, at the newest end
                self._rows[key] = vector
                while len(self._rows) > self.size:
                    self._rows.popitem(last=False)

    def frame(self, names: Sequence[str]) -> pd.DataFrame:
        """The kept vectors that hold every one of ``names``."""
        with self._lock:
            rows = list(self._rows.values())
        usable = [row for row in rows if all(name in row for name in names)]
        return pd.DataFrame(usable, columns=list(names))

    def __len__(self) -> int:
        return len(self._rows)


class DriftGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, text: str, labels: list[str]) -> Gauge:
            return Gauge(name, text, labels, registry=registry, multiprocess_mode="liveall")

        self.psi = gauge(
            "segments_drift_feature_psi",
            "PSI of a feature against training.",
            ["source", "feature"],
        )
        self.wasserstein = gauge(
            "segments_drift_feature_wasserstein",
            "Wasserstein distance of a feature against training, in training IQRs.",
            ["source", "feature"],
        )
        self.segment_psi = gauge(
            "segments_drift_segment_share_psi", "PSI of the segment shares.", ["source"]
        )
        self.share = gauge(
            "segments_drift_segment_share", "Share of customers per segment.", ["source", "segment"]
        )
        self.outliers = gauge("segments_drift_outlier_share", "Share of outliers.", ["source"])
        self.low_margin = gauge(
            "segments_drift_low_margin_share", "Share of low-margin assignments.", ["source"]
        )
        self.level = gauge("segments_drift_level", "0 ok, 1 warn, 2 act.", ["source"])
        self.rows = gauge("segments_drift_rows", "Vectors compared with training.", ["source"])
        # when each source was last measured, and how many vectors a source not measured yet
        # holds: a traffic source below MIN_ROWS exported nothing at all, unexplained
        self.measured_at = gauge(
            "segments_drift_measured_timestamp_seconds",
            "When the source was last measured (Unix time).",
            ["source"],
        )
        self.waiting = gauge(
            "segments_drift_waiting_rows",
            f"Vectors a source holds while it has fewer than {MIN_ROWS} to measure (0 once "
            "measured).",
            ["source"],
        )
        # per source, the features and segment ids whose labels are exported now
        self._shown: dict[str, tuple[set[str], set[str]]] = {}

    def record(self, source: str, report: DriftReport) -> None:
        # Labels of the model measured before and not of this one (its segments, its features)
        # are removed: after a swap the retired segments' shares stayed exported, and the
        # online store's shares added up to about 2 (an ML engineer's walkthrough).
        features = {feature.feature for feature in report.features}
        segments = {str(segment.segment_id) for segment in report.segments}
        shown_features, shown_segments = self._shown.get(source, (set(), set()))
        for gone in shown_features - features:
            self.psi.remove(source, gone)
            self.wasserstein.remove(source, gone)
        for gone in shown_segments - segments:
            self.share.remove(source, gone)
        self._shown[source] = (features, segments)
        for feature in report.features:
            self.psi.labels(source, feature.feature).set(feature.psi)
            self.wasserstein.labels(source, feature.feature).set(feature.wasserstein)
        for segment in report.segments:
            self.share.labels(source, str(segment.segment_id)).set(segment.current_share)
        self.segment_psi.labels(source).set(report.segment_psi)
        self.outliers.labels(source).set(report.outlier_share)
        self.low_margin.labels(source).set(report.low_margin_share)
        self.level.labels(source).set(LEVELS[report.level])
        self.rows.labels(source).set(report.current_customers)
        self.measured_at.labels(source).set(time.time())
        self.waiting.labels(source).set(0)


class DriftMonitor:
    def __init__(
        self,
        holder: ModelHolder,
        online: OnlineVectors,
        traffic: TrafficReservoir,
        registry: CollectorRegistry,
        sample: int,
    ) -> None:
        self.holder, self.online, self.traffic, self.sample = holder, online, traffic, sample
        self.gauges = DriftGauges(registry)
        self.last: dict[str, DriftReport] = {}

    def refresh(self) -> dict[str, DriftReport]:
        """Measure both sources against the served model; return (and keep) what was measured."""
        loaded = self.holder.current
        if loaded is None or loaded.model.reference is None:
            return {}
        model = loaded.model
        stored = self.online.sample(self.sample)
        sources = {"online_store": stored, "traffic": self.traffic.frame(model.feature_names)}
        for source, frame in sources.items():
            if frame is None or len(frame) < MIN_ROWS:
                if source not in self.last:
                    self.gauges.waiting.labels(source).set(0 if frame is None else len(frame))
                continue
            if any(name not in frame.columns for name in model.feature_names):
                continue  # vectors of another feature set (a store not recomputed yet)
            report = model_drift(model, model.values(frame))
            self.gauges.record(source, report)
            self.last[source] = report
        return dict(self.last)


async def watch_drift(monitor: DriftMonitor, interval: float) -> None:
    """Refresh the drift gauges every ``interval`` seconds, off the event loop, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(monitor.refresh)
        except Exception:  # the watcher must outlive any surprise; the error is logged
            logger.exception("drift refresh failed")
