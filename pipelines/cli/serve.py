"""``serve``: the scoring API; the one command that reaches into ``service/``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from pipelines.cli.common import quiet_mlflow

app = typer.Typer()


class LogFormat(StrEnum):
    """``segments serve --log-format``: a line of text per message, or one JSON object."""

    text = "text"
    json = "json"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            help="text: a line per message; json: one JSON object per line, for a log collector.",
        ),
    ] = LogFormat.text,
) -> None:
    """Serve the scoring API (docs/service.md); settings come from SEGMENTS_* variables."""
    quiet_mlflow()
    from service.server import check_settings
    from service.server import run as run_server

    check_settings()  # fail here, with a message, rather than in every worker
    json_lines = log_format is LogFormat.json
    run_server(
        host, port, workers, access_log=access_log, log_format="json" if json_lines else "text"
    )
