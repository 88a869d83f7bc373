"""What every ``segments`` command shares: the consoles, the one error handler, output helpers.

Commands raise ``SegmentsError`` (or let ``OSError`` through) and never print errors themselves:
``run_command`` turns every user error, and every argument the parser refuses, into one line on
stderr and exit code 2. Results go to stdout (a table, ``key: value`` lines, or ``--json``);
progress and notes go to stderr, so ``--json`` output can be piped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from feature_store.errors import SegmentsError
from feature_store.layout import StoreLayout

if TYPE_CHECKING:
    from models.registry import ModelRegistry

USAGE_ERROR = 2  # what a refused request exits with, whoever refused it
INTERRUPTED = 130
BROKEN_PIPE = 1

console = Console(stderr=True)
stdout = Console()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]
AsOfOption = Annotated[
    str, typer.Option("--as-of", help="Date (whole day included) or ISO instant.")
]
# A seed as numpy and scikit-learn take one: a negative seed or one past 2**32 - 1 was a traceback.
SeedOption = Annotated[
    int,
    typer.Option(min=0, max=2**32 - 1, help="Random seed; same data and seed, same segments."),
]
# The training commands' choice of how many segments (`train`, `retrain`).
MaxSegmentsOption = Annotated[
    int, typer.Option(min=2, max=30, help="Cap on the number of segments.")
]
SegmentsOption = Annotated[
    int | None,
    typer.Option(
        min=2, max=30, help="Exactly this many segments (when you know it); default: discovered."
    ),
]


def layout() -> StoreLayout:
    try:
        found = StoreLayout.from_environment()
    except ValueError as error:
        raise SegmentsError(str(error)) from None
    if found.home.exists() and not found.home.is_dir():
        # "the folder does not exist" and "no events ingested under …" named a file as a
        # data home without saying it was one (an ML engineer's review)
        raise SegmentsError(
            f"the data home {found.home} is a file, not a folder: point SEGMENTS_HOME at a "
            "folder (a new one is created)"
        )
    return found


def registry(create: bool = False) -> ModelRegistry:
    """The model registry the environment names; one ``RegistryError`` line when it cannot answer.

    Only a command that registers versions (``create``: train, retrain, discover) creates a
    SQLite store that ``MLFLOW_TRACKING_URI`` names and does not exist yet:
    `MLFLOW_TRACKING_URI=sqlite:////nonexistent/x.db segments models list` created one and said
    "no model versions registered yet" (an ML engineer's walkthrough). The data home's own store
    is not created by a reader either: a mistyped ``SEGMENTS_HOME`` got a new registry, empty,
    and `models list` said "no model versions registered yet", exit 0 (since 2026-12-06,
    seventh session)."""
    from mlflow.exceptions import MlflowException

    from feature_store.formats import first_line
    from models.registry import (
        CHAMPION,
        ModelRegistry,
        RegistryError,
        RegistryUnavailableError,
        without_credentials,
    )
    from pipelines.tracking import registry_config

    home = layout()
    config = registry_config(home)
    named = bool(os.environ.get("MLFLOW_TRACKING_URI"))  # not the data home's own store
    try:
        # ``existing``: a reader's registry, refusing an embedded store that does not exist
        models = ModelRegistry(config) if create else ModelRegistry.existing(config)
    except RegistryUnavailableError:
        if named:
            raise RegistryError(
                f"MLFLOW_TRACKING_URI names a store that does not exist ({without_credentials(config.tracking_uri)}); "
                "only training creates one"
            ) from None
        where = "" if home.home.is_dir() else " (the folder does not exist: check the path)"
        raise RegistryError(
            f"no model registry in the data home {home.home}{where}; `segments train` creates "
            "it (SEGMENTS_HOME names the data home)"
        ) from None
    except MlflowException as error:
        raise RegistryError(
            f"model registry {without_credentials(config.tracking_uri)}: {first_line(error)}"
        ) from None
    if create:
        # asked now, before any work: `segments retrain` rebuilt the features, the snapshot and
        # the online store for 10 s and only then found the registry down
        try:
            models.alias_version(CHAMPION)
        except RegistryUnavailableError as error:
            raise RegistryError(
                f"model registry {without_credentials(config.tracking_uri)} cannot be reached "
                f"({unreachable_reason(str(error))}); nothing was computed"
            ) from None
    return models


def require_spark_extra() -> None:
    """Refuse ``--engine spark`` in one line where the ``spark`` extra is not installed (the
    Docker image installs the service's extras only): it ended in a traceback naming sqlglot."""
    try:
        import pyspark  # noqa: F401
        import sqlglot  # noqa: F401
    except ImportError as error:
        raise SegmentsError(
            f"--engine spark needs the spark extra ({error.name or 'a module'} is not "
            "installed): pip install 'customer-segments[spark]', and Java 17 or later"
        ) from None


def unreachable_reason(message: str) -> str:
    """The cause at the end of a connection library's message ("Connection refused", "Read
    timed out"), not its 400 characters of retries and pools."""
    for cause in ("Connection refused", "timed out", "Name or service not known", "No route"):
        if cause in message:
            return cause
    return message.removeprefix("registry: ")[:160]


def print_note(message: str | None) -> None:
    """A note on stderr, one line never wrapped, when there is one (``--json`` output stays
    clean on stdout)."""
    if message:
        console.print(f"note: {message}", soft_wrap=True, markup=False)


def raised_cap_note(segments: int | None, max_segments: int) -> str | None:
    """What ``segmenter_for`` does when told more segments than the cap, said rather than done
    silently: `--max-segments 3 --segments 5` trained 5 and recorded a cap of 5 (an ML engineer's
    review)."""
    if segments is None or segments <= max_segments:
        return None
    return (
        f"--segments {segments} is above --max-segments {max_segments}: the cap rises to "
        f"{segments}, which the run records and the n_segments gate holds this version to"
    )


def print_error(message: str) -> None:
    """One line on stderr, never wrapped: scripts and people both read it whole."""
    console.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)


def run_command(invoke: Callable[[], Any]) -> int:
    """Run the parsed command line; every refusal ends here as one line and ``USAGE_ERROR``."""
    from feature_store.formats import first_line

    try:
        result = invoke()
    except SegmentsError as error:
        print_error(str(error))
        return USAGE_ERROR
    except BrokenPipeError:  # the reader left (`| head`): nobody to tell, and nothing went wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except OSError as error:  # a file that cannot be read or written: the user's to fix
        print_error(_describe_os_error(error))
        return USAGE_ERROR
    except typer.TyperException as error:  # the argument parser refused the command line
        return _usage_error(error)
    except (KeyboardInterrupt, typer.Abort):
        print_error(INTERRUPTED_TEXT)
        return INTERRUPTED
    except Exception as error:
        if _out_of_memory(error):  # DuckDB's, under SEGMENTS_MEMORY_LIMIT: a traceback before
            print_error(_out_of_memory_text(error))
            return USAGE_ERROR
        # MLflow's own errors (an artifact deleted from the store, a read-only registry, an
        # unreachable server) reached the user as tracebacks of a hundred lines and exit 1.
        if not _from_the_registry(error):
            raise
        print_error(f"model registry: {first_line(error)}")
        return USAGE_ERROR
    if result == INTERRUPTED:
        # Typer turns Ctrl-C (and the SIGTERM the CLI takes as one) into this exit status
        # itself, so nothing reached the handler above: a retrain killed after registering its
        # version ended with nothing said (an ML engineer's walkthrough).
        print_error(INTERRUPTED_TEXT)
    return result if isinstance(result, int) else 0


def _out_of_memory(error: BaseException) -> bool:
    """DuckDB's OutOfMemoryException (by name: nothing is imported to tell), or Python's own."""
    return isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryException"


def _out_of_memory_text(error: BaseException) -> str:
    """Python's own MemoryError is not DuckDB's limit: raising that would make it worse."""
    from feature_store.formats import first_line

    detail = first_line(error) or "no detail"
    if isinstance(error, MemoryError):
        return f"out of memory ({detail}): free memory, or run on a larger machine"
    limit = os.environ.get("SEGMENTS_MEMORY_LIMIT")
    where = f"SEGMENTS_MEMORY_LIMIT={limit}" if limit else "its default"
    return (
        f"DuckDB ran out of memory ({detail}); where it reads a file, SEGMENTS_MEMORY_LIMIT "
        f"bounds it ({where}): raise that, or free memory (docs/ingestion.md, 'Memory')"
    )


INTERRUPTED_TEXT = (
    "interrupted; what finished before stays (`segments models list` shows a version it "
    "registered: one marked unfinished stopped before its lineage and report, and cannot be "
    "compared or promoted; train again)"
)


def _from_the_registry(error: BaseException) -> bool:
    """An error raised by MLflow or by the database under its store (SQLAlchemy), by the class's
    module, so that neither is imported to tell."""
    return any(
        klass.__module__.split(".")[0] in ("mlflow", "sqlalchemy") for klass in type(error).__mro__
    )


def _usage_error(error: typer.TyperException) -> int:
    # An empty message means the parser has already shown the help (a group run without a command).
    message = error.format_message()
    if message:
        context = getattr(error, "ctx", None)
        hint = f" (see `{context.command_path} --help`)" if context is not None else ""
        print_error(message.replace("\n", " ") + hint)
    return USAGE_ERROR


def _describe_os_error(error: OSError) -> str:
    reason = error.strerror or str(error)
    return f"{error.filename}: {reason}" if error.filename else reason


def progress() -> Progress:
    """A progress bar on stderr; it disappears when done so stdout stays clean for --json."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # piped stderr gets no bar (and no blank line left over)
    )


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def print_lines(values: dict[str, Any]) -> None:
    """``key: value`` lines, each whole: rich broke a long path across lines at 80 columns, so it
    could not be pasted (a new user's walkthrough); the terminal wraps it instead."""
    for key, value in values.items():
        stdout.print(f"{key}: {value}", highlight=False, soft_wrap=True)


def print_table(table: Table, whole: Collection[str] = (), on: Console | None = None) -> None:
    """Print a table (on stdout) whose ``whole`` columns (ids, codes) are never cut or wrapped.

    Rich fits a table to the terminal (80 columns in a pipe) by cutting cells with an ellipsis; an
    id or a reason code cut that way cannot be pasted into the next command. Those columns keep the
    width of their longest value, the others at least their header's; when that is wider than the
    terminal, the table is drawn wider and the terminal wraps the lines.
    """
    needed = 1  # the left border
    for column in table.columns:
        header = cell_len(str(column.header))
        if column.header in whole:
            column.no_wrap = True
            column.min_width = max([header, *map(_longest_line, column.cells)])
        else:
            # at least the header: at 80 columns "quarantined" read "quarantin…" (a new user)
            column.min_width = max(column.min_width or 0, header)
        needed += column.min_width + 3  # padding both sides and a border
    _at_least(on or stdout, needed).print(table, crop=False)


def _longest_line(cell: object) -> int:
    return max((cell_len(line) for line in str(cell).splitlines()), default=0)


def _at_least(console: Console, width: int) -> Console:
    """``console``, or when it is narrower than ``width`` one like it that is that wide."""
    if console.width >= width:
        return console
    return Console(
        file=console.file,
        width=width,
        force_terminal=console.is_terminal,
        color_system=console.color_system,  # type: ignore[arg-type]
        no_color=console.no_color,
    )


def quiet_mlflow() -> None:
    """MLflow's progress bars and INFO logs would bury our output; an entry point may say so."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)


@contextlib.contextmanager
def spark_errors_in_one_line() -> Iterator[None]:
    """What Spark refuses (a master it cannot start, a source path that does not exist, a table
    name that does not parse, parts whose types differ, a CSV given as Parquet) and what a job's
    Python worker refuses (a feature value missing) as the CLI's one line and exit 2, not a JVM's
    or a worker's traceback."""
    from py4j.protocol import Py4JError, Py4JJavaError
    from pyspark.errors import PySparkException, PythonException

    from feature_store.formats import first_line

    try:
        yield
    except PythonException as error:
        raise SegmentsError(f"Spark: {worker_reason(str(error))}") from None
    except PySparkException as error:
        raise SegmentsError(f"Spark: {first_line(error)}") from None
    except Py4JJavaError as error:
        raise SegmentsError(f"Spark: {_java_reason(error)}") from None
    except Py4JError as error:  # the JVM gone (a master that stopped answering)
        raise SegmentsError(f"Spark: {first_line(error)}") from None


# The line of a Python traceback that names the exception: "module.SomeError: what happened".
_RAISED = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception): (.+)$")


def worker_reason(text: str) -> str:
    """What a Spark job's Python worker raised, from the traceback Spark wraps it in: the last
    "SomeError: message" line (the worker's own, after the frames), else the first line."""
    raised = [m.group(1) for line in text.splitlines() if (m := _RAISED.match(line.strip()))]
    if raised:
        return raised[-1].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "a job failed"


def _java_reason(error: Exception) -> str:
    """The innermost cause of a JVM exception, which says what was wrong (a file that is not
    Parquet, two types that do not merge), where the outer ones say which call failed."""
    try:
        cause = error.java_exception  # type: ignore[attr-defined]
        while cause.getCause() is not None:
            cause = cause.getCause()
        text = str(cause.getMessage() or cause.toString())
    except Exception:  # the JVM may be gone; its text is then all there is
        text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
