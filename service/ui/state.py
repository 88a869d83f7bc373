"""What the pages share, built once per app by ``install_ui``: sessions, assets, templates."""

from __future__ import annotations

from dataclasses import dataclass, field

import jinja2

from feature_store.schema import MAX_ID_LENGTH
from models.business import too_few_text
from models.comparison import DIFFERENT_CUSTOMERS_NOTE, OUTSIDE_SELECTION
from models.report import environment
from service.ui.assets import Assets
from service.ui.sessions import UiSessions
from service.ui.views import customer_url


def page_templates() -> jinja2.Environment:
    """The page templates, then the ones shared with the report (cards, tables, figures)."""
    templates = environment(jinja2.PackageLoader("service.ui", "templates"))
    templates.globals["customer_url"] = customer_url
    templates.globals["outside_selection"] = OUTSIDE_SELECTION
    templates.globals["different_customers_note"] = DIFFERENT_CUSTOMERS_NOTE
    # the longest id the events contract takes: a member search of a longer one finds no one
    templates.globals["max_id_length"] = MAX_ID_LENGTH
    # a churn the backtest could not measure, in the words `segments train` and the Compare page
    # use ("too few: would have held 0 paying then"; a discovery's result said "not measured")
    templates.globals["too_few_text"] = too_few_text
    return templates


@dataclass
class UiState:
    sessions: UiSessions
    assets: Assets = field(default_factory=Assets)
    templates: jinja2.Environment = field(default_factory=page_templates)
