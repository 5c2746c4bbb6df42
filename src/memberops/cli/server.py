"""``memberops serve``."""

from __future__ import annotations

from typing import Annotated

import typer

from memberops.cli.common import reports_errors, services


@reports_errors
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Serve the REST API (/api/v1), its offline docs (/docs) and /healthz.

    The brand's insight thresholds are checked first: the insight routes read them on every
    request, so a mistyped one must stop the server here, not fail every analyst's request later.
    """
    from memberops.cli.serve import serve as run_server
    from memberops.insight.config import current as brand_thresholds

    brand_thresholds()

    run_server(host, port, services())
