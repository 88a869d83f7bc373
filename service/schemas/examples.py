"""Response examples for the OpenAPI document (shapes of real answers, trimmed)."""

from __future__ import annotations

from typing import Any

from service.problems import unknown_customer
from service.schemas.features import EXAMPLE_VECTOR

ASSIGNMENT: dict[str, Any] = {
    "customer_id": "cus_000002",
    "segment": {
        "id": 5,
        "name": "Annual plans · Heavy API use · Premium price per seat",
        "since": "1",
    },
    "confidence": 1.0,
    "is_outlier": False,
    "runner_up": {"id": 0, "name": "Monthly plans", "since": "1", "margin": 1.0},
    "explanation": {
        "base_value": -7.23,
        "output_value": 15.55,
        "contributions": [
            {
                "feature": "seats",
                "value": 64.0,
                "contribution": 8.51,
                "typical_range": [104.0, 226.0],
                "text": "Licensed seats: 64; typical for this segment: 104 to 226; for the "
                "runner-up: 5 to 12; moves with monthly recurring revenue (3,052.46 USD a month)",
                "direction": "towards",
                "description": "Licensed seats",
                "percentile": 91.5,
                "standing": "higher than 91% of customers",
                "versus_typical_range": [5.0, 12.0],
                "moves_with": ["mrr"],
            }
        ],
        "method": "tree_shap_contrast",
        "versus": {"id": 0, "name": "Monthly plans", "since": "1"},
        "supports_segment": True,
    },
    "features": EXAMPLE_VECTOR,
    "model": {"name": "customer-segments", "version": "1"},
    "summary": "In segment 'Annual plans · Heavy API use · Premium price per seat' with 100% "
    "confidence; runner-up 'Monthly plans'.",
}

BATCH: dict[str, Any] = {
    "results": [
        {"status": 200, "assignment": {**ASSIGNMENT, "explanation": None}},
        {
            "status": 404,
            "problem": {
                "type": "urn:customer-segments:problem:unknown_customer",
                "title": "Not Found",
                "status": 404,
                "detail": unknown_customer("cus_404").detail,
                "code": "unknown_customer",
            },
        },
    ]
}

SEGMENT: dict[str, Any] = {
    "id": 3,
    "since": "2",
    "name": "Downgrading · Payment failures · Dunning history",
    "size": 34,
    "share": 0.113,
    "mrr_total": 6672.3,
    "mrr_mean": 196.24,
    "mrr_share": 0.026,
    "ltv_median": 2129.75,
    "tenure_median_days": 309.5,
    "churn_rate": 0.0,
    "mrr_lost_90d": 2199.59,
    "outlier_share": 0.0,
    "distinguishing": [
        {"feature": "failed_payments_90d", "effect": 17.2, "segment_mean": 2.79, "rest_mean": -0.36}
    ],
    "drivers": [{"feature": "contractions_365d", "mean_abs_contribution": 19.7}],
    "typical_ranges": {"mrr": [101.94, 270.3], "failed_payments_90d": [4.0, 5.0]},
    "medians": {"mrr": 210.98, "failed_payments_90d": 4.0},
    "example_customers": ["cus_000000", "cus_000015"],
}

SEGMENTS: dict[str, Any] = {
    "model": {"name": "customer-segments", "version": "4"},
    "segments": [SEGMENT],
}

MODEL: dict[str, Any] = {
    "name": "customer-segments",
    "version": "4",
    "alias": "champion",
    "trained_at": "2026-07-01T06:00:00Z",
    "loaded_at": "2026-07-01T06:05:12Z",
    "source": "registry",
    "n_segments": 6,
    "metrics": {
        "silhouette": 0.41,
        "stability": 0.98,
        "surrogate_fidelity": 0.99,
        "n_segments": 6.0,
    },
    "features": [
        {
            "name": "mrr",
            "family": "value",
            "dtype": "float",
            "unit": "currency/month",
            "description": "Monthly recurring revenue",
            "in_spec": True,
            "minimum": 0.0,
            "maximum": 1e12,
        }
    ],
}

LINEAGE: dict[str, Any] = {
    "version": "5",
    "previous": "4",
    "next_id": 8,
    "overlap_customers": 2980,
    "transitions": [
        {
            "version": "5",
            "previous": "4",
            "id": 3,
            "transition": "survived",
            "name": "Downgrading · Payment failures · Dunning history",
            "since": "2",
            "parents": [3],
            "children": [],
            "jaccard": 0.94,
            "customers": 301,
            "renamed_from": None,
            "returned_from": None,
            "text": "version 5 kept segment 3 (94% of the customers in its segment of either "
            "version 4 or 5 are in both)",
            "relation": None,
        },
        {
            "version": "5",
            "previous": "4",
            "id": 7,
            "transition": "new",
            "name": "Annual plans · Heavy API use",
            "since": "5",
            "parents": [],
            "children": [],
            "jaccard": None,
            "customers": 88,
            "renamed_from": None,
            "returned_from": None,
            "text": "version 5 made segment 7",
            "relation": None,
        },
    ],
    "migration": {"3": {"3": 290, "7": 11}},
}

LIVE: dict[str, Any] = {"status": "ok"}
READY: dict[str, Any] = {"status": "ready", "model": {"name": "customer-segments", "version": "4"}}


MEMBERS: dict[str, Any] = {
    "model": {"name": "customer-segments", "version": "3"},
    "segment_id": 2,
    "segment_name": "Annual plan, many seats",
    "total": 412,
    "customers": [
        {"customer_id": "cus_000017", "confidence": 0.97, "is_outlier": False},
        {"customer_id": "cus_000042", "confidence": 0.88, "is_outlier": False},
    ],
    "next_cursor": "eyJ2IjoiMyIsInMiOjIsImEiOiJjdXNfMDAwMDQyIn0",
}


def ok(example: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry documenting a 200 answer's example."""
    return {200: {"content": {"application/json": {"example": example}}}}
