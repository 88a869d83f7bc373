"""Planted company A: personas as latent profiles, customers drawn through a Gaussian copula.

    python bench/latent_company.py --out DIR [--customers 3000] [--personas 6] [--min-share 0.03]
        [--nuisance] [--subtle] [--churn-share 0.1] [--seed 0]

Written for the evaluation only (``bench/eval_generators.py``), independently of
``pipelines/demo_data.py``, ``bench/alt_company.py`` and ``bench/agent_company.py``.

How a customer is made:

1. A persona is a point in a space of nine latent traits (price tier, team size, engagement,
   adoption, automation, breadth, momentum, billing friction, age) plus its own correlation
   matrix between them. Personas are placed at random, at least a fixed distance apart; with
   ``subtle``, each new persona copies an earlier one and moves only two or three traits.
2. A customer is the persona's point plus correlated Gaussian noise (the copula), with a 15%
   "heavy" wing whose team size and activity are larger by a log-normal factor, so every persona
   is a two-component log-normal mixture in its volumes.
3. Traits go through fixed marginals into targets: seats and price (log-normal, a plan ladder),
   daily activity probability, share of seats active, API share, number of features, trend,
   expansions and contractions, failure and refund rates per invoice, tenure.
4. Targets become canonical events: a subscription history with seat changes, monthly (or yearly)
   invoices with retried failures and refunds, and the last 90 days of usage as one
   ``feature_used`` row per active day, an ``api_call`` row beside it, and per user a ``login``
   row per 30-day block carrying the number of logins (pre-aggregated, ``quantity``).

Nuisance (when on), drawn independently of persona: annual plan with p=0.3 (interval ``year``,
invoiced yearly) and a country that sets the currency and a regional price level. Churners are a
``churn_share`` of customers (more likely with friction and low engagement) who cancel 1-330 days
before the as-of; their activity fades over their last 30 days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from planted import (
    AS_OF,
    BILLING_COLUMNS,
    CURRENCY,
    PRICE_LEVEL,
    USAGE_COLUMNS,
    CompanySpec,
    PlantedCompany,
    customer_ids,
    nuisance_attributes,
    persona_shares,
    persona_sizes,
    timestamps,
    with_event_ids,
    write_from_command_line,
)
from scipy.special import expit

from feature_store.features import compute_customer_features
from feature_store.timeutil import parse_as_of

TRAITS = (
    "price_tier",
    "team_size",
    "engagement",
    "adoption",
    "automation",
    "breadth",
    "momentum",
    "friction",
    "age",
)
N_TRAITS = len(TRAITS)
T = {name: i for i, name in enumerate(TRAITS)}
WITHIN_PERSONA_SPREAD = 0.35
MIN_CENTRE_DISTANCE = 2.4
PLANS = (("basic", 10.0), ("standard", 25.0), ("premium", 45.0), ("ultimate", 90.0))
PLAN_EDGES = (-0.75, 0.25, 1.0)
FEATURES = tuple(f"f_{name}" for name in "abcdefghijklmno")
MAX_CHANGES = 4
USAGE_DAYS = 90


def persona_centres(rng: np.random.Generator, personas: int, subtle: bool) -> np.ndarray:
    if subtle:
        return _subtle_centres(rng, personas)
    distance = MIN_CENTRE_DISTANCE
    while True:
        for _ in range(2000):
            centres = rng.uniform(-1.5, 1.5, (personas, N_TRAITS))
            gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
            if gaps[np.triu_indices(personas, 1)].min() >= distance:
                return centres
        distance *= 0.9


def _subtle_centres(rng: np.random.Generator, personas: int) -> np.ndarray:
    """Each persona copies an earlier one and moves two or three traits by 1.0-1.4."""
    centres = np.empty((personas, N_TRAITS))
    centres[0] = rng.uniform(-1.0, 1.0, N_TRAITS)
    for i in range(1, personas):
        while True:
            child = centres[rng.integers(i)].copy()
            moved = rng.choice(N_TRAITS, rng.integers(2, 4), replace=False)
            child[moved] += np.where(child[moved] > 0, -1, 1) * rng.uniform(1.0, 1.4, moved.size)
            if all(np.abs(child - centres[j]).max() > 0.9 for j in range(i)):
                centres[i] = child
                break
    return centres


def persona_correlations(rng: np.random.Generator, personas: int) -> np.ndarray:
    """A random correlation matrix per persona (three shared factors plus unique noise)."""
    loadings = rng.normal(0, 0.5, (personas, N_TRAITS, 3))
    cov = loadings @ loadings.transpose(0, 2, 1) + np.eye(N_TRAITS)
    scale = np.sqrt(np.einsum("pii->pi", cov))
    return cov / scale[:, :, None] / scale[:, None, :]


def latent_traits(
    rng: np.random.Generator, centres: np.ndarray, persona: np.ndarray, spread: float
) -> tuple[np.ndarray, np.ndarray]:
    """Traits of every customer, and whether it belongs to its persona's heavy wing."""
    chol = np.linalg.cholesky(persona_correlations(rng, len(centres)))
    noise = np.einsum("nij,nj->ni", chol[persona], rng.standard_normal((persona.size, N_TRAITS)))
    heavy = rng.random(persona.size) < 0.15
    return centres[persona] + spread * noise, heavy


def targets(rng: np.random.Generator, z: np.ndarray, heavy: np.ndarray) -> pd.DataFrame:
    """The fixed marginals: latent traits to seats, prices, rates and counts."""
    n = len(z)
    wing = np.where(heavy, rng.lognormal(1.0, 0.3, n), 1.0)
    tier = np.searchsorted(PLAN_EDGES, z[:, T["price_tier"]])
    return pd.DataFrame(
        {
            "plan": np.array([p for p, _ in PLANS], dtype=object)[tier],
            "unit_price": np.array([p for _, p in PLANS])[tier] * rng.lognormal(0, 0.08, n),
            "seats": np.ceil(np.exp(1.2 + 0.95 * z[:, T["team_size"]]) * wing).astype(int),
            "p_day": expit(1.3 * z[:, T["engagement"]] + 0.2),
            "adoption": expit(1.2 * z[:, T["adoption"]] + 0.5),
            "api_share": expit(2.0 * z[:, T["automation"]] - 2.5),
            "breadth": 1 + rng.binomial(len(FEATURES) - 2, expit(1.2 * z[:, T["breadth"]])),
            "trend": np.exp(0.45 * z[:, T["momentum"]]),
            "expansions": rng.poisson(0.9 * np.maximum(z[:, T["momentum"]], 0)),
            "contractions": rng.poisson(0.7 * np.maximum(-z[:, T["momentum"]], 0)),
            "p_fail": expit(1.5 * z[:, T["friction"]] - 3.5),
            "p_refund": expit(1.5 * z[:, T["friction"]] - 4.5),
            "tenure": np.clip(np.exp(5.6 + 0.7 * z[:, T["age"]]), 20, 720),
            "intensity": np.exp(1.8 + 0.5 * z[:, T["engagement"]]) * np.sqrt(wing),
        }
    )


def churn_ago(
    rng: np.random.Generator, z: np.ndarray, tenure: np.ndarray, share: float
) -> np.ndarray:
    """Days before the as-of each churner canceled; NaN for customers still subscribed."""
    n = len(z)
    ago = np.full(n, np.nan)
    count = round(share * n)
    if count == 0:
        return ago
    weight = np.exp(0.8 * z[:, T["friction"]] - 0.5 * z[:, T["engagement"]])
    churners = rng.choice(n, count, replace=False, p=weight / weight.sum())
    latest = np.minimum(tenure[churners] - 14, 330)
    ago[churners] = rng.uniform(1, np.maximum(latest, 2))
    return ago


def seat_history(
    rng: np.random.Generator, t: pd.DataFrame, end_ago: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """When each seat change happened (days ago, NaN unused, oldest first) and seats after each.

    ``seats[:, 0]`` is the starting count, ``seats[:, k + 1]`` the count after change ``k``; the
    count after the last real change is the customer's current ``seats``.
    """
    n = len(t)
    kinds = np.zeros((n, MAX_CHANGES))  # +1 expansion, -1 contraction, 0 none
    ups = np.minimum(t["expansions"].to_numpy(), MAX_CHANGES)
    downs = np.minimum(t["contractions"].to_numpy(), MAX_CHANGES - ups)
    slots = np.arange(MAX_CHANGES)
    kinds[slots < ups[:, None]] = 1
    kinds[(slots >= ups[:, None]) & (slots < (ups + downs)[:, None])] = -1
    kinds = rng.permuted(kinds, axis=1)
    earliest = np.minimum(t["tenure"].to_numpy() - 5, 365)
    ago = rng.uniform(
        end_ago[:, None], np.maximum(earliest, end_ago + 1)[:, None], (n, MAX_CHANGES)
    )
    ago = np.where(kinds != 0, ago, np.nan)
    order = np.argsort(-np.nan_to_num(ago, nan=-1), axis=1)
    ago, kinds = np.take_along_axis(ago, order, 1), np.take_along_axis(kinds, order, 1)
    seats = np.empty((n, MAX_CHANGES + 1), dtype=int)
    current = t["seats"].to_numpy().copy()
    last_real = (kinds != 0).sum(axis=1)
    seats[np.arange(n), last_real] = current
    for k in range(MAX_CHANGES - 1, -1, -1):  # walk back from the newest change
        real = k < last_real
        step = np.maximum(1, np.round(0.25 * current)).astype(int)
        before = np.maximum(1, current - kinds[:, k].astype(int) * step)
        current = np.where(real, before, current)
        seats[:, k] = np.where(real, current, seats[:, k])
    for k in range(1, MAX_CHANGES + 1):  # unused slots repeat the last real count
        seats[:, k] = np.where(k > last_real, seats[:, k - 1], seats[:, k])
    return ago, seats


def billing_events(
    rng: np.random.Generator,
    ids: np.ndarray,
    t: pd.DataFrame,
    annual: np.ndarray,
    country: np.ndarray,
    canceled_ago: np.ndarray,
) -> pd.DataFrame:
    end_ago = np.nan_to_num(canceled_ago, nan=0.0)
    change_ago, seats = seat_history(rng, t, end_ago)
    price = t["unit_price"].to_numpy() * np.vectorize(PRICE_LEVEL.get)(country)
    currency = np.vectorize(CURRENCY.get)(country).astype(object)
    interval = np.where(annual, "year", "month").astype(object)
    mrr = np.round(seats * price[:, None], 2)
    start_ago = t["tenure"].to_numpy()
    n = len(t)
    frames = [_subscription(ids, start_ago, "subscription_started", t, seats[:, 0], mrr[:, 0])]
    for k in range(MAX_CHANGES):
        used = ~np.isnan(change_ago[:, k])
        frames.append(
            _subscription(
                ids, change_ago[:, k], "subscription_changed", t, seats[:, k + 1], mrr[:, k + 1]
            )[used]
        )
    churned = ~np.isnan(canceled_ago)
    frames.append(
        _subscription(ids, canceled_ago, "subscription_canceled", t, seats[:, -1], mrr[:, -1])[
            churned
        ]
    )
    billing = pd.concat(frames, ignore_index=True)
    by_customer = pd.Series(np.arange(n), index=ids)
    rows = by_customer[billing["customer_id"]].to_numpy()
    billing["interval"] = interval[rows]
    billing["currency"] = currency[rows]
    billing.loc[
        billing["type"] == "subscription_canceled", ["plan", "interval", "seats", "mrr"]
    ] = None
    billing["seats"] = billing["seats"].astype("Int64")
    money = _money_events(rng, ids, t, annual, currency, start_ago, end_ago, change_ago, mrr)
    return pd.concat([billing, money], ignore_index=True)


def _subscription(
    ids: np.ndarray,
    ago: np.ndarray,
    kind: str,
    t: pd.DataFrame,
    seats: np.ndarray,
    mrr: np.ndarray,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ids,
            "occurred_at": timestamps(np.nan_to_num(ago, nan=0.0)),
            "type": kind,
            "plan": t["plan"].to_numpy(),
            "seats": seats,
            "mrr": mrr,
            "amount": np.nan,
        }
    )


def _money_events(
    rng: np.random.Generator,
    ids: np.ndarray,
    t: pd.DataFrame,
    annual: np.ndarray,
    currency: np.ndarray,
    start_ago: np.ndarray,
    end_ago: np.ndarray,
    change_ago: np.ndarray,
    mrr: np.ndarray,
) -> pd.DataFrame:
    """Invoices every 30 (or 365) days from the start; some fail first and are retried 3 days later."""
    period = np.where(annual, 365.0, 30.0)
    counts = np.floor((start_ago - end_ago) / period).astype(int) + 1
    owner = np.repeat(np.arange(len(ids)), counts)
    index = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    ago = start_ago[owner] - index * period[owner] - 0.01
    level = (change_ago[owner] >= ago[:, None]).sum(axis=1)
    amount = np.round(mrr[owner, level] * np.where(annual[owner], 12, 1), 2)
    failed = (index > 0) & (rng.random(owner.size) < t["p_fail"].to_numpy()[owner])
    refunded = (ago > 6) & (rng.random(owner.size) < t["p_refund"].to_numpy()[owner])
    parts = [
        (owner, ago, "invoice_paid", amount),
        (owner[failed], ago[failed] + 3, "payment_failed", amount[failed]),
        (
            owner[refunded],
            ago[refunded] - 5,
            "refund_issued",
            np.round(amount[refunded] * rng.uniform(0.2, 1, refunded.sum()), 2),
        ),
    ]
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "customer_id": ids[who],
                    "occurred_at": timestamps(when),
                    "type": kind,
                    "amount": value,
                    "currency": currency[who],
                }
            )
            for who, when, kind, value in parts
        ],
        ignore_index=True,
    )


def active_days(rng: np.random.Generator, t: pd.DataFrame, canceled_ago: np.ndarray) -> np.ndarray:
    """``[customer, day]`` activity over the last 90 days (day 0 is the day before the as-of)."""
    days = np.arange(USAGE_DAYS)[None, :]
    root_trend = np.sqrt(t["trend"].to_numpy())[:, None]
    p = t["p_day"].to_numpy()[:, None] * np.where(days < 30, root_trend, 1 / root_trend)
    end = np.nan_to_num(canceled_ago, nan=-1.0)[:, None]
    fading = np.clip((days - end) / 30, 0, 1)  # churners fade over their last 30 days
    p = np.where(np.isnan(canceled_ago)[:, None], p, p * fading)
    alive = (days < t["tenure"].to_numpy()[:, None]) & (days > end)
    return alive & (rng.random(p.shape) < np.clip(p, 0.01, 0.98))


def usage_events(
    rng: np.random.Generator,
    ids: np.ndarray,
    persona: np.ndarray,
    t: pd.DataFrame,
    canceled_ago: np.ndarray,
) -> pd.DataFrame:
    active = active_days(rng, t, canceled_ago)
    who, day = np.nonzero(active)
    users = np.maximum(1, rng.binomial(t["seats"].to_numpy(), t["adoption"].to_numpy()))
    orders = np.array([rng.permutation(len(FEATURES)) for _ in range(persona.max() + 1)])
    pick = (rng.random(who.size) * t["breadth"].to_numpy()[who]).astype(int)
    feature = np.array(FEATURES, dtype=object)[orders[persona[who], pick]]
    human = 1 + rng.poisson(t["intensity"].to_numpy()[who] * np.maximum(1, 0.5 * users[who]))
    share = t["api_share"].to_numpy()[who]
    api = np.round(human * share / (1 - share))
    when = day + rng.uniform(0.05, 0.95, who.size)
    user = rng.integers(0, users[who])
    frames = [
        _usage(ids[who], when, "feature_used", _user_ids(ids[who], user), feature, human),
        _usage(ids[who], when, "api_call", None, None, api)[api > 0],
        _logins(rng, ids, active, users),
    ]
    return pd.concat(frames, ignore_index=True)


def _logins(
    rng: np.random.Generator, ids: np.ndarray, active: np.ndarray, users: np.ndarray
) -> pd.DataFrame:
    """Per user and 30-day block with activity: one row on an active day, counting its logins."""
    who, day = np.nonzero(active)
    block = day // 30
    group = who * 3 + block
    starts = np.searchsorted(group, np.arange(active.shape[0] * 3))
    sizes = np.bincount(group, minlength=active.shape[0] * 3)
    busy = np.nonzero(sizes)[0]
    per_user = np.repeat(busy, users[busy // 3])
    rank = np.arange(per_user.size) - np.repeat(
        np.cumsum(users[busy // 3]) - users[busy // 3], users[busy // 3]
    )
    chosen = starts[per_user] + (rng.random(per_user.size) * sizes[per_user]).astype(int)
    logins = 1 + rng.binomial(sizes[per_user] - 1, 0.6)
    customers = ids[per_user // 3]
    when = day[chosen] + rng.uniform(0.05, 0.95, per_user.size)
    return _usage(customers, when, "login", _user_ids(customers, rank), None, logins)


def _user_ids(customers: np.ndarray, index: np.ndarray) -> np.ndarray:
    return customers + "-u" + pd.Series(index).astype(str).to_numpy(dtype=object)


def _usage(
    customers: np.ndarray,
    day_ago: np.ndarray,
    event: str,
    user: np.ndarray | None,
    feature: np.ndarray | None,
    quantity: np.ndarray,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": customers,
            "occurred_at": timestamps(day_ago),
            "event": event,
            "user_id": user,
            "feature": feature,
            "quantity": np.asarray(quantity, dtype=float),
        }
    )


def generate(spec: CompanySpec, spread: float = WITHIN_PERSONA_SPREAD) -> PlantedCompany:
    """The company of ``spec``; ``spread`` is the within-persona latent standard deviation."""
    rng = np.random.default_rng(spec.seed)
    sizes = persona_sizes(spec.customers, persona_shares(spec.personas, spec.min_share))
    persona = rng.permutation(np.repeat(np.arange(spec.personas), sizes))
    ids = customer_ids(spec.customers, "lat")
    z, heavy = latent_traits(rng, persona_centres(rng, spec.personas, spec.subtle), persona, spread)
    t = targets(rng, z, heavy)
    annual, country = nuisance_attributes(rng, spec.customers, spec.nuisance)
    canceled = churn_ago(rng, z, t["tenure"].to_numpy(), spec.churn_share)
    billing = billing_events(rng, ids, t, annual, country, canceled)
    usage = usage_events(rng, ids, persona, t, canceled)
    truth = pd.DataFrame(
        {
            "customer_id": ids,
            "persona": np.char.add("persona_", persona.astype(str)).astype(object),
            "churned": ~np.isnan(canceled),
            "is_annual_plan": annual,
            "country": country,
        }
    )
    return PlantedCompany(
        with_event_ids(billing, "b", BILLING_COLUMNS),
        with_event_ids(usage, "u", USAGE_COLUMNS),
        truth,
    )


def small_planted_features(customers: int = 600, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """A small planted company (four well-separated personas, no nuisance, no churn) as features.

    Fast (about a second; features computed in memory by the feature store's own SQL), for tests
    such as "an added independent random 0/1 column leaves the segments unchanged". Returns the
    feature table (``customer_id`` plus every registry feature) and the persona per row.
    """
    company = generate(CompanySpec(customers=customers, personas=4, seed=seed), spread=0.2)
    features = compute_customer_features(
        {"billing": company.billing, "usage": company.usage}, parse_as_of(AS_OF)
    )
    truth = features[["customer_id"]].merge(company.truth, on="customer_id", how="left")
    return features, truth["persona"].rename("persona")


def main() -> None:
    write_from_command_line(generate, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
