"""A believable SaaS company as canonical billing and usage events, with its personas as truth.

Seven personas, each a recognisable kind of account (see ``docs/demo-data.md``):

- ``enterprise_api``: annual plans, many seats, high MRR, most activity through the API;
- ``growing_team``: monthly plan, seats added over time (expansions), rising usage;
- ``steady_smb``: small monthly teams with steady, interactive usage;
- ``dunning_risk``: failed payments in the last quarter, a recent downgrade, fading usage;
- ``churned``: canceled within the last half year; activity stopped at cancellation;
- ``dormant_payer``: still paying for several seats but nobody has logged in for months;
- ``solo_freelancer``: one seat, cheapest plan, light login-centred use.

Billing is built customer by customer (about 15 events each); usage, the bulk, is vectorised so
that 100k customers with 10M usage events take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Persona:
    name: str
    weight: float
    plan: str
    annual: bool
    seats: tuple[int, int]
    price_per_seat: tuple[float, float]
    rows_per_day: float  # usage rows per active day of the account
    api_share: float
    login_share: float
    features: int  # how many distinct product features the account touches
    trend: float  # time skew of activity: < 1 rising, > 1 fading, 1 steady


PERSONAS: tuple[Persona, ...] = (
    Persona(
        "enterprise_api", 0.08, "enterprise", True, (40, 300), (45, 60), 1.8, 0.8, 0.05, 12, 1.0
    ),
    Persona("growing_team", 0.15, "team", False, (3, 10), (20, 28), 0.5, 0.1, 0.25, 9, 0.45),
    Persona("steady_smb", 0.30, "team", False, (2, 15), (18, 25), 0.28, 0.05, 0.3, 6, 1.0),
    Persona("dunning_risk", 0.10, "team", False, (3, 20), (18, 25), 0.25, 0.05, 0.3, 5, 2.5),
    Persona("churned", 0.12, "starter", False, (1, 8), (10, 15), 0.25, 0.02, 0.4, 4, 1.6),
    Persona("dormant_payer", 0.10, "team", False, (5, 20), (18, 25), 0.12, 0.02, 0.5, 3, 1.0),
    Persona("solo_freelancer", 0.15, "solo", False, (1, 1), (9, 19), 0.12, 0.0, 0.6, 3, 1.0),
)
FEATURE_NAMES = (
    "dashboard",
    "reports",
    "export",
    "alerts",
    "integrations",
    "sso",
    "audit_log",
    "billing",
    "workflows",
    "webhooks",
    "sandbox",
    "analytics",
)


@dataclass(frozen=True)
class DemoCompany:
    billing: pa.Table
    usage: pa.Table
    truth: pd.DataFrame


@dataclass
class _Account:
    """One customer's lifecycle, decided before any event is written."""

    customer_id: str
    persona: Persona
    signup_us: int
    stop_us: int  # end of product activity
    canceled_us: int | None
    seats: int
    mrr: float


def _us(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)) / timedelta(microseconds=1))


def generate_company(
    customers: int = 3000,
    months: int = 12,
    seed: int = 0,
    end: date = date(2026, 6, 30),
    personas: tuple[Persona, ...] = PERSONAS,
) -> DemoCompany:
    """Generate the events of ``customers`` accounts over the ``months`` before ``end``."""
    rng = np.random.default_rng(seed)
    end_us = _us(datetime(end.year, end.month, end.day) + timedelta(days=1))
    start_us = end_us - months * 30 * DAY_US
    accounts = _accounts(rng, customers, start_us, end_us, personas)
    billing = _billing(rng, accounts, end_us)
    usage = _usage(rng, accounts)
    truth = pd.DataFrame(
        {
            "customer_id": [a.customer_id for a in accounts],
            "persona": [a.persona.name for a in accounts],
        }
    )
    return DemoCompany(billing, usage, truth)


def _accounts(
    rng: np.random.Generator, n: int, start_us: int, end_us: int, personas: tuple[Persona, ...]
) -> list[_Account]:
    weights = np.array([p.weight for p in personas])
    chosen = rng.choice(len(personas), size=n, p=weights / weights.sum())
    accounts = []
    for index, persona_index in enumerate(chosen):
        persona = personas[persona_index]
        # Churned and dunning accounts need history before their trouble starts.
        latest = end_us - (200 if persona.name in ("churned", "dunning_risk") else 45) * DAY_US
        signup = int(rng.integers(start_us, max(latest, start_us + DAY_US)))
        seats = int(rng.integers(persona.seats[0], persona.seats[1] + 1))
        mrr = round(seats * rng.uniform(*persona.price_per_seat), 2)
        canceled = stop = None
        if persona.name == "churned":
            canceled = int(
                rng.integers(max(signup + 60 * DAY_US, end_us - 180 * DAY_US), end_us - 5 * DAY_US)
            )
            stop = canceled
        elif persona.name == "dormant_payer":
            stop = end_us - int(rng.integers(60, 150)) * DAY_US
            stop = max(stop, signup + DAY_US)
        accounts.append(
            _Account(f"cus_{index:06d}", persona, signup, stop or end_us, canceled, seats, mrr)
        )
    return accounts


def _billing(rng: np.random.Generator, accounts: list[_Account], end_us: int) -> pa.Table:
    rows: list[tuple] = []
    for account in accounts:
        rows += _account_billing(rng, account, end_us)
    columns = list(zip(*rows, strict=True)) if rows else [[]] * 9
    n = len(rows)
    event_ids = pc.binary_join_element_wise("b", pa.array(np.arange(n)).cast(pa.string()), "")
    return pa.table(
        {
            "event_id": event_ids,
            "customer_id": pa.array(columns[0], pa.string()),
            "occurred_at": pa.array(np.array(columns[1], dtype="int64"), pa.timestamp("us")),
            "type": pa.array(columns[2], pa.string()),
            "plan": pa.array(columns[3], pa.string()),
            "interval": pa.array(columns[4], pa.string()),
            "seats": pa.array(columns[5], pa.int64()),
            "mrr": pa.array(columns[6], pa.float64()),
            "amount": pa.array(columns[7], pa.float64()),
            "currency": pa.array(columns[8], pa.string()),
        }
    ).sort_by("occurred_at")


def _money(cid: str, when: int, kind: str, amount: float) -> tuple:
    return (cid, when, kind, None, None, None, None, amount, "USD")


def _subscription(
    cid: str, when: int, kind: str, persona: Persona, seats: int, mrr: float
) -> tuple:
    interval = "year" if persona.annual else "month"
    return (cid, when, kind, persona.plan, interval, seats, mrr, None, "USD")


def _account_billing(rng: np.random.Generator, account: _Account, end_us: int) -> list[tuple]:
    """Subscription changes, invoices, failures and refunds of one account, in time order."""
    persona, cid = account.persona, account.customer_id
    period_us = (365 if persona.annual else 30) * DAY_US
    stop_billing = account.canceled_us or end_us
    # Drawn up to the end of the data whether or not the account cancels (the same draws, so the
    # company is the same but for this), then cut at the cancellation: a plan change after it
    # brought a cancelled account back with MRR and no invoice (an analyst's audit).
    changes = [
        change
        for change in _subscription_changes(rng, account, end_us)
        if account.canceled_us is None or change[0] < account.canceled_us
    ]
    events = [
        _subscription(
            cid, account.signup_us, "subscription_started", persona, account.seats, account.mrr
        )
    ]
    events += [_subscription(cid, w, "subscription_changed", persona, s, m) for w, s, m in changes]
    current = [(account.signup_us, account.mrr), *((w, m) for w, _, m in changes)]
    invoice_at = account.signup_us
    while invoice_at < stop_billing:
        mrr_now = [m for w, m in current if w <= invoice_at][-1]
        amount = round(mrr_now * (12 if persona.annual else 1), 2)
        failing = persona.name == "dunning_risk" and invoice_at > end_us - 100 * DAY_US
        if failing:
            for retry in range(int(rng.integers(1, 3))):
                events.append(
                    _money(cid, invoice_at + retry * 3 * DAY_US, "payment_failed", amount)
                )
        if not failing or rng.random() < 0.5:
            paid_at = invoice_at + (7 * DAY_US if failing else 0)
            events.append(_money(cid, paid_at, "invoice_paid", amount))
            if rng.random() < 0.02:
                refund = round(amount * rng.uniform(0.2, 1.0), 2)
                events.append(_money(cid, invoice_at + 10 * DAY_US, "refund_issued", refund))
        invoice_at += period_us
    if account.canceled_us is not None:
        events.append(
            _subscription(cid, account.canceled_us, "subscription_canceled", persona, 0, 0.0)
        )
    return [e for e in events if e[1] < end_us]


def _subscription_changes(
    rng: np.random.Generator, account: _Account, end_us: int
) -> list[tuple[int, int, float]]:
    persona = account.persona
    price = account.mrr / max(account.seats, 1)
    changes: list[tuple[int, int, float]] = []
    if persona.name == "growing_team":
        seats = account.seats
        count = int(rng.integers(2, 5))
        times = np.sort(rng.integers(account.signup_us + 20 * DAY_US, end_us, size=count))
        for when in times:
            seats += int(rng.integers(2, 6))
            changes.append((int(when), seats, round(seats * price, 2)))
    elif persona.name == "dunning_risk":
        seats = max(1, account.seats - int(rng.integers(1, max(2, account.seats // 2))))
        when = int(rng.integers(end_us - 80 * DAY_US, end_us - 10 * DAY_US))
        changes.append((when, seats, round(seats * price, 2)))
    elif rng.random() < 0.1:
        seats = account.seats + 1
        when = int(rng.integers(account.signup_us + DAY_US, end_us))
        changes.append((when, seats, round(seats * price, 2)))
    return changes


def _usage(rng: np.random.Generator, accounts: list[_Account]) -> pa.Table:
    def trait(name: str) -> np.ndarray:
        return np.array([getattr(a.persona, name) for a in accounts])

    api_first = trait("name") == "enterprise_api"
    start = np.array([a.signup_us for a in accounts], dtype=np.int64)
    stop = np.array([a.stop_us for a in accounts], dtype=np.int64)
    seats = np.array([a.seats for a in accounts])
    rate = trait("rows_per_day") * rng.lognormal(0, 0.3, len(accounts))
    rate = rate * np.where(api_first, seats / 100, 1.0)
    days = np.maximum(stop - start, 0) / DAY_US
    counts = rng.poisson(rate * days)
    owner = np.repeat(np.arange(len(accounts)), counts)
    n = len(owner)
    trend = trait("trend")[owner]
    when = start[owner] + ((stop - start)[owner] * rng.random(n) ** trend).astype(np.int64)
    roll = rng.random(n)
    api = trait("api_share")[owner]
    login = trait("login_share")[owner]
    event = np.where(roll < api, 0, np.where(roll < api + login, 1, 2))
    breadth = trait("features")[owner]
    feature = (rng.random(n) ** 1.5 * breadth).astype(np.int64)
    active_users = np.maximum(1, (seats * rng.uniform(0.4, 0.95, len(accounts))).astype(np.int64))
    user = (rng.random(n) * active_users[owner]).astype(np.int64)
    # Pre-aggregated API rows: integrations send batches, only API-first accounts send big ones.
    big_batches = api_first[owner]
    api_quantity = np.where(big_batches, rng.integers(1, 25, n), rng.integers(1, 3, n))
    quantity = np.where(event == 0, api_quantity, 1).astype(np.float64)
    customer_ids = pa.array([a.customer_id for a in accounts], pa.string())
    owner_ids = customer_ids.take(pa.array(owner))
    return pa.table(
        {
            "event_id": pc.binary_join_element_wise(
                "u", pa.array(np.arange(n)).cast(pa.string()), ""
            ),
            "customer_id": owner_ids,
            "occurred_at": pa.array(when, pa.timestamp("us")),
            "event": pa.array(np.array(["api_call", "login", "feature_used"])[event]),
            "user_id": pc.binary_join_element_wise(
                owner_ids, pa.array(user).cast(pa.string()), "-user-"
            ),
            "feature": pa.array(np.where(event == 2, np.array(FEATURE_NAMES)[feature], None)),
            "quantity": pa.array(quantity),
        }
    )


def write_company(company: DemoCompany, out_dir: Path) -> dict[str, Path]:
    """Write the events as Parquet and the truth as CSV into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "billing": out_dir / "billing_events.parquet",
        "usage": out_dir / "usage_events.parquet",
        "truth": out_dir / "truth.csv",
    }
    pq.write_table(company.billing, paths["billing"], compression="zstd")
    pq.write_table(company.usage, paths["usage"], compression="zstd")
    company.truth.to_csv(paths["truth"], index=False)
    return paths
