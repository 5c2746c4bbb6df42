"""The same analyses on Apache Spark: the distributed path of ADR 0009, run for real.

A brand with tens of millions of members replicates the store's tables into its warehouse and
opens a ``Source`` on that engine; nothing else changes. This test does that with PySpark in
local mode (two threads, the machine's Java): it copies the hand-worked shop and chain into Spark
temporary views and requires every analysis — RFM, lifecycle, layers, KPIs, the cross table,
cohorts, the magic number, preferences, with their default periods as the nightly run computes
them — to give exactly the report the store gives. Spark differs from the embedded engines in
the ways the ADR names (no temporary tables: a kept relation is a cached temporary view; no JSON
type: ``get_json_object``), and ``Source`` absorbs both.

Spark needs a Java runtime (17 or later); without one on the PATH the test is skipped, saying so.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import ibis
import pytest
from ibis.backends import BaseBackend
from sqlalchemy import Engine

from memberops.insight.config import BrandSettings
from memberops.insight.nightly import ANALYSES, COPIED_TABLES, analysis_steps
from memberops.insight.source import Source, open_source
from tests.conftest import sqlite_engine
from tests.integration.kpi_support import build_chain
from tests.integration.test_insight_analyses import build_shop

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime on the PATH"),
]

ZONE = "Asia/Shanghai"
AS_OF = date(2026, 10, 31)


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaseBackend]:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("memberops-insight-test")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield ibis.pyspark.connect(session)
    finally:
        session.stop()


def _copy_to_spark(store: Source, backend: Any) -> Source:
    """Replicate the tables a run reads into Spark temporary views (JSON travels as text)."""
    session = backend._session
    for name in COPIED_TABLES:
        table = store.table(name)
        json_columns = [column for column, dtype in table.schema().items() if dtype.is_json()]
        if json_columns:
            table = table.mutate(**{column: table[column].cast("string") for column in json_columns})
        session.createDataFrame(table.to_pyarrow()).createOrReplaceTempView(name)
    return Source(backend)


def _reports(engine: Engine, source: Source) -> dict[str, dict[str, Any]]:
    return {
        name: compute().as_dict()
        for name, compute in analysis_steps(engine, source, AS_OF, ZONE, BrandSettings())
    }


@pytest.mark.parametrize("build", [build_shop, build_chain], ids=["shop", "chain"])
def test_every_analysis_gives_the_same_report_on_spark(
    build: Callable[[Engine], None], spark: BaseBackend, tmp_path: Path
) -> None:
    for engine in sqlite_engine(tmp_path):
        build(engine)
        with open_source(engine) as store:
            expected = _reports(engine, store)
            copy = _copy_to_spark(store, spark)
        found = _reports(engine, copy)
        copy.release()

        assert tuple(found) == ANALYSES  # every analysis the nightly run computes
        for name, report in expected.items():
            assert found[name] == report, name
