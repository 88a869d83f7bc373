"""Shared fixtures: small companies made by the tests themselves, and an isolated data home."""

from __future__ import annotations

from pathlib import Path

import pytest

from feature_store.layout import StoreLayout


@pytest.fixture
def layout(tmp_path: Path) -> StoreLayout:
    return StoreLayout(tmp_path / "home")


@pytest.fixture(scope="session")
def demo_company():
    from pipelines.demo_data import generate_company

    return generate_company(customers=300, months=14, seed=7)


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory, demo_company) -> dict[str, Path]:
    from pipelines.demo_data import write_company

    return write_company(demo_company, tmp_path_factory.mktemp("demo"))
