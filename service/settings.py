"""Service settings, read from ``SEGMENTS_*`` environment variables when the app is built.

Nothing here is created at import time: ``Settings()`` is called by the ``segments serve`` command
(or a test) and handed to ``create_app(settings)``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from feature_store.engine import memory_limit_bytes
from feature_store.layout import DEFAULT_HOME, StoreLayout
from service.ingest_process import MAX_PENDING_EVENTS


class Scope(StrEnum):
    """What an API key may do (``docs/contracts/api.md``)."""

    score = "score"
    read = "read"
    admin = "admin"
    ingest = "ingest"  # POST /v1/events (issue 12)
    discover = "discover"  # /v1/discoveries (issue 11)


def _each_key_once(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object whose keys are distinct: of a key given twice, the later silently replaced
    the earlier's scopes (an operator's review)."""
    seen: set[str] = set()
    for place, (key, _) in enumerate(pairs, start=1):
        if key in seen:
            raise ValueError(f"key {place} repeats an earlier key: one would replace the other")
        seen.add(key)
    return dict(pairs)


class Settings(BaseSettings):
    """Everything the service needs to know; every field has an environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="SEGMENTS_", extra="ignore", frozen=True, protected_namespaces=()
    )

    home: Path = Field(
        default=Path(DEFAULT_HOME),
        description="Data home: online store, embedded MLflow store, local model cache.",
    )
    # Parsed here (``_keys_as_json``), not by pydantic-settings: its "Input should be a valid
    # dictionary" for a truncated JSON object did not say the value was not JSON.
    api_keys: Annotated[dict[str, list[Scope]] | None, NoDecode] = Field(
        default=None,
        description='JSON object mapping each key to its scopes, e.g. {"crm-1": ["score"]}. '
        "Unset: the keys of HOME/api_keys.json when that file exists, else none.",
    )
    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SEGMENTS_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        description="MLflow tracking and registry server; unset: the embedded SQLite store.",
    )
    model_name: str = Field(
        default="customer-segments",
        min_length=1,
        description="Registered model the service follows (the name training registers).",
    )
    model_alias: str = Field(
        default="champion", min_length=1, description="Registry alias the service follows."
    )
    poll_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often the registry alias is checked."
    )
    registry_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one HTTP call to an MLflow server."
    )
    drift_interval_seconds: float = Field(
        default=300.0, gt=0, description="How often the drift gauges are recomputed."
    )
    drift_sample: int = Field(
        default=5000, ge=100, le=200_000, description="Online-store vectors drift compares."
    )
    traffic_reservoir_size: int = Field(
        default=5000, ge=100, le=200_000, description="Recently scored vectors kept for drift."
    )
    max_batch_items: int = Field(default=1000, ge=1, le=100_000)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_events: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Events per request, both streams and every batch item together.",
    )
    max_batch_as_of: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Distinct `as_of` values among the events items of one batch.",
    )
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Request line and headers together."
    )
    # --- HTTP ingestion (issue 12): docs/ingestion.md "HTTP ingestion" ---------------------------
    stripe_webhook_secrets: str | None = Field(
        default=None,
        description="Stripe endpoint signing secrets (whsec_...), comma-separated for rotation; "
        "unset: POST /v1/webhooks/stripe answers 503.",
    )
    max_ingest_events: int = Field(
        default=5000, ge=1, le=100_000, description="Events per POST /v1/events request."
    )
    idempotency_ttl_seconds: float = Field(
        default=24 * 3600, gt=0, description="How long an Idempotency-Key and its answer are kept."
    )
    idempotency_stale_seconds: float = Field(
        default=15.0,
        gt=0,
        description="An Idempotency-Key in progress and not renewed for this long is taken to "
        "belong to a process that died, and the request may run again (a running request renews "
        "its key every third of this).",
    )
    refresh_interval_seconds: float = Field(
        default=1.0, ge=0, description="Pause between two online refreshes (coalesces customers)."
    )
    refresh_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        le=120,
        description="How long `POST /v1/events?wait_for_refresh=true` waits at most for its "
        "customers' online refresh before answering `refreshed: false`.",
    )
    refresh_max_pending: int = Field(
        default=50_000, ge=1, description="Customers waiting for an online refresh, at most."
    )
    ingest_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="How long an ingestion request waits for the ingestion process's answer "
        "before 503 ingestion_unavailable; a process that said nothing at all meanwhile, not "
        "even its 2-second heartbeat, is ended (the next request starts another).",
    )
    ingest_max_pending_events: int = Field(
        default=MAX_PENDING_EVENTS,
        ge=1,
        description="Events handed to the ingestion process and not yet stored, at most; a "
        "request beyond them is answered 503 ingestion_busy at once (one request alone always "
        "goes through).",
    )
    ingest_max_bytes_in_flight: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Bytes of POST /v1/events bodies one worker holds at once, counted as they "
        "are received and given back once answered; a request that finds them full, or whose body "
        "would pass them, is answered 503 ingestion_busy (one request alone always goes "
        "through).",
    )
    webhook_max_bytes_in_flight: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="The same bound for Stripe webhook bodies, apart: the webhook reads a body "
        "before it can check its signature, so anyone can fill this one; keyed senders of "
        "POST /v1/events keep theirs. Stripe sends a refused delivery again for three days.",
    )
    memory_limit: str | None = Field(
        default=None,
        description="What the ingestion's DuckDB holds before it spills to the data home, e.g. "
        "2GB or 512MiB; unset: half the machine's memory, at most 4 GiB.",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys_as_json(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            parsed = json.loads(value, object_pairs_hook=_each_key_once)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"not JSON ({error.msg} at character {error.pos}); give an object mapping each "
                'key to its scopes, e.g. {"crm-1": ["score"]}'
            ) from None
        if parsed is None:
            # set, yet read as unset: the service took the keys of HOME/api_keys.json, which the
            # operator who wrote null had meant to replace (noted in a review, 2026-12-07)
            raise ValueError(
                "null is no set of keys; give an object mapping each key to its scopes, e.g. "
                '{"crm-1": ["score"]}, or leave the variable unset to use HOME/api_keys.json'
            )
        return parsed

    @field_validator("api_keys")
    @classmethod
    def _usable_keys(cls, value: dict[str, list[Scope]] | None) -> dict[str, list[Scope]] | None:
        # Keys are secrets: an error names a key by its place, never by its text. A key with no
        # scopes stays valid: it is known and allowed nothing (a 403 on every route, not a 401),
        # as a key being withdrawn is.
        for place, key in enumerate(value or {}, start=1):
            if not key.strip():
                raise ValueError(f"key {place} is empty: no client can send it")
            # a header's value is visible ASCII, and spaces around it are not part of it (RFC
            # 9110): " k " or "ключ" started a service every request to which was a 401
            if key != key.strip() or not (key.isascii() and key.isprintable()):
                raise ValueError(
                    f"key {place} has spaces around it, or characters other than visible ASCII: "
                    "no X-API-Key header can carry it"
                )
        return value

    @field_validator("memory_limit")
    @classmethod
    def _a_size(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            memory_limit_bytes(value)  # ValueError with the reason, named by pydantic
            return value.strip()
        return None

    @property
    def idempotency_path(self) -> Path:
        return self.resolved_home / "service" / "idempotency.sqlite"

    @property
    def cursor_key_path(self) -> Path:
        """The key that signs member listing cursors, shared by the workers (``service.members``)."""
        return self.resolved_home / "service" / "cursor.key"

    @property
    def ui_sessions_path(self) -> Path:
        """Browser sessions of the pages at /ui, shared by the workers (``service.ui.sessions``)."""
        return self.resolved_home / "service" / "ui_sessions.sqlite"

    # --- end HTTP ingestion -------------------------------------------------------------------------

    ingest_process_at_start: bool = Field(
        default=False,
        description="Start the ingestion process with the service, not on the first ingestion "
        "(`segments serve` sets it): the first request does not wait a second for its start.",
    )
    discovery_max_queued: int = Field(
        default=10,
        ge=1,
        description="Discoveries that may wait behind the running one; beyond, 429.",
    )
    discovery_quick: bool = Field(
        default=False,
        description="Tests only: discovery jobs try a few small candidates (`discover --quick`).",
    )

    @property
    def resolved_home(self) -> Path:
        return self.home.resolve()

    @property
    def layout(self) -> StoreLayout:
        """The data home's layout, the same one the CLI writes."""
        limit = memory_limit_bytes(self.memory_limit) if self.memory_limit else None
        return StoreLayout(self.resolved_home, limit)

    @property
    def online_store_path(self) -> Path:
        return self.layout.online_store_path

    @property
    def model_cache_dir(self) -> Path:
        return self.resolved_home / "service" / "model-cache"

    @property
    def model_cache_key_file(self) -> Path:
        """Signs the local copy's records; kept outside the copy it vouches for."""
        return self.resolved_home / "service" / "model-cache.key"

    @property
    def api_keys_file(self) -> Path:
        return self.resolved_home / "api_keys.json"
