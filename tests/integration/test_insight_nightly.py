"""The nightly run on the hand-worked shop of the tag tests, on SQLite and PostgreSQL (and DuckDB copies).

The shop is ``test_tags_segments``' (``build_shop`` + ``build_extras``, as of 2026-10-31 in
Shanghai). The nightly run shares its base relations between analyses, so the first thing checked
is that every analysis it prints is exactly what the analysis alone prints; then the tags and
segments it refreshes hold the hand-worked people of the tag tests (RFM over the 12 months:
重要价值 = {1, 2, 11}, 重要保持 = {6}, 一般发展 = {4}, 一般挽留 = {3, 8, 9, 12}), written with
their history and outbox events; then that a brand's thresholds change what it computes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ibis
import pytest
from sqlalchemy import func, select, update

from memberops.insight import kpi_service, nightly, segments, service, tags
from memberops.insight.config import BrandSettings, brand_settings, load_config
from memberops.insight.kpi_rules import Dimension, MagicSettings, Measure, PreferenceSettings
from memberops.insight.rules import LayerSettings, LifecycleSettings, RfmSettings
from memberops.insight.source import copy_tables, open_source
from memberops.kit.db import unit_of_work
from memberops.loyalty.programme import demo_programme
from memberops.models import OutboxEvent, PersonTag, ProgrammeVersion, SegmentChange, SegmentMember, TagChange
from memberops.wiring import Services
from tests.integration.cli_support import cli_runner
from tests.integration.test_insight_analyses import AS_OF, ZONE
from tests.integration.test_tags_segments import build_extras, build_shop

#: Rule tags in definition order; the second reads the first, so it must see it refreshed.
TAGS = (
    ("durian_fan", 'bought(category="榴莲", days=90) >= 2'),
    ("durian_member", 'tag("durian_fan") and member'),
    ("spender", "spent(days=30) >= 150"),
)
#: Segments besides the ready-made ones: RFM classes, stages and layers as the tag tests know them.
SEGMENTS = (
    ("valuable", 'rfm = "重要价值"'),
    ("sleeping", 'stage = "sleeping"'),
    ("koc", 'layer = "koc"'),
    ("durian_members", 'tag("durian_member")'),
)
EXPECTED_SEGMENTS = {
    "sleeping_gold": [],  # P12 is gold but churned, not sleeping
    "one_time_buyers": [4, 8, 12],
    "expired_paid_plan": [8],
    "koc_candidates": [1, 2, 11],
    "valuable": [1, 2, 11],
    "sleeping": [8],
    "koc": [1, 2],
    "durian_members": [11],
}


@pytest.fixture
def shop(services: Services) -> Services:
    build_shop(services.engine)
    build_extras(services)
    with unit_of_work(services.sessions) as session:
        # The extras' programme version only anchors the paid plans; KPIs read its tiers.
        document = json.loads(demo_programme().canonical_json())
        session.execute(update(ProgrammeVersion).where(ProgrammeVersion.id == 1).values(document=document))
        for name, expression in TAGS:
            tags.define_tag(session, name, expression=expression, actor="ops")
        segments.define_ready_made(session, actor="ops")
        for name, expression in SEGMENTS:
            segments.define_segment(session, name, expression, refresh="manual", actor="ops")
    return services


def alone(services: Services) -> dict[str, dict[str, Any]]:
    """Every analysis computed on its own, with its default period, as the CLI computes it."""
    engine = services.engine

    def window(name: str) -> service.Window:
        rule = service.window if name in service.DEFAULT_PERIOD else kpi_service.window
        return rule(name, AS_OF, None, ZONE)

    return {
        "rfm": service.rfm_report(engine, window("rfm"), RfmSettings()).as_dict(),
        "lifecycle": service.lifecycle_report(engine, window("lifecycle"), LifecycleSettings()).as_dict(),
        "layers": service.layers_report(engine, window("layers"), LayerSettings()).as_dict(),
        "kpis": kpi_service.kpis_report(engine, window("kpis")).as_dict(),
        "cross": kpi_service.cross_report(
            engine, window("cross"), Dimension.TIER, Dimension.STORE_TYPE, Measure.MEMBERS
        ).as_dict(),
        "cohorts": kpi_service.cohorts_report(engine, window("cohorts")).as_dict(),
        "magic-number": kpi_service.magic_report(engine, window("magic-number"), MagicSettings()).as_dict(),
        "preferences": kpi_service.preferences_report(
            engine, window("preferences"), PreferenceSettings()
        ).as_dict(),
    }


def holders(services: Services) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """The tags' holders and the segments' members as the store has them now."""
    with unit_of_work(services.read_sessions) as session:
        tag_holders = {
            tag.name: sorted(session.scalars(select(PersonTag.person_id).where(PersonTag.tag_id == tag.id)))
            for tag in tags.list_tags(session)
        }
        members = {
            segment.name: sorted(
                session.scalars(select(SegmentMember.person_id).where(SegmentMember.segment_id == segment.id))
            )
            for segment in segments.list_segments(session)
        }
    return tag_holders, members


def run(services: Services, where: nightly.Where = "store", **options: Any) -> nightly.NightlyRun:
    return nightly.run_nightly(
        services.engine, services.sessions, time_zone=ZONE, actor="cron", as_of=AS_OF, where=where, **options
    )


@pytest.mark.parametrize("where", ["store", "duckdb"])
def test_nightly_run_equals_each_analysis_alone_and_refreshes_everything(shop: Services, where: str) -> None:
    expected = alone(shop)

    result = run(shop, where)  # type: ignore[arg-type]

    assert result.analyses == expected
    assert result.analyses["rfm"]["people"] == 9
    classes = {row["class"]: row["people"] for row in result.analyses["rfm"]["classes"]}
    assert (classes["important_value"], classes["important_keep"]) == (3, 1)
    assert (classes["general_develop"], classes["general_win_back"]) == (1, 4)
    store_engine = {"sqlite": "sqlite", "postgresql": "postgres"}[shop.engine.dialect.name]
    assert result.engine == ("duckdb" if where == "duckdb" else store_engine)
    assert [(step.kind, step.name) for step in result.steps if step.kind != "prepare"] == [
        *(("analysis", name) for name in nightly.ANALYSES),
        *(("tag", name) for name, _ in TAGS),
        *(("segment", name) for name in [*(n for n, _, _ in segments.READY_MADE), *(n for n, _ in SEGMENTS)]),
    ]
    assert all(step.seconds >= 0 for step in result.steps)
    assert {item.name: list(item.gained) for item in result.tags} == {
        "durian_fan": [11],
        "durian_member": [11],
        "spender": [1, 2, 11],
    }
    assert {item.name: sorted(item.gained) for item in result.segments} == EXPECTED_SEGMENTS
    tag_holders, members = holders(shop)
    assert tag_holders == {"durian_fan": [11], "durian_member": [11], "spender": [1, 2, 11]}
    assert members == EXPECTED_SEGMENTS
    with unit_of_work(shop.read_sessions) as session:
        entered = session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.topic == "segment.entered")
        )
        moves = session.scalar(select(func.count()).select_from(SegmentChange))
        tag_moves = session.scalar(select(func.count()).select_from(TagChange))
    people_in_segments = sum(len(people) for people in EXPECTED_SEGMENTS.values())
    assert (entered, moves, tag_moves) == (people_in_segments, people_in_segments, 5)


def test_a_second_run_the_same_day_changes_nothing(shop: Services) -> None:
    run(shop)
    _, before = holders(shop)

    again = run(shop)

    assert [(item.gained, item.lost) for item in (*again.tags, *again.segments)] == [((), ())] * (
        len(TAGS) + len(EXPECTED_SEGMENTS)
    )
    assert holders(shop)[1] == before
    with unit_of_work(shop.read_sessions) as session:
        assert session.scalar(select(func.count()).select_from(OutboxEvent)) == sum(
            len(people) for people in EXPECTED_SEGMENTS.values()
        )


def test_a_kept_duckdb_file_is_read_as_it_is(shop: Services, tmp_path: Path) -> None:
    # Given a warehouse copy made earlier (without the tag tables: the run brings those itself).
    path = tmp_path / "warehouse.duckdb"
    duck = ibis.duckdb.connect(str(path))
    with open_source(shop.engine) as store:
        copy_tables(store, [name for name in nightly.COPIED_TABLES if name not in nightly.TAG_TABLES], duck)
    duck.disconnect()

    result = run(shop, "duckdb", duckdb_file=path, copy=False)

    assert [step.name for step in result.steps if step.kind == "prepare"] == ["tag tables to the copy"]
    assert result.analyses == alone(shop)
    assert {item.name: sorted(item.gained) for item in result.segments} == EXPECTED_SEGMENTS


def test_brand_thresholds_change_what_the_run_computes(
    shop: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # R high under 30 days, F above 2 purchase days, M above ¥100: P6 (28 days, 3 days, ¥130) turns
    # 重要价值 as well; the lifecycle reads a 10-day repurchase cycle.
    monkeypatch.setenv("MEMBEROPS_INSIGHT_RFM_CLASS_CUTS", "30,2,100")
    monkeypatch.setenv("MEMBEROPS_INSIGHT_CYCLE_DAYS", "10")
    settings = brand_settings(load_config())

    result = run(shop, settings=settings)

    assert result.analyses["rfm"]["class_cuts"] == {"recency_days": 30, "frequency": 2, "monetary": "100.00"}
    assert result.analyses["lifecycle"]["cycle_days"] == 10
    assert result.analyses["rfm"] != alone(shop)["rfm"]
    assert {item.name: sorted(item.gained) for item in result.segments}["valuable"] == [1, 2, 6, 11]
    assert settings != BrandSettings()


def test_cli_prints_the_run_as_json(shop: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    invoke = cli_runner(shop, monkeypatch)

    printed = json.loads(invoke("analyze nightly --as-of 2026-10-31 --format json").stdout)
    table = invoke("analyze nightly --as-of 2026-10-31").stdout
    refused = invoke("analyze nightly --duckdb-file x.duckdb", status=2)

    assert printed["as_of"] == "2026-10-31"
    assert [step["name"] for step in printed["steps"]][:8] == list(nightly.ANALYSES)
    assert {row["name"]: row["holders"] for row in printed["segments"]} == {
        name: len(people) for name, people in EXPECTED_SEGMENTS.items()
    }
    assert printed["analyses"]["rfm"]["people"] == 9
    assert "nightly insight run as of 2026-10-31" in table and "durian_member" in table
    assert "--duckdb-file needs --on duckdb" in refused.stderr


def test_every_refresh_reads_the_brand_thresholds(shop: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    # An ad-hoc segment refresh judges the classes by the same cuts as the nightly run.
    monkeypatch.setenv("MEMBEROPS_INSIGHT_RFM_CLASS_CUTS", "30,2,100")

    [refreshed] = segments.refresh(
        shop.engine, shop.sessions, ["valuable"], time_zone=ZONE, actor="ops", as_of=AS_OF
    )
    nightly_run = run(shop, settings=brand_settings(load_config()))

    assert sorted(refreshed.gained) == [1, 2, 6, 11]
    assert [(item.gained, item.lost) for item in nightly_run.segments if item.name == "valuable"] == [
        ((), ())
    ]
