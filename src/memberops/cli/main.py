"""The ``memberops`` command: one entry point, one sub-command group per context."""

from __future__ import annotations

import typer

from memberops.cli.admin import apikey_app, channel_app, db_app
from memberops.cli.analyze import analyze_app
from memberops.cli.demo import demo, identity_accuracy
from memberops.cli.imports import import_app
from memberops.cli.loyalty import loyalty_app, points_app, programme_app, tier_app
from memberops.cli.nightly import nightly_command
from memberops.cli.offers import benefit_app, checkout_app, coupon_app, plan_app, reward_app
from memberops.cli.persons import identity_app, person_app
from memberops.cli.reports import report_app
from memberops.cli.server import serve
from memberops.cli.tags import segment_app, tag_app
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
app.add_typer(programme_app, name="programme")
app.add_typer(points_app, name="points")
app.add_typer(tier_app, name="tier")
app.add_typer(loyalty_app, name="loyalty")
app.add_typer(coupon_app, name="coupon")
app.add_typer(reward_app, name="reward")
app.add_typer(plan_app, name="plan")
app.add_typer(checkout_app, name="checkout")
app.add_typer(benefit_app, name="benefit")
app.add_typer(report_app, name="report")
analyze_app.command("nightly")(nightly_command)
app.add_typer(analyze_app, name="analyze")
app.add_typer(tag_app, name="tag")
app.add_typer(segment_app, name="segment")
app.command("demo")(demo)
app.command("serve")(serve)
identity_app.command("accuracy")(identity_accuracy)
