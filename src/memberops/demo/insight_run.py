"""The demo's insight step: every analysis as of today, a few rule tags, the ready-made segments.

A newcomer who runs ``memberops demo`` should see at once who the members are and whether the
programme works, without knowing the commands yet: this defines rule tags a fruit chain would want
and the ready-made segments (sleeping Gold members, one-time buyers before 双11, expired paid
plans, KOC candidates), then runs the nightly run a brand schedules — each analysis with its
default period, every tag and segment refreshed — and returns the headline figures the demo
prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from memberops.demo.catalogue import PAID_PLAN_CATEGORY
from memberops.insight import segments as segment_service
from memberops.insight import tags as tag_service
from memberops.insight.config import current as brand_thresholds
from memberops.insight.nightly import run_nightly
from memberops.kit.db import unit_of_work
from memberops.wiring import Services

#: Rule tags of the demo brand: (name, expression, description).
DEMO_TAGS = (
    ("durian_fan", 'bought(category="榴莲", days=90) >= 2', "榴莲爱好者: durian twice or more in 90 days"),
    ("big_spender", "spent(days=365) >= 2000", "年消费 2000 元以上: 2,000 yuan or more in a year"),
    ("group_member", "joined_group()", "社群成员: in a member group chat now"),
)


#: The demo brand's insight settings (``insight.config``): its paid plans are sold as order lines
#: of their own category, which is no product a member could prefer.
DEMO_INSIGHT_SETTINGS = f"""# The demo brand's insight thresholds: memberops analyze, tags, segments, the API.
# Use them in other commands with: export MEMBEROPS_INSIGHT_FILE=<this file>
[insight]
preference_excluded_categories = ["{PAID_PLAN_CATEGORY}"]
"""


def write_insight_settings(directory: Path) -> Path:
    """Write the demo brand's insight settings next to its generated files; return the path."""
    path = directory / "insight.toml"
    path.write_text(DEMO_INSIGHT_SETTINGS, encoding="utf-8")
    return path


@dataclass(frozen=True)
class InsightSummary:
    """The headline figures of every analysis, and how many people each tag and segment holds."""

    analyses: dict[str, dict[str, Any]]
    tags: dict[str, int]
    segments: dict[str, int]


def run_insight(svc: Services, *, actor: str, as_of: date | None = None) -> InsightSummary:
    """Define the demo's tags and segments, then run the nightly insight run as of ``as_of``.

    ``as_of`` is the demo history's last day (default: today). The run is the one a brand
    schedules (``memberops analyze nightly``): every analysis with its default period and the
    brand's thresholds, every rule tag and every segment, on one sharing connection.
    """
    with unit_of_work(svc.sessions) as session:
        known = {tag.name for tag in tag_service.list_tags(session)}
        for name, expression, description in DEMO_TAGS:
            if name not in known:
                tag_service.define_tag(
                    session, name, expression=expression, description=description, actor=actor
                )
        segment_service.define_ready_made(session, actor=actor)
    run = run_nightly(
        svc.engine,
        svc.sessions,
        time_zone=svc.settings.time_zone,
        actor=actor,
        as_of=as_of,
        settings=brand_thresholds(),
    )
    return InsightSummary(
        run.analyses,
        {item.name: item.holders for item in run.tags},
        {item.name: item.holders for item in sorted(run.segments, key=lambda item: item.name)},
    )
