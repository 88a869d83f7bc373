"""The ``segments`` command line: the edge where files are read and written and errors are shown.

One module per command group, each with its own ``typer.Typer`` merged into ``app`` below:

- ``data``: ``demo-data``, ``ingest``, ``compact``, ``quarantine list/show/export``;
- ``features``: ``features``;
- ``currency``: ``currency show/set/forget`` (the price levels money is converted by);
- ``training``: ``train``, ``promote``, ``models list``;
- ``lifecycle``: ``compare``, ``drift``, ``retrain``, ``unpin``;
- ``discover``: ``discover`` (also the worker of the service's discovery jobs);
- ``assign``: ``assign``;
- ``serve``: ``serve``.

``common`` holds what they share: the consoles, output helpers and ``run_command``, the one place
where errors become a single line and exit code 2. Files are read and written through
``feature_store.formats``.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from collections.abc import Sequence
from importlib import metadata
from typing import Annotated

import typer

from pipelines.cli import (
    assign,
    currency,
    data,
    discover,
    features,
    lifecycle,
    report,
    serve,
    training,
)
from pipelines.cli.common import run_command

DISTRIBUTION = "customer-segments"

app = typer.Typer(
    help="Discover customer segments from billing and usage events.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for group in (data, features, currency, training, lifecycle, discover, assign, report, serve):
    app.add_typer(group.app)


def _show_version(asked: bool) -> None:
    if asked:
        try:
            version = metadata.version(DISTRIBUTION)
        except metadata.PackageNotFoundError:  # run from a checkout that was never installed
            version = "unknown (not installed)"
        print(f"segments {version}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Options taken before any command (the app's help text is given to ``typer.Typer``)."""


# MLflow's HTTP retries for a command (the service's are ``models.registry.client_environment``):
# two with short waits. Its default of seven with growing waits held `segments models list` 4
# minutes before it said the server was down (an ML engineer's walkthrough). Here rather than
# beside the service's so that `segments --help` imports no MLflow.
COMMAND_LINE_REGISTRY = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``segments`` with ``argv`` (default: the process arguments) and exit with its code.

    A SIGTERM (``kill``, a scheduler stopping the job) is taken as Ctrl-C for the command's
    duration: the MLflow run in progress ends KILLED rather than staying RUNNING for ever, and
    the command exits 130, as after Ctrl-C. The previous handler is restored after."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    if "serve" not in args[:1]:  # the service sets its own, with no retries (``service.server``)
        for name, value in COMMAND_LINE_REGISTRY.items():  # a setting of the user's stands
            os.environ.setdefault(name, value)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with warnings.catch_warnings():
            # k-means asked for more segments than a company has distinct customers says so per
            # candidate; the selection already treats that candidate as the fewer it found, and a
            # screenful of warnings would bury the answer (or the one-line refusal)
            # (scikit-learn's ConvergenceWarning; matched by its text, so `--help` imports nothing)
            warnings.filterwarnings("ignore", "Number of distinct clusters")
            code = run_command(
                lambda: command.main(args=argv, prog_name="segments", standalone_mode=False)
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(code)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


__all__ = ["app", "main"]
