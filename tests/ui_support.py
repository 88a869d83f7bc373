"""Helpers for the browser tests, the screenshots and the UI benchmark: a model trained in-process
on a generated company, a ``ModelSource`` that serves it without MLflow, the real app on a
loopback uvicorn in a background thread, and a headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import uvicorn

from feature_store.layout import StoreLayout
from feature_store.timeutil import parse_as_of, rfc3339
from models.bundle import SegmentModel
from models.business import BACKTEST_WINDOW_DAYS, CANCELED
from models.explainer import SegmentExplainer
from models.families import KMeansFamily
from models.registry import DownloadedVersion, save_model
from models.segmenter import CustomerSegmenter
from pipelines.demo_data import DemoCompany, generate_company, write_company
from pipelines.feature_pipeline import build_features, materialize
from pipelines.train import fit_model, measure_business, place_earlier_churn
from service.app import create_app
from service.settings import Settings

AS_OF = "2026-06-30"
KEYS = {
    # what a product team signs in with: customers' pages need ``score`` as the API does
    "explorer-key": ["read", "score"],
    "team-key": ["read", "score", "discover"],  # every page, for bench/ui_screenshots.py
    "read-key": ["read"],
    "score-key": ["score"],
    "ops-key": ["score", "read", "admin"],
    "discover-key": ["read", "discover"],
}
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass(frozen=True)
class TrainedHome:
    home: Path
    model: SegmentModel
    customer_ids: list[str]  # every customer with a stored vector
    active_ids: list[str]  # those whose subscription is not cancelled: the segments' members


def train_home(
    home: Path,
    customers: int = 300,
    months: int = 14,
    segments: int | None = None,
    seed: int = 7,
    business: bool = True,
    line_feed_id: str | None = None,
) -> TrainedHome:
    """Events of a generated company ingested under ``home``, features as of ``AS_OF`` in the
    online store, and a model fitted in-process (``segments`` fixes k-means' k when given);
    ``business``: churn backtested over the 90 days before and churned customers beside, as
    ``segments train`` does; ``line_feed_id``: the first customer who does not churn takes this
    id (one holding a line feed, as a hostile client may send)."""
    from feature_store.ingest import ingest_files

    layout = StoreLayout(home)
    company = generate_company(customers=customers, months=months, seed=seed)
    if line_feed_id is not None:
        staying = company.truth.loc[company.truth["persona"] != "churned", "customer_id"]
        company = _renamed(company, {str(staying.iloc[0]): line_feed_id})
    files = write_company(company, home / "demo")
    ingest_files(layout, {"billing": files["billing"], "usage": files["usage"]})
    as_of: datetime = parse_as_of(AS_OF)
    features = build_features(layout, as_of)
    materialize(layout, features, as_of)
    candidates = None if segments is None else [KMeansFamily().candidate(segments)]
    segmenter = CustomerSegmenter(random_state=0, n_resamples=2, candidates=candidates)
    explainer = SegmentExplainer(random_state=0, leaf_ladder=(8,), n_folds=3, max_iter=60)
    fitted = fit_model(features, segmenter, explainer)
    fitted.model.features_as_of = rfc3339(as_of)  # as training records it
    if business:
        start = build_features(layout, as_of - timedelta(days=BACKTEST_WINDOW_DAYS))
        measure_business(fitted.model, start, features)
        place_earlier_churn(
            fitted.model, layout, as_of, as_of - timedelta(days=BACKTEST_WINDOW_DAYS)
        )
    active = features[features[CANCELED] == 0]
    return TrainedHome(
        home,
        fitted.model,
        sorted(features["customer_id"].astype(str)),
        sorted(active["customer_id"].astype(str)),
    )


def _renamed(company: DemoCompany, names: dict[str, str]) -> DemoCompany:
    def events(table: pa.Table) -> pa.Table:
        ids = [names.get(i, i) for i in table.column("customer_id").to_pylist()]
        where = table.schema.get_field_index("customer_id")
        return table.set_column(where, "customer_id", pa.array(ids, pa.string()))

    truth = company.truth.assign(customer_id=company.truth["customer_id"].replace(names))
    return DemoCompany(events(company.billing), events(company.usage), truth)


class InProcessSource:
    """The ``ModelSource`` seam filled with one in-memory model: no MLflow, same verified load."""

    model_name = "customer-segments"

    def __init__(self, model: SegmentModel, version: str = "1") -> None:
        self.model, self.version = model, version
        self._hashes: dict[str, str] = {}
        # What the registry would store with a challenger (``compare/comparison.json``).
        self.comparison_document: dict[str, object] | None = None

    def alias_version(self) -> str | None:
        return self.version

    def fetch(self, version: str, into: Path) -> DownloadedVersion:
        folder = into / "model"
        self._hashes = save_model(self.model, folder)
        return DownloadedVersion(version, folder, dict(self._hashes))

    def comparison(self) -> dict[str, object] | None:
        return self.comparison_document

    def served_by_others(self, version: str, model: object) -> dict[int, str]:
        return {}  # one version, never rolled back

    def recorded_hashes(self, version: str) -> dict[str, str]:
        if not self._hashes:  # asked before any fetch: the hashes of the files it would save
            with tempfile.TemporaryDirectory() as tmp:
                self._hashes = save_model(self.model, Path(tmp) / "model")
        return dict(self._hashes)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Served:
    url: str
    app: Any
    source: InProcessSource


@contextlib.contextmanager
def serving_app(trained: TrainedHome, **settings: Any) -> Iterator[Served]:
    """The real app on a loopback uvicorn in a background thread."""
    source = InProcessSource(trained.model)
    app = create_app(Settings(home=trained.home, api_keys=KEYS, **settings), source=source)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        yield Served(url, app, source)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextlib.contextmanager
def serving(trained: TrainedHome, **settings: Any) -> Iterator[str]:
    """``serving_app`` when only the base URL matters."""
    with serving_app(trained, **settings) as served:
        yield served.url


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"the service was not ready after {timeout} s")


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (no downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Any, url: str, key: str = "explorer-key") -> None:
    page.goto(url + "/ui/sign-in")
    page.fill("input[name=api_key]", key)
    page.click("button[type=submit]")
