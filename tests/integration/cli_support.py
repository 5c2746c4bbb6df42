"""Run the command line in-process on a test's services: the CLI twin of ``start_api``.

The insight, KPI and tag/segment CLI tests all drive ``memberops`` the same way, so they share
this one runner rather than each wiring ``CliRunner`` and the services by hand.
"""

from __future__ import annotations

import shlex
from typing import Protocol

import pytest
from click.testing import Result
from typer.testing import CliRunner

from memberops.cli import common
from memberops.cli.main import app
from memberops.wiring import Services


class CliRun(Protocol):
    def __call__(self, command: str, status: int = 0) -> Result: ...


def cli_runner(services: Services, monkeypatch: pytest.MonkeyPatch) -> CliRun:
    """Return ``run(command, status=0)``: invoke ``memberops`` on ``services`` and check its exit status.

    The command is split as a shell would split it; an unexpected exit status fails the test with
    what the command printed, so a test reads only the output it checks.
    """
    monkeypatch.setattr(common, "_services", services)
    runner = CliRunner()

    def invoke(command: str, status: int = 0) -> Result:
        result = runner.invoke(app, shlex.split(command))
        assert result.exit_code == status, (result.stdout, result.stderr)
        return result

    return invoke
