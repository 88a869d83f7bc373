"""Planted company B: personas as behavioural policies, simulated day by day for two years.

    python bench/agent_company.py --out DIR [--customers 3000] [--personas 6] [--min-share 0.03]
        [--nuisance] [--subtle] [--churn-share 0.1] [--seed 0]

Written for the evaluation only (``bench/eval_generators.py``), independently of
``pipelines/demo_data.py``, ``bench/alt_company.py`` and ``bench/latent_company.py``. Nothing here
sets a feature directly: a persona is a set of habits, and features emerge from running them.

A persona is ten policy knobs, each drawn at random in its range: how large teams start, how fast
they hire, how generously they buy seats, whether they cut unused seats, which plan they buy, how
often each person logs in, whether they work weekends, how much they do per session, how widely
they use the product (a Dirichlet concentration over 14 features), how much runs through the
API, how often their card fails, how old their accounts are, and where engagement drifts. With
``subtle``, each persona copies an earlier one and redraws only two or three knobs.

The simulation walks every day of two years for all customers at once (arrays, one step a day):

- sign-up on the customer's start day (``subscription_started``);
- an invoice every 30 days (365 on an annual plan); a failed charge is retried 3 days later and,
  with churn on, three failures in a row cancel the subscription (involuntary churn);
- a monthly review per account: engagement follows a log AR(1) with the persona's drift; people
  are hired and leave; when people outnumber seats the account buys seats (and may move up a
  plan), a thrifty one cuts unused seats; it cancels with a hazard that rises as engagement
  falls (scaled so that about ``churn_share`` of customers churn);
- in the last 90 days (older usage is not written: no feature reads it) every person logs in
  with their own daily probability times the account's engagement; an account's day of activity
  is written as ``feature_used`` rows (features drawn from the persona's preference), automated
  accounts send a daily ``api_call`` row, and each person's logins are one ``login`` row per
  30-day block with the count in ``quantity``.

Nuisance (when on), drawn independently of persona: annual plan with p=0.3 and a country that sets
currency and regional price level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from planted import (
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

HISTORY_DAYS = 730
USAGE_DAYS = 90
PLAN_LADDER = (("starter", 8.0), ("growth", 20.0), ("business", 40.0), ("enterprise", 75.0))
FEATURES = tuple(f"mod_{i:02d}" for i in range(14))
# Each knob is a position in [0, 1] mapped onto its range (log ranges for sizes and rates).
KNOBS = (
    "team_start",
    "hiring",
    "seat_slack",
    "plan",
    "login_rate",
    "weekend",
    "session_depth",
    "breadth",
    "automation",
    "card_failure",
    "age",
    "drift",
)


def _log_range(u: float, low: float, high: float) -> float:
    return float(np.exp(np.log(low) + u * (np.log(high) - np.log(low))))


@dataclass(frozen=True)
class Policy:
    """A persona's habits, from its knob positions ``u``."""

    u: np.ndarray

    def knob(self, name: str) -> float:
        return float(self.u[KNOBS.index(name)])

    @property
    def team_start(self) -> float:
        return _log_range(self.knob("team_start"), 1.0, 40.0)

    @property
    def hiring(self) -> float:
        return 0.12 * self.knob("hiring") ** 2  # monthly hires per person

    @property
    def seat_slack(self) -> float:
        return 1.0 + 1.2 * self.knob("seat_slack")

    @property
    def plan(self) -> int:
        return min(int(self.knob("plan") * len(PLAN_LADDER)), len(PLAN_LADDER) - 1)

    @property
    def login_rate(self) -> float:
        return _log_range(self.knob("login_rate"), 0.04, 0.85)

    @property
    def weekend(self) -> float:
        return 0.1 + 0.9 * self.knob("weekend")

    @property
    def session_depth(self) -> float:
        return _log_range(self.knob("session_depth"), 2.0, 40.0)

    @property
    def breadth(self) -> float:
        return _log_range(self.knob("breadth"), 0.05, 4.0)

    @property
    def automation(self) -> float:
        u = self.knob("automation")
        return 0.0 if u < 0.6 else _log_range((u - 0.6) / 0.4, 2.0, 300.0)

    @property
    def card_failure(self) -> float:
        return _log_range(self.knob("card_failure"), 0.004, 0.25)

    @property
    def age(self) -> tuple[float, float]:
        """Range of account ages in days."""
        u = self.knob("age")
        return 15 + 500 * u, 60 + 660 * u

    @property
    def drift(self) -> float:
        return 0.25 * (self.knob("drift") - 0.5)  # log engagement per month


def policies(rng: np.random.Generator, personas: int, subtle: bool) -> list[Policy]:
    knobs = np.empty((personas, len(KNOBS)))
    knobs[0] = rng.random(len(KNOBS))
    for i in range(1, personas):
        for attempt in range(5000):
            if subtle:
                candidate = knobs[rng.integers(i)].copy()
                moved = rng.choice(len(KNOBS), rng.integers(2, 4), replace=False)
                candidate[moved] = (candidate[moved] + rng.uniform(0.35, 0.65, moved.size)) % 1
                far = np.abs(knobs[:i] - candidate).max(axis=1).min() > 0.3
            else:
                candidate = rng.random(len(KNOBS))
                far = np.linalg.norm(knobs[:i] - candidate, axis=1).min() > 1.0 - attempt / 10000
            if far:
                break
        knobs[i] = candidate
    return [Policy(u) for u in knobs]


@dataclass
class Accounts:
    """Per-account state, one array entry per customer."""

    persona: np.ndarray
    start: np.ndarray  # day index of the sign-up (0 is HISTORY_DAYS before the as-of)
    annual: np.ndarray
    price_level: np.ndarray
    currency: np.ndarray
    country: np.ndarray
    people: np.ndarray
    pool: np.ndarray  # most people an account can ever have (the user ids that exist)
    seats: np.ndarray
    plan: np.ndarray
    engagement: np.ndarray  # log multiplier of every person's login rate
    alive: np.ndarray
    next_invoice: np.ndarray
    retry_day: np.ndarray
    failures: np.ndarray
    canceled_day: np.ndarray
    rows: list[dict] = field(default_factory=list)

    @property
    def mrr(self) -> np.ndarray:
        unit = np.array([price for _, price in PLAN_LADDER])[self.plan]
        return np.round(self.seats * unit * self.price_level, 2)


def _per_persona(values: list[float], persona: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=float)[persona]


def open_accounts(rng: np.random.Generator, spec: CompanySpec, plans: list[Policy]) -> Accounts:
    sizes = persona_sizes(spec.customers, persona_shares(spec.personas, spec.min_share))
    persona = rng.permutation(np.repeat(np.arange(spec.personas), sizes))
    n = spec.customers
    low = _per_persona([p.age[0] for p in plans], persona)
    high = _per_persona([p.age[1] for p in plans], persona)
    age = rng.uniform(low, high)
    people = 1 + rng.poisson(_per_persona([p.team_start for p in plans], persona) - 1 + 0.01)
    annual, country = nuisance_attributes(rng, n, spec.nuisance)
    slack = _per_persona([p.seat_slack for p in plans], persona)
    return Accounts(
        persona=persona,
        start=(HISTORY_DAYS - np.ceil(age)).astype(int),
        annual=annual,
        price_level=np.vectorize(PRICE_LEVEL.get)(country),
        currency=np.vectorize(CURRENCY.get)(country).astype(object),
        country=country,
        people=people,
        pool=2 * people + 2,
        seats=np.ceil(people * slack).astype(int),
        plan=_per_persona([p.plan for p in plans], persona).astype(int),
        engagement=rng.normal(0, 0.3, n),
        alive=np.zeros(n, dtype=bool),
        next_invoice=np.full(n, -1),
        retry_day=np.full(n, -1),
        failures=np.zeros(n, dtype=int),
        canceled_day=np.full(n, -1),
    )


def _emit(
    a: Accounts, who: np.ndarray, day: int, kind: str, amount: np.ndarray | None = None
) -> None:
    if who.size == 0:
        return
    subscription = kind.startswith("subscription") and kind != "subscription_canceled"
    a.rows.append(
        {
            "who": who,
            "day": np.full(who.size, day),
            "type": kind,
            "plan": a.plan[who].copy() if subscription else None,
            "seats": a.seats[who].copy() if subscription else None,
            "mrr": a.mrr[who] if subscription else None,
            "amount": amount,
        }
    )


def bill(rng: np.random.Generator, a: Accounts, day: int, plans: list[Policy], churn: bool) -> None:
    """Invoices due today, and retries of failed ones."""
    fail_rate = _per_persona([p.card_failure for p in plans], a.persona)
    due = np.nonzero(a.alive & (a.next_invoice == day))[0]
    a.next_invoice[due] += np.where(a.annual[due], 365, 30)
    retry = np.nonzero(a.alive & (a.retry_day == day))[0]
    charged = np.concatenate([due, retry])
    amount = a.mrr[charged] * np.where(a.annual[charged], 12, 1)
    first_invoice = a.start[charged] == day
    fails = ~first_invoice & (
        rng.random(charged.size) < np.where(np.isin(charged, retry), 0.3, fail_rate[charged])
    )
    _emit(a, charged[~fails], day, "invoice_paid", amount[~fails])
    _emit(a, charged[fails], day, "payment_failed", amount[fails])
    a.failures[charged[~fails]] = 0
    a.retry_day[charged[~fails]] = -1
    failed = charged[fails]
    a.failures[failed] += 1
    a.retry_day[failed] = day + 3
    if churn:
        lost = failed[a.failures[failed] >= 3]
        cancel(a, lost, day)
    else:  # without churn the third retry always goes through
        a.failures[failed] = np.minimum(a.failures[failed], 2)
    refunds = charged[~fails][rng.random((~fails).sum()) < 0.3 * fail_rate[charged[~fails]]]
    if refunds.size and day + 4 < HISTORY_DAYS:
        share = rng.uniform(0.2, 1.0, refunds.size)
        _emit(a, refunds, day + 4, "refund_issued", np.round(a.mrr[refunds] * share, 2) + 0.01)


def cancel(a: Accounts, who: np.ndarray, day: int) -> None:
    _emit(a, who, day, "subscription_canceled")
    a.alive[who] = False
    a.canceled_day[who] = day


def review(
    rng: np.random.Generator, a: Accounts, day: int, plans: list[Policy], hazard: float
) -> None:
    """The monthly review of accounts whose sign-up anniversary (mid-month) is today."""
    who = np.nonzero(a.alive & ((day - a.start) % 30 == 15))[0]
    if who.size == 0:
        return
    drift = _per_persona([p.drift for p in plans], a.persona[who])
    a.engagement[who] = 0.8 * a.engagement[who] + drift + rng.normal(0, 0.2, who.size)
    hiring = _per_persona([p.hiring for p in plans], a.persona[who])
    people = (
        a.people[who] + rng.binomial(a.people[who], hiring) - rng.binomial(a.people[who], 0.015)
    )
    a.people[who] = np.clip(people, 1, a.pool[who])
    slack = _per_persona([p.seat_slack for p in plans], a.persona[who])
    thrifty = _per_persona([p.knob("seat_slack") < 0.4 for p in plans], a.persona[who]) > 0
    grow = who[a.people[who] > a.seats[who]]
    shrink = who[thrifty & (a.people[who] < 0.6 * a.seats[who]) & (rng.random(who.size) < 0.3)]
    a.seats[grow] = np.ceil(a.people[grow] * slack[np.isin(who, grow)]).astype(int)
    step_up = grow[rng.random(grow.size) < 0.15]
    a.plan[step_up] = np.minimum(a.plan[step_up] + 1, len(PLAN_LADDER) - 1)
    a.seats[shrink] = np.maximum(a.people[shrink], 1)
    _emit(a, np.concatenate([grow, shrink]), day, "subscription_changed")
    risk = hazard * np.exp(-1.5 * a.engagement[who])
    cancel(a, who[rng.random(who.size) < risk], day)


def monthly_hazard(spec: CompanySpec, a: Accounts) -> float:
    """Base hazard so that about ``churn_share`` of customers cancel over their months."""
    if spec.churn_share <= 0:
        return 0.0
    months = np.maximum((HISTORY_DAYS - a.start) / 30, 1).mean()
    return float(1 - (1 - spec.churn_share) ** (1 / months)) * 0.7


@dataclass
class People:
    """Every person of every account (flattened), for the usage window."""

    owner: np.ndarray
    rank: np.ndarray
    rate: np.ndarray
    logins: np.ndarray  # [person, block] login days
    first_day: np.ndarray  # [person, block] first login day index, -1 none


def people_of(rng: np.random.Generator, a: Accounts, plans: list[Policy]) -> People:
    owner = np.repeat(np.arange(a.pool.size), a.pool)
    rank = np.arange(owner.size) - np.repeat(np.cumsum(a.pool) - a.pool, a.pool)
    mean = _per_persona([p.login_rate for p in plans], a.persona[owner])
    rate = rng.beta(4 * mean / (1 - mean + 1e-9) + 0.2, 4)
    rate = np.clip(rate * mean / rate.mean(), 0, 0.98) if rate.size else rate
    blocks = (USAGE_DAYS + 29) // 30
    return People(
        owner, rank, rate, np.zeros((owner.size, blocks), int), np.full((owner.size, blocks), -1)
    )


def use(
    rng: np.random.Generator,
    a: Accounts,
    p: People,
    day: int,
    plans: list[Policy],
    rows: list[dict],
) -> None:
    """One day of product use, for days inside the usage window."""
    weekday = (day + 3) % 7 < 5  # END is a Wednesday; the exact phase does not matter
    weekend = _per_persona([q.weekend for q in plans], a.persona[p.owner])
    chance = p.rate * np.exp(a.engagement[p.owner]) * (1.0 if weekday else weekend)
    on = a.alive[p.owner] & (p.rank < a.people[p.owner]) & (rng.random(p.owner.size) < chance)
    block = (HISTORY_DAYS - 1 - day) // 30
    first = on & (p.first_day[:, block] < 0)
    p.first_day[first, block] = day
    p.logins[on, block] += 1
    sessions = np.bincount(p.owner[on], minlength=a.pool.size)
    busy = np.nonzero(sessions)[0]
    depth = _per_persona([q.session_depth for q in plans], a.persona[busy])
    actions = 1 + rng.poisson(depth * sessions[busy])
    rows.append(
        {"who": busy, "day": day, "event": "feature_used", "quantity": actions, "n": sessions[busy]}
    )
    volume = _per_persona([q.automation for q in plans], a.persona)
    machines = np.nonzero(a.alive & (volume > 0))[0]
    api = rng.poisson(
        volume[machines] * np.sqrt(a.seats[machines]) * np.exp(0.5 * a.engagement[machines])
    )
    rows.append(
        {"who": machines[api > 0], "day": day, "event": "api_call", "quantity": api[api > 0]}
    )


def simulate(spec: CompanySpec) -> tuple[Accounts, People, list[dict], list[Policy]]:
    rng = np.random.default_rng(spec.seed)
    plans = policies(rng, spec.personas, spec.subtle)
    a = open_accounts(rng, spec, plans)
    hazard = monthly_hazard(spec, a)
    people = people_of(rng, a, plans)
    usage_rows: list[dict] = []
    for day in range(HISTORY_DAYS):
        joining = np.nonzero(a.start == day)[0]
        a.alive[joining] = True
        a.next_invoice[joining] = day
        _emit(a, joining, day, "subscription_started")
        bill(rng, a, day, plans, spec.churn_share > 0)
        review(rng, a, day, plans, hazard)
        if day >= HISTORY_DAYS - USAGE_DAYS:
            use(rng, a, people, day, plans, usage_rows)
    return a, people, usage_rows, plans


def _day_ago(rng: np.random.Generator, day: np.ndarray) -> np.ndarray:
    """Days before the as-of of a moment during working hours of day index ``day``."""
    return HISTORY_DAYS - day - rng.uniform(0.3, 0.8, np.shape(day))


BILLING_ORDER = (
    "subscription_started",
    "invoice_paid",
    "payment_failed",
    "refund_issued",
    "subscription_changed",
    "subscription_canceled",
)


def _stack(rows: list[dict], key: str, fill: float) -> np.ndarray:
    return np.concatenate(
        [
            np.full(r["who"].size, fill, dtype=float)
            if r[key] is None
            else np.asarray(r[key], float)
            for r in rows
        ]
    )


def billing_frame(ids: np.ndarray, a: Accounts) -> pd.DataFrame:
    who = np.concatenate([r["who"] for r in a.rows])
    kind = np.concatenate([np.full(r["who"].size, r["type"], dtype=object) for r in a.rows])
    # Same-day events keep their order: started < invoice < ... < changed < canceled.
    rank = np.concatenate([np.full(r["who"].size, BILLING_ORDER.index(r["type"])) for r in a.rows])
    ago = HISTORY_DAYS - _stack(a.rows, "day", 0) - 0.2 - 0.1 * rank / len(BILLING_ORDER)
    plan = _stack(a.rows, "plan", -1).astype(int)
    priced = plan >= 0
    names = np.array([name for name, _ in PLAN_LADDER], dtype=object)
    return pd.DataFrame(
        {
            "customer_id": ids[who],
            "occurred_at": timestamps(ago),
            "type": kind,
            "plan": np.where(priced, names[plan], None),
            "interval": np.where(priced, np.where(a.annual[who], "year", "month"), None),
            "seats": _stack(a.rows, "seats", np.nan),
            "mrr": _stack(a.rows, "mrr", np.nan),
            "amount": _stack(a.rows, "amount", np.nan),
            "currency": a.currency[who],
        }
    )


def usage_frame(
    rng: np.random.Generator,
    ids: np.ndarray,
    a: Accounts,
    p: People,
    rows: list[dict],
    plans: list[Policy],
) -> pd.DataFrame:
    who = np.concatenate([r["who"] for r in rows])
    day = np.concatenate([np.full(r["who"].size, r["day"]) for r in rows])
    event = np.concatenate([np.full(r["who"].size, r["event"], dtype=object) for r in rows])
    quantity = np.concatenate([r["quantity"] for r in rows]).astype(float)
    human = event == "feature_used"
    preference = [rng.dirichlet(np.full(len(FEATURES), q.breadth)) for q in plans]
    feature = np.full(who.size, None, dtype=object)
    for i, weights in enumerate(preference):
        mine = human & (a.persona[who] == i)
        feature[mine] = np.array(FEATURES, dtype=object)[
            rng.choice(len(FEATURES), mine.sum(), p=weights)
        ]
    # The person behind an account-day's activity: one of the people active in the account.
    user = np.full(who.size, None, dtype=object)
    user[human] = (
        ids[who[human]] + "-p" + rng.integers(0, a.people[who[human]]).astype(str).astype(object)
    )
    person, block = np.nonzero(p.first_day >= 0)
    logins = pd.DataFrame(
        {
            "customer_id": ids[p.owner[person]],
            "occurred_at": timestamps(_day_ago(rng, p.first_day[person, block])),
            "event": "login",
            "user_id": ids[p.owner[person]] + "-p" + p.rank[person].astype(str).astype(object),
            "feature": None,
            "quantity": p.logins[person, block].astype(float),
        }
    )
    activity = pd.DataFrame(
        {
            "customer_id": ids[who],
            "occurred_at": timestamps(_day_ago(rng, day)),
            "event": event,
            "user_id": user,
            "feature": feature,
            "quantity": quantity,
        }
    )
    return pd.concat([activity, logins], ignore_index=True)


def generate(spec: CompanySpec) -> PlantedCompany:
    a, people, usage_rows, plans = simulate(spec)
    rng = np.random.default_rng([spec.seed, 1])
    ids = customer_ids(spec.customers, "agt")
    billing = billing_frame(ids, a)
    usage = usage_frame(rng, ids, a, people, usage_rows, plans)
    truth = pd.DataFrame(
        {
            "customer_id": ids,
            "persona": np.char.add("persona_", a.persona.astype(str)).astype(object),
            "churned": a.canceled_day >= 0,
            "is_annual_plan": a.annual,
            "country": a.country,
        }
    )
    return PlantedCompany(
        with_event_ids(billing, "b", BILLING_COLUMNS),
        with_event_ids(usage, "u", USAGE_COLUMNS),
        truth,
    )


def main() -> None:
    write_from_command_line(generate, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
