"""Deterministic data for the insight benchmark: a brand's store tables, generated inside DuckDB.

The nightly insight run reads persons, orders, order lines, refunds, memberships, events,
consents, stores, tier history, current tiers, points accounts and paid plans. At a million
members and ten million orders the product's importer would take an hour, and the analyses do
not care how rows arrived, so the rows are generated straight into a DuckDB file by SQL: every
"random" choice is ``hash(row number, salt)``, so the same sizes always give the same rows on
every machine and thread count. Column names and types are taken from a freshly migrated store
(``source.table(name).schema()``), so the file has exactly the store's shapes.

Shapes, for ``members`` = M and ``orders`` = N (all times in the last two years, Shanghai hours):

- persons: M members, 0.15·M live non-members (buyers and reachable people), 0.03·M persons
  merged into a live one (their orders and events count for the survivor);
- memberships: one spell per member, 5 % cancelled, 60 % joined at one of 200 stores;
- orders: N, 8 % guests, the rest skewed towards heavy buyers (members buy most), more recent
  days busier, 60 % at a store (POS) and the rest online; 2 % carry a share id;
- order lines: 1–3 per order over 12 categories × 20 SKUs, adding up to the order amount;
- refunds: 2 % of orders, half in full, a few after the as-of date;
- events: 3·M (visits, shares, reviews with a rating and SKU, follows, group joins and leaves);
- consents: 0.3·M (WeCom contact, subscription; 85 % grants);
- tier history, current tiers and points accounts of the members; paid plans for 5 % of them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.data import DATA_DIR
from memberops.insight.source import open_source
from memberops.kit import migrate
from memberops.kit.db import make_engine

#: Bump when the generator changes, so a stale cached file is never reused.
GENERATOR_VERSION = 1
#: The business date the data ends on (Shanghai); the benchmark's nightly run is taken on it.
AS_OF = date(2026, 10, 31)
STORES = 200
#: Every table the nightly run reads from the analysis source.
TABLES = (
    "persons",
    "orders",
    "order_lines",
    "refunds",
    "memberships",
    "events",
    "consents",
    "stores",
    "tier_history",
    "member_tiers",
    "points_accounts",
    "paid_plan_subscriptions",
    "tags",
    "person_tags",
)

# Each statement fills one table from ``range``; ``u(i, salt)`` is a uniform number in [0, 1).
# ``{members}``, ``{persons}``, ``{live}`` and ``{orders}`` are filled in; ``END`` is the first UTC
# instant after the as-of date (2026-10-31 24:00 in Shanghai) and ``local(day, seconds)`` the UTC
# instant of a Shanghai wall-clock time.
_MACROS = """
CREATE OR REPLACE MACRO u(i, salt) AS (hash(i, salt) % 1000000007) / 1000000007.0;
CREATE OR REPLACE MACRO local_at(day_value, seconds) AS
    CAST(day_value AS TIMESTAMP) + to_seconds(CAST(seconds AS BIGINT)) - INTERVAL 8 HOUR;
"""

_FILL = {
    "stores": """
INSERT INTO stores BY NAME
SELECT i AS id, printf('S%03d', i) AS code, printf('门店 %03d', i) AS name,
       ['上海','北京','杭州','南京','苏州','成都','深圳','广州','武汉','西安'][1 + i % 10] AS city,
       ['flagship','mall','street','community'][1 + CAST(floor(u(i, 1) * 4) AS INT)] AS store_type,
       TIMESTAMP '2023-01-01 00:00:00' AS created_at
FROM range(1, {stores} + 1) t(i)
""",
    "persons": """
INSERT INTO persons BY NAME
SELECT i AS id, local_at(DATE '2022-11-01' + CAST(floor(u(i, 1) * 1460) AS INT), 36000) AS created_at,
       CASE WHEN i > {live} THEN 1 + CAST(floor(u(i, 2) * {live}) AS BIGINT) END AS merged_into_id
FROM range(1, {persons} + 1) t(i)
""",
    "memberships": """
INSERT INTO memberships BY NAME
SELECT i AS id, i AS person_id, 'M' || i AS member_no,
       local_at(DATE '2026-10-31' - CAST(floor(pow(u(i, 1), 0.7) * 1460) AS INT),
                28800 + floor(u(i, 2) * 50400)) AS joined_at,
       CASE WHEN u(i, 3) < 0.6 THEN 'pos' WHEN u(i, 3) < 0.9 THEN 'mini_program' ELSE 'douyin' END
           AS join_field,
       CASE WHEN u(i, 3) < 0.6 THEN 1 + CAST(floor(u(i, 4) * {stores}) AS BIGINT) END AS join_store_id,
       CASE WHEN u(i, 5) < 0.05 THEN 'cancelled' ELSE 'active' END AS status,
       CASE WHEN u(i, 5) < 0.05
            THEN local_at(DATE '2026-10-31' - CAST(floor(u(i, 6) * 300) AS INT), 43200) END AS cancelled_at,
       NULL AS identifier_id,
       CASE WHEN u(i, 7) < 0.6 THEN DATE '1970-01-01' + CAST(floor(u(i, 8) * 14600) AS INT) END AS birthday
FROM range(1, {members} + 1) t(i)
""",
    "orders": """
INSERT INTO orders BY NAME
SELECT i AS id,
       CASE WHEN u(i, 5) < 0.6 THEN 'pos' WHEN u(i, 5) < 0.8 THEN 'mini_program'
            WHEN u(i, 5) < 0.9 THEN 'tmall' WHEN u(i, 5) < 0.96 THEN 'douyin' ELSE 'meituan' END AS source,
       'O' || i AS external_id,
       CASE WHEN u(i, 2) >= 0.08 THEN 1 + CAST(floor(pow(u(i, 1), 1.6) * {persons}) AS BIGINT) END
           AS person_id,
       NULL AS identifier_id,
       CASE WHEN u(i, 5) < 0.6 THEN 1 + CAST(floor(u(i, 6) * {stores}) AS BIGINT) END AS store_id,
       local_at(DATE '2026-10-31' - CAST(floor(pow(u(i, 3), 1.2) * 730) AS INT),
                28800 + floor(u(i, 4) * 50400)) AS paid_at,
       1000 + CAST(floor(pow(u(i, 7), 2) * 49000) AS BIGINT) AS amount_fen,
       CASE WHEN u(i, 8) < 0.02 THEN 'S' || CAST(floor(u(i, 9) * {members} / 4) AS BIGINT) END AS share_id,
       local_at(DATE '2026-10-31' - CAST(floor(pow(u(i, 3), 1.2) * 730) AS INT),
                28800 + floor(u(i, 4) * 50400)) AS created_at
FROM range(1, {orders} + 1) t(i)
""",
    "order_lines": """
INSERT INTO order_lines BY NAME
WITH sized AS (
    SELECT id, amount_fen, 1 + CAST(u(id, 10) < 0.4 AS INT) + CAST(u(id, 10) < 0.15 AS INT) AS lines
    FROM orders
)
SELECT id * 3 + k AS id, id AS order_id, k + 1 AS line_no,
       printf('C%02d-%02d', CAST(hash(id, k, 11) % 12 AS INT), CAST(hash(id, k, 12) % 20 AS INT)) AS sku,
       ['水果','榴莲','坚果','茶饮','咖啡','烘焙','乳品','零食','礼盒','果切','饮料','周边'][
           1 + CAST(hash(id, k, 11) % 12 AS INT)] AS category,
       1 + CAST(hash(id, k, 13) % 3 AS INT) AS quantity,
       CASE WHEN k = lines - 1 THEN amount_fen - (amount_fen // lines) * (lines - 1)
            ELSE amount_fen // lines END AS amount_fen
FROM sized, range(3) r(k)
WHERE k < lines
""",
    "refunds": """
INSERT INTO refunds BY NAME
SELECT row_number() OVER (ORDER BY id) AS id, id AS order_id, source, 'R' || id AS external_id,
       paid_at + to_days(1 + CAST(floor(u(id, 21) * 10) AS INT)) AS refunded_at,
       CASE WHEN u(id, 22) < 0.5 THEN amount_fen ELSE amount_fen * 3 // 10 END AS amount_fen,
       NULL AS reason,
       paid_at + to_days(1 + CAST(floor(u(id, 21) * 10) AS INT)) AS created_at
FROM orders
WHERE u(id, 20) < 0.02
""",
    "events": """
INSERT INTO events BY NAME
WITH drawn AS (
    SELECT i, u(i, 1) AS pick,
           1 + CAST(floor(pow(u(i, 2), 1.3) * {persons}) AS BIGINT) AS person_id,
           local_at(DATE '2026-10-31' - CAST(floor(u(i, 3) * 400) AS INT), 28800 + floor(u(i, 4) * 50400))
               AS occurred_at
    FROM range(1, 3 * {members} + 1) t(i)
), kinds AS (
    SELECT *, CASE WHEN pick < 0.60 THEN 'visit' WHEN pick < 0.70 THEN 'share' WHEN pick < 0.80 THEN 'review'
                   WHEN pick < 0.88 THEN 'follow' WHEN pick < 0.90 THEN 'unfollow'
                   WHEN pick < 0.97 THEN 'join_group' ELSE 'leave_group' END AS kind
    FROM drawn
)
SELECT i AS id, 'e' || i AS dedup_key, kind,
       CASE kind WHEN 'visit'
                 THEN ['mini_program','live_room','official_account'][1 + CAST(hash(i, 5) % 3 AS INT)]
                 WHEN 'follow' THEN ['official_account','live_room'][1 + CAST(hash(i, 5) % 2 AS INT)]
                 WHEN 'unfollow' THEN ['official_account','live_room'][1 + CAST(hash(i, 5) % 2 AS INT)]
                 WHEN 'join_group' THEN 'group_chat' WHEN 'leave_group' THEN 'group_chat'
                 ELSE 'mini_program' END AS field,
       NULL AS external_id, occurred_at, person_id, person_id AS identifier_id,
       CASE WHEN kind = 'share' THEN 'S' || CAST(floor(u(i, 6) * {members} / 4) AS BIGINT) END AS share_id,
       CASE WHEN kind = 'review'
            THEN json_object('sku', printf('C%02d-%02d', CAST(hash(i, 7) % 12 AS INT),
                                           CAST(hash(i, 8) % 20 AS INT)),
                             'rating', 1 + CAST(floor(pow(u(i, 9), 0.5) * 5) AS INT))
            WHEN kind = 'share'
            THEN json_object('share_id', 'S' || CAST(floor(u(i, 6) * {members} / 4) AS BIGINT))
            ELSE json_object() END AS attributes,
       occurred_at AS created_at
FROM kinds
""",
    "consents": """
INSERT INTO consents BY NAME
SELECT i AS id, 1 + CAST(floor(u(i, 1) * {live}) AS BIGINT) AS person_id,
       CASE WHEN u(i, 2) < 0.6 THEN 'wecom' ELSE 'subscription' END AS channel,
       u(i, 3) < 0.85 AS granted,
       local_at(DATE '2026-10-31' - CAST(floor(u(i, 4) * 730) AS INT), 43200) AS changed_at,
       'wecom' AS field, NULL AS event_id
FROM range(1, {members} * 3 // 10 + 1) t(i)
""",
    "tier_history": """
INSERT INTO tier_history BY NAME
WITH steps AS (
    SELECT i AS person_id, 1 AS step, 'standard' AS from_tier, 'silver' AS to_tier, 'up' AS direction,
           120 AS days FROM range(1, {members} + 1) t(i) WHERE u(i, 31) < 0.40
    UNION ALL
    SELECT i, 2, 'silver', 'gold', 'up', 300 FROM range(1, {members} + 1) t(i) WHERE u(i, 31) < 0.15
    UNION ALL
    SELECT i, 3, 'gold', 'silver', 'down', 500 FROM range(1, {members} + 1) t(i) WHERE u(i, 31) < 0.04
)
SELECT row_number() OVER (ORDER BY person_id, step) AS id, person_id, from_tier, to_tier, direction,
       CASE direction WHEN 'up' THEN 'growth' ELSE 'evaluation' END AS reason, 0 AS growth,
       NULL AS programme_version_id, 'bench' AS actor,
       'tier:' || person_id || ':' || step AS idempotency_key, NULL AS note,
       local_at(DATE '2026-10-31' - CAST(floor(u(person_id, 32) * 200) AS INT) - (3 - step) * 150 - 1, 36000)
           AS changed_at
FROM steps
""",
    "member_tiers": """
INSERT INTO member_tiers BY NAME
SELECT i AS person_id,
       CASE WHEN u(i, 31) < 0.04 THEN 'silver' WHEN u(i, 31) < 0.15 THEN 'gold'
            WHEN u(i, 31) < 0.40 THEN 'silver' ELSE 'standard' END AS tier,
       NULL AS floor, TIMESTAMP '2026-01-01 00:00:00' AS since, 0 AS growth_total,
       CAST('[]' AS JSON) AS gifted_tiers, NULL AS next_evaluation_on,
       TIMESTAMP '2026-10-31 00:00:00' AS updated_at
FROM range(1, {members} + 1) t(i)
""",
    "points_accounts": """
INSERT INTO points_accounts BY NAME
SELECT i AS person_id, CAST(floor(u(i, 41) * 3000) AS BIGINT) AS balance, 0 AS debt, 1 AS revision,
       TIMESTAMP '2026-10-31 00:00:00' AS updated_at
FROM range(1, {members} + 1) t(i)
""",
    "paid_plan_subscriptions": """
INSERT INTO paid_plan_subscriptions BY NAME
SELECT row_number() OVER (ORDER BY i) AS id, i AS person_id, 'annual' AS plan_code,
       1 AS programme_version_id, 'purchase' AS kind, NULL AS follows_id,
       local_at(DATE '2026-10-31' - CAST(floor(u(i, 52) * 700) AS INT), 36000) AS starts_at,
       local_at(DATE '2026-10-31' - CAST(floor(u(i, 52) * 700) AS INT) + 365, 36000) AS ends_at,
       19900 AS price_fen,
       local_at(DATE '2026-10-31' - CAST(floor(u(i, 52) * 700) AS INT), 36000) AS paid_at,
       NULL AS payment_ref, 'active' AS status, 'bench' AS actor, 'plan:' || i AS idempotency_key,
       NULL AS refund_fen, NULL AS refunded_at, NULL AS refund_reason, NULL AS refund_key,
       NULL AS expiring_notified_at,
       local_at(DATE '2026-10-31' - CAST(floor(u(i, 52) * 700) AS INT), 36000) AS created_at
FROM range(1, {members} + 1) t(i)
WHERE u(i, 51) < 0.05
""",
}


@dataclass(frozen=True)
class InsightData:
    """A generated DuckDB file and how many rows each table holds."""

    members: int
    orders: int
    path: Path
    counts: dict[str, int]


def sizes(members: int, orders: int) -> dict[str, int]:
    """The population sizes the statements are filled with (see the module docstring)."""
    live = members + members * 15 // 100
    return {
        "members": members,
        "live": live,
        "persons": live + members * 3 // 100,
        "orders": orders,
        "stores": STORES,
    }


def _paths(members: int, orders: int, directory: Path) -> tuple[Path, Path]:
    stem = directory / f"insight-{members}-{orders}-v{GENERATOR_VERSION}"
    return Path(f"{stem}.duckdb"), Path(f"{stem}.meta.json")


def store_schemas(directory: Path) -> dict[str, Any]:
    """Return the Ibis schema of every table the nightly run reads, from a freshly migrated store."""
    path = directory / "schema-store.db"
    for stale in directory.glob("schema-store.db*"):
        stale.unlink()
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate.upgrade(engine)
        with open_source(engine) as source:
            return {name: source.table(name).schema() for name in TABLES}
    finally:
        engine.dispose()
        for stale in directory.glob("schema-store.db*"):
            stale.unlink()


def _create_tables(connection: duckdb.DuckDBPyConnection, schemas: dict[str, Any]) -> None:
    """Create every table empty, with the store's column names and types (JSON stays JSON)."""
    for name, schema in schemas.items():
        columns = ", ".join(f'"{column}" {_duckdb_type(dtype)}' for column, dtype in schema.items())
        connection.execute(f"CREATE TABLE {name} ({columns})")


def _duckdb_type(dtype: Any) -> str:
    if dtype.is_int64():
        return "BIGINT"
    if dtype.is_string():
        return "VARCHAR"
    if dtype.is_timestamp():
        return "TIMESTAMP"
    if dtype.is_date():
        return "DATE"
    if dtype.is_boolean():
        return "BOOLEAN"
    if dtype.is_json():
        return "JSON"
    raise ValueError(f"no DuckDB type for {dtype}")


def generate(members: int, orders: int, path: Path, *, log: Any = print) -> dict[str, int]:
    """Write the DuckDB file at ``path`` (replacing it); return the rows per table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, Path(f"{path}.wal")):
        stale.unlink(missing_ok=True)
    schemas = store_schemas(path.parent)
    fill = sizes(members, orders)
    connection = duckdb.connect(str(path))
    try:
        connection.execute(_MACROS)
        _create_tables(connection, schemas)
        for name, statement in _FILL.items():
            started = time.perf_counter()
            connection.execute(statement.format(**fill))
            log(f"  generated {name} in {time.perf_counter() - started:.1f} s")
        connection.execute("CHECKPOINT")
        return {
            name: int(connection.execute(f"SELECT count(*) FROM {name}").fetchone()[0])  # type: ignore[index]
            for name in TABLES
        }
    finally:
        connection.close()


def ensure_data(members: int, orders: int, directory: Path = DATA_DIR, *, log: Any = print) -> InsightData:
    """Return the cached data set of this size, generating it first when it is missing or stale."""
    path, meta_path = _paths(members, orders, directory)
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("generator") == GENERATOR_VERSION:
            return InsightData(members, orders, path, meta["counts"])
    started = time.perf_counter()
    log(f"generating {members:,} members and {orders:,} orders into {path.name}")
    counts = generate(members, orders, path, log=log)
    meta_path.write_text(
        json.dumps(
            {"generator": GENERATOR_VERSION, "counts": counts, "seconds": time.perf_counter() - started}
        )
    )
    return InsightData(members, orders, path, counts)
