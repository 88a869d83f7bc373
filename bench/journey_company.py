"""A planted-persona SaaS company simulated customer journey by customer journey.

    python bench/journey_company.py --out DIR [--customers 3000] [--personas 6] [--min-share 0.03]
                                    [--nuisance] [--subtle] [--churn-share 0.1] [--seed 0]

A third generator for ``bench/eval_generators.py`` (``journey``), written independently of the
other two (``bench/latent_company.py``, ``bench/agent_company.py``) from the events contract
(``docs/contracts/events.md``) and the shared plumbing of ``bench/planted.py`` only, so that the
segmenter is also judged on data whose shape nobody tuned it to.

A persona is a point on twelve behavioural traits, each a level in [0, 1]: price tier, team
size, seat growth direction, how often seats change, weekly share of users active, days a week
an active user works, actions per user-day, breadth of features, API adoption and share, payment
failures, refunds and tenure. Levels are drawn per seed: each persona at random on every trait
but about one in five, left at the company's common level, redrawn until it is far (0.3) from
every earlier persona on at least four traits; with ``--subtle`` each persona after the first
copies an earlier one and moves only two or three (mostly visible) traits, so it differs from
that one in two or three behaviours. A customer is made in five steps:

1. its persona and trait values: the persona's level plus heavy-tailed (Student-t) noise, a
   larger team pulling engagement down; its nuisance attributes (annual plan, country) are drawn
   separately and never look at the persona;
2. its signup, 3 days to 3 years before the end, and, for churners (chosen with persona-dependent
   weights), a cancellation day; a churner with payment trouble may lapse after a failed dunning
   run instead of cancelling by hand;
3. a month-by-month subscription: started at a plan (tier) and a seat count, monthly or yearly
   invoices at the regional price, seat changes and plan moves at its growth traits, failed
   charges retried three, five and seven days later, occasional refunds, a downsize before
   leaving for some churners, then the cancellation;
4. week by week over the last 30 weeks (all of its life if shorter): each licensed seat's user
   is active that week with the customer's probability times the user's own propensity, fading
   to nothing before a churner cancels and ramping up after signup; an active user works a few
   days and leaves pre-aggregated ``feature_used`` rows (one per day for a small team, one per
   week in a large one, whose days other users cover) on features of the customer's repertoire
   and, now and then, a ``login``;
5. integrations of API adopters call the API on some or all days (``api_call`` rows, no user),
   in proportion to the human volume, at the customer's API share.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from planted import (
    BILLING_COLUMNS,
    CURRENCY,
    END,
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

from feature_store.schema import BILLING_TYPES, MONEY_TYPES, SUBSCRIPTION_TYPES

TRAITS = (
    "tier",
    "team",
    "growth",
    "volatility",
    "engagement",
    "cadence",
    "intensity",
    "breadth",
    "api",
    "payment_trouble",
    "refunds",
    "tenure",
)
T = {name: i for i, name in enumerate(TRAITS)}
# How plainly a trait shows in a few months of events: growth direction, seat volatility and
# refunds are seen only through rare events, so a persona told apart by them alone is not fair.
VISIBILITY = np.array([1.0, 1.0, 0.4, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.7, 0.4, 1.0])
FAR = 0.3  # levels this far apart make a trait a real difference between two personas
NOISE_SD = 0.12  # a customer's spread around its persona's level, in level units

TIERS = ("starter", "team", "business", "enterprise")
SEAT_PRICE_USD = np.array([9.0, 19.0, 39.0, 79.0])  # list price per seat and month
ANNUAL_DISCOUNT = 0.85  # a yearly plan costs 12 * 0.85 months
MAX_SEATS = 600
CYCLE = 365.25 / 12  # days in a billing month
MAX_CYCLES = 37  # three years of monthly cycles (signup up to 1,095 days back)
OLDEST = 1095.0
USAGE_WEEKS = 30  # 210 days of usage: the features as of the end and 90 days earlier are complete
RETRY_DAYS = np.array([0.0, 3.0, 5.0, 7.0])  # a charge and its dunning retries
# Rows one active user leaves in a week: up to one a day, but about this many per customer-week
# at most from users of a larger team, whose days the other users cover anyway (volume).
ROWS_PER_TEAM_WEEK = 8
FEATURES = (
    "dashboards",
    "reports",
    "search",
    "sharing",
    "comments",
    "exports",
    "alerts",
    "templates",
    "imports",
    "integrations",
    "automations",
    "workflows",
    "forms",
    "calendar",
    "mobile_app",
    "custom_fields",
    "analytics",
    "permissions",
    "sso",
    "audit_log",
    "webhooks",
    "sandbox",
    "data_warehouse_sync",
    "ai_assistant",
)
# Core features are in almost every repertoire, niche ones in few.
FEATURE_POPULARITY = 1.0 / (1.0 + np.arange(len(FEATURES))) ** 0.8
USAGE_EVENTS = ("login", "feature_used", "api_call")
# Event kinds are codes into the contract's list of billing types (``feature_store.schema``,
# which orders each group as named here).
STARTED, CHANGED, CANCELED = (BILLING_TYPES.index(kind) for kind in SUBSCRIPTION_TYPES)
PAID, FAILED, REFUND = (BILLING_TYPES.index(kind) for kind in MONEY_TYPES)


def lerp(low: float, high: float, z: np.ndarray) -> np.ndarray:
    return low + (high - low) * z


def loglerp(low: float, high: float, z: np.ndarray) -> np.ndarray:
    """Geometric interpolation: rates and sizes are spread on a log scale, as real ones are."""
    return np.exp(lerp(np.log(low), np.log(high), z))


def far_traits(levels: np.ndarray) -> np.ndarray:
    """Per pair of personas, the visibility-weighted number of traits on which they are far."""
    far = np.abs(levels[:, None, :] - levels[None, :, :]) >= FAR
    return (far * VISIBILITY).sum(axis=2)


def distinct_levels(rng: np.random.Generator, personas: int) -> np.ndarray:
    """Personas one by one, each redrawn until it is far from every earlier one on four traits.

    A persona takes a random level on every trait, except about one trait in five that it
    leaves at the company's common level (personas share some habits).
    """
    common = rng.uniform(0.35, 0.65, len(TRAITS))
    levels = np.empty((0, len(TRAITS)))
    for _ in range(personas):
        for _ in range(10_000):
            row = rng.uniform(0.02, 0.98, len(TRAITS))
            shared = rng.random(len(TRAITS)) < 0.2
            row[shared] = common[shared] + rng.uniform(-0.03, 0.03, shared.sum())
            if (far_traits(np.vstack([levels, row]))[-1, :-1] >= 4).all():
                levels = np.vstack([levels, row])
                break
        else:
            raise RuntimeError("no separable personas found")  # not seen for up to 10 personas
    return levels


def subtle_levels(rng: np.random.Generator, personas: int) -> np.ndarray:
    """Each persona an earlier one with two or three traits moved far (a family of variants)."""
    weights = VISIBILITY**2 / (VISIBILITY**2).sum()  # move mostly traits one can see
    for _ in range(1000):
        levels = np.empty((personas, len(TRAITS)))
        levels[0] = rng.uniform(0.05, 0.95, len(TRAITS))
        for p in range(1, personas):
            row = levels[rng.integers(0, p)].copy()
            for t in rng.choice(len(TRAITS), rng.integers(2, 4), replace=False, p=weights):
                shift = rng.uniform(0.35, 0.6)
                options = [v for v in (row[t] + shift, row[t] - shift) if 0.0 <= v <= 1.0]
                row[t] = rng.choice(options) if options else (0.0 if row[t] > 0.5 else 1.0)
            levels[p] = row
        pairs = far_traits(levels)[np.triu_indices(personas, 1)]
        # Two traits, one of them plainly visible: two rarely seen ones alone are not enough.
        if personas < 2 or pairs.min() >= 1.4:
            return levels
    raise RuntimeError("no separable subtle personas found")


def churn_weights(rng: np.random.Generator, levels: np.ndarray) -> np.ndarray:
    """Churn leans on disengaged personas with payment trouble, plus a persona's own luck."""
    trouble = levels[:, T["payment_trouble"]]
    engaged = levels[:, T["engagement"]]
    return rng.lognormal(0.0, 0.7, len(levels)) * (0.4 + trouble) * (1.4 - engaged)


def customer_traits(
    rng: np.random.Generator, levels: np.ndarray, persona: np.ndarray
) -> dict[str, np.ndarray]:
    """Each customer's trait values: its persona's level plus heavy-tailed noise."""
    noise = NOISE_SD * rng.standard_t(4, (len(persona), len(TRAITS))) / np.sqrt(2.0)
    z = levels[persona] + noise
    # Larger teams than their persona's usual have more idle seats.
    z[:, T["engagement"]] -= 0.25 * (z[:, T["team"]] - levels[persona, T["team"]])
    z = np.clip(z, -0.25, 1.25)
    n = len(persona)
    api_adopter = rng.random(n) < np.clip(lerp(0.03, 0.95, z[:, T["api"]]), 0.0, 1.0)
    api_logit = lerp(-3.0, 2.2, z[:, T["api"]]) + rng.normal(0.0, 0.6, n)
    seats = loglerp(1.2, 30.0, z[:, T["team"]]) * rng.lognormal(0.0, 0.4, n)  # a heavy right tail
    breadth = np.rint(lerp(2.0, 18.0, z[:, T["breadth"]]))
    return {
        "tier": np.clip(np.rint(z[:, T["tier"]] * 3), 0, 3).astype(int),
        "seats": np.clip(np.rint(seats), 1, MAX_SEATS).astype(int),
        "p_up": np.clip(lerp(0.1, 0.9, z[:, T["growth"]]), 0.03, 0.97),
        "p_change": np.clip(loglerp(0.02, 0.3, z[:, T["volatility"]]), 0.0, 0.6),
        "p_active": np.clip(lerp(0.06, 0.85, z[:, T["engagement"]]), 0.02, 0.97),
        "cadence": np.clip(lerp(1.0, 4.8, z[:, T["cadence"]]), 1.0, 6.5),
        "intensity": loglerp(1.5, 30.0, z[:, T["intensity"]]) * rng.lognormal(0.0, 0.3, n),
        "breadth": np.clip(breadth, 1, len(FEATURES)).astype(int),
        "api_share": np.where(api_adopter, np.clip(1 / (1 + np.exp(-api_logit)), 0.01, 0.97), 0.0),
        # Share of days an integration runs: heavy API users sync daily, light ones now and then.
        "api_days": np.clip(
            lerp(0.15, 1.0, z[:, T["api"]]) * rng.lognormal(0.0, 0.25, n), 0.05, 1.0
        ),
        "p_fail": np.clip(loglerp(0.004, 0.3, z[:, T["payment_trouble"]]), 0.0, 0.6),
        "p_refund": np.clip(loglerp(0.002, 0.08, z[:, T["refunds"]]), 0.0, 0.3),
        "age": signup_age(rng, loglerp(60.0, 800.0, z[:, T["tenure"]])),
    }


def signup_age(rng: np.random.Generator, median: np.ndarray) -> np.ndarray:
    """Days from signup to the end; the company is three years old, so older ones fold back."""
    age = median * rng.lognormal(0.0, 0.35, len(median))
    too_old = age > OLDEST
    age[too_old] = OLDEST - rng.uniform(0.0, 240.0, too_old.sum())  # the founding cohort
    return np.maximum(age, 3.0) + rng.random(len(median))  # signups at any time of day


def choose_churners(
    rng: np.random.Generator, spec: CompanySpec, persona: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    count = round(spec.churn_share * len(persona))
    churned = np.zeros(len(persona), dtype=bool)
    if count:
        p = weights[persona] * rng.lognormal(0.0, 0.5, len(persona))
        churned[rng.choice(len(persona), count, replace=False, p=p / p.sum())] = True
    return churned


def cancellations(
    rng: np.random.Generator, traits: dict[str, np.ndarray], churned: np.ndarray, annual: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cancellation offsets (days before the end; -1 for none) and who lapsed on a failed charge.

    A churner lived at least 45 days (a younger one's signup moves back: ``traits["age"]`` is
    changed in place); it leaves within its last year. One with payment trouble may instead
    lapse: its last invoice fails three times and the subscription ends eight to fourteen days
    after that invoice was due.
    """
    age = traits["age"]
    short = churned & (age < 45.0)
    age[short] = 45.0 + rng.uniform(0.0, 90.0, short.sum())
    cancel = np.full(len(age), -1.0)
    cancel[churned] = rng.uniform(1.0, np.minimum(age[churned] - 30.0, 365.0))
    last_cycle = np.floor((age - cancel) / CYCLE)
    due = age - last_cycle * CYCLE
    lapse_at = due - rng.uniform(8.0, 14.0, len(age))
    lapsed = (
        churned
        & (rng.random(len(age)) < np.clip(0.15 + 3.0 * traits["p_fail"], 0.0, 0.8))
        & (lapse_at > 0.5)
        & (~annual | (last_cycle % 12 == 0))  # an annual plan is only charged once a year
    )
    cancel[lapsed] = lapse_at[lapsed]
    return cancel, lapsed


class Events:
    """Columns of events collected in pieces, joined once (far cheaper than growing frames)."""

    def __init__(self, **dtypes: str) -> None:
        self.pieces: dict[str, list[np.ndarray]] = {name: [] for name in dtypes}
        self.dtypes = dtypes

    def add(self, keep: np.ndarray | None = None, **columns: np.ndarray | float | int) -> None:
        """Events given column by column (a scalar for all); only rows of ``keep`` if given."""
        if keep is not None:
            columns = {k: v[keep] if np.ndim(v) > 0 else v for k, v in columns.items()}
        size = next(np.size(v) for v in columns.values() if np.ndim(v) > 0)
        for name, dtype in self.dtypes.items():
            value = columns.get(name, -1 if np.dtype(dtype).kind == "i" else np.nan)
            self.pieces[name].append(np.broadcast_to(np.asarray(value, dtype=dtype), size))

    def joined(self) -> dict[str, np.ndarray]:
        """The columns, each freed piece by piece as it is joined (tens of millions of rows)."""
        return {name: np.concatenate(self.pieces.pop(name)) for name in list(self.pieces)}


def monthly_price(
    traits: dict[str, np.ndarray], tier: np.ndarray, seats: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """MRR in the customer's currency: seats at the tier's list price, its discount, its region."""
    return np.round(seats * SEAT_PRICE_USD[tier] * traits["unit"][rows], 2)


def simulate_billing(
    rng: np.random.Generator,
    traits: dict[str, np.ndarray],
    cancel: np.ndarray,
    lapsed: np.ndarray,
    annual: np.ndarray,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Billing events of every customer, and its seat history (for the usage that follows)."""
    n = len(cancel)
    age = traits["age"]
    churned = cancel > 0
    life_end = np.maximum(cancel, 0.0)  # offsets at or below this lie after the customer left
    seats_at = np.zeros((n, MAX_CYCLES), dtype=np.int32)  # at the cycle's start
    seats_after = np.zeros((n, MAX_CYCLES), dtype=np.int32)  # after its change, if any
    change_day = np.full((n, MAX_CYCLES), np.inf)  # days into the cycle of its change
    seats = traits["seats"].copy()
    tier = traits["tier"].copy()
    rows = np.arange(n)
    events = Events(cust="i4", off="f8", kind="i1", tier="i1", seats="i4", mrr="f8", amount="f8")
    mrr = monthly_price(traits, tier, seats, rows)
    events.add(cust=rows, off=age, kind=STARTED, tier=tier, seats=seats, mrr=mrr)
    downsize = churned & (rng.random(n) < 0.4)  # some churners cut seats in their last month
    for k in range(MAX_CYCLES):
        due = age - k * CYCLE
        alive = due > life_end
        if not alive.any():
            break
        seats_at[:, k] = seats
        # Charges: monthly every cycle, yearly every twelfth; failures are retried.
        charged = alive & (~annual | (k % 12 == 0))
        amount = np.round(np.where(annual, mrr * 12, mrr), 2)
        failures = np.where(
            rng.random(n) < traits["p_fail"],
            1
            + (rng.random(n) < traits["retry_fail"]) * (1 + (rng.random(n) < traits["retry_fail"])),
            0,
        )
        last_charge = lapsed & (np.floor((age - cancel) / CYCLE) == k)
        failures[last_charge] = 3
        for attempt in range(3):
            when = due - RETRY_DAYS[attempt] - rng.uniform(0.0, 0.2, n)
            failed = charged & (failures > attempt) & (when > life_end)
            events.add(cust=rows[failed], off=when[failed], kind=FAILED, amount=amount[failed])
        paid = charged & ~last_charge
        paid_at = due - RETRY_DAYS[failures] - rng.uniform(0.0, 0.2, n)
        paid &= paid_at > life_end
        events.add(cust=rows[paid], off=paid_at[paid], kind=PAID, amount=amount[paid])
        refunded = paid & (rng.random(n) < traits["p_refund"])
        share = np.where(rng.random(n) < 0.35, 1.0, rng.uniform(0.1, 0.6, n))
        events.add(
            cust=rows[refunded],
            off=paid_at[refunded] - rng.uniform(1.0, 20.0, refunded.sum()),
            kind=REFUND,
            amount=np.maximum(np.round(amount * share, 2), 0.01)[refunded],
        )
        # A change some time into the cycle: seats, sometimes the plan, in the growth direction.
        day = rng.uniform(2.0, 27.0, n)
        up = rng.random(n) < traits["p_up"]
        step = np.maximum(1, np.rint(seats * rng.lognormal(np.log(0.15), 0.6, n))).astype(int)
        move_seats = (k > 0) & (rng.random(n) < traits["p_change"])
        move_tier = (k > 0) & (rng.random(n) < 0.25 * traits["p_change"])
        leaving = downsize & (due - cancel >= 12.0) & (due - cancel < 42.0)  # one cycle at most
        new_seats = np.where(move_seats, np.where(up, seats + step, seats - step), seats)
        new_seats = np.where(leaving, seats - step, new_seats)
        new_seats = np.clip(new_seats, 1, MAX_SEATS)
        new_tier = np.where(move_tier, np.clip(tier + np.where(up, 1, -1), 0, 3), tier)
        new_mrr = monthly_price(traits, new_tier, new_seats, rows)
        changed = alive & (due - day > life_end) & (new_mrr != mrr)
        events.add(
            cust=rows[changed],
            off=(due - day)[changed],
            kind=CHANGED,
            tier=new_tier[changed],
            seats=new_seats[changed],
            mrr=new_mrr[changed],
        )
        # An annual customer pays the rest of its year's difference when it expands.
        months_left = 12 - (k % 12) - day / CYCLE
        prorated = changed & annual & (new_mrr > mrr)
        events.add(
            cust=rows[prorated],
            off=(due - day - 0.01)[prorated],
            kind=PAID,
            amount=np.round((new_mrr - mrr) * months_left, 2)[prorated],
        )
        seats = np.where(changed, new_seats, seats)
        tier = np.where(changed, new_tier, tier)
        mrr = np.where(changed, new_mrr, mrr)
        seats_after[:, k] = seats
        change_day[changed, k] = day[changed]
        if k + 1 < MAX_CYCLES:
            seats_at[:, k + 1] = seats  # customers that left keep their last count (unused)
    # The cancellation: MRR and seats 0 (the contract's "after the event"), plan and interval kept.
    events.add(
        cust=rows[churned],
        off=cancel[churned],
        kind=CANCELED,
        tier=final_tier(events, churned, traits["tier"]),
        seats=0,
        mrr=0.0,
    )
    history = {"seats_at": seats_at, "seats_after": seats_after, "change_day": change_day}
    return events.joined(), history


def final_tier(events: Events, churned: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The plan each churner was on when it left: its latest plan change, else its first plan."""
    cols = {name: np.concatenate(parts) for name, parts in events.pieces.items()}
    tier = first.copy()
    moves = np.flatnonzero(cols["kind"] == CHANGED)
    order = moves[np.argsort(-cols["off"][moves], kind="stable")]  # oldest first, latest wins
    tier[cols["cust"][order]] = cols["tier"][order]
    return tier[churned]


def seats_on(history: dict[str, np.ndarray], age: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Licensed seats of every customer at ``offset`` days before the end (per customer)."""
    into = age - offset
    k = np.clip(np.floor(into / CYCLE).astype(int), 0, MAX_CYCLES - 1)
    day = into - k * CYCLE
    pick = np.arange(len(age))
    after = day >= history["change_day"][pick, k]
    return np.where(after, history["seats_after"][pick, k], history["seats_at"][pick, k])


def simulate_usage(
    rng: np.random.Generator,
    traits: dict[str, np.ndarray],
    cancel: np.ndarray,
    history: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Usage rows of the last ``USAGE_WEEKS`` weeks, with each user slot's customer and number."""
    n = len(cancel)
    age = traits["age"]
    churned = cancel > 0
    life_end = np.maximum(cancel, 0.0)
    fade_days = rng.uniform(30.0, 100.0, n)  # how long a churner's usage winds down
    weeks = np.arange(USAGE_WEEKS)
    mids = 7.0 * weeks + 3.5
    seats_by_week = np.stack([seats_on(history, age, np.full(n, m)) for m in mids], axis=1)
    alive_by_week = (7.0 * weeks[None, :] < age[:, None]) & (
        7.0 * weeks[None, :] + 7.0 > life_end[:, None]
    )
    slots = np.where(alive_by_week, seats_by_week, 0).max(axis=1)
    slot_cust = np.repeat(np.arange(n, dtype=np.int32), slots)
    slot_number = np.arange(len(slot_cust)) - np.repeat(np.cumsum(slots) - slots, slots)
    # Users differ: a few power users, many occasional ones, some seats nobody really uses.
    slot_pull = rng.gamma(1.5, 1 / 1.5, len(slot_cust))
    slot_days = rng.lognormal(0.0, 0.3, len(slot_cust))
    slot_depth = rng.lognormal(0.0, 0.6, len(slot_cust))
    # A customer's repertoire: its breadth of features, popular ones first more likely.
    keys = np.log(FEATURE_POPULARITY) + rng.gumbel(size=(n, len(FEATURES)))
    repertoire = np.argsort(-keys, axis=1).astype(np.int8)
    rows = Events(cust="i4", off="f8", event="i1", user="i4", feature="i1", qty="f8")

    def lived(cust: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Rows the customer was there for: after its signup, before it left."""
        return (offset > life_end[cust]) & (offset < age[cust])

    for w in weeks:
        offsets = 7.0 * w + np.arange(7)  # each day's start, counted back from the end
        weekday = (END.weekday() - offsets.astype(int) - 1) % 7
        day_weight = np.where(weekday >= 5, 0.25, 1.0)
        mid = mids[w]
        fade = np.where(churned, np.clip((mid - cancel) / fade_days, 0.0, 1.0) ** 1.3, 1.0)
        ramp = np.clip(0.3 + 0.7 * (age - mid) / 35.0, 0.3, 1.0)
        pull = fade * ramp * rng.lognormal(0.0, 0.2, n) * alive_by_week[:, w]
        # Who of the licensed users is active this week.
        seated = slot_number < seats_by_week[slot_cust, w]
        p = np.minimum(traits["p_active"][slot_cust] * slot_pull * pull[slot_cust], 0.97)
        active = np.flatnonzero(seated & (rng.random(len(slot_cust)) < p))
        cust = slot_cust[active]
        team = np.bincount(cust, minlength=n)
        vigour = np.sqrt(pull[cust])
        days_p = (traits["cadence"][cust] * slot_days[active] * vigour - 1.0) / 6.0
        days = 1 + rng.binomial(6, np.clip(days_p, 0.0, 1.0))
        per_user = np.minimum(days, np.maximum(1, np.ceil(ROWS_PER_TEAM_WEEK / team[cust])))
        per_user = per_user.astype(int)
        # Distinct days for a user's rows, weekdays likelier (Gumbel top-k).
        day_keys = np.log(day_weight) + rng.gumbel(size=(len(active), 7))
        day_order = np.argsort(-day_keys, axis=1)
        user_row = np.repeat(np.arange(len(active)), per_user)
        nth = np.arange(len(user_row)) - np.repeat(np.cumsum(per_user) - per_user, per_user)
        row_cust = cust[user_row]
        row_day = day_order[user_row, nth]
        pick = np.floor(traits["breadth"][row_cust] * rng.random(len(user_row)) ** 1.7)
        feature = repertoire[
            row_cust, np.minimum(pick, traits["breadth"][row_cust] - 1).astype(int)
        ]
        actions = (
            (days / per_user)[user_row]
            * traits["intensity"][row_cust]
            * slot_depth[active][user_row]
            * vigour[user_row]
            * rng.lognormal(0.0, 0.4, len(user_row))
        )
        when = office_hours(rng, offsets[row_day])
        rows.add(
            lived(row_cust, when),
            cust=row_cust,
            off=when,
            event=1,
            user=active[user_row],
            feature=feature,
            qty=np.maximum(1.0, np.rint(actions)),
        )
        # Sessions outlive a day: a user logs in now and then, more often the more days it works.
        logs_in = rng.random(len(active)) < np.clip(0.15 + 0.1 * days, 0.0, 0.8)
        when = office_hours(rng, offsets[day_order[logs_in, 0]])
        rows.add(
            lived(cust[logs_in], when),
            cust=cust[logs_in],
            off=when,
            event=0,
            user=active[logs_in],
            qty=(1 + rng.binomial(days[logs_in] - 1, 0.3)).astype(float),
        )
        # Integrations: API volume in proportion to the human volume the customer would have.
        human = (
            np.minimum(seats_by_week[:, w], slots)
            * traits["p_active"]
            * traits["cadence"]
            * traits["intensity"]
            * pull
        )
        share = traits["api_share"]
        weekly_api = human * share / (1.0 - share) * rng.lognormal(0.0, 0.3, n)
        runs = (rng.random((n, 7)) < (traits["api_days"] * np.sqrt(pull))[:, None]) & (
            share[:, None] > 0
        )
        api_cust, api_day = np.nonzero(runs)
        per_run = weekly_api / np.maximum(runs.sum(axis=1), 1)
        when = offsets[api_day] + rng.random(len(api_cust))  # machines run around the clock
        rows.add(
            lived(api_cust, when),
            cust=api_cust,
            off=when,
            event=2,
            qty=np.maximum(
                1.0, np.rint(per_run[api_cust] * rng.lognormal(0.0, 0.3, len(api_cust)))
            ),
        )
    return rows.joined(), slot_cust, slot_number


def office_hours(rng: np.random.Generator, day_start: np.ndarray) -> np.ndarray:
    """Offsets within the given days, mostly in working hours (UTC, close enough here)."""
    hour = np.clip(rng.normal(14.0, 3.5, len(day_start)), 0.05, 23.95)
    return day_start + 1.0 - hour / 24.0


def billing_frame(
    events: dict[str, np.ndarray], ids: np.ndarray, annual: np.ndarray, currency: np.ndarray
) -> pd.DataFrame:
    keep = events["off"] > 0  # a refund after the end has not happened yet
    e = {name: column[keep] for name, column in events.items()}
    cust = e["cust"]
    subscription = np.isin(e["kind"], (STARTED, CHANGED, CANCELED))
    interval = np.where(annual[cust], "year", "month")
    frame = pd.DataFrame(
        {
            "customer_id": ids[cust],
            "occurred_at": timestamps(e["off"]),
            "type": np.asarray(BILLING_TYPES, dtype=object)[e["kind"]],
            "plan": np.where(subscription, np.asarray(TIERS, dtype=object)[e["tier"]], None),
            "interval": np.where(subscription, interval, None),
            "seats": np.where(subscription, e["seats"], np.nan),
            "mrr": np.where(subscription, e["mrr"], np.nan),
            "amount": np.where(subscription, np.nan, e["amount"]),
            "currency": currency[cust],
        }
    )
    return with_event_ids(frame, "jb", BILLING_COLUMNS)


def usage_frame(
    usage: dict[str, np.ndarray], slot_cust: np.ndarray, slot_number: np.ndarray, ids: np.ndarray
) -> pd.DataFrame:
    """The usage table; ``usage`` is emptied on the way, each column freed once it is used."""
    # Categoricals keep 100,000 customers' tens of millions of rows within a few GB.
    users = pd.Series(ids[slot_cust]) + "-u" + pd.Series(slot_number).astype(str)
    frame = pd.DataFrame(
        {
            "customer_id": pd.Categorical.from_codes(usage.pop("cust"), categories=ids),
            "occurred_at": timestamps(usage.pop("off")),
            "event": pd.Categorical.from_codes(usage.pop("event"), categories=USAGE_EVENTS),
            "user_id": pd.Categorical.from_codes(usage.pop("user"), categories=users.to_numpy()),
            "feature": pd.Categorical.from_codes(usage.pop("feature"), categories=FEATURES),
            "quantity": usage.pop("qty"),
        }
    )
    return with_event_ids(frame, "ju", USAGE_COLUMNS)


def generate(spec: CompanySpec) -> PlantedCompany:
    """A planted company for ``spec``; the same spec gives the same company."""
    if not 1 <= spec.personas <= len(TRAITS) * 2:
        raise ValueError(f"personas must be 1..{len(TRAITS) * 2}, not {spec.personas}")
    design, people, money, activity, nuisance = (
        np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(5)
    )
    levels = (subtle_levels if spec.subtle else distinct_levels)(design, spec.personas)
    weights = churn_weights(design, levels)
    n = spec.customers
    sizes = persona_sizes(n, persona_shares(spec.personas, spec.min_share))
    persona = people.permutation(np.repeat(np.arange(spec.personas), sizes))
    # Nuisance from its own stream, after the personas are fixed and without looking at them.
    annual, country = nuisance_attributes(nuisance, n, spec.nuisance)
    traits = customer_traits(people, levels, persona)
    # Negotiated discounts, bigger for bigger teams; regional list prices; yearly plans cheaper.
    discount = 1.0 - people.beta(1.2, 8.0, n) * np.clip(np.log10(traits["seats"]) / 2, 0.2, 1.0)
    regional = np.array([PRICE_LEVEL[c] for c in country])
    traits["unit"] = discount * regional * np.where(annual, ANNUAL_DISCOUNT, 1.0)
    traits["retry_fail"] = np.clip(0.3 + 1.5 * traits["p_fail"], 0.0, 0.85)
    churned = choose_churners(people, spec, persona, weights)
    cancel, lapsed = cancellations(people, traits, churned, annual)
    billing_events, history = simulate_billing(money, traits, cancel, lapsed, annual)
    ids = customer_ids(n, "jc")
    currency = np.array([CURRENCY[c] for c in country], dtype=object)
    truth = pd.DataFrame(
        {
            "customer_id": ids,
            "persona": [f"persona_{p}" for p in persona],
            "churned": churned,
            "is_annual_plan": annual,
            "country": country,
        }
    )
    return PlantedCompany(
        billing=billing_frame(billing_events, ids, annual, currency),
        usage=usage_frame(*simulate_usage(activity, traits, cancel, history), ids),
        truth=truth,
    )


if __name__ == "__main__":
    write_from_command_line(generate, __doc__.splitlines()[0])
