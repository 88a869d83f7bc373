"""Helpers for the service tests: a trained data home (made once per session) and a real
``segments serve`` on loopback, started and stopped by the test."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from filelock import FileLock

AS_OF = "2026-06-30"
KEYS = {"score-key": ["score"], "read-key": ["read"], "ops-key": ["score", "read", "admin"]}
SEGMENTS = [sys.executable, "-m", "pipelines"]


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "SEGMENTS_HOME": str(home), "SEGMENTS_API_KEYS": json.dumps(KEYS)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update({"PYTHONWARNINGS": "ignore", "COLUMNS": "200", **extra})
    return env


def cli(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(SEGMENTS + args, capture_output=True, text=True, env=env, timeout=600)
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
