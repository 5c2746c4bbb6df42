"""One row per person as CSV: ``memberops analyze … --format csv`` and ``GET /insight/…/people``.

Both write through ``csv_chunks``, so the command and the API give the same columns in the same
notation: a money column in fen is written as a yuan string under its name without ``_fen``
(``monetary_fen`` → ``monetary``), a share as a decimal string with four places, a missing value
as an empty field; rows are ordered by person id, lines end in ``\\n``.

The analysis fetches its per-person table as Arrow (columnar: a million RFM rows take some tens of
MB); the CSV text is then made one batch of rows at a time, so only one batch is ever held as
Python objects and the API streams it out as it is written.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import pyarrow as pa
from sqlalchemy import Engine

from memberops.insight import kpi_service, service
from memberops.insight.kpi_rules import PreferenceSettings
from memberops.insight.rules import LayerSettings, LifecycleSettings, RfmSettings, decimal_text, ratio
from memberops.kit.money import fen_to_yuan

#: Rows turned into CSV text at a time.
ROWS_PER_CHUNK = 10_000


@dataclass(frozen=True)
class Share:
    """A column written after the table's own: ``part`` ÷ ``whole`` as a four-place decimal string."""

    name: str
    part: str
    whole: str


@dataclass(frozen=True)
class PeopleTable:
    """An analysis's per-person rows and how they are written.

    ``money_columns`` hold fen; ``shares`` are appended after the table's columns; ``hidden``
    columns are read (a share may use them) but not written.
    """

    table: pa.Table
    money_columns: tuple[str, ...] = ()
    shares: tuple[Share, ...] = ()
    hidden: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        """The table's columns that are written, in order."""
        return [name for name in self.table.column_names if name not in self.hidden]

    @property
    def header(self) -> list[str]:
        """The CSV header: money columns lose their ``_fen``, shares come last."""
        names = [name.removesuffix("_fen") if name in self.money_columns else name for name in self.columns]
        return names + [share.name for share in self.shares]

    def rows(self, rows_per_batch: int = ROWS_PER_CHUNK) -> Iterator[list[tuple[Any, ...]]]:
        """Yield the rows as written, one batch (a list of rows) at a time."""
        columns = self.columns
        for batch in self.table.to_batches(max_chunksize=rows_per_batch):
            values = {name: batch.column(name).to_pylist() for name in batch.schema.names}
            written: list[list[Any]] = [
                [_money(value) for value in values[name]] if name in self.money_columns else values[name]
                for name in columns
            ]
            written += [
                [
                    decimal_text(ratio(part, whole))
                    for part, whole in zip(values[share.part], values[share.whole], strict=True)
                ]
                for share in self.shares
            ]
            yield list(zip(*written, strict=True))


def _money(fen: int | None) -> str | None:
    return None if fen is None else fen_to_yuan(fen)


def csv_chunks(people: PeopleTable, rows_per_chunk: int = ROWS_PER_CHUNK) -> Iterator[str]:
    """Yield the CSV text of ``people``: the header, then up to ``rows_per_chunk`` rows per piece."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(people.header)
    for rows in people.rows(rows_per_chunk):
        writer.writerows(rows)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()  # the header of a table without rows


def write_csv(people: PeopleTable, out: TextIO) -> None:
    """Write ``people`` as CSV to ``out`` (see ``csv_chunks``)."""
    for chunk in csv_chunks(people):
        out.write(chunk)


def rfm_people(engine: Engine, run: service.Window, settings: RfmSettings) -> PeopleTable:
    """``person_id, recency_days, frequency, monetary, r_score, f_score, m_score, rfm_class``."""
    return PeopleTable(service.rfm_people(engine, run, settings), money_columns=("monetary_fen",))


def lifecycle_people(engine: Engine, run: service.Window, settings: LifecycleSettings) -> PeopleTable:
    """``person_id, days_since_first, days_since_last, stage`` on the as-of date."""
    return PeopleTable(service.lifecycle_people(engine, run, settings))


def layers_people(engine: Engine, run: service.Window, settings: LayerSettings) -> PeopleTable:
    """``person_id, layer, transaction_value``: the layer at the period's end and CLV's own part."""
    return PeopleTable(service.layers_people(engine, run, settings), money_columns=("transaction_value_fen",))


def preferences_people(engine: Engine, run: service.Window, settings: PreferenceSettings) -> PeopleTable:
    """``person_id, preferred, top_category, top, spend, categories, top_share`` per buyer."""
    return PeopleTable(
        kpi_service.preferences_people(engine, run, settings),
        money_columns=("top_fen", "spend_fen"),
        shares=(Share("top_share", part="top_fen", whole="spend_fen"),),
        hidden=("bucket",),
    )
