"""``memberops serve``: run the REST API (and its offline docs) with uvicorn.

Kept free of Typer so the CLI module that registers the command stays a thin wrapper.
"""

from __future__ import annotations

import uvicorn

from memberops.api.app import create_app
from memberops.wiring import Services


def serve(host: str, port: int, services: Services) -> None:
    """Serve the API on ``host:port`` until interrupted.

    One process: the app holds the engine's connection pool, and uvicorn cannot fork workers from
    an app object; run several processes behind a proxy to scale out.
    """
    uvicorn.run(create_app(services), host=host, port=port, proxy_headers=True, log_level="info")
