"""The demo's insight step: every analysis as of today, a few rule tags, the ready-made segments.

A newcomer who runs ``memberops demo`` should see at once who the members are and whether the
programme works, without knowing the commands yet: this computes each analysis with its default
period (the same code the CLI and the API run), defines rule tags a fruit chain would want and
the ready-made segments (sleeping Gold members, one-time buyers before 双11, expired paid plans,
KOC candidates), refreshes them, and returns the headline figures the demo prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from memberops.insight import kpi_service, service
from memberops.insight import segments as segment_service
from memberops.insight import tags as tag_service
from memberops.insight.kpi_rules import Dimension, MagicSettings, Measure, PreferenceSettings
from memberops.insight.rules import LayerSettings, LifecycleSettings, RfmSettings
from memberops.kit.db import unit_of_work
from memberops.wiring import Services

#: Rule tags of the demo brand: (name, expression, description).
DEMO_TAGS = (
    ("durian_fan", 'bought(category="榴莲", days=90) >= 2', "榴莲爱好者: durian twice or more in 90 days"),
    ("big_spender", "spent(days=365) >= 2000", "年消费 2000 元以上: 2,000 yuan or more in a year"),
    ("group_member", "joined_group()", "社群成员: in a member group chat now"),
)


@dataclass(frozen=True)
class InsightSummary:
    """The headline figures of every analysis, and how many people each tag and segment holds."""

    analyses: dict[str, dict[str, Any]]
    tags: dict[str, int]
    segments: dict[str, int]


def run_insight(svc: Services, *, actor: str, as_of: date | None = None) -> InsightSummary:
    """Compute every analysis as of ``as_of`` (the demo history's last day; default: today's
    defaults), then define the demo's tags and segments and refresh them as of the same day."""
    engine, zone = svc.engine, svc.settings.time_zone
    analyses: dict[str, dict[str, Any]] = {
        "rfm": service.rfm_report(engine, service.window("rfm", as_of, None, zone), RfmSettings()).as_dict(),
        "lifecycle": service.lifecycle_report(
            engine, service.window("lifecycle", as_of, None, zone), LifecycleSettings()
        ).as_dict(),
        "layers": service.layers_report(
            engine, service.window("layers", as_of, None, zone), LayerSettings()
        ).as_dict(),
        "kpis": kpi_service.kpis_report(engine, kpi_service.window("kpis", as_of, None, zone)).as_dict(),
        "cross": kpi_service.cross_report(
            engine,
            kpi_service.window("cross", as_of, None, zone),
            Dimension.TIER,
            Dimension.STORE_TYPE,
            Measure.MEMBERS,
        ).as_dict(),
        "cohorts": kpi_service.cohorts_report(
            engine, kpi_service.window("cohorts", as_of, None, zone)
        ).as_dict(),
        "magic-number": kpi_service.magic_report(
            engine, kpi_service.window("magic-number", as_of, None, zone), MagicSettings()
        ).as_dict(),
        "preferences": kpi_service.preferences_report(
            engine, kpi_service.window("preferences", as_of, None, zone), PreferenceSettings()
        ).as_dict(),
    }
    with unit_of_work(svc.sessions) as session:
        known = {tag.name for tag in tag_service.list_tags(session)}
        for name, expression, description in DEMO_TAGS:
            if name not in known:
                tag_service.define_tag(
                    session, name, expression=expression, description=description, actor=actor
                )
        ready_made = [segment.name for segment in segment_service.define_ready_made(session, actor=actor)]
        names = [segment.name for segment in segment_service.list_segments(session)]
    tags = tag_service.refresh_tags(
        engine, svc.sessions, [name for name, _, _ in DEMO_TAGS], time_zone=zone, actor=actor, as_of=as_of
    )
    refreshed = segment_service.refresh(
        engine, svc.sessions, sorted(set(names) | set(ready_made)), time_zone=zone, actor=actor, as_of=as_of
    )
    return InsightSummary(
        analyses,
        {item.name: item.holders for item in tags},
        {item.name: item.holders for item in refreshed},
    )
