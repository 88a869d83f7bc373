"""``serve``: the scoring API; the one command that reaches into ``service/``."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.cli.common import quiet_mlflow

app = typer.Typer()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the scoring API (docs/service.md); settings come from SEGMENTS_* variables."""
    quiet_mlflow()
    from service.server import check_settings
    from service.server import run as run_server

    check_settings()  # fail here, with a message, rather than in every worker
    run_server(host, port, workers, access_log=access_log)
