"""The pictures of a model, as Plotly figure dictionaries, in plain words and the features' units.

The browser pages and the shared report draw the same figures: each function here turns
summaries (``models.summaries``) or an explanation into a ``{"data": [...], "layout": {...}}``
dictionary that ``Plotly.newPlot`` draws. No axis says "standardised mean" or "log-odds": the
reader sees shares, percentiles of all customers and "towards / away from the segment".

Pure functions of numbers; no I/O and no plotly import (the figures are plain JSON).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils.extmath import svd_flip

from feature_store.formats import strict_json_value
from models.assignment import Explanation
from models.business import ChurnedCustomers
from models.summaries import Contrast, SegmentCard, customer_value_text, percent, range_text

Figure = dict[str, Any]
# Paul Tol's "muted" scheme in the order he gives it, so that neighbouring ids (the segments a
# model has together) differ most, started at indigo so that segment 0 is not the rose of the
# "away" bars; then pale grey and two of his "light" colours for a tenth to twelfth segment. The
# scheme stays distinguishable for colour-blind readers. Before, ids 6 and 7 were rose and wine,
# which a product team could not tell apart as map dots, and 6 and 10 two roses.
PALETTE = (
    "#332288",  # indigo
    "#DDCC77",  # sand
    "#117733",  # green
    "#88CCEE",  # cyan
    "#882255",  # wine
    "#44AA99",  # teal
    "#999933",  # olive
    "#AA4499",  # purple
    "#CC6677",  # rose
    "#BBBBBB",  # pale grey
    "#EE8866",  # orange
    "#77AADD",  # light blue
)
TOWARDS, AWAY = "#117733", "#CC6677"
# Above and below average: two hues that mean neither good nor bad (Paul Tol's "vibrant" blue
# and orange), since more failed payments is worse and more logins better. Green and red are kept
# for an explanation's towards / away from a segment, which does mean for and against.
ABOVE, BELOW = "#0077BB", "#EE7733"
SHARE_OF_CUSTOMERS, SHARE_OF_MONEY = "#8A9099", "#2F343B"  # not in ``PALETTE``; 3.2:1 on white
MAX_MAP_POINTS = 5000
MIN_CHURN_AXIS = 0.05  # the churn axis spans at least 0 to 5%
WATERFALL_BARS = 8
CONTRAST_BARS = 12


def colour(segment_id: int) -> str:
    """A segment's colour, by its *public* id: the same in every picture (pages, report, the
    training and lifecycle PNGs) and across versions while the segment keeps its id."""
    return PALETTE[segment_id % len(PALETTE)]


def _layout(**extra: Any) -> dict[str, Any]:
    return {
        "font": {"family": "system-ui, sans-serif", "size": 13},
        "margin": {"l": 10, "r": 10, "t": 30, "b": 40},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        **extra,
    }


def optional_json(figure: Figure | None) -> str | None:
    """``figure_json`` of a picture a page may not have (None stays None)."""
    return None if figure is None else figure_json(figure)


def figure_json(figure: Figure) -> str:
    """The figure as JSON that is safe inside a ``<script type="application/json">`` element."""
    text = json.dumps(strict_json_value(figure), allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _label(card: SegmentCard) -> str:
    return f"{card.name} ({card.id})"


def share_figure(cards: Sequence[SegmentCard]) -> Figure:
    """Each segment's share of customers beside its share of MRR."""
    labels = [_label(c) for c in cards]
    money = cards[0].money if cards else "MRR"  # of MRR, or of revenue to date (no MRR at all)
    # Two greys no segment has: the cyan and indigo these bars were drawn in are segments 3's
    # and 0's colours, so a bar of one segment read as another's (a product manager's review).
    bars = [
        ("Share of customers", "of customers", [c.share for c in cards], SHARE_OF_CUSTOMERS),
        (f"Share of {money}", f"of {money}", [c.money_share for c in cards], SHARE_OF_MONEY),
    ]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "name": name,
                "y": labels,
                "x": values,
                "marker": {"color": colour_},
                # the cards' own rounding (``percent``): the hover said "0%" of MRR beside a
                # card's 0.3% (a product manager's review)
                "customdata": [percent(value) for value in values],
                "hovertemplate": "%{y}: %{customdata} " + whose + "<extra></extra>",
            }
            for name, whose, values, colour_ in bars
        ],
        "layout": _layout(
            barmode="group",
            height=max(220, 46 * len(cards) + 80),
            xaxis={
                "tickformat": ".0%",
                "title": {"text": f"Share of all customers / of all {money}"},
            },
            yaxis={"autorange": "reversed", "automargin": True},
            # above the plot and growing upwards: a legend that wraps on a phone (390 px) pushes
            # the top margin rather than covering the first bars
            legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        ),
    }


def _window_days(cards: Sequence[SegmentCard]) -> int | None:
    """The backtest's window, the same for every measured segment of a model."""
    return next((c.window_days for c in cards if _measured(c) is not None), None)


def _measured(card: SegmentCard) -> tuple[float, tuple[float, float]] | None:
    """The card's backtested rate and 90% interval: its churn, or, in a business of invoices
    alone, the share who bought again; None when not measured."""
    if card.churn_rate is not None and card.churn_interval is not None:
        return card.churn_rate, card.churn_interval
    if card.repurchase_rate is not None and card.repurchase_interval is not None:
        return card.repurchase_rate, card.repurchase_interval
    return None


def _buyers(cards: Sequence[SegmentCard]) -> bool:
    """Whether the backtest is of buyers (a business of invoices alone): no churn is measured
    and some segment's share who bought again is."""
    return not any(c.churn_rate is not None for c in cards) and any(
        c.repurchase_rate is not None for c in cards
    )


def churn_heading(cards: Sequence[SegmentCard]) -> str:
    """The churn chart's heading, naming the backtest's window ("Churn by segment, 90-day
    backtest"; "Bought again by segment, ..." for a business of invoices alone)."""
    days = _window_days(cards)
    what = "Bought again by segment" if _buyers(cards) else "Churn by segment"
    return what if days is None else f"{what}, {days}-day backtest"


def churn_figure(cards: Sequence[SegmentCard]) -> Figure | None:
    """Backtested churn per segment with its 90% interval; None when no segment was measured.
    The axis names the window, as every table and picture of churn does (issue 9). A segment
    the backtest could not measure keeps its row, with no bar and the reason beside its name, so
    a missing bar never reads as 0% or as a segment left out. In a business of invoices alone,
    where no subscription can churn, the same chart of the share who bought again."""
    buyers = _buyers(cards)
    measured = [c for c in cards if _measured(c) is not None]
    if not measured:
        return None
    figures = [_measured(c) for c in cards]
    rates = [None if f is None else f[0] for f in figures]
    days = _window_days(measured)
    # At least 0 to 5%: where every interval ends near 0 (a company with no churn), the axis
    # otherwise ticked every 0.2% in whole percents, "0% 0% 0% 1% 1%".
    highest = max(f[1][1] for f in figures if f is not None)
    axis_end = (
        min(1.0, max(MIN_CHURN_AXIS, 1.1 * highest))
        if buyers
        else max(MIN_CHURN_AXIS, 1.1 * highest)
    )
    notes = [c.repurchase_note if buyers else c.churn_note for c in cards]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": [_label(c) for c in cards],
                "x": rates,
                "marker": {"color": [colour(c.id) for c in cards]},
                "error_x": {
                    "type": "data",
                    "symmetric": False,
                    "array": [None if f is None else f[1][1] - f[0] for f in figures],
                    "arrayminus": [None if f is None else f[0] - f[1][0] for f in figures],
                    "color": "#444",
                },
                "customdata": [
                    "" if f is None else f"{percent(f[0])} (90% interval {range_text(*f[1])})"
                    for f in figures
                ],
                "hovertemplate": "%{y}: %{customdata} "
                + ("bought again" if buyers else "cancelled")
                + "<extra></extra>",
            }
        ],
        "layout": _layout(
            height=max(200, 40 * len(cards) + 80),
            xaxis={
                "tickformat": ".0%",
                "range": [0, axis_end],
                "title": {
                    # short enough for the plot area beside long segment names; whom the
                    # share is of is said under each card (``backtest_basis``)
                    "text": (
                        f"Share who bought again within {days} days (line: 90% interval)"
                        if buyers
                        else f"Share cancelled within {days} days (line: 90% interval)"
                    )
                },
            },
            yaxis={"autorange": "reversed", "automargin": True},
            annotations=[
                {
                    "x": 0,
                    "y": _label(c),
                    "xref": "x",
                    "yref": "y",
                    "xanchor": "left",
                    "xshift": 6,
                    "showarrow": False,
                    "text": note,
                    "font": {"color": "#555", "size": 11},
                }
                for c, r, note in zip(cards, rates, notes, strict=True)
                if r is None
            ],
            showlegend=False,
        ),
    }


def churned_figure(cards: Sequence[SegmentCard], churned: ChurnedCustomers | None) -> Figure | None:
    """The churned customers by the segment they were in when last active (the churned line's
    last part, for every segment rather than the three largest), with those that could not be
    placed as a row of their own; None when nobody was placed."""
    if churned is None or not churned.last_segment:
        return None
    counts = [churned.last_segment.get(c.position, 0) for c in cards]
    labels = [_label(c) for c in cards]
    colours = [colour(c.id) for c in cards]
    if churned.last_segment_unknown:
        counts.append(churned.last_segment_unknown)
        labels.append("not placed (no usage then, or not paying)")
        colours.append("#bbbbbb")
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": labels,
                "x": counts,
                "marker": {"color": colours},
                "hovertemplate": "%{y}: %{x:,} cancelled customers<extra></extra>",
            }
        ],
        "layout": _layout(
            height=max(200, 40 * len(labels) + 80),
            xaxis={
                "rangemode": "tozero",
                "title": {
                    "text": "Cancelled customers, by the segment they were in when last active"
                },
            },
            yaxis={"autorange": "reversed", "automargin": True},
            showlegend=False,
        ),
    }


def _offset(row: Contrast) -> float:
    """The bar of one feature: how far the segment stands from average (``Contrast.offset``),
    at least a stub of 1 where it differs, so the direction shows; no bar when it is like
    everyone."""
    if row.direction == "same":
        return 0.0
    offset = row.offset
    return max(offset, 1.0) if row.direction == "more" else min(offset, -1.0)


def contrast_figure(rows: Sequence[Contrast], limit: int = CONTRAST_BARS) -> Figure:
    """Where the segment's typical customer stands among all customers, feature by feature:
    bars to the right are more than average, to the left less (the first ``limit`` rows)."""
    # in the table's order (what sets the segment apart most first): sorted by length, the bars
    # read in another order than the table beneath them (a product team's walkthrough)
    shown = [r for r in rows if r.percentile is not None][:limit]
    offsets = [_offset(r) for r in shown]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": [r.label for r in shown],
                "x": offsets,
                "base": 50,
                "marker": {"color": [ABOVE if x >= 0 else BELOW for x in offsets]},
                "hovertext": [f"{r.label}: {r.text}" for r in shown],
                "hovertemplate": "%{hovertext}<extra></extra>",
            }
        ],
        "layout": _layout(
            height=max(220, 28 * len(shown) + 90),
            xaxis={
                # a little past both ends: a tick label on the plot's right edge was not drawn
                "range": [-4, 104],
                "tickvals": [0, 25, 50, 75, 100],
                "ticktext": ["lowest", "lower", "average", "higher", "highest"],
                "title": {"text": "Where the segment's customers stand among all customers"},
                "zeroline": False,
            },
            yaxis={"autorange": "reversed", "automargin": True},
            shapes=[
                {
                    "type": "line",
                    "x0": 50,
                    "x1": 50,
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": "#666", "dash": "dot"},
                }
            ],
            showlegend=False,
        ),
    }


def waterfall_figure(
    explanation: Explanation,
    segment_name: str,
    bars: int = WATERFALL_BARS,
    *,
    currency: str | None = None,
    events_30d: float | None = None,
    canceled: bool = False,
) -> Figure:
    """How each feature moved the customer towards (right) or away from (left) its segment,
    starting from an average customer; the smallest effects are summed into one bar. In the
    contrast view (``explanation.versus``) the question is "this segment rather than the
    runner-up", and the bars, hovers and axis say so. Values read as in the page's list beside
    it (``customer_value_text``): money in ``currency``, and an idle value as what it means for a
    customer with ``events_30d`` of 0 (the bars read "MRR: 49.00" and "Share of activity
    through the API (30 days): 0%" beside "49.00 EUR a month" and "no activity in the last 30
    days", a product manager's review)."""
    shown = explanation.contributions[:bars]
    rest = explanation.contributions[bars:]
    target = f"'{segment_name}'"
    # Where a leftward bar points: away from the segment, or, in the contrast view, towards the
    # runner-up rather than the segment (the axis says the same).
    leftward = f"away from {target}"
    if explanation.versus is not None:
        rival = f"'{explanation.versus.name}'"
        target, leftward = f"{target} rather than {rival}", f"towards {rival} rather than {target}"
    labels = ["An average customer"]
    labels += [
        f"{c.description}: "
        f"{customer_value_text(c.feature, c.value, currency, events_30d, canceled=canceled)}"
        for c in shown
    ]
    moves = [c.contribution for c in shown]
    hover = [f"Where an average customer starts for {target}"]
    hover += [
        (f"towards {target}" if c.contribution >= 0 else leftward)
        + (f"; {c.standing}" if c.standing else "")
        for c in shown
    ]
    if rest:
        labels.append(f"{len(rest)} other features")
        moves.append(sum(c.contribution for c in rest))
        hover.append("the remaining features together")
    labels.append("This customer")
    hover.append(f"How strongly this customer fits {target}")
    axis = f"Fit with '{segment_name}': ← away from it · towards it →"
    if explanation.versus is not None:
        axis = f"← towards '{explanation.versus.name}' · towards '{segment_name}' →"
    return {
        "data": [
            {
                "type": "waterfall",
                "orientation": "h",
                "y": labels,
                "x": [explanation.base_value, *moves, 0],
                "measure": ["absolute", *["relative"] * len(moves), "total"],
                "hovertext": hover,
                "hovertemplate": "%{y}<br>%{hovertext}<extra></extra>",
                "increasing": {"marker": {"color": TOWARDS}},
                "decreasing": {"marker": {"color": AWAY}},
                "totals": {"marker": {"color": "#332288"}},
                "connector": {"line": {"color": "#999", "width": 1}},
            }
        ],
        "layout": _layout(
            height=max(260, 34 * len(labels) + 80),
            # No numbers on the axis (they are the surrogate's units, not the customer's); in the
            # contrast view its zero is where the two segments are even, and it is drawn.
            xaxis={
                "title": {"text": axis},
                "showticklabels": False,
                "zeroline": explanation.versus is not None,
                "zerolinecolor": "#666",
            },
            yaxis={"autorange": "reversed", "automargin": True},
            showlegend=False,
        ),
    }


@dataclass(frozen=True)
class MapPoints:
    """Customers placed in 2-D: the two directions along which they differ most."""

    x: np.ndarray
    y: np.ndarray
    segment: np.ndarray  # model positions
    customer_ids: list[str]


def project_2d(matrix: np.ndarray, segment: np.ndarray, customer_ids: list[str]) -> MapPoints:
    """First two principal components of ``matrix`` (rows are customers)."""
    if len(matrix) == 0:
        empty = np.zeros(0)
        return MapPoints(empty, empty, np.asarray(segment, dtype=int), list(customer_ids))
    centred = matrix - matrix.mean(axis=0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    # Each direction's sign fixed by its largest loading (scikit-learn's rule for PCA): the
    # report's map and the service's were mirror images of each other (a product manager's
    # review), as an SVD's signs are arbitrary.
    _, directions = svd_flip(None, directions, u_based_decision=False)
    coords = centred @ directions[:2].T
    if coords.shape[1] < 2:  # a single feature column: the map is a line
        coords = np.column_stack([coords[:, 0], np.zeros(len(coords))])
    return MapPoints(coords[:, 0], coords[:, 1], np.asarray(segment, dtype=int), list(customer_ids))


def map_figure(
    points: MapPoints,
    names: Sequence[str],
    ids: Sequence[int],
    max_points: int = MAX_MAP_POINTS,
) -> Figure:
    """One dot per customer (a fixed sample beyond ``max_points``), coloured by segment."""
    rows = np.arange(len(points.x))
    if len(rows) > max_points:
        rows = np.sort(np.random.default_rng(0).choice(rows, max_points, replace=False))
    traces = []
    for position, name in enumerate(names):
        chosen = rows[points.segment[rows] == position]
        label = f"{name} ({ids[position]})"
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                # the id first: on a phone (390 px) the legend cuts long names at its edge,
                # and the id at their end was cut with them
                "name": f"{ids[position]}: {name}",
                "x": np.round(points.x[chosen], 4).tolist(),
                "y": np.round(points.y[chosen], 4).tolist(),
                "hovertext": [f"{_as_written(points.customer_ids[r])} · {label}" for r in chosen],
                "hovertemplate": "%{hovertext}<extra></extra>",
                # the customer's id, which a page that links dots to customers opens on a click
                "customdata": [str(points.customer_ids[r]) for r in chosen],
                # a thin dark outline: the palette's pale sand and sky (1.6:1 and 1.8:1 on
                # white) were hard to see on their own (WCAG 2.1, 1.4.11 asks 3:1)
                "marker": {
                    "size": 5,
                    "opacity": 0.75,
                    "color": colour(ids[position]),
                    "line": {"width": 0.5, "color": "#1d1f24"},
                },
            }
        )
    axis = {"showticklabels": False, "zeroline": False, "showgrid": False, "title": {"text": ""}}
    return {
        "data": traces,
        "layout": _layout(
            height=560,
            xaxis=axis,
            yaxis=axis,
            legend={"title": {"text": "Segment"}, "orientation": "h", "y": -0.05},
            hovermode="closest",
        ),
    }


def _as_written(text: str) -> str:
    """Data shown as written in a chart. Plotly reads a subset of HTML in hover text and labels
    (``<a href>``, ``<span style>``): a customer id such as ``<span style="font-size:60px">``
    was drawn as markup. Plotly reads the entities back, so the escaped text shows as typed."""
    return html.escape(text, quote=False)


def _translucent(hex_colour: str, alpha: float) -> str:
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def migration_figure(
    migration: Mapping[str, Mapping[str, int]],
    champion_names: Mapping[str, str],
    challenger_names: Mapping[str, str],
) -> Figure:
    """Customers flowing from each champion segment (left) to each challenger segment (right),
    as a Sankey diagram; nodes read their public id and keep its colour, as in the side-by-side
    table above the picture, and hovering names them. Plotly writes a node's label on the side
    facing the flows, so names ran under every flow that crossed the diagram (a product team's
    walkthrough); an id is short enough to stand clear of them."""
    left = sorted(migration, key=int)
    right = sorted({new for row in migration.values() for new in row}, key=int)
    names = [f"{i}: {champion_names.get(i, '?')}" for i in left]
    names += [f"{i}: {challenger_names.get(i, '?')}" for i in right]
    sources, targets, values, colours = [], [], [], []
    for row, old in enumerate(left):
        for new, count in sorted(migration[old].items(), key=lambda item: int(item[0])):
            if count > 0:
                sources.append(row)
                targets.append(len(left) + right.index(new))
                values.append(int(count))
                colours.append(_translucent(colour(int(old)), 0.35 if old != new else 0.2))
    return {
        "data": [
            {
                "type": "sankey",
                "arrangement": "snap",
                "node": {
                    "label": left + right,
                    "customdata": names,
                    "color": [colour(int(i)) for i in left + right],
                    "pad": 14,
                    "thickness": 16,
                    "hovertemplate": "%{customdata}: %{value:,} customers<extra></extra>",
                },
                "link": {
                    "source": sources,
                    "target": targets,
                    "value": values,
                    "color": colours,
                    "customdata": [
                        f"{names[s]} → {names[t]}" for s, t in zip(sources, targets, strict=True)
                    ],
                    "hovertemplate": "%{customdata}: %{value:,} customers<extra></extra>",
                },
            }
        ],
        "layout": _layout(height=max(320, 38 * max(len(left), len(right)) + 80)),
    }
