"""``python -m memberops`` runs the command line."""

from memberops.cli.main import app

app()
