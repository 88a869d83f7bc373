"""A second SaaS company, built independently of ``pipelines/demo_data.py``, for evaluation only.

    python bench/alt_company.py --out DIR [--customers 3000] [--seed 0]

Tuning segment discovery on the demo generator alone would tune it to that generator's quirks, so
this one differs on purpose: a collaboration tool with usage-priced API access, history reaching 18
months back, activity simulated day by day and user by user (not as one Poisson total spread over
time), free-form events beside the three fixed ones, and personas that overlap (downsizers look
like teams, lapsed payers like churned customers, fresh trials like small teams). It writes
canonical events (``docs/contracts/events.md``) and ``truth.csv`` with each customer's persona.

Six personas:

- ``api_platform`` (11%): ``platform`` plan, 60% annual; a base fee of 150-900 plus 8 per seat;
  most activity is ``api_call`` in batches from a service account, few humans log in;
- ``collab_workspace`` (27%): monthly ``business`` plan, 6-45 seats at 11-15, most seats active
  on most weekdays, 5-10 features; a third expand once or twice;
- ``fresh_trial`` (13%): signed up 15-80 days ago on ``starter`` or ``business``, 1-6 seats,
  activity ramping up;
- ``downsizer`` (15%): one or two contractions in the last nine months (seats cut, sometimes down
  to ``starter``), fading activity, refunds and occasional failed payments;
- ``lapsed_payer`` (14%): still billed for 3-15 seats (a third annual) but activity stopped 35-250
  days ago; some still show a stray login every few weeks;
- ``lost_customer`` (20%): canceled in the last 200 days, more than half after 2-4 failed
  payments (involuntary churn), the rest by choice; activity fades before the end.

Every account also gets noise that has nothing to do with its persona: a per-account activity
level (log-normal), weekends at 40% of weekday activity, 3% with occasional failed payments, 1.5%
a refund, 5% a one-seat change.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

DAY_US = 86_400_000_000
HISTORY_DAYS = 540  # billing history
USAGE_DAYS = 270  # usage simulated over the last 270 days: usage features look back 90 days,
# and the longest inactivity planted (lapsed payers) is 250 days
PRODUCT_FEATURES = (
    "boards",
    "docs",
    "comments",
    "search",
    "calendar",
    "automations",
    "guests",
    "exports",
    "analytics",
    "templates",
    "permissions",
    "audit",
)
FREE_FORM_EVENTS = ("report_exported", "file_uploaded", "invite_sent")


@dataclass(frozen=True)
class Archetype:
    name: str
    share: float
    signup_days_ago: tuple[int, int]
    seats: tuple[int, int]
    seat_price: tuple[float, float]
    base_fee: tuple[float, float]
    annual_probability: float
    day_probability: tuple[float, float]  # chance that a weekday has any activity
    events_per_active_user: float
    utilisation: tuple[float, float]  # share of seats that are ever active
    api_share: float
    login_share: float
    free_form_share: float
    breadth: tuple[int, int]
    slope: float  # activity change per 90 days, in log units (negative: fading)


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype(
        "api_platform", 0.11, (120, 540), (2, 12), (8, 8), (150, 900), 0.6,
        (0.9, 1.0), 8.0, (0.1, 0.4), 0.85, 0.05, 0.02, (2, 4), 0.0,
    ),
    Archetype(
        "collab_workspace", 0.27, (100, 540), (6, 45), (11, 15), (0, 0), 0.0,
        (0.75, 0.98), 0.6, (0.55, 0.9), 0.02, 0.25, 0.1, (5, 10), 0.05,
    ),
    Archetype(
        "fresh_trial", 0.13, (15, 80), (1, 6), (11, 15), (0, 0), 0.0,
        (0.4, 0.8), 1.2, (0.5, 1.0), 0.0, 0.35, 0.08, (2, 6), 0.6,
    ),
    Archetype(
        "downsizer", 0.15, (200, 540), (8, 30), (11, 15), (0, 0), 0.0,
        (0.3, 0.7), 1.0, (0.3, 0.6), 0.03, 0.3, 0.05, (3, 7), -0.45,
    ),
    Archetype(
        "lapsed_payer", 0.14, (200, 540), (3, 15), (9, 14), (0, 0), 0.33,
        (0.3, 0.6), 0.8, (0.2, 0.5), 0.0, 0.5, 0.02, (1, 4), 0.0,
    ),
    Archetype(
        "lost_customer", 0.20, (150, 540), (1, 12), (9, 15), (0, 0), 0.0,
        (0.3, 0.7), 1.0, (0.3, 0.7), 0.01, 0.4, 0.05, (2, 6), -0.5,
    ),
)  # fmt: skip


@dataclass
class Account:
    """One customer's story, decided before any event is written (times in days before the end)."""

    customer_id: str
    archetype: Archetype
    signup: float
    plan: str
    annual: bool
    seats: int
    seat_price: float
    base_fee: float
    activity: float  # per-account activity level
    stop_activity: float  # days before the end when activity stopped (0: still active)
    canceled: float | None
    involuntary: bool
    utilisation: float
    breadth: int
    final_seats: int = 0  # seats after every subscription change; set with the billing

    def mrr(self, seats: int, seat_price: float | None = None) -> float:
        return round(self.base_fee + seats * (seat_price or self.seat_price), 2)


@dataclass(frozen=True)
class AltCompany:
    billing: pa.Table
    usage: pa.Table
    truth: pd.DataFrame


def generate(customers: int = 3000, seed: int = 0, end: date = date(2026, 6, 30)) -> AltCompany:
    rng = np.random.default_rng(seed)
    end_us = int(
        (datetime(end.year, end.month, end.day) + timedelta(days=1) - datetime(1970, 1, 1))
        / timedelta(microseconds=1)
    )
    accounts = [_account(rng, i) for i in range(customers)]
    billing = [row for a in accounts for row in _billing(rng, a)]
    usage = _usage(rng, accounts)
    truth = pd.DataFrame(
        {
            "customer_id": [a.customer_id for a in accounts],
            "persona": [a.archetype.name for a in accounts],
        }
    )
    usage_table = _usage_table(rng, usage, accounts, end_us)
    return AltCompany(_billing_table(billing, end_us), usage_table, truth)


def _account(rng: np.random.Generator, index: int) -> Account:
    shares = np.array([a.share for a in ARCHETYPES])
    archetype = ARCHETYPES[rng.choice(len(ARCHETYPES), p=shares / shares.sum())]
    signup = float(rng.uniform(*archetype.signup_days_ago))
    plan = {
        "api_platform": "platform",
        "collab_workspace": "business",
        "fresh_trial": "starter" if rng.random() < 0.5 else "business",
        "downsizer": "business",
        "lapsed_payer": "starter" if rng.random() < 0.5 else "business",
        "lost_customer": "starter" if rng.random() < 0.6 else "business",
    }[archetype.name]
    stop, canceled, involuntary = 0.0, None, False
    if archetype.name == "lapsed_payer":
        stop = float(rng.uniform(35, min(250, signup - 10)))
    elif archetype.name == "lost_customer":
        canceled = float(rng.uniform(3, min(200, signup - 60)))
        involuntary = rng.random() < 0.55
        stop = canceled + (float(rng.uniform(0, 20)) if involuntary else 0.0)
    return Account(
        customer_id=f"acct-{index:05d}-{int(rng.integers(1e6)):06d}",
        archetype=archetype,
        signup=signup,
        plan=plan,
        annual=rng.random() < archetype.annual_probability,
        seats=int(rng.integers(archetype.seats[0], archetype.seats[1] + 1)),
        seat_price=float(rng.uniform(*archetype.seat_price)),
        base_fee=float(rng.uniform(*archetype.base_fee)),
        activity=float(rng.lognormal(0, 0.45)),
        stop_activity=stop,
        canceled=canceled,
        involuntary=involuntary,
        utilisation=float(rng.uniform(*archetype.utilisation)),
        breadth=int(rng.integers(archetype.breadth[0], archetype.breadth[1] + 1)),
    )


# Billing: one tuple per event, (customer, days before end, type, plan, interval, seats, mrr, amount)


def _billing(rng: np.random.Generator, a: Account) -> list[tuple]:
    interval = "year" if a.annual else "month"
    changes = _seat_changes(rng, a)
    events = [
        (
            a.customer_id,
            a.signup,
            "subscription_started",
            a.plan,
            interval,
            a.seats,
            a.mrr(a.seats),
            None,
        )
    ]
    for when, plan, seats, mrr in changes:
        events.append(
            (a.customer_id, when, "subscription_changed", plan, interval, seats, mrr, None)
        )
    events += _invoices(rng, a, changes)
    if a.canceled is not None:
        events.append(
            (a.customer_id, a.canceled, "subscription_canceled", a.plan, interval, 0, 0.0, None)
        )
    return events


def _seat_changes(rng: np.random.Generator, a: Account) -> list[tuple[float, str, int, float]]:
    """(days before end, plan, seats, mrr) of every subscription change, oldest first."""
    horizon = a.canceled or 0.0
    changes = []
    seats = a.seats
    if a.archetype.name == "collab_workspace" and rng.random() < 0.35:
        for when in sorted(
            rng.uniform(horizon + 1, a.signup - 5, int(rng.integers(1, 3))), reverse=True
        ):
            seats += int(rng.integers(2, 9))
            changes.append((float(when), a.plan, seats, a.mrr(seats)))
    elif a.archetype.name == "downsizer":
        for when in sorted(
            rng.uniform(5, min(270, a.signup - 30), int(rng.integers(1, 3))), reverse=True
        ):
            seats = max(1, int(seats * rng.uniform(0.4, 0.8)))
            if rng.random() < 0.3:
                changes.append((float(when), "starter", seats, a.mrr(seats, 8.0)))
            else:
                changes.append((float(when), a.plan, seats, a.mrr(seats)))
    elif rng.random() < 0.05:
        when = float(rng.uniform(horizon + 1, a.signup))
        seats = max(1, seats + int(rng.choice([-1, 1])))
        changes.append((when, a.plan, seats, a.mrr(seats)))
    a.final_seats = seats
    return changes


def _invoices(rng: np.random.Generator, a: Account, changes: list[tuple]) -> list[tuple]:
    period = 365.0 if a.annual else 30.0
    last = a.canceled or 0.0
    # Involuntary churn: the last 2-4 charges before the cancellation fail, retries included.
    dunning_from = last + period * int(rng.integers(2, 5)) if a.involuntary else -np.inf
    downsizer = a.archetype.name == "downsizer"
    failure_rate = 0.05 if downsizer else (0.3 if rng.random() < 0.03 else 0.0)
    refund_pending = rng.random() < (0.35 if downsizer else 0.015)
    events = []
    for due in np.arange(a.signup, last, -period):
        mrr = next((m for w, _, _, m in reversed(changes) if w >= due), a.mrr(a.seats))
        amount = round(mrr * (12 if a.annual else 1), 2)
        if due <= dunning_from:
            retries = [due - 3 * r for r in range(int(rng.integers(1, 4))) if due - 3 * r > last]
            events += [_money(a, when, "payment_failed", amount) for when in retries]
            continue
        paid = due
        if rng.random() < failure_rate:
            events.append(_money(a, due, "payment_failed", amount))
            paid = max(due - 2, last)
        events.append(_money(a, paid, "invoice_paid", amount))
        if refund_pending and rng.random() < 0.3:
            refund_pending = False
            refund = round(amount * rng.uniform(0.1, 0.6), 2)
            events.append(_money(a, max(paid - 6, last + 0.01), "refund_issued", refund))
    return events


def _money(a: Account, when: float, kind: str, amount: float) -> tuple:
    return (a.customer_id, when, kind, None, None, None, None, amount)


def _billing_table(rows: list[tuple], end_us: int) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    days = np.array(columns[1], dtype=float)
    at = end_us - (days * DAY_US).astype(np.int64)
    keep = at < end_us
    table = pa.table(
        {
            "event_id": pa.array([f"evt_b{i:07x}" for i in range(len(rows))]),
            "customer_id": pa.array(columns[0], pa.string()),
            "occurred_at": pa.array(at, pa.timestamp("us")),
            "type": pa.array(columns[2], pa.string()),
            "plan": pa.array(columns[3], pa.string()),
            "interval": pa.array(columns[4], pa.string()),
            "seats": pa.array(columns[5], pa.int64()),
            "mrr": pa.array(columns[6], pa.float64()),
            "amount": pa.array(columns[7], pa.float64()),
            "currency": pa.array(["EUR"] * len(rows), pa.string()),
        }
    )
    return table.filter(pa.array(keep)).sort_by("occurred_at")


# Usage: a customer x day grid of activity, then users and events inside each active day.


def _usage(rng: np.random.Generator, accounts: list[Account]) -> dict[str, np.ndarray]:
    n = len(accounts)
    day = np.arange(USAGE_DAYS)[None, :]  # days before the end, 0 = the last day

    def per_account(getter) -> np.ndarray:
        return np.array([getter(a) for a in accounts], dtype=float)[:, None]

    first = np.minimum(per_account(lambda a: a.signup), USAGE_DAYS)
    stop = per_account(lambda a: a.stop_activity)
    slope = per_account(lambda a: a.archetype.slope)
    p_day = per_account(lambda a: rng.uniform(*a.archetype.day_probability))
    live = (day < first) & (day >= stop)
    # Fading or rising activity, anchored at the account's last active day.
    level = np.exp(-slope * (day - stop) / 90.0)
    weekend = np.where((day % 7) < 2, 0.4, 1.0)
    probability = np.clip(p_day * np.minimum(level, 1.5) * weekend, 0, 1)
    active = live & (rng.random((n, USAGE_DAYS)) < probability)
    stray = per_account(lambda a: a.archetype.name == "lapsed_payer" and rng.random() < 0.3)
    active |= (stray > 0) & (day < stop) & (rng.random((n, USAGE_DAYS)) < 0.04)
    owner, when = np.nonzero(active)
    seats = per_account(lambda a: a.final_seats)[:, 0]
    pool = np.maximum(1, np.round(seats * per_account(lambda a: a.utilisation)[:, 0])).astype(int)
    users_today = 1 + rng.binomial(pool[owner] - 1, 0.6)
    intensity = per_account(lambda a: a.activity * a.archetype.events_per_active_user)[:, 0]
    counts = rng.poisson(intensity[owner] * users_today * np.minimum(level[owner, when], 1.5)) + 1
    row_owner = np.repeat(owner, counts)
    row_day = np.repeat(when, counts).astype(float) + rng.random(counts.sum())
    return {"owner": row_owner, "day": row_day, "pool": pool}


def _usage_table(
    rng: np.random.Generator, usage: dict[str, np.ndarray], accounts: list[Account], end_us: int
) -> pa.Table:
    owner, day, pool = usage["owner"], usage["day"], usage["pool"]
    n = len(owner)
    shares = np.array(
        [
            [a.archetype.api_share, a.archetype.login_share, a.archetype.free_form_share]
            for a in accounts
        ]
    )
    roll = rng.random(n)
    api, login, free = (shares[owner, i] for i in range(3))
    kind = np.where(
        roll < api, 0, np.where(roll < api + login, 1, np.where(roll < api + login + free, 3, 2))
    )
    names = np.array(["api_call", "login", "feature_used", "free"], dtype=object)
    event = names[kind]
    event[kind == 3] = np.array(FREE_FORM_EVENTS, dtype=object)[
        rng.integers(0, 3, (kind == 3).sum())
    ]
    breadth = np.array([a.breadth for a in accounts])[owner]
    feature = np.where(
        kind == 2,
        np.array(PRODUCT_FEATURES, dtype=object)[(rng.random(n) ** 2 * breadth).astype(int)],
        None,
    )
    platform = np.array([a.archetype.name == "api_platform" for a in accounts])[owner]
    user_index = (rng.random(n) * pool[owner]).astype(int)
    ids = np.array([a.customer_id for a in accounts], dtype=object)[owner]
    user = np.char.add(np.char.add(ids.astype(str), "/u"), user_index.astype(str)).astype(object)
    user[(kind == 0) & platform] = "service-account"
    quantity = np.where((kind == 0) & platform, np.ceil(rng.lognormal(3.3, 0.8, n)), 1.0)
    at = end_us - (day * DAY_US).astype(np.int64) - 1
    return pa.table(
        {
            "event_id": pa.array([f"evt_u{i:08x}" for i in range(n)]),
            "customer_id": pa.array(ids, pa.string()),
            "occurred_at": pa.array(at, pa.timestamp("us")),
            "event": pa.array(event, pa.string()),
            "user_id": pa.array(user, pa.string()),
            "feature": pa.array(feature, pa.string()),
            "quantity": pa.array(quantity, pa.float64()),
        }
    ).sort_by("occurred_at")


def write(company: AltCompany, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "billing": out_dir / "billing_events.parquet",
        "usage": out_dir / "usage_events.parquet",
        "truth": out_dir / "truth.csv",
    }
    pq.write_table(company.billing, paths["billing"])
    pq.write_table(company.usage, paths["usage"])
    company.truth.to_csv(paths["truth"], index=False)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    company = generate(args.customers, args.seed)
    paths = write(company, args.out)
    print(
        f"{company.billing.num_rows:,} billing and {company.usage.num_rows:,} usage events -> {paths['billing'].parent}"
    )


if __name__ == "__main__":
    main()
