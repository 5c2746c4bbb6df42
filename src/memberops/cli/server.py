"""``memberops serve``."""

from __future__ import annotations

from typing import Annotated

import typer

from memberops.cli.common import services


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Serve the REST API (/api/v1), its offline docs (/docs) and /healthz."""
    from memberops.cli.serve import serve as run_server

    run_server(host, port, services())
