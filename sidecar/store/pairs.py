"""Lookups by exact pairs of values, such as (job, run id), one index probe per pair.

``job IN (...) AND run_id IN (...)`` asks the unique index for every combination of the two
lists: a batch of 400 events over 100 jobs is 40,000 probes, and each probe that lands on a
stored key (any run id that any of the jobs used) costs a row. That made the appender's
duplicate check 150 µs per event, most of an ingest request's time. Here the pairs are a
``VALUES`` list joined to the table, so the database probes the index once per pair, on SQLite
and PostgreSQL alike (up to ``MAX_PAIRS`` pairs: see there).

The statements are SQL strings built once per size. Sizes are padded to a power of two (the last
pair repeated) so a few statements serve every batch; a padded pair only repeats a row, and
callers collect rows into sets or dicts.

On PostgreSQL the pairs are two arrays instead, ``unnest``-ed: one short statement for every
size. A ``VALUES`` list of 128 pairs is over psycopg's 4 KB limit for the statements whose
conversion it caches, so every execution parsed its text again with regular expressions: 12%
of a PostgreSQL sidecar's CPU under batched ingest (docs/benchmarks.md, sixteenth round).
And there the table is joined ``LATERAL``, behind an ``OFFSET 0`` fence the planner does not
flatten: one index probe per pair whatever the table's statistics say. A plain join let the
planner hash the whole table for every statement while it thought the table small (never
analyzed, or analyzed when it was): under batched ingest on a fresh database, 3x the
database's CPU per event until the table grew past its estimate (docs/benchmarks.md,
seventeenth round).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["MAX_PAIRS", "PairsQuery", "pairs_args", "pairs_sql", "unnest_binary"]

# Pairs per statement. Not more: SQLite's planner (with no statistics, as jobpulse keeps none)
# joins a VALUES list of 512 rows to the table by building an automatic index over the whole
# table, for every statement, instead of probing its unique index once per pair; the
# appender's duplicate check then cost 90 ms per group commit with 70,000 stored events, and
# more as the table grew. tests/sidecar/test_pairs.py pins the plans.
MAX_PAIRS = 256
_SMALLEST = 8


@dataclass(frozen=True)
class PairsQuery:
    """``SELECT columns FROM k JOIN table alias ON on ...``, where ``k(names)`` is a list of
    pairs and each of ``lookups`` is a (table, alias, on) joined in turn: the rows that match
    each pair through the tables' unique indexes. On PostgreSQL each lookup is a ``LATERAL``
    subquery (see the module's text)."""

    names: str  # k's two columns, "job_id, run_id"
    columns: str  # of the result, as "alias.column, ..."
    lookups: tuple[tuple[str, str, str], ...]

    def sqlite(self, pairs: str) -> str:
        joins = " ".join(f"JOIN {table} {alias} ON {on}" for table, alias, on in self.lookups)
        return f"WITH k({self.names}) AS ({pairs}) SELECT {self.columns} FROM k {joins}"

    def postgresql(self, pairs: str) -> str:
        joins = " ".join(
            f"CROSS JOIN LATERAL (SELECT * FROM {table} {alias} WHERE {on} OFFSET 0) {alias}"
            for table, alias, on in self.lookups
        )
        return f"WITH k({self.names}) AS ({pairs}) SELECT {self.columns} FROM k {joins}"


def _padded(count: int) -> int:
    size = _SMALLEST
    while size < count:
        size *= 2
    return size


def _check(count: int) -> None:
    if not 0 < count <= MAX_PAIRS:
        raise ValueError(f"{count} pairs: a statement takes 1 to {MAX_PAIRS}")


def unnest_binary(*types: str) -> str:
    """PostgreSQL: rows of one binary array parameter (``%b``) per column of the SQL ``types``,
    unnested side by side. Binary because psycopg quotes each element of a text-format array
    with a regular expression: 8x the CPU for 1,000 rows (docs/benchmarks.md, seventeenth
    round)."""
    return "SELECT * FROM unnest(" + ", ".join(f"CAST(%b AS {t}[])" for t in types) + ")"


def _arrays(pairs: Sequence[tuple[Any, Any]]) -> tuple[list[Any], list[Any]]:
    return [a for a, _ in pairs], [b for _, b in pairs]


def _padded_pairs(pairs: Sequence[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    last = len(pairs) - 1
    for i in range(_padded(len(pairs))):
        yield pairs[min(i, last)]


@lru_cache(maxsize=64)
def _sql(query: PairsQuery, size: int, postgresql: bool, types: tuple[str, str]) -> str:
    if postgresql:
        return query.postgresql(unnest_binary(*types))
    return query.sqlite("VALUES " + ", ".join(["(?, ?)"] * size))


def pairs_sql(
    query: PairsQuery,
    count: int,
    *,
    postgresql: bool = False,
    types: tuple[str, str] = ("text", "text"),
) -> str:
    """``query`` over a ``VALUES`` list of ``count`` pairs (padded), or on ``postgresql`` over
    two binary arrays of the SQL ``types``, unnested, as the driver takes it
    (``Connection.exec_driver_sql``, with :func:`pairs_args`). At the driver because the
    appender's duplicate check runs on every group commit, and the applier's read-ahead on
    every batch: SQLAlchemy's processing of a text statement's 256 named parameters (its cache
    key, each parameter's processor) was a third of the appender's time under batched ingest
    (docs/benchmarks.md, sixteenth round)."""
    _check(count)
    return _sql(query, 0 if postgresql else _padded(count), postgresql, types)


def pairs_args(pairs: Sequence[tuple[Any, Any]], *, postgresql: bool = False) -> tuple[Any, ...]:
    """The parameters of :func:`pairs_sql` for ``pairs``, padded the same way."""
    if postgresql:
        return _arrays(pairs)
    return tuple(value for pair in _padded_pairs(pairs) for value in pair)
