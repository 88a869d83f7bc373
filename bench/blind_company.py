"""A synthetic B2B SaaS company written blind: from how customers of such a business behave.

The company, "Trellis", sells a work-management product (tasks, boards, docs, client portal,
automations, an API) per seat on four self-serve/sales plans plus an API platform plan, and has
about 18 months of history ending at ``planted.END``. Customers sign up over that time (more of
them recently: the company is growing), most after a 14-day trial, and each pays monthly or, with
nuisance on, yearly at two months free. Billing follows what a Stripe-like system records
(``docs/contracts/events.md``): a start, seat and plan changes with the new MRR, invoices paid,
failed charges and their retries (smart retries at +3, +5, +8 days, then a card update), refunds,
and cancellations. Usage is what a product-analytics export records as daily aggregates: one row
per person, day, activity and feature, with ``quantity`` the count, plus ``api_call`` rows from
service users (and API keys that belong to no user).

Personas (``ARCHETYPES``; a company with N personas uses the first N; the first ones are the most
common kinds of customer, so a geometric ``min_share`` makes the rare kinds the small ones):

0. ``growing_team``: a startup team that adopted the product bottom-up; 2-10 seats on Team, adds
   seats every couple of months and moves to Business as it grows; core collaboration features,
   a light integration for some; company cards fail now and then; some get the startup deal (half
   price for the first year).
1. ``solo_bargain``: a freelancer or consultant on Starter with one seat, evenings and weekends,
   few features (tasks, docs, calendar, mobile), sporadic; asks for refunds and cancels readily.
2. ``enterprise_rollout``: a large department or company on Enterprise (negotiated discount),
   20 to a few hundred seats added in true-ups as the rollout spreads, slow onboarding, half the
   seats rarely used, a few admins doing SSO, user admin and audit, managers on dashboards;
   weekday office hours; always pays.
3. ``agency_studio``: an agency running many client projects on Team/Business (3-16 seats):
   seats go up and down with contractors, many projects and uploads, time tracking, templates,
   a client portal with rotating guest users; some weekend crunch.
4. ``dormant_payer``: converted after an enthusiastic trial and barely used since (a person
   checks in a few times a month, often not at all), keeps paying by autopay; sometimes a
   forgotten integration still syncs.
5. ``integration_pipeline``: the product as a system of record fed by the customer's own software:
   API platform plan, few seats, traffic mostly ``api_call`` from service users around the clock,
   every day, growing with their business; a few developers look at dashboards.
6. ``dunning_prone``: an ordinary small team whose card fails often (limits, expiries): charges
   paid after retries or a card update, refunds for double charges.
7. ``seasonal_cohort``: schools, tax preparers, retailers, event organisers: busy a few months a
   year and nearly idle otherwise, dropping seats off season (monthly payers) and adding them back.
8. ``regulated_compliance``: a finance, health or legal team on Business/Enterprise with 5-30
   stable seats: forms, reports, data exports, audit log and permissions; strictly weekday
   office hours.
9. ``downsizing_account``: a team cutting back: seats removed step by step, Business to Team,
   activity falling, refunds for removed seats; churns more than most.

Each persona is a distribution: customers draw their own seats, engagement, feature mix (a
Dirichlet around the persona's), weekend habit, payment reliability and so on (lognormal or beta
spread), and their people differ again (a few power users, many light ones). With ``subtle`` the
personas form a chain: persona i is persona i-1 with only the two or three behaviours of its
``signature`` (``BEHAVIOURS``) taken from its own archetype.

Nuisance (drawn without looking at persona): about 30% pay yearly; a country sets the currency,
a regional list price and the time zone the activity happens in. Without nuisance, everyone pays
monthly in USD from the US. Churners (``churn_share``, picked with a persona-dependent propensity)
fade out over their last weeks, often export their data, cancel, and use nothing afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from planted import (
    BILLING_COLUMNS,
    DAY_US,
    END,
    USAGE_COLUMNS,
    CompanySpec,
    PlantedCompany,
    customer_ids,
    persona_shares,
    persona_sizes,
    timestamps,
    with_event_ids,
    write_from_command_line,
)

Array = np.ndarray

# ---------------------------------------------------------------------------------------------
# Calendar: day index 0 is the first day of history; continuous times are days since then.
HISTORY_DAYS = 548  # 18 months
MONTH = 30.4375  # an average calendar month; billing periods are this long
PERIODS = 19  # billing periods that fit into the history
_START = np.datetime64(END, "D") - np.timedelta64(HISTORY_DAYS, "D")
_DAYS = _START + np.arange(HISTORY_DAYS + 2)
WEEKDAY = ((_DAYS.astype("int64") + 3) % 7).astype(np.int8)  # 0 is Monday
CAL_MONTH = (_DAYS.astype("datetime64[M]").astype("int64") % 12).astype(np.int8)  # 0 is January
_DAY_OF_MONTH = (_DAYS - _DAYS.astype("datetime64[M]")).astype("int64") + 1
# Everyone works less over the year-end holidays and (Europe above all) in August.
HOLIDAY = np.where(
    ((CAL_MONTH == 11) & (_DAY_OF_MONTH >= 22)) | ((CAL_MONTH == 0) & (_DAY_OF_MONTH <= 2)),
    0.45,
    np.where(CAL_MONTH == 7, 0.85, 1.0),
)
# List prices went up 8% for customers signing up from mid-January 2026; older ones keep theirs.
PRICE_RISE_DAY = float((np.datetime64("2026-01-15") - _START).astype("int64"))

# ---------------------------------------------------------------------------------------------
# Plans: per-seat list prices in USD per month, and the seats each plan allows.
PLANS = ("starter", "team", "business", "enterprise", "api_platform")
SEAT_PRICE_USD = np.array([9.0, 19.0, 34.0, 52.0, 18.0])
API_BASE_USD = 240.0  # the API platform plan: a base fee including three seats, then per seat
API_INCLUDED_SEATS = 3
PLAN_MIN = np.array([1, 2, 5, 20, 1])
PLAN_MAX = np.array([5, 75, 5000, 100_000, 50])
API_PLAN = 4  # not on the starter -> enterprise ladder
ANNUAL_MONTHS_PAID = 10  # a yearly plan costs ten months

# Countries (nuisance): currency, local list price of one USD of price (purchasing-power
# discounts for IN, BR, MX), UTC offset of office hours, share of customers, money decimals.
COUNTRIES = ("US", "CA", "GB", "DE", "NL", "SE", "AU", "JP", "IN", "BR", "MX")
CURRENCY = ("USD", "CAD", "GBP", "EUR", "EUR", "SEK", "AUD", "JPY", "INR", "BRL", "MXN")
PRICE_LEVEL = np.array([1.0, 1.35, 0.79, 0.93, 0.93, 10.0, 1.45, 150.0, 40.0, 3.0, 10.0])
UTC_OFFSET = np.array([-6.0, -5.0, 0.0, 1.0, 1.0, 1.0, 10.0, 9.0, 5.5, -3.0, -6.0])
COUNTRY_SHARE = np.array([0.38, 0.06, 0.11, 0.10, 0.04, 0.04, 0.06, 0.05, 0.08, 0.05, 0.03])
DECIMALS = np.array([2, 2, 2, 2, 2, 2, 2, 0, 2, 2, 2])
ANNUAL_SHARE = 0.3

# Product vocabulary.
FEATURES = (
    "tasks",
    "boards",
    "docs",
    "comments",
    "files",
    "calendar",
    "time_tracking",
    "reports",
    "dashboards",
    "automations",
    "forms",
    "templates",
    "client_portal",
    "guest_access",
    "data_export",
    "integrations",
    "mobile",
    "search",
)
ADMIN_FEATURES = ("user_admin", "sso_admin", "audit_log", "permissions", "billing_settings")
ENDPOINTS = ("tasks", "boards", "docs", "files", "webhooks", "reports", "users")
# What a client (guest user) does in an agency's portal.
GUEST_FEATURES = {"client_portal": 4.0, "comments": 3.0, "files": 3.0, "docs": 1.0, "boards": 1.0}
# Free-form product events, each with the feature it belongs to.
FREEFORM = (
    ("project_created", "boards"),
    ("file_uploaded", "files"),
    ("report_exported", "reports"),
)
EVENTS = ("login", "feature_used", "api_call", "user_invited", *(e for e, _ in FREEFORM))
ALL_FEATURES = tuple(dict.fromkeys(FEATURES + ADMIN_FEATURES + ENDPOINTS))
_FEATURE_CODE = {name: code for code, name in enumerate(ALL_FEATURES)}
_EVENT_CODE = {name: code for code, name in enumerate(EVENTS)}
SEASONS = (  # calendar months (0 = January) in which a seasonal business is busy
    (8, 9, 10, 11, 0, 1, 2, 3, 4),  # schools: idle over the summer
    (0, 1, 2, 3),  # tax preparers
    (9, 10, 11),  # retail: the holiday quarter
    (2, 3, 4, 5, 8, 9, 10),  # events: spring and autumn
    (4, 5, 6, 7, 8),  # summer businesses: tourism, landscaping
)


# What a collaborating team uses, by weight (the default feature mix).
TEAM_FEATURES = {
    "tasks": 5.0,
    "boards": 4.0,
    "docs": 3.0,
    "comments": 4.0,
    "files": 2.0,
    "calendar": 1.5,
    "automations": 1.0,
    "templates": 1.0,
    "integrations": 1.0,
    "reports": 0.7,
    "dashboards": 0.7,
    "mobile": 1.2,
    "search": 1.5,
    "forms": 0.5,
    "time_tracking": 0.5,
}


@dataclass(frozen=True)
class Persona:
    """How one kind of customer behaves; customers draw their own values around these."""

    name: str
    about: str
    signature: tuple[str, ...] = ()  # the behaviours (``BEHAVIOURS``) that set it apart
    # plan and price
    plan_weights: tuple[float, ...] = (0.2, 0.7, 0.1, 0.0, 0.0)  # over PLANS
    negotiated: float = 0.0  # share with a sales discount
    discount_range: tuple[float, float] = (0.1, 0.3)
    startup_deal: float = 0.0  # share with half price for the first year
    # team size
    seats_median: float = 4.0
    seats_sigma: float = 0.5
    active_share: float = 0.75  # mean share of seats in use in a month (beta)
    active_share_k: float = 8.0  # beta concentration: higher is less spread between customers
    # how seats and plans move
    seat_drift: float = 0.01  # monthly log growth of the seats wanted
    seat_drift_sd: float = 0.015
    seat_review: float = 0.15  # chance per month that seats are brought to what is wanted
    seat_noise: float = 0.05  # monthly wobble of the seats wanted (log sd)
    upgrade: float = 0.005  # chance per month of moving up a plan
    downgrade: float = 0.005
    # how people use it
    days_per_month: float = 6.0  # active days of a typical person (DAU/MAU near 25%)
    days_sigma: float = 0.4  # spread between customers
    user_sigma: float = 0.6  # spread between people of one customer
    actions: float = 5.0  # feature actions per active day
    login_prob: float = 0.25  # chance an active day starts with a recorded login (sessions persist)
    features: Mapping[str, float] = field(default_factory=lambda: dict(TEAM_FEATURES))
    breadth: float = 0.3  # extra distinct features touched on an active day
    feature_focus: float = 25.0  # Dirichlet concentration: lower is more varied customers
    project_rate: float = 0.03  # free-form events per active day
    file_rate: float = 0.04
    export_rate: float = 0.01
    guests: float = 0.2  # guest users (clients) active in a month
    admins: int = 1
    admin_rate: float = 0.03  # chance an admin does admin work on an active day
    admin_weights: Mapping[str, float] = field(
        default_factory=lambda: {"user_admin": 4.0, "permissions": 1.0, "billing_settings": 2.0}
    )
    weekend: float = 0.2  # weekend activity relative to a weekday
    weekend_sigma: float = 0.4
    evening: float = 0.12  # share of active days spent in the evening
    usage_trend: float = 0.0  # monthly log trend of activity
    usage_trend_sd: float = 0.02
    # seasonality
    season_off: float = 1.0  # activity outside the busy months (1: no season)
    season_seats: float = 1.0  # share of seats kept outside the busy months
    # API traffic
    api_prob: float = 0.2  # share of customers with an integration
    service_users: float = 1.0
    api_calls: float = 40.0  # calls per service user per active day
    api_sigma: float = 0.8
    api_days: float = 0.6
    api_weekend: float = 0.3
    api_anonymous: float = 0.0  # share of API rows from keys that name no user
    api_growth: float = 0.0  # monthly log growth of calls
    api_endpoints: Mapping[str, float] = field(
        default_factory=lambda: {"tasks": 3.0, "boards": 1.0, "webhooks": 2.0, "users": 0.5}
    )
    # payments
    fail: float = 0.03  # chance a charge fails the first time
    fail_k: float = 20.0
    retry: float = 0.55  # chance a retry succeeds
    refund: float = 0.01  # chance an invoice is (partly) refunded
    # life cycle
    age_shape: tuple[float, float] = (1.0, 1.3)  # beta of how long ago they signed up
    churn_weight: float = 1.0
    trial_days: float = 14.0
    trial_boost: float = 1.0  # activity during the trial relative to afterwards
    onboarding_days: float = 14.0


# Behaviours, as groups of persona settings, for the ``subtle`` chain.
BEHAVIOURS: dict[str, tuple[str, ...]] = {
    "plan": ("plan_weights", "negotiated", "discount_range", "startup_deal"),
    "team_size": ("seats_median", "seats_sigma", "active_share", "active_share_k"),
    "seat_moves": (
        "seat_drift",
        "seat_drift_sd",
        "seat_review",
        "seat_noise",
        "upgrade",
        "downgrade",
    ),
    "engagement": ("days_per_month", "days_sigma", "actions", "login_prob"),
    "feature_mix": ("features", "breadth", "feature_focus"),
    "projects": ("project_rate", "file_rate", "export_rate", "guests"),
    "admin": ("admins", "admin_rate", "admin_weights"),
    "rhythm": ("weekend", "weekend_sigma", "evening"),
    "trend": ("usage_trend", "usage_trend_sd"),
    "season": ("season_off", "season_seats"),
    "api": (
        "api_prob",
        "service_users",
        "api_calls",
        "api_sigma",
        "api_days",
        "api_weekend",
        "api_anonymous",
        "api_growth",
        "api_endpoints",
    ),
    "payments": ("fail", "fail_k", "retry"),
    "refunds": ("refund",),
}

ARCHETYPES: tuple[Persona, ...] = (
    Persona(
        "growing_team",
        "startup team growing its seats on Team, moving up to Business",
        plan_weights=(0.15, 0.75, 0.10, 0.0, 0.0),
        startup_deal=0.25,
        seats_median=5.0,
        active_share=0.8,
        seat_drift=0.045,
        seat_drift_sd=0.03,
        seat_review=0.35,
        upgrade=0.03,
        downgrade=0.003,
        days_per_month=7.0,
        days_sigma=0.35,
        actions=6.0,
        features=TEAM_FEATURES,
        breadth=0.5,
        project_rate=0.04,
        file_rate=0.06,
        guests=0.3,
        weekend=0.25,
        usage_trend=0.01,
        api_prob=0.3,
        fail=0.05,
        age_shape=(1.0, 1.5),
    ),
    Persona(
        "solo_bargain",
        "price-sensitive freelancer on Starter, one seat, evenings and weekends",
        signature=("plan", "team_size", "rhythm"),
        plan_weights=(0.9, 0.1, 0.0, 0.0, 0.0),
        seats_median=1.0,
        seats_sigma=0.25,
        active_share=0.95,
        active_share_k=20.0,
        seat_drift=0.0,
        seat_drift_sd=0.01,
        seat_review=0.04,
        seat_noise=0.2,
        upgrade=0.004,
        downgrade=0.03,
        days_per_month=5.0,
        days_sigma=0.6,
        actions=4.0,
        login_prob=0.45,
        features={
            "tasks": 5.0,
            "docs": 3.0,
            "calendar": 3.0,
            "mobile": 4.0,
            "templates": 1.5,
            "time_tracking": 1.5,
            "files": 1.0,
            "search": 1.0,
            "boards": 1.0,
        },
        breadth=0.2,
        project_rate=0.02,
        file_rate=0.03,
        export_rate=0.0,
        guests=0.1,
        admin_rate=0.01,
        weekend=0.8,
        evening=0.5,
        usage_trend=-0.01,
        usage_trend_sd=0.03,
        api_prob=0.05,
        api_calls=10.0,
        fail=0.07,
        fail_k=15.0,
        retry=0.5,
        refund=0.03,
        age_shape=(1.0, 1.8),
        churn_weight=2.0,
        trial_boost=1.2,
        onboarding_days=3.0,
    ),
    Persona(
        "enterprise_rollout",
        "large account on Enterprise, many seats added in true-ups, admins on SSO and audit",
        signature=("plan", "team_size", "admin"),
        plan_weights=(0.0, 0.0, 0.15, 0.85, 0.0),
        negotiated=0.9,
        discount_range=(0.08, 0.35),
        seats_median=22.0,
        seats_sigma=0.75,
        active_share=0.5,
        active_share_k=6.0,
        seat_drift=0.025,
        seat_drift_sd=0.02,
        seat_review=0.3,
        seat_noise=0.04,
        upgrade=0.01,
        downgrade=0.002,
        days_per_month=6.0,
        days_sigma=0.3,
        actions=8.0,
        login_prob=0.45,  # single sign-on sessions expire often
        features={
            "tasks": 4.0,
            "boards": 3.0,
            "docs": 4.0,
            "comments": 3.0,
            "files": 2.0,
            "calendar": 1.0,
            "reports": 2.5,
            "dashboards": 3.0,
            "automations": 1.5,
            "forms": 1.0,
            "templates": 1.0,
            "integrations": 1.5,
            "search": 2.0,
            "data_export": 0.7,
            "mobile": 0.6,
        },
        breadth=0.5,
        project_rate=0.02,
        file_rate=0.05,
        export_rate=0.03,
        guests=1.0,
        admins=3,
        admin_rate=0.25,
        admin_weights={
            "sso_admin": 3.0,
            "user_admin": 4.0,
            "audit_log": 2.0,
            "permissions": 2.0,
            "billing_settings": 0.5,
        },
        weekend=0.05,
        weekend_sigma=0.5,
        evening=0.05,
        usage_trend_sd=0.015,
        api_prob=0.6,
        service_users=1.5,
        api_calls=300.0,
        api_days=0.8,
        api_weekend=0.2,
        api_anonymous=0.1,
        fail=0.01,
        fail_k=50.0,
        retry=0.8,
        refund=0.003,
        age_shape=(1.5, 1.0),
        churn_weight=0.35,
        trial_days=0.0,  # sales-led: a contract, then a slow rollout
        onboarding_days=75.0,
    ),
    Persona(
        "agency_studio",
        "agency with many client projects, contractors coming and going, guest clients",
        signature=("projects", "seat_moves", "feature_mix"),
        plan_weights=(0.0, 0.55, 0.45, 0.0, 0.0),
        seats_median=7.0,
        active_share=0.85,
        active_share_k=10.0,
        seat_drift=0.005,
        seat_drift_sd=0.02,
        seat_review=0.5,
        seat_noise=0.18,
        upgrade=0.01,
        downgrade=0.01,
        days_per_month=8.0,
        days_sigma=0.3,
        actions=7.0,
        features={
            "tasks": 4.0,
            "boards": 3.0,
            "files": 4.0,
            "comments": 3.0,
            "time_tracking": 3.5,
            "client_portal": 3.0,
            "guest_access": 2.0,
            "templates": 2.5,
            "docs": 2.0,
            "calendar": 1.5,
            "forms": 1.0,
            "reports": 1.0,
            "data_export": 0.8,
            "mobile": 1.0,
        },
        breadth=0.6,
        project_rate=0.15,
        file_rate=0.15,
        export_rate=0.03,
        guests=4.0,
        admin_rate=0.08,
        weekend=0.3,
        evening=0.2,
        api_prob=0.25,
        api_calls=60.0,
        fail=0.04,
        refund=0.025,
        age_shape=(1.1, 1.2),
    ),
    Persona(
        "dormant_payer",
        "converted after a busy trial, barely used since, keeps paying by autopay",
        signature=("engagement", "trend"),
        plan_weights=(0.5, 0.5, 0.0, 0.0, 0.0),
        seats_median=2.0,
        seats_sigma=0.6,
        active_share=0.3,
        active_share_k=5.0,
        seat_drift=0.0,
        seat_drift_sd=0.005,
        seat_review=0.03,
        upgrade=0.002,
        downgrade=0.01,
        days_per_month=1.5,
        days_sigma=0.7,
        actions=2.5,
        login_prob=0.8,  # sessions have long expired when they come back
        features={
            "tasks": 3.0,
            "docs": 3.0,
            "boards": 2.0,
            "reports": 1.0,
            "dashboards": 1.5,
            "search": 2.0,
            "files": 1.0,
        },
        breadth=0.3,
        project_rate=0.01,
        file_rate=0.01,
        export_rate=0.005,
        guests=0.0,
        admin_rate=0.01,
        weekend=0.15,
        weekend_sigma=0.5,
        evening=0.1,
        usage_trend=-0.03,
        usage_trend_sd=0.03,
        api_prob=0.08,  # an integration set up in the trial that nobody switched off
        api_calls=20.0,
        fail=0.02,
        fail_k=30.0,
        refund=0.015,
        age_shape=(1.5, 1.0),
        churn_weight=1.3,
        trial_boost=3.0,
        onboarding_days=0.0,
    ),
    Persona(
        "integration_pipeline",
        "system of record fed by the customer's software: API plan, service users all day",
        signature=("api", "plan"),
        plan_weights=(0.0, 0.0, 0.2, 0.0, 0.8),
        seats_median=3.0,
        seats_sigma=0.4,
        active_share=0.6,
        active_share_k=6.0,
        seat_drift=0.01,
        seat_drift_sd=0.01,
        seat_review=0.08,
        days_per_month=4.0,
        days_sigma=0.5,
        actions=3.0,
        login_prob=0.5,
        features={
            "integrations": 5.0,
            "dashboards": 3.0,
            "reports": 2.0,
            "automations": 3.0,
            "boards": 1.0,
            "tasks": 1.0,
            "docs": 1.0,
            "data_export": 1.0,
        },
        breadth=0.3,
        project_rate=0.01,
        file_rate=0.01,
        guests=0.0,
        weekend=0.1,
        weekend_sigma=0.5,
        api_prob=1.0,
        service_users=2.2,
        api_calls=2500.0,
        api_sigma=0.9,
        api_days=0.97,
        api_weekend=0.9,
        api_anonymous=0.3,
        api_growth=0.03,
        api_endpoints={
            "tasks": 4.0,
            "boards": 2.0,
            "docs": 1.0,
            "files": 2.0,
            "webhooks": 4.0,
            "reports": 1.0,
            "users": 0.5,
        },
        fail=0.02,
        fail_k=30.0,
        refund=0.005,
        age_shape=(1.2, 1.0),
        churn_weight=0.6,
    ),
    Persona(
        "dunning_prone",
        "ordinary small team whose card fails often; pays after retries or a card update",
        signature=("payments", "refunds"),
        plan_weights=(0.1, 0.8, 0.1, 0.0, 0.0),
        seats_median=4.0,
        seat_drift=0.01,
        seat_drift_sd=0.02,
        days_per_month=6.0,
        features={
            "tasks": 5.0,
            "boards": 3.0,
            "docs": 2.0,
            "comments": 3.0,
            "files": 2.0,
            "calendar": 2.0,
            "mobile": 2.0,
            "time_tracking": 1.0,
            "search": 1.0,
        },
        weekend=0.3,
        fail=0.35,
        fail_k=6.0,
        retry=0.35,
        refund=0.02,
        churn_weight=1.6,
    ),
    Persona(
        "seasonal_cohort",
        "busy a few months a year (school, tax, retail, events), nearly idle otherwise",
        signature=("season", "rhythm"),
        plan_weights=(0.1, 0.7, 0.2, 0.0, 0.0),
        seats_median=6.0,
        seats_sigma=0.6,
        seat_review=0.1,
        days_per_month=9.0,
        days_sigma=0.3,
        features={
            "forms": 3.0,
            "calendar": 3.0,
            "tasks": 3.0,
            "docs": 2.0,
            "boards": 2.0,
            "files": 2.0,
            "templates": 2.0,
            "reports": 1.0,
            "comments": 2.0,
        },
        project_rate=0.05,
        export_rate=0.03,
        weekend=0.35,
        evening=0.25,
        season_off=0.07,
        season_seats=0.4,
        fail=0.04,
        age_shape=(1.2, 1.0),
        churn_weight=1.2,
    ),
    Persona(
        "regulated_compliance",
        "finance/health/legal team: stable seats, reports, exports, audit; office hours only",
        signature=("feature_mix", "rhythm", "admin"),
        plan_weights=(0.0, 0.0, 0.8, 0.2, 0.0),
        negotiated=0.3,
        seats_median=12.0,
        seats_sigma=0.5,
        active_share=0.7,
        seat_drift=0.005,
        seat_drift_sd=0.01,
        seat_review=0.1,
        days_per_month=7.0,
        days_sigma=0.25,
        actions=6.0,
        login_prob=0.45,
        features={
            "docs": 4.0,
            "forms": 3.5,
            "reports": 4.0,
            "data_export": 3.0,
            "tasks": 2.0,
            "comments": 1.5,
            "dashboards": 1.5,
            "files": 2.0,
            "search": 1.0,
            "templates": 1.5,
        },
        breadth=0.4,
        export_rate=0.12,
        admins=2,
        admin_rate=0.3,
        admin_weights={"audit_log": 5.0, "permissions": 3.0, "user_admin": 2.0, "sso_admin": 1.0},
        weekend=0.02,
        weekend_sigma=0.5,
        evening=0.02,
        api_prob=0.3,
        api_calls=80.0,
        fail=0.01,
        fail_k=40.0,
        refund=0.004,
        age_shape=(1.4, 1.0),
        churn_weight=0.5,
        trial_days=0.0,
        onboarding_days=30.0,
    ),
    Persona(
        "downsizing_account",
        "team cutting back: seats removed step by step, down to Team, activity falling",
        signature=("seat_moves", "trend", "refunds"),
        plan_weights=(0.0, 0.3, 0.7, 0.0, 0.0),
        seats_median=12.0,
        seats_sigma=0.6,
        active_share=0.6,
        active_share_k=6.0,
        seat_drift=-0.05,
        seat_drift_sd=0.025,
        seat_review=0.3,
        upgrade=0.0,
        downgrade=0.04,
        days_per_month=6.0,
        features=TEAM_FEATURES | {"reports": 2.0, "dashboards": 2.0, "data_export": 1.0},
        usage_trend=-0.05,
        usage_trend_sd=0.02,
        api_prob=0.25,
        fail=0.03,
        refund=0.05,
        age_shape=(1.6, 1.0),
        churn_weight=1.8,
    ),
)


def personas_for(spec: CompanySpec) -> list[Persona]:
    """The first ``spec.personas`` archetypes; with ``subtle``, a chain in which each differs
    from the one before only in its signature behaviours."""
    if not 1 <= spec.personas <= len(ARCHETYPES):
        raise ValueError(f"personas: 1 to {len(ARCHETYPES)}, not {spec.personas}")
    chosen = list(ARCHETYPES[: spec.personas])
    if not spec.subtle:
        return chosen
    chain = [chosen[0]]
    for archetype in chosen[1:]:
        taken = {
            name: getattr(archetype, name)
            for behaviour in archetype.signature
            for name in BEHAVIOURS[behaviour]
        }
        chain.append(replace(chain[-1], name=archetype.name, about=archetype.about, **taken))
    return chain


# ---------------------------------------------------------------------------------------------
# Small vectorised helpers.


def _table(personas: list[Persona]) -> dict[str, Array]:
    """Numeric persona settings as arrays indexed by persona number."""
    out: dict[str, Array] = {}
    for f in fields(Persona):
        values = [getattr(p, f.name) for p in personas]
        if isinstance(values[0], int | float) and not isinstance(values[0], bool):
            out[f.name] = np.array(values, dtype=float)
    return out


def _weights(mapping: Mapping[str, float], names: tuple[str, ...]) -> Array:
    w = np.array([mapping.get(n, 0.0) for n in names], dtype=float)
    return w / w.sum()


def _lognormal(rng: np.random.Generator, median: Array, sigma: Array | float) -> Array:
    return median * np.exp(sigma * rng.standard_normal(np.shape(median)))


def _beta(rng: np.random.Generator, mean: Array, concentration: Array) -> Array:
    mean = np.clip(mean, 1e-3, 1 - 1e-3)
    return rng.beta(mean * concentration, (1 - mean) * concentration)


def _mixes(rng: np.random.Generator, base: Array, focus: Array) -> Array:
    """Per-row Dirichlet draws around ``base`` (rows: customers), as cumulative sums."""
    alpha = focus[:, None] * base + 0.03  # every option stays possible, if rare
    g = rng.gamma(alpha)
    cdf = np.cumsum(g / g.sum(axis=1, keepdims=True), axis=1)
    cdf[:, -1] = 1.0
    return cdf


def _pick(cdf: Array, row: Array, u: Array) -> Array:
    """Column index drawn from ``cdf[row]`` with uniforms ``u`` (one search over all rows)."""
    width = cdf.shape[1]
    flat = (cdf + np.arange(cdf.shape[0])[:, None]).ravel()
    found = np.searchsorted(flat, row + u * (1 - 1e-9), side="right")
    return np.minimum(found - row * width, width - 1)


def _hash_uniform(keys: Array) -> Array:
    """A fixed uniform per key (splitmix64): a person keeps their habits all history long."""
    z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) / float(2**53)


def _group_index(counts: Array) -> Array:
    """0, 1, ... within each group of a repeat by ``counts``."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total) - starts


def _nice_price(usd: Array, level: Array) -> Array:
    """Local list prices as a price page shows them: whole units, tens for JPY and INR."""
    local = usd * level
    return np.where(
        level >= 20, np.maximum(np.round(local / 10) * 10, 10), np.maximum(np.round(local), 1)
    )


# ---------------------------------------------------------------------------------------------
# Customers.


@dataclass
class Customers:
    """Everything drawn per customer (arrays of one length)."""

    persona: Array  # persona number
    country: Array  # index into COUNTRIES
    annual: Array
    signup: Array  # continuous day of the first payment
    end: Array  # cancellation time, or the end of history
    churned: Array
    usage_start: Array  # the trial, if any, starts before the signup
    settings: dict[str, Array]


def _customers(spec: CompanySpec, personas: list[Persona], rng: np.random.Generator) -> Customers:
    n = spec.customers
    sizes = persona_sizes(n, persona_shares(len(personas), spec.min_share))
    persona = rng.permutation(np.repeat(np.arange(len(personas)), sizes))
    table = _table(personas)
    s = {name: values[persona] for name, values in table.items()}

    # Nuisance: independent of persona.
    if spec.nuisance:
        country = rng.choice(len(COUNTRIES), n, p=COUNTRY_SHARE)
        annual = rng.random(n) < ANNUAL_SHARE
    else:
        country = np.zeros(n, dtype=int)
        annual = np.zeros(n, dtype=bool)

    # Signed up between a week and 18 months ago, in office hours of their country.
    shape = np.array([p.age_shape for p in personas])[persona]
    age = 7 + (HISTORY_DAYS - 20) * rng.beta(shape[:, 0], shape[:, 1])
    hour = np.clip(rng.normal(13.0, 2.5, n), 7, 20)
    signup = np.clip(HISTORY_DAYS - np.ceil(age) + (hour - UTC_OFFSET[country]) / 24, 0.01, None)

    # Churners: exactly the asked share, likelier where the persona churns more and where there
    # was time to (a customer of one week rarely cancels yet); weighted draw without replacement.
    churned = np.zeros(n, dtype=bool)
    count = round(spec.churn_share * n)
    if count:
        tenure = HISTORY_DAYS - signup
        weight = s["churn_weight"] * (1 - np.exp(-tenure / 60)) + 1e-9
        keys = rng.random(n) ** (1 / weight)
        churned[np.argpartition(-keys, count - 1)[:count]] = True
    tenure = HISTORY_DAYS - signup
    cancel = signup + 1.5 + (tenure - 2) * rng.beta(1.3, 1.3, n)
    end = np.where(churned, np.minimum(cancel, HISTORY_DAYS - 0.01), float(HISTORY_DAYS))
    usage_start = np.maximum(np.floor(signup) - s["trial_days"], 0)

    # Per-customer draws around the persona.
    s["days"] = _lognormal(rng, s["days_per_month"], s["days_sigma"])
    s["actions_c"] = _lognormal(rng, s["actions"], 0.35)
    s["active"] = _beta(rng, s["active_share"], s["active_share_k"])
    s["weekend_c"] = np.clip(_lognormal(rng, s["weekend"], s["weekend_sigma"]), 0, 1.5)
    s["evening_c"] = _beta(rng, s["evening"] + 1e-3, np.full(n, 12.0))
    s["trend"] = rng.normal(s["usage_trend"], s["usage_trend_sd"])
    s["fail_c"] = _beta(rng, s["fail"], s["fail_k"])
    s["refund_c"] = _beta(rng, s["refund"] + 1e-4, np.full(n, 30.0))
    s["guests_c"] = _lognormal(rng, s["guests"], 0.6)
    s["login_c"] = np.clip(s["login_prob"] + rng.normal(0, 0.08, n), 0.05, 1)
    s["ramp"] = s["onboarding_days"] * rng.uniform(0.5, 1.5, n)
    s["decline"] = rng.uniform(20, 90, n)  # churners fade over their last weeks
    s["season"] = rng.integers(0, len(SEASONS), n)
    s["tz"] = UTC_OFFSET[country]
    has_api = rng.random(n) < s["api_prob"]
    s["svc"] = np.where(has_api, 1 + rng.poisson(np.maximum(s["service_users"] - 1, 0)), 0)
    s["api_c"] = _lognormal(rng, s["api_calls"], s["api_sigma"])
    s["api_start"] = signup + rng.uniform(2, 45, n)  # integrations are built after signing up
    return Customers(persona, country, annual, signup, end, churned, usage_start, s)


def _in_season(c: Customers) -> Array:
    """(customers, 12) activity multiplier per calendar month."""
    busy = np.zeros((len(SEASONS), 12), dtype=bool)
    for i, months in enumerate(SEASONS):
        busy[i, list(months)] = True
    off = c.settings["season_off"][:, None]
    return np.where(busy[c.settings["season"]], 1.0, off)


# ---------------------------------------------------------------------------------------------
# Billing.


@dataclass
class Subscriptions:
    """Plan, seats and money per customer and billing period (customers, PERIODS)."""

    period: Array  # start time of each period
    plan: Array
    seats: Array
    mrr: Array
    annual_total: Array  # what a yearly invoice charges


def _subscriptions(
    c: Customers, personas: list[Persona], rng: np.random.Generator
) -> Subscriptions:
    n = len(c.persona)
    s = c.settings
    # Periods start on the same time of day as the signup (a billing anchor), a month apart.
    period = c.signup[:, None] + np.round(MONTH * np.arange(PERIODS))[None, :]
    month_of = CAL_MONTH[np.minimum(period.astype(int), HISTORY_DAYS - 1)]
    season = _in_season(c)
    seat_factor = np.where(
        season[np.arange(n)[:, None], month_of] < 1, s["season_seats"][:, None], 1.0
    )

    weights = np.array([p.plan_weights for p in personas], dtype=float)
    cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    plan0 = _pick(cdf, c.persona, rng.random(n))
    wanted0 = np.clip(_lognormal(rng, s["seats_median"], s["seats_sigma"]), 1, 2000)
    drift = rng.normal(s["seat_drift"], s["seat_drift_sd"])

    plan = np.zeros((n, PERIODS), dtype=np.int64)
    seats = np.zeros((n, PERIODS), dtype=np.int64)
    # A team too big for Starter starts on Team, and so on up the ladder.
    on_ladder = plan0 != API_PLAN
    p = plan0.copy()
    for _ in range(3):
        p = np.where(on_ladder & (np.round(wanted0) > PLAN_MAX[p]), p + 1, p)
    plan[:, 0] = p
    seats[:, 0] = np.clip(np.round(wanted0 * seat_factor[:, 0]), PLAN_MIN[p], PLAN_MAX[p])
    walk = np.zeros(n)
    for m in range(1, PERIODS):
        walk += s["seat_noise"] * rng.standard_normal(n)
        wanted = wanted0 * np.exp(drift * m + walk) * seat_factor[:, m]
        season_turn = seat_factor[:, m] != seat_factor[:, m - 1]
        review = (rng.random(n) < s["seat_review"]) | season_turn
        new = np.where(review, np.maximum(np.round(wanted), 1), seats[:, m - 1])
        prev = plan[:, m - 1]
        ladder = prev != API_PLAN
        up = ladder & (prev < 3) & (rng.random(n) < s["upgrade"])
        # Enterprise is a sales contract: only teams large enough get there.
        up &= (prev < 2) | (new >= PLAN_MIN[3])
        down = ladder & (prev > 0) & (rng.random(n) < s["downgrade"]) & ~up
        p = prev + up - down
        p = np.where(ladder & (new > PLAN_MAX[p]), np.minimum(p + 1, 3), p)
        if np.any(c.annual):
            # Yearly contracts only grow during the term; cuts wait for the renewal.
            renewal = m % 12 == 0
            if not renewal:
                p = np.where(c.annual & ladder, np.maximum(p, prev), p)
                new = np.where(c.annual, np.maximum(new, seats[:, m - 1]), new)
        plan[:, m] = p
        # Below a plan's minimum the customer pays for the minimum.
        seats[:, m] = np.clip(new, PLAN_MIN[p], PLAN_MAX[p])

    level = PRICE_LEVEL[c.country][:, None]
    rise = np.where(c.signup >= PRICE_RISE_DAY, 1.08, 1.0)[:, None]
    seat_price = _nice_price(SEAT_PRICE_USD[plan] * rise, level)
    monthly = seat_price * seats
    api = plan == API_PLAN
    api_base = _nice_price(API_BASE_USD * rise, level)
    monthly = np.where(
        api, api_base + seat_price * np.maximum(seats - API_INCLUDED_SEATS, 0), monthly
    )
    negotiated = rng.random(n) < s["negotiated"]
    low_high = np.array([p.discount_range for p in personas])[c.persona]
    discount = np.where(negotiated, rng.uniform(low_high[:, 0], low_high[:, 1]), 0.0)
    # Sales-led customers negotiate a discount for the whole contract; some startups get half
    # price for their first year (the price then changes at the twelfth period).
    factor = (1 - discount)[:, None] * np.ones((1, PERIODS))
    startup = rng.random(n) < s["startup_deal"]
    factor = np.where(startup[:, None] & (np.arange(PERIODS) < 12)[None, :], factor * 0.5, factor)
    monthly = monthly * factor
    decimals = DECIMALS[c.country][:, None]
    scale = 10.0**decimals
    annual_total = np.round(monthly * ANNUAL_MONTHS_PAID * scale) / scale
    mrr = np.where(
        c.annual[:, None],
        np.round(annual_total / 12 * 100) / 100,
        np.round(monthly * scale) / scale,
    )
    return Subscriptions(period, plan, seats, mrr, annual_total)


def _billing(
    c: Customers, sub: Subscriptions, rng: np.random.Generator
) -> tuple[pd.DataFrame, dict[str, Array]]:
    """Billing events, and the seat increases (customer, time, seats added) for invitations."""
    n = len(c.persona)
    s = c.settings
    rows: list[dict[str, Array]] = []

    def add(
        cust: Array, t: Array, kind: str, m: Array | None = None, amount: Array | None = None
    ) -> None:
        row = {"cust": cust, "t": t, "type": np.full(len(cust), kind, dtype=object)}
        if m is not None:
            row |= {"plan": sub.plan[cust, m], "seats": sub.seats[cust, m], "mrr": sub.mrr[cust, m]}
        if amount is not None:
            row["amount"] = amount
        rows.append(row)

    everyone = np.arange(n)
    add(everyone, c.signup, "subscription_started", np.zeros(n, dtype=int))

    # Changes between periods: mid-period for monthly payers and for yearly growth (charged
    # pro rata at once); at the renewal for yearly cuts and for price-only changes.
    cust, m = np.nonzero(
        (sub.plan[:, 1:] != sub.plan[:, :-1])
        | (sub.seats[:, 1:] != sub.seats[:, :-1])
        | (sub.mrr[:, 1:] != sub.mrr[:, :-1])
    )
    m = m + 1
    at_renewal = (sub.mrr[cust, m] <= sub.mrr[cust, m - 1]) & c.annual[cust]
    at_renewal |= (sub.plan[cust, m] == sub.plan[cust, m - 1]) & (
        sub.seats[cust, m] == sub.seats[cust, m - 1]
    )
    at_renewal |= c.annual[cust] & (m % 12 == 0)
    t = np.where(
        at_renewal,
        sub.period[cust, m] - 0.02,
        sub.period[cust, m - 1] + MONTH * rng.uniform(0.05, 0.95, len(cust)),
    )
    keep = t < c.end[cust]
    cust, m, t, at_renewal = cust[keep], m[keep], t[keep], at_renewal[keep]
    add(cust, t, "subscription_changed", m)
    added = sub.seats[cust, m] - sub.seats[cust, m - 1]
    invites = {"cust": cust[added > 0], "t": t[added > 0], "seats": added[added > 0]}

    # Invoices: every period for monthly payers, every twelfth for yearly ones, plus pro-rata
    # charges for seats added during a yearly term.
    ic, im = np.nonzero(sub.period < c.end[:, None])
    yearly = c.annual[ic]
    due = ~yearly | (im % 12 == 0)
    ic, im, yearly = ic[due], im[due], yearly[due]
    inv_cust = [ic]
    inv_t = [sub.period[ic, im] + 0.0015]
    inv_amount = [np.where(yearly, sub.annual_total[ic, im], sub.mrr[ic, im])]
    inv_regular = [np.ones(len(ic), dtype=bool)]
    pro = c.annual[cust] & ~at_renewal
    if np.any(pro):
        pc_, pm, pt = cust[pro], m[pro], t[pro]
        term_end = c.signup[pc_] + np.round(12 * MONTH * ((pm - 1) // 12 + 1))
        left = np.clip((term_end - pt) / (12 * MONTH), 0, 1)
        scale = 10.0 ** DECIMALS[c.country[pc_]]
        amount = (
            np.round((sub.annual_total[pc_, pm] - sub.annual_total[pc_, pm - 1]) * left * scale)
            / scale
        )
        ok = amount > 0
        inv_cust.append(pc_[ok])
        inv_t.append(pt[ok] + 0.0007)
        inv_amount.append(amount[ok])
        inv_regular.append(np.zeros(int(ok.sum()), dtype=bool))
    icust = np.concatenate(inv_cust)
    it = np.concatenate(inv_t)
    iamount = np.concatenate(inv_amount)
    iregular = np.concatenate(inv_regular)

    # Charging: a failed first attempt is retried at +3, +5 and +8 days; after that the customer
    # updates the card one to three weeks later. Nothing is charged after a cancellation.
    failed = rng.random(len(icust)) < s["fail_c"][icust]
    tries = np.where(failed, np.minimum(rng.geometric(s["retry"][icust]), 4), 0)
    retry_at = np.array([0.0, 3.0, 5.0, 8.0])
    fc = np.repeat(np.arange(len(icust)), tries)
    f_t = it[fc] + retry_at[_group_index(tries)] + rng.uniform(0, 0.01, len(fc))
    ok = f_t < c.end[icust[fc]]
    add(icust[fc][ok], f_t[ok], "payment_failed", amount=iamount[fc][ok])
    paid_t = np.where(
        tries == 0,
        it,
        np.where(tries < 4, it + retry_at[np.minimum(tries, 3)], it + rng.uniform(9, 25, len(it))),
    )
    paid_t = paid_t + np.where(tries > 0, rng.uniform(0.001, 0.01, len(it)), 0)
    paid = paid_t < c.end[icust]
    add(icust[paid], paid_t[paid], "invoice_paid", amount=iamount[paid])

    # Refunds: now and then part or all of an invoice (a double charge, a seat bought by
    # mistake); churners often get their last monthly charge back, or the unused part of a year.
    pcust, pt_, pamount, pregular = icust[paid], paid_t[paid], iamount[paid], iregular[paid]
    refund = rng.random(len(pcust)) < c.settings["refund_c"][pcust]
    share = np.where(rng.random(len(pcust)) < 0.5, 1.0, rng.uniform(0.1, 0.9, len(pcust)))
    # A year paid up front is not handed back whole while the customer stays: a seat or two.
    share = np.where(c.annual[pcust] & pregular, rng.uniform(0.05, 0.3, len(pcust)), share)
    r_t = pt_ + rng.uniform(0.5, 20, len(pcust))
    churner = c.churned[pcust] & pregular
    if np.any(churner):
        # The latest regular invoice each churner paid.
        order = np.lexsort((pt_, pcust))
        last = np.zeros(len(pcust), dtype=bool)
        idx = order[churner[order]]
        last_of = np.ones(len(idx), dtype=bool)
        last_of[:-1] = pcust[idx[1:]] != pcust[idx[:-1]]
        last[idx[last_of]] = True
        cancel = c.end[pcust]
        yearly = c.annual[pcust]
        recent = ~yearly & (cancel - pt_ < 10)
        unused = np.floor((pt_ + 12 * MONTH - cancel) / MONTH) / 12
        back = last & (
            (recent & (rng.random(len(pcust)) < 0.35))
            | (yearly & (unused > 0) & (rng.random(len(pcust)) < 0.4))
        )
        refund |= back
        share = np.where(back, np.where(yearly, unused, 1.0), share)
        r_t = np.where(back, cancel + rng.uniform(0.01, 3, len(pcust)), r_t)
    scale = 10.0 ** DECIMALS[c.country[pcust]]
    r_amount = np.round(pamount * share * scale) / scale
    refund &= (r_amount > 0) & (r_t < HISTORY_DAYS)
    add(pcust[refund], r_t[refund], "refund_issued", amount=r_amount[refund])

    gone = np.nonzero(c.churned)[0]
    rows.append(
        {
            "cust": gone,
            "t": c.end[gone],
            "type": np.full(len(gone), "subscription_canceled", dtype=object),
        }
    )
    last_period = np.clip(
        np.floor((c.end[gone] - c.signup[gone]) / MONTH).astype(int), 0, PERIODS - 1
    )
    rows[-1]["plan"] = sub.plan[gone, last_period]  # the plan that ends; seats and MRR left empty

    frame = pd.concat([pd.DataFrame(r) for r in rows], ignore_index=True)
    cust = frame["cust"].to_numpy()
    t = np.minimum(frame["t"].to_numpy(float), HISTORY_DAYS - 1e-5)
    subscription = frame["type"].str.startswith("subscription").to_numpy(bool)
    plan = frame["plan"].to_numpy(float)
    has_plan = ~np.isnan(plan)
    billing = pd.DataFrame(
        {
            "customer_id": c.settings["ids"][cust],
            "occurred_at": timestamps(HISTORY_DAYS - t),
            "type": frame["type"].to_numpy(object),
            "plan": np.where(
                has_plan, np.array(PLANS, dtype=object)[np.nan_to_num(plan).astype(int)], None
            ),
            "interval": np.where(subscription, np.where(c.annual[cust], "year", "month"), None),
            "seats": frame["seats"].astype("Float64").astype("Int64"),
            "mrr": frame["mrr"].to_numpy(float),
            "amount": frame["amount"].to_numpy(float),
            "currency": np.array(CURRENCY, dtype=object)[c.country[cust]],
        }
    )
    return with_event_ids(billing, "b", BILLING_COLUMNS), invites


# ---------------------------------------------------------------------------------------------
# Usage.

_BLOCKS = np.unique(np.minimum(np.round(np.arange(PERIODS + 1) * MONTH), HISTORY_DAYS)).astype(int)
_SLICE_DAYS = 2_000_000  # person-days expanded at once, to bound memory
_GUEST = 100_000  # guest people are numbered from here, service users from _SERVICE
_SERVICE = 200_000


@dataclass
class _Rows:
    """Usage rows as codes, gathered slice by slice."""

    cust: list[Array] = field(default_factory=list)
    t: list[Array] = field(default_factory=list)
    event: list[Array] = field(default_factory=list)
    person: list[Array] = field(default_factory=list)  # -1: no user
    feature: list[Array] = field(default_factory=list)  # -1: no feature
    quantity: list[Array] = field(default_factory=list)

    def add(
        self,
        cust: Array,
        t: Array,
        event: str,
        person: Array,
        feature: Array | int,
        quantity: Array,
    ) -> None:
        self.cust.append(cust.astype(np.int32))
        self.t.append(t)
        self.event.append(np.full(len(cust), _EVENT_CODE[event], dtype=np.int8))
        self.person.append(person.astype(np.int32))
        self.feature.append(np.broadcast_to(np.asarray(feature, dtype=np.int16), len(cust)).copy())
        self.quantity.append(quantity.astype(np.int32))  # far below 2**31 a day


def _people_months(c: Customers, sub: Subscriptions, rng: np.random.Generator) -> dict[str, Array]:
    """One row per person active in a month-long block: seat holders in use plus guests."""
    s = c.settings
    lo, hi = _BLOCKS[:-1], _BLOCKS[1:]
    mid = (lo + hi) / 2
    period = np.clip(np.floor((mid[None, :] - c.signup[:, None]) / MONTH), 0, PERIODS - 1).astype(
        int
    )
    seats = np.take_along_axis(sub.seats, period, axis=1)
    live = (hi[None, :] > c.usage_start[:, None]) & (lo[None, :] < c.end[:, None])
    humans = np.where(live, np.maximum(rng.binomial(seats, s["active"][:, None]), 1), 0)
    guests = np.where(live, rng.poisson(s["guests_c"][:, None] * np.ones_like(mid)[None, :]), 0)
    count = humans + guests
    cust, block = np.nonzero(count)
    count, humans = count[cust, block], humans[cust, block]
    cust, block, humans = np.repeat(cust, count), np.repeat(block, count), np.repeat(humans, count)
    slot = _group_index(count)
    guest = slot >= humans
    # Guests are the agency's clients: one or two new ones a month, older ones drop out.
    person = np.where(guest, _GUEST + slot - humans + block, slot)
    return {"cust": cust, "block": block, "person": person, "guest": guest}


def _people(c: Customers, people: dict[str, Array]) -> tuple[Array, Array, pd.Index]:
    """Every person a customer can have (seat holders, guests, service users) numbered densely:
    the first number of each kind per customer, and the user ids in that order."""
    n = len(c.persona)
    humans = np.zeros(n, dtype=np.int64)
    guests = np.zeros(n, dtype=np.int64)
    is_guest = people["guest"]
    np.maximum.at(humans, people["cust"][~is_guest], people["person"][~is_guest] + 1)
    np.maximum.at(guests, people["cust"][is_guest], people["person"][is_guest] - _GUEST + 1)
    humans = np.maximum(humans, 1)  # the admin (person 0) invites people and exports data
    services = c.settings["svc"].astype(np.int64)
    total = humans + guests + services
    first = np.cumsum(total) - total
    starts = np.stack([first, first + humans, first + humans + guests], axis=1)
    owner = np.repeat(np.arange(n), total)
    local = _group_index(total)
    kind = (local >= humans[owner]).astype(np.int64) + (local >= (humans + guests)[owner])
    number = local - (starts[owner, kind] - first[owner])
    # "<customer>-u3", "<customer>-g12", "<customer>-svc0", built by Arrow, not in a loop.
    names = pc.binary_join_element_wise(
        pc.take(pa.array(list(c.settings["ids"])), pa.array(owner)),
        pc.take(pa.array(["-u", "-g", "-svc"]), pa.array(kind)),
        pa.array(number).cast(pa.string()),
        "",
    )
    return starts, total, pd.Index(pd.array(names, dtype="str"))


def _usage(
    c: Customers,
    sub: Subscriptions,
    invites: dict[str, Array],
    personas: list[Persona],
    seed: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    n = len(c.persona)
    s = c.settings
    rows = _Rows()
    season = _in_season(c)
    feature_cdf = _mixes(
        rng,
        np.array([_weights(p.features, FEATURES) for p in personas])[c.persona],
        s["feature_focus"],
    )
    guest_cdf = np.cumsum(_weights(GUEST_FEATURES, FEATURES))[None, :]
    admin_cdf = np.cumsum(
        np.array([_weights(p.admin_weights, ADMIN_FEATURES) for p in personas]), axis=1
    )
    endpoint_cdf = _mixes(
        rng,
        np.array([_weights(p.api_endpoints, ENDPOINTS) for p in personas])[c.persona],
        np.full(n, 20.0),
    )
    feature_code = np.array([_FEATURE_CODE[f] for f in FEATURES], dtype=np.int16)
    admin_code = np.array([_FEATURE_CODE[f] for f in ADMIN_FEATURES], dtype=np.int16)
    endpoint_code = np.array([_FEATURE_CODE[f] for f in ENDPOINTS], dtype=np.int16)
    # Weekday weights (Monday a little busier, Friday quieter) and their weekly mean, so that
    # ``days`` stays the number of active days in a month whatever the weekend habit.
    week = np.array([1.05, 1.0, 1.0, 1.0, 0.85, 0.0, 0.0])
    week_mean = (week.sum() + 2 * s["weekend_c"]) / 7

    people = _people_months(c, sub, rng)
    # A person's habits stay theirs: a fixed factor per (customer, person) from a hash.
    key = (people["cust"].astype(np.uint64) << np.uint64(24)) + people["person"].astype(np.uint64)
    u = _hash_uniform(key + np.uint64(seed) * np.uint64(0x1000193))
    z = np.log(u / (1 - u)) * 0.6  # logistic: a normal with heavier tails
    factor = np.exp(s["user_sigma"][people["cust"]] * z)
    guest = people["guest"]
    days = np.where(guest, 3.0, s["days"][people["cust"]]) * factor
    base = days / MONTH / week_mean[people["cust"]]
    lengths = _BLOCKS[1:][people["block"]] - _BLOCKS[:-1][people["block"]]

    bounds = np.searchsorted(
        np.cumsum(lengths), np.arange(_SLICE_DAYS, lengths.sum() + _SLICE_DAYS, _SLICE_DAYS)
    )
    begin = 0
    for stop in np.unique(np.append(bounds, len(lengths))):
        if stop <= begin:
            continue
        part = np.arange(begin, stop)
        begin = stop
        rep = np.repeat(part, lengths[part])
        day = _BLOCKS[:-1][people["block"][rep]] + _group_index(lengths[part])
        cu = people["cust"][rep]
        live = (day >= c.usage_start[cu]) & (day < np.floor(c.end[cu]))
        rep, day, cu = rep[live], day[live], cu[live]
        since = day - c.signup[cu]
        weekday = WEEKDAY[day]
        dow = np.where(weekday >= 5, s["weekend_c"][cu], week[weekday])
        ramp = np.where(
            (s["ramp"][cu] > 0) & (since >= 0),
            np.clip(0.25 + 0.75 * since / np.maximum(s["ramp"][cu], 1), 0, 1),
            1.0,
        )
        trial = np.where(since < 0, s["trial_boost"][cu], 1.0)
        to_end = c.end[cu] - day
        fade = np.where(c.churned[cu], np.clip(0.2 + 0.8 * to_end / s["decline"][cu], 0.2, 1), 1.0)
        trend = np.clip(np.exp(s["trend"][cu] * np.maximum(since, 0) / MONTH), 0.15, 3)
        prob = (
            base[rep]
            * dow
            * season[cu, CAL_MONTH[day]]
            * HOLIDAY[day]
            * ramp
            * trial
            * fade
            * trend
        )
        on = rng.random(len(rep)) < np.minimum(prob, 0.97)
        rep, day, cu = rep[on], day[on], cu[on]
        person, is_guest, pf = people["person"][rep], guest[rep], factor[rep]
        k = len(rep)

        # When in the day: office hours or the evening, local time, recorded in UTC.
        evening = rng.random(k) < s["evening_c"][cu]
        hour = np.where(evening, rng.normal(20.5, 1.3, k), rng.normal(13.0, 2.6, k))
        start = day + (np.clip(hour, 0, 23.9) - s["tz"][cu]) / 24

        login = rng.random(k) < s["login_c"][cu]
        rows.add(
            cu[login],
            start[login],
            "login",
            person[login],
            -1,
            1 + rng.poisson(0.25, int(login.sum())),
        )

        touched = np.minimum(1 + rng.poisson(np.where(is_guest, 0.3, s["breadth"][cu])), 6)
        actions = s["actions_c"][cu] * np.sqrt(pf) * np.exp(0.5 * rng.standard_normal(k))
        fr = np.repeat(np.arange(k), touched)
        u = rng.random(len(fr))
        pick = np.where(
            is_guest[fr],
            _pick(guest_cdf, np.zeros(len(fr), dtype=int), u),
            _pick(feature_cdf, cu[fr], u),
        )
        quantity = 1 + rng.poisson(np.maximum(actions[fr] - touched[fr], 0) / touched[fr])
        t = start[fr] + rng.uniform(0, 0.12, len(fr))
        rows.add(cu[fr], t, "feature_used", person[fr], feature_code[pick], quantity)

        admin = ~is_guest & (person < s["admins"][cu]) & (rng.random(k) < s["admin_rate"][cu])
        ac = cu[admin]
        pick = _pick(admin_cdf, c.persona[ac], rng.random(len(ac)))
        rows.add(
            ac,
            start[admin] + rng.uniform(0, 0.1, len(ac)),
            "feature_used",
            person[admin],
            admin_code[pick],
            1 + rng.poisson(1.0, len(ac)),
        )

        for (event, feature), rate in zip(
            FREEFORM, ("project_rate", "file_rate", "export_rate"), strict=True
        ):
            hit = rng.random(k) < s[rate][cu] * np.where(is_guest, 0.3, 1.0) * np.sqrt(pf)
            rows.add(
                cu[hit],
                start[hit] + rng.uniform(0, 0.12, int(hit.sum())),
                event,
                person[hit],
                _FEATURE_CODE[feature],
                1 + rng.poisson(0.4, int(hit.sum())),
            )

    _api(c, season, endpoint_cdf, endpoint_code, rows, rng)

    # An admin invites the people behind every seat increase.
    ic = invites["cust"]
    inside = invites["t"] - 0.001 >= c.usage_start[ic]
    rows.add(
        ic[inside],
        invites["t"][inside] - 0.001,
        "user_invited",
        np.zeros(int(inside.sum())),
        _FEATURE_CODE["user_admin"],
        invites["seats"][inside],
    )
    # Half of the leavers export their data in their last days.
    gone = np.nonzero(c.churned & (rng.random(n) < 0.5))[0]
    rows.add(
        gone,
        c.end[gone] - rng.uniform(0.05, 5, len(gone)),
        "feature_used",
        np.zeros(len(gone)),
        _FEATURE_CODE["data_export"],
        1 + rng.poisson(2, len(gone)),
    )
    starts, _, names = _people(c, people)
    return _usage_frame(c, rows, starts, names)


def _api(
    c: Customers,
    season: Array,
    endpoint_cdf: Array,
    endpoint_code: Array,
    rows: _Rows,
    rng: np.random.Generator,
) -> None:
    """Daily API traffic of each service user: a cron-like job or a sync, weekends included
    for machines that never stop."""
    s = c.settings
    svc_cust = np.repeat(np.arange(len(c.persona)), s["svc"].astype(int))
    svc = _group_index(s["svc"].astype(int))
    first = np.ceil(np.maximum(s["api_start"][svc_cust], c.usage_start[svc_cust])).astype(int)
    last = np.floor(c.end[svc_cust]).astype(int)
    length = np.maximum(last - first, 0)
    volume = rng.lognormal(0, 0.5, len(svc_cust))  # service users differ in load
    rep = np.repeat(np.arange(len(svc_cust)), length)
    day = first[rep] + _group_index(length)
    cu = svc_cust[rep]
    weekend = WEEKDAY[day] >= 5
    since = day - c.signup[cu]
    fade = np.where(c.churned[cu], np.clip((c.end[cu] - day) / s["decline"][cu], 0.1, 1), 1.0)
    busy = season[cu, CAL_MONTH[day]] * fade
    prob = (
        s["api_days"][cu] * np.where(weekend, s["api_weekend"][cu], 1.0) * np.minimum(busy * 1.5, 1)
    )
    on = rng.random(len(rep)) < prob
    rep, day, cu, since, busy = rep[on], day[on], cu[on], since[on], busy[on]
    calls = (
        s["api_c"][cu]
        * volume[rep]
        * busy
        * np.exp(s["api_growth"][cu] * since / MONTH + 0.4 * rng.standard_normal(len(rep)))
    )
    ends = 1 + rng.binomial(2, 0.35, len(rep))
    er = np.repeat(np.arange(len(rep)), ends)
    pick = _pick(endpoint_cdf, cu[er], rng.random(len(er)))
    quantity = 1 + rng.poisson(calls[er] / ends[er])
    person = np.where(rng.random(len(er)) < s["api_anonymous"][cu[er]], -1, _SERVICE + svc[rep[er]])
    t = day[er] + rng.uniform(0, 1, len(er))
    rows.add(cu[er], t, "api_call", person, endpoint_code[pick], quantity)


def _usage_frame(c: Customers, rows: _Rows, starts: Array, names: pd.Index) -> pd.DataFrame:
    """Rows in time order per customer, numbered like ``planted.with_event_ids`` does. There can
    be a hundred million of them, so each column is gathered, filtered and ordered on its own
    (one column's copies at a time) and stored compactly."""

    def joined(parts: list[Array]) -> Array:
        whole = np.concatenate(parts)
        parts.clear()  # the pieces are not needed twice
        return whole

    t = np.minimum(joined(rows.t), HISTORY_DAYS - 1e-5)
    cust = joined(rows.cust)
    # A trial day in a time zone east of UTC can fall before the history, and a leaver's last
    # local evening after the cancellation instant: neither is kept.
    keep = (t >= 0) & (t < c.end[cust])
    t, cust = t[keep], cust[keep]
    # Customer ids sort as their numbers (zero padded). One integer key (customer, microsecond:
    # 46 bits hold the history) sorts several times faster than a lexsort over two columns.
    if len(c.persona) < 1 << 17:
        order = np.argsort((cust.astype(np.int64) << 46) + np.round(t * DAY_US).astype(np.int64))
    else:
        order = np.lexsort((t, cust))
    t, cust = t[order], cust[order]

    def column(parts: list[Array], keep: Array, order: Array) -> Array:
        return joined(parts)[keep][order]

    person = column(rows.person, keep, order)
    ids = c.settings["ids"]
    # Person numbers to dense user codes by arithmetic (no sort over all rows).
    kind = (person >= _GUEST).astype(np.int8) + (person >= _SERVICE)
    base = np.array([0, _GUEST, _SERVICE])[kind]
    user_index = np.where(person >= 0, starts[cust, kind] + person - base, -1).astype(np.int32)
    del kind, base, person
    event = column(rows.event, keep, order)
    feature = column(rows.feature, keep, order)
    quantity = column(rows.quantity, keep, order)
    del keep, order

    def strings(codes: Array, vocabulary: Array | pd.Index | tuple[str, ...]) -> pd.Categorical:
        # Categorical (dictionary-encoded in Parquet): four bytes a row instead of a string,
        # which is what lets 100,000 customers fit in memory; -1 is a missing value.
        categories = pd.Index(vocabulary, dtype="str")
        return pd.Categorical.from_codes(codes.astype(np.int32), categories=categories)

    numbers = pa.array(np.arange(len(cust))).cast(pa.string())
    # Built column by column in the contract's order, so no frame is copied afterwards.
    columns = {
        "event_id": pd.Series(
            pc.binary_join_element_wise("u", numbers, ""),
            dtype=pd.ArrowDtype(pa.string()),
            copy=False,
        ),
        "customer_id": strings(cust, ids),
        "occurred_at": timestamps(HISTORY_DAYS - t),
        "event": strings(event, EVENTS),
        "user_id": strings(user_index, names),
        "feature": strings(feature, ALL_FEATURES),
        "quantity": quantity.astype(np.int64),
    }
    assert tuple(columns) == USAGE_COLUMNS
    return pd.DataFrame(columns, copy=False)


# ---------------------------------------------------------------------------------------------


def generate(spec: CompanySpec) -> PlantedCompany:
    """A company of ``spec.customers`` customers of ``spec.personas`` planted personas."""
    if spec.customers < 1:
        raise ValueError("customers: at least 1")
    rng = np.random.default_rng(spec.seed)
    personas = personas_for(spec)
    c = _customers(spec, personas, rng)
    c.settings["ids"] = customer_ids(spec.customers, "cus_")
    sub = _subscriptions(c, personas, rng)
    billing, invites = _billing(c, sub, rng)
    usage = _usage(c, sub, invites, personas, spec.seed, rng)
    truth = pd.DataFrame(
        {
            "customer_id": c.settings["ids"],
            "persona": np.array([p.name for p in personas], dtype=object)[c.persona],
            "churned": c.churned,
            "is_annual_plan": c.annual,
            "country": np.array(COUNTRIES, dtype=object)[c.country],
        }
    )
    return PlantedCompany(billing=billing, usage=usage, truth=truth)


if __name__ == "__main__":
    write_from_command_line(generate, "A SaaS company whose personas were written blind.")
