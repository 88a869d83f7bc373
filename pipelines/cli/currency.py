"""``currency show/set/forget``: the price levels the data home converts money by.

When customers pay in several currencies, every money feature is divided by its currency's price
level (``feature_store.currency``): measured from the data the first time a table is built, then
kept in the data home. ``set`` replaces them by levels the user gives (exchange rates of their
choosing); ``forget`` deletes them, so that the next table build measures them again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from feature_store.errors import SegmentsError
from pipelines.cli.common import JsonFlag, console, layout, print_json, print_lines

if TYPE_CHECKING:
    from feature_store.currency import CurrencyLevels

app = typer.Typer()
currency_app = typer.Typer(
    help="Show, set or forget the price levels money in several currencies is converted by.",
    no_args_is_help=True,
)
app.add_typer(currency_app, name="currency")

# Said after any change: a model converts events by the levels it was trained with.
RETRAIN_NOTE = (
    "Tables built from now on convert by these levels; models trained before, and the online "
    "store's vectors, keep theirs: run `segments retrain` (features, train, promote) to use them."
)


@currency_app.command("show")
def show(as_json: JsonFlag = False) -> None:
    """The data home's kept price levels, or that it keeps none."""
    from feature_store.currency import read_levels

    levels = read_levels(layout())
    if as_json:
        print_json(levels.as_dict() if levels else None)
    elif levels is None:
        console.print(
            "No price levels kept: money is in each customer's own currency until a table of "
            "customers paying in several currencies is built (or levels are set)."
        )
    else:
        print_lines(_fields(levels))


@currency_app.command("set")
def set_levels(
    reporting: Annotated[
        str, typer.Option("--reporting", help="The currency money is reported in, e.g. USD.")
    ],
    rates: Annotated[
        list[str] | None,
        typer.Argument(
            help="CODE=LEVEL: units of CODE per unit of the reporting currency (EUR=0.92).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Replace the kept levels by these (exchange rates of your choosing). A currency left out
    is measured when a table first prices it. With no CODE=LEVEL at all, only the reporting
    currency changes: the kept levels are re-expressed against it (or, with none kept, the next
    table build measures against it when enough customers pay in it)."""
    from feature_store.currency import choose_reporting, given_levels, replace_levels

    given = [_rate(text) for text in rates or ()]
    codes = [code for code, _ in given]
    twice = sorted({code for code in codes if codes.count(code) > 1})
    if twice:
        raise SegmentsError(f"{', '.join(twice)} given more than once; give each currency once")
    if given:
        levels = given_levels(reporting, dict(given))
        before = replace_levels(layout(), levels)
    else:
        levels, before = choose_reporting(layout(), reporting)
    if as_json:
        print_json({"levels": levels.as_dict(), "replaced": before.as_dict() if before else None})
        return
    print_lines(_fields(levels))
    console.print(RETRAIN_NOTE)


@currency_app.command("forget")
def forget(as_json: JsonFlag = False) -> None:
    """Delete the kept levels: the next table build measures them again."""
    from feature_store.currency import replace_levels

    home = layout()
    existed = home.currency_levels_path.exists()
    before = replace_levels(home, None)
    if as_json:
        print_json({"forgotten": before.as_dict() if before else None, "file_existed": existed})
    elif before is None:
        console.print(
            f"Deleted the damaged {home.currency_levels_path}."
            if existed
            else "No price levels were kept; nothing to forget."
        )
    else:
        console.print(
            f"Forgot the kept levels ({_fields(before)['levels']}). The next table build measures "
            "them again; models trained before, and the online store's vectors, keep theirs: run "
            "`segments retrain` to use the new ones."
        )


def _rate(text: str) -> tuple[str, float]:
    """'EUR=0.92' as ('EUR', 0.92); one line naming the argument otherwise."""
    code, equals, number = text.partition("=")
    try:
        if not equals:
            raise ValueError
        return code.strip(), float(number)
    except ValueError:
        raise SegmentsError(f"{text!r} is not CODE=LEVEL (for example EUR=0.92)") from None


def _fields(levels: CurrencyLevels) -> dict[str, object]:
    others = {c: v for c, v in levels.levels.items() if c != levels.reporting}
    return {
        "reporting currency": levels.reporting,
        "levels": (
            ", ".join(f"{c} {v:.6g}" for c, v in others.items()) + f" per {levels.reporting}"
            if others
            else "none yet (measured when a table first prices another currency)"
        ),
        "source": levels.sources() if others else "-",
        # given levels before any table counted customers per currency: which currencies lack a
        # level is not known yet
        "not converted": (", ".join(levels.unpriced) or "none")
        if levels.customers
        else "not known until the next table build",
    }
