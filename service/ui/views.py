"""What the pages show, built from the served model and its member table (no HTTP here)."""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import numpy as np

from feature_store.registry import find
from models.assignment import Assignment
from models.comparison import (
    backtest_window_text,
    different_customers,
    of_buyers,
    of_revenue,
    side_churn,
    worded_transitions,
)
from models.gates import GATE_MEANINGS, gate_value_text, kept_share_text, verdict_text
from models.lineage import lineage_words
from models.summaries import (
    customer_value_text,
    percent,
    reporting_currency,
    segment_ids,
    with_unit,
)
from models.wording import alike_list, alike_name, format_value, overlap_text
from service.lifecycle import LoadedModel
from service.members import MemberTable

PAGE_SIZE = 50


def customer_url(customer_id: str, view: str | None = None) -> str:
    """A customer's page: ``/ui/customers/{id}``, unless the id holds a line feed, which
    Starlette's path convertor does not match (such a customer's link was a 404): then the
    search's address, which serves the page itself."""
    if "\n" in customer_id:
        query = {"customer_id": customer_id} | ({"view": view} if view else {})
        return f"/ui/customers?{urlencode(query)}"
    path = f"/ui/customers/{quote(customer_id, safe='')}"
    return f"{path}?view={view}" if view else path


CSV_COLUMNS = (
    "customer_id",
    "segment_id",
    "segment_name",
    "confidence",
    "is_outlier",
    "typicality",
)
# The members list's figures: MRR and seats, or where no customer holds any (a business of
# invoices alone), lifetime revenue: a retailer's list read "MRR 0.00, Seats 0" on every row,
# with nothing to tell a big buyer from a small one (a product team's review).
_LISTED_FEATURES = ("mrr", "seats")
_LISTED_INSTEAD = {"mrr": "ltv"}
_LISTED_HEADERS = {"mrr": "MRR", "seats": "Seats", "ltv": "Lifetime revenue"}
# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class MemberRow:
    customer_id: str
    figures: list[str]  # one per ``MemberListing.headers``
    confidence: float
    is_outlier: bool
    typicality: float | None = None  # None: the model does not record it


@dataclass(frozen=True)
class MemberListing:
    rows: list[MemberRow]
    total: int
    page: int
    pages: int
    q: str
    headers: list[str] = field(default_factory=list)  # the figures' columns ("MRR", "Seats")


def matching_rows(table: MemberTable, position: int, query: str) -> np.ndarray:
    """Rows of the segment whose customer id contains ``query`` (case-insensitive)."""
    rows = table.rows_of(position)
    # whole: the routes refuse a query longer than an id can be (it was cut to 100 characters,
    # so a 105-character id found its neighbours sharing the first 100)
    needle = query.strip().lower()
    if not needle:
        return rows
    ids = table.customer_ids[rows]
    return rows[np.fromiter((needle in str(c).lower() for c in ids), bool, len(ids))]


def _feature_text(loaded: LoadedModel, table: MemberTable, row: int, name: str) -> str:
    if name not in loaded.feature_names:
        return ""
    return format_value(name, float(table.values[row, loaded.feature_names.index(name)]))


def listed_features(loaded: LoadedModel, table: MemberTable) -> list[str]:
    """The features the members list shows: MRR and seats where some placed customer holds
    them; lifetime revenue in MRR's place where none does; seats left out where none has any."""
    names = loaded.feature_names
    listed = []
    for name in _LISTED_FEATURES:
        held = name in names and bool(np.any(table.values[:, names.index(name)] != 0))
        instead = _LISTED_INSTEAD.get(name)
        if held:
            listed.append(name)
        elif instead is not None and instead in names:
            listed.append(instead)
    return listed


def member_listing(
    loaded: LoadedModel, table: MemberTable, position: int, query: str, page: int
) -> MemberListing:
    rows = matching_rows(table, position, query)
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    page = min(max(page, 1), pages)
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    listed = listed_features(loaded, table)
    return MemberListing(
        headers=[_listed_header(name, reporting_currency(loaded.model)) for name in listed],
        rows=[
            MemberRow(
                customer_id=str(table.customer_ids[r]),
                figures=[_feature_text(loaded, table, r, name) for name in listed],
                confidence=float(table.confidence[r]),
                is_outlier=bool(table.is_outlier[r]),
                typicality=None if table.typicality is None else float(table.typicality[r]),
            )
            for r in shown
        ],
        total=len(rows),
        page=page,
        pages=pages,
        q=query.strip(),
    )


def _listed_header(name: str, currency: str | None) -> str:
    """A listed column's header, money with its currency and period ("MRR (USD a month)"): the
    column read "338.66" with no unit (a product manager's review)."""
    header = _LISTED_HEADERS[name]
    unit = {"mrr": "a month", "ltv": "to date"}.get(name)
    if unit is None:
        return header
    return f"{header} ({currency} {unit})" if currency else f"{header} ({unit})"


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def members_csv(
    loaded: LoadedModel, table: MemberTable, position: int, query: str, *, with_features: bool
) -> Iterator[str]:
    """The segment's matching members as CSV lines, header first; their feature values only
    ``with_features`` (``routes.shows_customers``)."""
    segment_id = segment_ids(loaded.model)[position]
    name = loaded.model.profiles[position].name
    features = list(loaded.feature_names) if with_features else []
    rows = (
        [
            _cell(str(table.customer_ids[row])),
            segment_id,
            _cell(name),
            f"{table.confidence[row]:.4f}",
            str(bool(table.is_outlier[row])).lower(),
            "" if table.typicality is None else f"{table.typicality[row]:.4f}",
            # 15 significant digits: the float's noise left out ("4569.469999999999" read as
            # a bug in a spreadsheet: a product manager's review), every digit the data holds kept
            *(f"{float(v):.15g}" for v in table.values[row][: len(features)]),
        ]
        for row in matching_rows(table, position, query)
    )
    return csv_chunks(itertools.chain([[*CSV_COLUMNS, *features]], rows))


def csv_chunks(rows: Iterable[Sequence[object]], size: int = 64 * 1024) -> Iterator[str]:
    """``rows`` as RFC 4180 CSV, in pieces of about ``size`` characters. Lines end in CRLF, so a
    field holding a bare carriage return is quoted too: written with LF endings it was not, and a
    spreadsheet started a row inside it, at text the formula guard (``_cell``) never saw first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow(row)
        if buffer.tell() > size:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@dataclass(frozen=True)
class FeatureLine:
    """One feature of a customer: its value, its standing among all customers, the segment's
    typical range and which way it pushed."""

    description: str
    value_text: str
    standing: str | None
    typical: str
    direction: str
    # The bar's size: 0 for a feature that did not move the customer either way, whose effect
    # column reads "none" rather than crediting the segment (a retailer's MRR, 0 for every
    # customer the model was trained on, read "this segment" in green: a product team's review).
    contribution: float = 0.0
    # The runner-up's typical range, in the contrast view ("" in the per-segment view).
    versus_typical: str = ""
    # The features that rank customers as this one does ("licensed seats and monthly recurring
    # revenue"):
    # the model cannot tell them apart, so the effect is theirs too. Empty when there are none.
    moves_with: str = ""


def feature_lines(assignment: Assignment, currency: str | None = None) -> list[FeatureLine]:
    """Every explained feature of ``assignment``, strongest effect first; money in
    ``currency`` where the model records one."""
    explanation = assignment.explanation
    if explanation is None:
        return []
    events_30d = (assignment.features or {}).get("events_30d")
    lines = []
    for c in explanation.contributions:
        versus = c.versus_typical_range
        definition = find(c.feature)
        # A trend of 1 or an API share of 0 for a customer with no activity says only that:
        # "1, higher than 35% of customers" read as steady use (a product team's review); the
        # API's text says it so already (``FeatureDefinition.idle_text``).
        idle = definition is not None and definition.idle(c.value, events_30d)
        # days past an expected payment of a cancelled account are no unpaid bill: "higher than
        # 99% of customers" beside them read as one (``FeatureDefinition.cancelled_text``)
        canceled = bool(assignment.is_canceled)
        moot = canceled and definition is not None and definition.cancelled_text is not None
        lines.append(
            FeatureLine(
                description=c.description,
                value_text=customer_value_text(
                    c.feature, c.value, currency, events_30d, canceled=canceled
                ),
                standing=None if idle or moot else c.standing,
                typical=_range_text(c.feature, c.typical_range, currency),
                direction=c.direction,
                contribution=c.contribution,
                moves_with=alike_list([alike_name(name) for name in c.moves_with]),
                versus_typical="" if versus is None else _range_text(c.feature, versus, currency),
            )
        )
    return lines


# What a feature's standing reads when every customer the model was trained on has its value.
EVERYONE_ALIKE = "like every customer the model was trained on"


def split_shared(lines: list[FeatureLine]) -> tuple[list[FeatureLine], list[FeatureLine]]:
    """(the lines to tabulate, the features every trained customer shares and that moved this
    one neither way): a retailer's customer page listed 13 subscription features, all 0 and
    each "like every customer", above the few that said anything (a review); those are named
    in one line under the table instead."""
    shared = [line for line in lines if line.standing == EVERYONE_ALIKE and not line.contribution]
    return [line for line in lines if line not in shared], shared


def _range_text(feature: str, bounds: Sequence[float], currency: str | None = None) -> str:
    """'5 seats to 13 seats', or one value when both ends read alike ('1 seat')."""
    low, high = (with_unit(feature, v, currency) for v in bounds)
    return low if low == high else f"{low} to {high}"


# Compare ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateRow:
    name: str
    value: str
    threshold: str
    passed: bool
    basis: str
    meaning: str = ""  # what the gate checks, in words (``models.gates.GATE_MEANINGS``)
    verdict: str = ""  # "yes", "no" or "not judged" (``models.gates.verdict_text``)


@dataclass(frozen=True)
class SideBySideRow:
    id: int
    transition: str
    champion: list[str]  # name, customers, share of MRR, churn; "-" where absent
    challenger: list[str]


@dataclass(frozen=True)
class LineageRow:
    id: int
    transition: str
    name: str
    relation: str
    since: str


@dataclass(frozen=True)
class CompareView:
    challenger: str
    champion: str
    passed: bool
    same_id_share: float
    customers_compared: int
    gates: list[GateRow]
    segments: list[SideBySideRow]
    migration_ids: tuple[list[str], list[str]]  # champion ids (rows), challenger ids (columns)
    migration: dict[str, dict[str, int]]
    names: dict[str, dict[str, str]]
    lineage: list[LineageRow]
    lineage_counts: str
    # per side, a business of invoices alone: revenue share and who bought again in the
    # side-by-side table, where a subscription business has MRR share and churn
    champion_buyers: bool = False
    challenger_buyers: bool = False
    # per side, no MRR at all: the money column is the share of revenue to date
    champion_revenue: bool = False
    challenger_revenue: bool = False
    # per side, the days its backtest covered ("" for a comparison stored before they were)
    champion_window: str = ""
    challenger_window: str = ""
    # whom each side segmented (champion, challenger) when they differ: their shares and churn
    # describe different customers, so a lower churn can be the customers a selection left out
    different_customers: tuple[str, str] | None = None

    @property
    def same_id_text(self) -> str:
        return kept_share_text(self.same_id_share)


def _figure(value: object, text: str | Callable[[float], str]) -> str:
    if value is None:
        return "-"
    return text(float(value)) if callable(text) else text.format(value)  # type: ignore[arg-type]


def _side(row: dict, which: str, revenue: bool = False) -> list[str]:
    if f"{which}_name" not in row:
        return ["-", "-", "-", "-"]
    money = f"{which}_ltv_share" if revenue else f"{which}_mrr_share"
    return [
        str(row[f"{which}_name"]),
        _figure(row.get(f"{which}_size"), "{:,}"),
        # worded as the cards word them, so the same segment reads the same on every page
        _figure(row.get(money), percent),
        side_churn(row, which, percent),
    ]


def _names(document: dict) -> dict[str, dict[str, str]]:
    """Each side's segment names by public id (older documents: from the side-by-side rows)."""
    if "names" in document:
        return document["names"]
    names: dict[str, dict[str, str]] = {"champion": {}, "challenger": {}}
    for row in document.get("segments", []):
        for which in names:
            if f"{which}_name" in row:
                names[which][str(row["id"])] = str(row[f"{which}_name"])
    return names


def compare_view(document: dict) -> CompareView:
    """The stored comparison (``models.comparison.Comparison.as_dict``) as the page shows it."""
    gates = [
        GateRow(
            g["name"],
            gate_value_text(g["name"], g["value"], not g["passed"], str(g["threshold"])),
            f"{g['rule']} {g['threshold']}",
            bool(g["passed"]),
            g.get("basis") or "",
            GATE_MEANINGS.get(g["name"], ""),
            verdict_text(g["value"], bool(g["passed"])),
        )
        for g in document["gates"]
    ]
    migration = document["migration"]
    happened = worded_transitions(document)
    sides = ("champion", "challenger")
    buyers = {side: of_buyers(document["segments"], side) for side in sides}
    revenue = {side: of_revenue(document["segments"], side) for side in sides}
    segments = [
        SideBySideRow(
            int(r["id"]),
            happened(int(r["id"]), str(r["transition"]), successors=True),
            _side(r, "champion", revenue["champion"]),
            _side(r, "challenger", revenue["challenger"]),
        )
        for r in document["segments"]
    ]
    columns = sorted({new for row in migration.values() for new in row}, key=int)
    lineage = document.get("lineage") or {}
    rows = []
    for t in lineage.get("transitions", []):
        relation = ""
        if t["parents"] and t["transition"] != "survived":
            relation = "from " + ", ".join(map(str, t["parents"]))
        if t["children"]:
            relation = "into " + ", ".join(map(str, t["children"]))
        if t.get("jaccard") is not None:
            # the Jaccard index, in words: customers in both segments of those in either
            relation = (
                f"{overlap_text(t['jaccard'])} of customers in common (of those in either version)"
            )
        if t.get("returned_from") is not None:
            back = f"its id back: version {t['returned_from']} served it until it was replaced"
            relation = f"{relation}; {back}" if relation else back
        rows.append(
            LineageRow(
                int(t["id"]),
                happened(int(t["id"]), t["transition"]),
                t["name"],
                relation,
                str(t["since"]),
            )
        )
    counts = Counter(row.transition for row in rows)
    returned = sum(1 for t in lineage.get("transitions", []) if t.get("returned_from") is not None)
    return CompareView(
        challenger=str(document["challenger"]),
        champion=str(document["champion"]),
        passed=bool(document["passed"]),
        same_id_share=float(document["same_id_share"]),
        customers_compared=int(document["customers_compared"]),
        gates=gates,
        segments=segments,
        migration_ids=(sorted(migration, key=int), columns),
        migration=migration,
        names=_names(document),
        lineage=rows,
        # as `segments train` and `compare` say it: "4 survived (1 renamed)", where the page
        # read "3 survived, 1 survived, renamed"
        lineage_counts=lineage_words(counts, returned=returned),
        champion_buyers=buyers["champion"],
        challenger_buyers=buyers["challenger"],
        champion_revenue=revenue["champion"],
        challenger_revenue=revenue["challenger"],
        champion_window=backtest_window_text(document, "champion") or "",
        challenger_window=backtest_window_text(document, "challenger") or "",
        different_customers=different_customers(document["gates"]),
    )
