"""The ``memberops`` command: one entry point, one sub-command group per context."""

from __future__ import annotations

import typer

from memberops.cli.admin import apikey_app, channel_app, db_app
from memberops.cli.demo import demo, identity_accuracy
from memberops.cli.imports import import_app
from memberops.cli.persons import identity_app, person_app
from memberops.cli.server import serve
from memberops.cli.webhooks import webhook_app

app = typer.Typer(
    help="memberops: private-domain member operations (私域会员运营): OneID, loyalty, insight, journeys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db_app, name="db")
app.add_typer(apikey_app, name="apikey")
app.add_typer(channel_app, name="channel")
app.add_typer(person_app, name="person")
app.add_typer(identity_app, name="identity")
app.add_typer(import_app, name="import")
app.add_typer(webhook_app, name="webhook")
app.command("demo")(demo)
app.command("serve")(serve)
identity_app.command("accuracy")(identity_accuracy)
