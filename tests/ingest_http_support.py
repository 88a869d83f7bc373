"""The service in process for the HTTP ingestion tests: ``create_app`` with its lifespan running
(the online refresher included), reached over ``httpx.ASGITransport``; signed Stripe deliveries."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import stripe as stripe_sdk
from fastapi import FastAPI

from service.app import create_app
from service.settings import Settings

KEYS = {"ingest-key": ["ingest"], "read-key": ["read"], "score-key": ["score"]}
SECRET = "whsec_http_ingest_test"


class NoModel:
    """A registry whose alias points nowhere: ingestion needs no model."""

    def alias_version(self) -> str | None:
        return None

    def fetch(self, version: str, into: Path) -> object:
        raise AssertionError("no model to fetch")

    def recorded_hashes(self, version: str) -> dict[str, str]:
        raise AssertionError("no model to check")

    def comparison(self) -> dict[str, object] | None:
        return None


def settings_for(home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "api_keys": KEYS,
        "stripe_webhook_secrets": SECRET,
        "poll_interval_seconds": 0.5,
    }
    return Settings(**{**values, **overrides})


@contextlib.asynccontextmanager
async def in_process(
    settings: Settings, *, registry: bool = False
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app over ASGI; ``registry``: models from the home's MLflow registry, else none."""
    app = create_app(settings, source=None if registry else NoModel())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
            yield app, http


def signed(payload: dict[str, Any], secret: str = SECRET, at: int | None = None) -> dict[str, Any]:
    """Keyword arguments of a webhook POST: Stripe's pretty-printed body, signed by the official
    library's own test helper."""
    text = json.dumps(payload, indent=2)
    header = stripe_sdk.WebhookSignature.generate_signature_header(
        text, secret, timestamp=at or int(time.time())
    )
    return {"content": text.encode(), "headers": {"Stripe-Signature": header}}
