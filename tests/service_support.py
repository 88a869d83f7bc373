"""Helpers for the service tests: a model trained in this process and the app served in process
(``InProcessService``), for everything that needs no real server; and a data home trained through
the CLI with a real ``segments serve`` on loopback, for what does (lifecycle, end to end)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import anyio
import anyio.from_thread
import httpx
from asgi_lifespan import LifespanManager
from cli_support import segments_in_process
from filelock import FileLock

AS_OF = "2026-06-30"
KEYS = {
    "score-key": ["score"],
    "read-key": ["read"],
    "ops-key": ["score", "read", "admin"],
    "no-scope-key": [],
}
SEGMENTS = [sys.executable, "-m", "pipelines"]


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "SEGMENTS_HOME": str(home), "SEGMENTS_API_KEYS": json.dumps(KEYS)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update({"PYTHONWARNINGS": "ignore", "COLUMNS": "200", **extra})
    return env


def cli(args: list[str], env: dict[str, str]) -> str:
    """``segments ARGS`` in this process (``cli_support``); its standard output."""
    result = segments_in_process(args, env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def trained_home(root: Path, demo_files: dict[str, Path]) -> Path:
    """A data home with ingested demo events, features as of ``AS_OF`` and a champion; built once
    per test session and shared by every service test module."""
    home = root / "service-home"
    with FileLock(str(root / "service-home.lock")):
        if (home / "READY").exists():
            return home
        env = base_env(home)
        cli(
            [
                "ingest",
                "--billing",
                str(demo_files["billing"]),
                "--usage",
                str(demo_files["usage"]),
            ],
            env,
        )
        cli(["features", "--as-of", AS_OF, "--out", str(home / "features.parquet")], env)
        trained = json.loads(cli(["train", "--as-of", AS_OF, "--json"], env))
        cli(["promote", trained["model_version"]], env)
        (home / "READY").write_text(trained["model_version"])
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_service(
    env: dict[str, str], log: Path, workers: int = 1, ready: bool = True, timeout: float = 600
) -> Iterator[str]:
    """``segments serve`` on a free loopback port; yields its base URL, stops it afterwards.

    ``timeout`` only bounds a failure: on a busy machine a worker's first model load (imports,
    registry, download, checks) can take minutes, and the wait ends as soon as it is ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        server = subprocess.Popen(
            [*SEGMENTS, "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Each check is a new connection, so with several workers it reaches them in turn.
        path = "/health/ready" if ready else "/health/live"
        for _ in range(1 if workers == 1 else 10 * workers):
            wait_for(url, path, server, log, timeout)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_for(url: str, path: str, server: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the service exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{path} not OK after {timeout} s:\n{log.read_text()[-3000:]}")


def client(url: str, key: str | None = "ops-key") -> httpx.Client:
    headers = {"X-API-Key": key} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30)


# --- the service in this process ---------------------------------------------------------------


@dataclass(frozen=True)
class TrainedModel:
    """A model fitted in this process on the demo company, its online store and feature table."""

    home: Path
    folder: Path
    hashes: dict[str, str]

    @property
    def features(self) -> Path:
        return self.home / "features.parquet"


def trained_model(root: Path, demo_files: dict[str, Path]) -> TrainedModel:
    """Ingest, features as of ``AS_OF`` and a fitted segmenter + explainer, through the Python API;
    made once per test session (the first module to ask builds it, under a lock)."""
    base = root / "inprocess-model"
    home, folder = base / "home", base / "model"
    with FileLock(str(root / "inprocess-model.lock")):
        if not (base / "hashes.json").exists():
            _train_in_process(home, folder, demo_files)
            (base / "hashes.json").write_text(json.dumps(_hashes_of(folder)))
    return TrainedModel(home, folder, json.loads((base / "hashes.json").read_text()))


def _hashes_of(folder: Path) -> dict[str, str]:
    from models.registry import sha256_of

    return {path.name: sha256_of(path) for path in sorted(folder.iterdir())}


def _train_in_process(home: Path, folder: Path, demo_files: dict[str, Path]) -> None:
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout
    from feature_store.timeutil import parse_as_of, rfc3339
    from models.registry import save_model
    from models.segmenter import CustomerSegmenter
    from pipelines.feature_pipeline import build_features, materialize
    from pipelines.train import fit_model, measure_business, place_earlier_churn

    layout = StoreLayout(home)
    ingest_files(layout, {"billing": demo_files["billing"], "usage": demo_files["usage"]})
    instant = parse_as_of(AS_OF)
    features = build_features(layout, instant)
    materialize(layout, features, instant)
    features.to_parquet(home / "features.parquet", index=False)
    fitted = fit_model(features, CustomerSegmenter(random_state=0, n_resamples=2))
    fitted.model.features_as_of = rfc3339(instant)  # as training records it
    # As training does: churn backtested over the 90 days before, churned customers beside.
    measure_business(fitted.model, build_features(layout, instant - timedelta(days=90)), features)
    place_earlier_churn(fitted.model, layout, instant, instant - timedelta(days=90))
    save_model(fitted.model, folder)


class FolderSource:
    """A ``ModelSource`` serving one saved model folder as the alias's version."""

    model_name = "customer-segments"

    def __init__(self, model: TrainedModel, version: str = "1") -> None:
        self.model, self.version = model, version

    def alias_version(self) -> str | None:
        return self.version

    def fetch(self, version: str, into: Path):
        from models.registry import DownloadedVersion

        shutil.copytree(self.model.folder, into / "model")
        return DownloadedVersion(version, into / "model", dict(self.model.hashes))

    def recorded_hashes(self, version: str) -> dict[str, str]:
        return dict(self.model.hashes)

    def comparison(self) -> dict[str, object] | None:
        return None

    def served_by_others(self, version: str, model: object) -> dict[int, str]:
        return {}  # one version, never rolled back


def inprocess_app(model: TrainedModel, **settings: object):
    """``create_app`` over the trained home, with the folder as its model source."""
    from service.app import create_app
    from service.settings import Settings

    values = {"home": model.home, "api_keys": KEYS, "poll_interval_seconds": 3600, **settings}
    return create_app(Settings(**values), source=FolderSource(model))


class InProcessService:
    """The app served in this process through ``httpx.ASGITransport``: its lifespan (model
    loading, poller) runs in an event loop of a background thread, so tests stay plain functions.
    ``get``/``post``/``request`` send ``X-API-Key: ops-key`` unless told otherwise."""

    def __init__(self, app) -> None:
        self.app = app
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> InProcessService:
        self.portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._done, asgi = self.portal.start_task(self._serve)
        self.asgi = asgi  # the app with its lifespan running, for raw ASGI calls
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=asgi), base_url="http://service", timeout=60
        )
        deadline = time.monotonic() + 120
        while self.get("/health/ready", key=None).status_code != 200:
            assert time.monotonic() < deadline, self.get("/health/ready", key=None).text
            time.sleep(0.05)
        return self

    async def _serve(self, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        self._stop = anyio.Event()
        async with LifespanManager(self.app, startup_timeout=120) as manager:
            task_status.started(manager.app)
            await self._stop.wait()

    def __exit__(self, *exc) -> None:
        self.portal.call(self.http.aclose)
        self.portal.call(self._stop.set)
        self._done.result(timeout=60)
        self._stack.close()

    def request(
        self, method: str, path: str, key: str | None = "ops-key", **kwargs
    ) -> httpx.Response:
        return self.portal.call(self.send, method, path, key, kwargs)

    async def send(self, method: str, path: str, key: str | None, kwargs: dict) -> httpx.Response:
        headers = {**({"X-API-Key": key} if key else {}), **kwargs.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, key: str | None = "ops-key", **kwargs) -> httpx.Response:
        return self.request("GET", path, key, **kwargs)

    def post(self, path: str, key: str | None = "ops-key", **kwargs) -> httpx.Response:
        return self.request("POST", path, key, **kwargs)
