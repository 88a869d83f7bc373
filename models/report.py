"""A report to share: one self-contained HTML file with the segment cards and charts.

Everything it needs is inlined (styles, plotly.js, the figures), so it opens offline and can be
mailed or logged to MLflow as one file. It shows what the browser pages show, from the same
templates (``models/templates``) and the same figures (``models.charts``).
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

import jinja2

from feature_store.timeutil import as_of_text, moment_text
from models.business import BACKTEST_WINDOW_DAYS, CANCELED
from models.charts import (
    MapPoints,
    churn_figure,
    churn_heading,
    churned_figure,
    colour,
    contrast_figure,
    figure_json,
    map_figure,
    optional_json,
    project_2d,
    share_figure,
)
from models.summaries import (
    churned_line,
    contrasts,
    currency_line,
    headline,
    percent,
    segment_cards,
    segment_ids,
    structure_line,
)
from models.wording import probability_text

if TYPE_CHECKING:
    import pandas as pd

    from models.bundle import SegmentModel

TEMPLATES = "templates"
HEADLINE_LINES = 3


def template_text(name: str) -> str:
    """A file of ``models/templates`` (styles and scripts shared with the browser pages)."""
    return resources.files("models").joinpath(TEMPLATES, name).read_text(encoding="utf-8")


@cache
def plotly_js() -> str:
    """plotly.min.js as shipped in the ``plotly`` package, safe to inline in a script element."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


def environment(*extra_loaders: jinja2.BaseLoader) -> jinja2.Environment:
    """Templates of ``models/templates`` (after ``extra_loaders``), autoescaped, with helpers."""
    loader = jinja2.ChoiceLoader([*extra_loaders, jinja2.PackageLoader("models", TEMPLATES)])
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals.update(
        percent=percent,
        probability=probability_text,
        colour=colour,
        figure_label=figure_label,
        as_of_text=as_of_text,
        moment_text=moment_text,
        # the backtest's window, for tables that name it ("Churn, 90-day backtest")
        backtest_window_days=BACKTEST_WINDOW_DAYS,
    )
    return env


def figure_label(figure_json: str) -> str:
    """What a chart shows, for a screen reader (its ``aria-label``): the figure's title, and the
    axes' titles when it has them. Each chart is drawn into an element with ``role="img"``, which
    a screen reader announced without a name."""
    layout = json.loads(figure_json).get("layout", {})
    parts = [_title_text(layout.get("title"))]
    # "x: Share cancelled…" was read out where a chart has no title
    for axis, said in (("xaxis", "across"), ("yaxis", "up")):
        text = _title_text(layout.get(axis, {}).get("title"))
        if text:
            parts.append(f"{said}: {text}")
    label = "; ".join(part for part in parts if part)
    return re.sub(r"<[^>]+>", " ", label).strip() or "Chart"


def _title_text(title: object) -> str:
    if isinstance(title, dict):
        return str(title.get("text") or "")
    return str(title or "")


# Who a dot of a map drawn from the model's own training sample is (the sample keeps no ids).
SAMPLE_CUSTOMER = "a customer it was trained on"


def customer_map_points(model: SegmentModel, table: pd.DataFrame) -> MapPoints:
    """The customers of a feature table on the map, cancelled customers left out as the
    service's map leaves them (``service.members``): they are in no segment, and a report drawn
    from a feature table coloured 328 of them as members of segments its cards said they were
    not in (a product manager's review). ``customer_id`` names the dots (``SAMPLE_CUSTOMER``
    without one)."""
    if CANCELED in table.columns:
        table = table[table[CANCELED] != 1]
    values = model.values(table)
    placed = model.place(values)
    ids = (
        table["customer_id"].astype(str).tolist()
        if "customer_id" in table.columns
        else [SAMPLE_CUSTOMER] * len(table)
    )
    return project_2d(model.segmenter.transform(values), placed.segment, ids)


def training_sample_points(model: SegmentModel) -> MapPoints | None:
    """The map of the training sample the model carries (``SegmentModel.reference``, up to
    5,000 rows); None for a model without one. A report had no map unless given a feature table
    (a product manager's review: the service's map page has one)."""
    sample = getattr(model, "reference", None)
    if sample is None or sample.empty:
        return None
    return customer_map_points(model, sample)


def render_report(
    model: SegmentModel,
    version: str,
    *,
    title: str = "Customer segments",
    map_points: MapPoints | None = None,
    map_note: str | None = None,
    served: str | None = None,
) -> str:
    """The report of ``model`` as one HTML document; ``map_points`` adds the customer map, and
    ``map_note`` says whom it shows.
    ``served``: the version the service answers with, when known; a report of another version
    says so, and a discovery's names the customers it selected (a report of an enterprise-only
    challenger read "Share of MRR … of all monthly recurring revenue" and named neither: a
    product team's review)."""
    cards = segment_cards(model)
    rows = [contrasts(model, card.position) for card in cards]
    churn = churn_figure(cards)
    template = environment().get_template("report.html.j2")
    return template.render(
        title=title,
        version=version,
        served=served,
        selection=getattr(getattr(model, "churned", None), "selection", None),
        trained_at=model.trained_at,
        features_as_of=getattr(model, "features_as_of", None),  # older models have none
        customers=sum(card.customers for card in cards),
        cards=cards,
        headlines=[headline(model, card.position, HEADLINE_LINES) for card in cards],
        churned_line=churned_line(model),
        currency_line=currency_line(model),
        structure_line=structure_line(model),
        shares=figure_json(share_figure(cards)),
        churn=optional_json(churn),
        churn_heading=churn_heading(cards),
        # models pickled before churned customers were recorded have none
        churned_chart=optional_json(churned_figure(cards, getattr(model, "churned", None))),
        map=None
        if map_points is None
        else figure_json(map_figure(map_points, model.segment_names, segment_ids(model))),
        map_note=map_note,
        contrast_rows=rows,
        contrast_figures=[figure_json(contrast_figure(r)) for r in rows],
        css=template_text("segments.css"),
        charts_js=template_text("charts.js"),
        plotly_js=plotly_js(),
    )
