"""The model being served: loaded whole, checked, swapped atomically when the alias moves.

``LoadedModel`` is immutable and carries everything a response needs (segmenter, explainer,
profiles, version), so a request that took one at its start can never mix two versions.
``ModelLoader.refresh`` asks the registry where the alias points; a new version is downloaded,
verified by sha256, loaded and smoke-tested off the request path, and only then swapped in. A
version that fails any step is refused, logged and counted, and the current one keeps serving. A
verified local copy of the last good version lets the service start with the registry down.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from models.assignment import ModelRef
from models.bundle import SegmentModel
from models.registry import ModelIntegrityError, load_model, without_credentials
from service.cache import LocalModelCache
from service.catalog import describe_model, segment_catalog
from service.metrics import ServiceMetrics
from service.registry import ModelSource, RegistryUnavailableError
from service.schemas.catalog import ModelPublic, SegmentPublic

logger = logging.getLogger("service.model")

Origin = Literal["registry", "cache"]


class ModelRefusedError(Exception):
    """A model version that must not be served; ``reason`` is the metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class LoadedModel:
    model: SegmentModel
    ref: ModelRef
    feature_names: tuple[str, ...]
    segments: tuple[SegmentPublic, ...]
    description: ModelPublic
    # ids this model does not know that another version served as champion, with that version
    # (``ModelSource.served_by_others``): after a roll-back, what a CRM holding one is told
    served_by_others: Mapping[int, str] = field(default_factory=dict)
    served_by_read: bool = False  # False: not read yet (registry unreachable, a cached load)

    @property
    def version(self) -> str:
        return self.ref.version


class ModelHolder:
    """The one reference to the model in service; replacing it is a single assignment, after
    which ``after_swap`` runs (``service.app.app_from_environment`` gives the garbage
    collector's; an app in a test gives none)."""

    def __init__(self, after_swap: Callable[[], None] | None = None) -> None:
        self._current: LoadedModel | None = None
        self._after_swap = after_swap

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def swap(self, loaded: LoadedModel) -> LoadedModel | None:
        previous, self._current = self._current, loaded
        if self._after_swap is not None:
            self._after_swap()
        return previous


def smoke_test(model: SegmentModel, ref: ModelRef) -> None:
    """Assign and explain each segment's median customer; refuse a model that cannot."""
    if model.explainer is None:
        raise ModelRefusedError("no_explainer", f"version {ref.version} has no explainer")
    values = np.array(
        [[p.medians.get(name, 0.0) for name in model.feature_names] for p in model.profiles],
        dtype=float,
    )
    assignments = model.assignments_from_values(
        values, [None] * len(values), ref, explain=True, top_k=len(model.feature_names)
    )
    confidences = np.array([a.confidence for a in assignments])
    if len(assignments) != len(values) or not np.isfinite(confidences).all():
        raise ModelRefusedError("smoke_test", f"version {ref.version} gives unusable assignments")


def prepare(model: SegmentModel, ref: ModelRef, alias: str, origin: Origin) -> LoadedModel:
    if model.explainer is not None:  # without one, the smoke test refuses the model
        model.explainer.warm_up()
    smoke_test(model, ref)
    loaded_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return LoadedModel(
        model=model,
        ref=ref,
        feature_names=tuple(model.feature_names),
        segments=segment_catalog(model),
        description=describe_model(model, ref, alias, loaded_at, origin),
    )


class ModelLoader:
    """Keeps ``holder`` on the version the alias names, refusing any version that is not sound."""

    def __init__(
        self,
        source: ModelSource,
        cache: LocalModelCache,
        holder: ModelHolder,
        metrics: ServiceMetrics,
        alias: str,
    ) -> None:
        self.source, self.cache, self.holder = source, cache, holder
        self.metrics, self.alias = metrics, alias
        self.refused: dict[str, str] = {}  # version -> why; never tried again by this process
        self.last_error: str | None = None

    def refresh(self) -> bool:
        """One poll: swap when the alias names a new, sound version. True when swapped."""
        try:
            version = self.source.alias_version()
        except RegistryUnavailableError as error:
            self._failed("registry_unreachable", str(error))
            return self.holder.current is None and self._load_from_cache(ask_registry=False)
        if version is None:
            message = (
                f"the registry has no {self.alias!r} model yet (`segments promote VERSION` "
                f"gives a registered version the alias; `segments train` registers one)"
            )
            if self.last_error != message and self.holder.current is None:
                # said once, not every poll: a service started before any model was promoted
                # logged nothing, and its 503 said "retry shortly", which never helps
                logger.warning("no model to serve: %s", message)
            self.last_error = message
            return self.holder.current is None and self._load_from_cache(ask_registry=True)
        current = self.holder.current
        if current is not None and current.version == version:
            if not current.served_by_read:  # the registry answers again: read them now
                self._read_served_by(current)
            return False
        if version in self.refused:
            return False
        return self._load_from_registry(version) or (
            current is None and self._load_from_cache(ask_registry=True)
        )

    def _load_from_registry(self, version: str) -> bool:
        try:
            with tempfile.TemporaryDirectory(prefix="segments-model-") as tmp:
                fetched = self.source.fetch(version, Path(tmp))
                loaded = self._load(fetched.folder, fetched.hashes, version, "registry")
                self._install(self._with_served_by(loaded))
                self._store_in_cache(version, fetched.folder, fetched.hashes)
            return True
        except ModelRefusedError as error:  # a file failing its sha256 is refused as "integrity"
            self.refused[version] = str(error)
            self._failed(error.reason, f"version {version} refused: {error}")
        except RegistryUnavailableError as error:
            self._failed("registry_unreachable", str(error))
        except Exception as error:  # a download cut short: try again at the next poll
            self._failed("download_error", f"version {version}: {type(error).__name__}: {error}")
        return False

    def _with_served_by(self, loaded: LoadedModel) -> LoadedModel:
        """``loaded`` with the ids other versions served; best effort: a registry that cannot
        say leaves the 404s as they were (and the next poll asks again), never the model
        unserved."""
        try:
            served = self.source.served_by_others(loaded.version, loaded.model)
        except Exception as error:
            logger.warning("ids served by other versions not read: %s", error)
            return loaded
        return replace(loaded, served_by_others=served, served_by_read=True)

    def _read_served_by(self, current: LoadedModel) -> None:
        updated = self._with_served_by(current)
        if updated.served_by_read:
            self.holder.swap(updated)  # the same model; only what its 404s say changes

    def _load(
        self, folder: Path, hashes: dict[str, str], version: str, origin: Origin
    ) -> LoadedModel:
        try:
            model = load_model(folder, hashes, version)
        except ModelIntegrityError as error:
            raise ModelRefusedError("integrity", str(error)) from None
        except Exception as error:
            raise ModelRefusedError("load_error", f"{type(error).__name__}: {error}") from None
        try:
            ref = ModelRef(name=self.source.model_name, version=version)
            return prepare(model, ref, self.alias, origin)
        except ModelRefusedError:
            raise
        except Exception as error:
            raise ModelRefusedError("smoke_test", f"{type(error).__name__}: {error}") from None

    def _load_from_cache(self, ask_registry: bool) -> bool:
        """The local copy, checked against the registry's sha256 when it can be asked (and
        against the copy's signed record when it cannot)."""
        try:
            cached = self.cache.last_good(self._registry_hashes if ask_registry else None)
            if cached is None:
                return False
            loaded = self._load(cached.folder, cached.hashes, cached.version, "cache")
        except (ModelRefusedError, ModelIntegrityError) as error:
            self._failed("cache", f"local copy refused: {error}")
            return False
        self._install(loaded)
        logger.warning("serving version %s from the local cache", cached.version)
        return True

    def _registry_hashes(self, version: str) -> dict[str, str] | None:
        try:
            return self.source.recorded_hashes(version) or None
        except Exception:  # the registry cannot vouch for it now: the signed record decides
            return None

    def _store_in_cache(self, version: str, folder: Path, hashes: dict[str, str]) -> None:
        try:
            self.cache.store(version, folder, hashes)
        except (OSError, ValueError, ModelIntegrityError) as error:
            logger.warning("could not keep a local copy of version %s: %s", version, error)

    def _install(self, loaded: LoadedModel) -> None:
        previous = self.holder.swap(loaded)
        self.last_error = None
        self.metrics.reloads.inc()
        if previous is not None:
            info = previous.description
            self.metrics.model_info.labels(info.name, info.version, info.source).set(0)
        info = loaded.description
        self.metrics.model_info.labels(info.name, info.version, info.source).set(1)
        if loaded.version.isdigit():
            self.metrics.model_version.set(int(loaded.version))
        logger.info(
            "serving %s version %s (from %s)%s",
            info.name,
            info.version,
            info.source,
            f", replacing version {previous.version}" if previous else "",
        )

    def _failed(self, reason: str, message: str) -> None:
        message = without_credentials(message)  # any error's text may quote the registry's address
        repeated = message == self.last_error
        self.last_error = message
        self.metrics.reload_failures.labels(reason).inc()
        current = self.holder.current
        if current is not None:
            # Still serving: a warning, once per new message (every worker logged an ERROR at
            # every poll while it served its local copy and was ready: an operator's review).
            if not repeated:
                logger.warning(
                    "still serving version %s; the registry check failed (%s): %s",
                    current.version,
                    reason,
                    message,
                )
            return
        (logger.info if repeated else logger.error)("model not loaded (%s): %s", reason, message)


async def poll(loader: ModelLoader, interval: float) -> None:
    """Load now, then follow the alias every ``interval`` seconds until cancelled."""
    while True:
        try:
            await asyncio.to_thread(loader.refresh)
        except Exception:  # the poller must outlive any surprise; the error is logged
            logger.exception("model refresh failed")
        await asyncio.sleep(interval)
