"""What every planted-persona company generator shares: its settings, its output, how it is written.

The generators themselves (``bench/latent_company.py``, ``bench/agent_company.py``) differ in how
personas make customers; this module only holds the plumbing both need so that the evaluation
(``bench/eval_generators.py``) can treat them alike:

- ``CompanySpec``: number of personas, smallest persona's share, size, nuisance on/off, subtle
  personas, share of churners, seed;
- ``persona_shares``: persona sizes from the smallest share (geometric, so the imbalance is
  gradual, not one tiny persona among equals);
- ``PlantedCompany``: canonical billing and usage events (``docs/contracts/events.md``) plus the truth
  table ``customer_id -> persona, churned`` and the nuisance attributes (``is_annual_plan``,
  ``country``) that were assigned at random, independently of persona;
- ``write_company``: Parquet files the feature store ingests.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

# Features are built as of this date (all of it included), so events run up to END.
AS_OF = "2026-06-30"
END = datetime(2026, 7, 1)
DAY_US = 86_400_000_000

BILLING_COLUMNS = (
    "event_id",
    "customer_id",
    "occurred_at",
    "type",
    "plan",
    "interval",
    "seats",
    "mrr",
    "amount",
    "currency",
)
USAGE_COLUMNS = (
    "event_id",
    "customer_id",
    "occurred_at",
    "event",
    "user_id",
    "feature",
    "quantity",
)

# Nuisance, when on: a country chosen at random sets the currency and a regional price level.
COUNTRIES = ("US", "DE", "GB", "FR", "IN", "BR")
COUNTRY_WEIGHTS = (0.40, 0.15, 0.15, 0.10, 0.10, 0.10)
CURRENCY = {"US": "USD", "DE": "EUR", "GB": "GBP", "FR": "EUR", "IN": "INR", "BR": "BRL"}
# Local list price of one USD of price; INR and BRL are also purchasing-power discounted.
PRICE_LEVEL = {"US": 1.0, "DE": 0.95, "GB": 0.80, "FR": 0.95, "IN": 35.0, "BR": 2.6}
ANNUAL_SHARE = 0.3


@dataclass(frozen=True)
class CompanySpec:
    """The settings a planted company is generated from."""

    customers: int = 3000
    personas: int = 6
    min_share: float | None = None  # smallest persona's share; None means equal shares
    nuisance: bool = False  # annual plan (p=0.3) and country assigned at random
    subtle: bool = False  # each persona differs from a neighbour in only two or three traits
    churn_share: float = 0.0  # customers that cancel before the as-of
    seed: int = 0

    def with_seed(self, seed: int) -> CompanySpec:
        return replace(self, seed=seed)


@dataclass
class PlantedCompany:
    billing: pd.DataFrame
    usage: pd.DataFrame
    truth: pd.DataFrame  # customer_id, persona, churned, is_annual_plan, country

    @property
    def planted_personas(self) -> int:
        return int(self.truth["persona"].nunique())


def persona_shares(personas: int, min_share: float | None) -> np.ndarray:
    """Shares falling geometrically from the largest persona to one of ``min_share``."""
    if min_share is None or min_share * personas >= 1:
        return np.full(personas, 1 / personas)
    low, high = 1e-6, 1.0  # ratio between neighbouring personas' shares
    for _ in range(80):
        ratio = (low + high) / 2
        weights = ratio ** np.arange(personas)
        if weights[-1] / weights.sum() < min_share:
            low = ratio
        else:
            high = ratio
    weights = high ** np.arange(personas)
    return weights / weights.sum()


def persona_sizes(customers: int, shares: np.ndarray) -> np.ndarray:
    """Whole customers per persona, every persona at least two, summing to ``customers``."""
    sizes = np.maximum(np.floor(shares * customers).astype(int), 2)
    sizes[0] += customers - sizes.sum()
    return sizes


def customer_ids(count: int, prefix: str) -> np.ndarray:
    return np.array([f"{prefix}{i:06d}" for i in range(count)], dtype=object)


def nuisance_attributes(
    rng: np.random.Generator, count: int, on: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Annual-plan flag and country for ``count`` customers, drawn without looking at persona."""
    if not on:
        return np.zeros(count, dtype=bool), np.full(count, "US", dtype=object)
    annual = rng.random(count) < ANNUAL_SHARE
    country = rng.choice(np.array(COUNTRIES, dtype=object), count, p=COUNTRY_WEIGHTS)
    return annual, country


def timestamps(day_offsets: np.ndarray) -> np.ndarray:
    """``datetime64[us]`` from fractional days before ``END`` (positive offsets lie in the past)."""
    end_us = np.datetime64(END, "us")
    return end_us - (np.asarray(day_offsets, dtype=float) * DAY_US).astype("timedelta64[us]")


def with_event_ids(frame: pd.DataFrame, prefix: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """Number the rows (in time order per customer, which makes the files easy to read)."""
    frame = frame.sort_values(["customer_id", "occurred_at"], kind="stable").reset_index(drop=True)
    frame["event_id"] = prefix + pd.Series(np.arange(len(frame))).astype(str)
    if "seats" in frame:
        frame["seats"] = frame["seats"].astype("Int64")
    return frame[list(columns)]


def write_company(company: PlantedCompany, folder: Path) -> dict[str, Path]:
    """Write billing, usage and truth under ``folder``; return the paths by stream."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "billing": folder / "billing_events.parquet",
        "usage": folder / "usage_events.parquet",
        "truth": folder / "truth.csv",
    }
    company.billing.to_parquet(paths["billing"], index=False)
    company.usage.to_parquet(paths["usage"], index=False)
    company.truth.to_csv(paths["truth"], index=False)
    return paths


def start_of_history(days: int) -> datetime:
    return END - timedelta(days=days)


def write_from_command_line(generate: Callable[[CompanySpec], PlantedCompany], about: str) -> None:
    """The command line both generators share: settings in, event files written."""
    parser = argparse.ArgumentParser(description=about)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--personas", type=int, default=6)
    parser.add_argument("--min-share", type=float, default=None)
    parser.add_argument("--nuisance", action="store_true")
    parser.add_argument("--subtle", action="store_true")
    parser.add_argument("--churn-share", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--usage-copies",
        type=int,
        default=1,
        help="write every usage event this many times under new ids (volume tests)",
    )
    args = parser.parse_args()
    if args.usage_copies < 1:
        parser.error("--usage-copies: at least 1")
    spec = CompanySpec(
        args.customers,
        args.personas,
        args.min_share,
        args.nuisance,
        args.subtle,
        args.churn_share,
        args.seed,
    )
    company = generate(spec)
    if args.usage_copies > 1:
        company = replace(company, usage=with_copies(company.usage, args.usage_copies))
    print(write_company(company, args.out))


def with_copies(usage: pd.DataFrame, copies: int) -> pd.DataFrame:
    """Every usage event ``copies`` times, each copy under its own ids (``<id>_<copy>``): the same
    company with ``copies`` times the activity, for measuring how volume costs. Each copy keeps the
    event's time, so active days and windows stay as they were."""
    frames = [usage.assign(event_id=usage["event_id"] + f"_{copy}") for copy in range(copies)]
    return pd.concat(frames, ignore_index=True)
