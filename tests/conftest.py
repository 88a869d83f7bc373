"""Shared fixtures: small companies made by the tests themselves, and an isolated data home."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from feature_store.layout import StoreLayout

# Without the `spark` extra (`make test` installs it) the Spark module cannot even be imported:
# its tests are left out, and those elsewhere that ask for the `spark` fixture are skipped.
collect_ignore = [] if importlib.util.find_spec("pyspark") else ["test_spark_parity.py"]


@pytest.fixture
def layout(tmp_path: Path) -> StoreLayout:
    return StoreLayout(tmp_path / "home")


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every test process of this run shares (pytest-xdist runs one per core): trained
    homes built once under a file lock, by whichever process asks first."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if base.name.startswith("popen-gw") else base


@pytest.fixture(scope="session")
def demo_company():
    from pipelines.demo_data import generate_company

    return generate_company(customers=300, months=14, seed=7)


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory, demo_company) -> dict[str, Path]:
    from pipelines.demo_data import write_company

    return write_company(demo_company, tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def spark():
    """One small local Spark session for every Spark test: 2 cores, few partitions, no UI.

    Tuned for many small queries rather than big data: a JVM that stops at the quick JIT tier, no
    whole-stage code generation or adaptive re-planning (halves the CPU per query), and expressions
    interpreted rather than compiled (``factoryMode``, Spark's own switch for testing both paths:
    compiling a query's expressions costs more than running them on a few hundred customers; a
    fifth off the first build of a query). The benchmark checks the same values on Spark's
    defaults, and the commands the tests start as processes run compiled.
    """
    pytest.importorskip("pyspark", reason="needs the spark extra (`make test` installs it)")
    from feature_store.spark_engine import spark_session

    session = spark_session(
        "local[2]",
        config={
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.memory": "1g",
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
            "spark.sql.codegen.wholeStage": "false",
            "spark.sql.codegen.factoryMode": "NO_CODEGEN",
            "spark.sql.adaptive.enabled": "false",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# Read by ``Settings`` and by MLflow itself in every later test of the same process; MLflow 3's
# ``set_tracking_uri`` exports the first, so a test calling it would redirect the rest.
PROCESS_WIDE = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "SEGMENTS_HOME")


@contextmanager
def _environment_unchanged(what: str) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in PROCESS_WIDE}
    yield
    after = {name: os.environ.get(name) for name in PROCESS_WIDE}
    assert after == before, f"{what} changed the process environment: {before} -> {after}"


# Autouse fixtures are set up before the other fixtures of their scope and torn down after them
# (pytest's monkeypatch has undone its changes by then): one guard per test, one per module for
# the module fixtures. Session fixtures (below) are not guarded: they make data, not settings.
@pytest.fixture(autouse=True)
def _test_leaves_environment_as_found() -> Iterator[None]:
    with _environment_unchanged("this test"):
        yield


@pytest.fixture(autouse=True, scope="module")
def _module_leaves_environment_as_found() -> Iterator[None]:
    with _environment_unchanged("this module's fixtures"):
        yield
