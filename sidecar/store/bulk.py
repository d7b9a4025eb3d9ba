"""One statement executed for many rows at the driver: what a transaction writes outside the
ORM session (idempotency keys, slots, flips, rollups and runs; see ``Tx.write_pending``).

``Connection.execute(statement, rows)`` with a list of dicts builds every row's parameters
through the compiled statement, in Python, one call per row; for the applier that cost about
as much as the statements themselves. Here the statement is compiled once per dialect and set
of columns, and each row becomes a tuple (SQLite's positional ``?``) or stays a dict
(psycopg's named parameters) with only the bind processors its types have (JSON), then goes to
the driver's ``executemany``. Rows already in a fixed column order go as tuples
(:meth:`Bulk.prepare_tuples`), without a dict per row. A statement is prepared (for a dialect,
without a connection) apart from its execution, so a transaction can work out all it writes
before its first write takes SQLite's write lock. Booleans bind as they are: both
drivers take Python's ``bool`` (sqlite3 as 0 and 1), and what writes here only sets bools,
so SQLAlchemy's check and coercion of each one bought nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Boolean, Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import UpdateBase

__all__ = ["Bulk", "Statement"]

_Processor = Callable[[Any], Any]
# A statement's SQL and its parameters: one row's, or a list of rows' for executemany.
Statement = tuple[str, Any]


class _Plan:
    __slots__ = ("keys", "names", "order", "positional", "positions", "processors", "sql")

    def __init__(self, statement: UpdateBase, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        self.positional = bool(dialect.positional)
        self.names = list(compiled.positiontup or ()) if self.positional else list(compiled.binds)
        self.keys = list(keys)
        self.order = [self.keys.index(name) for name in self.names]  # a tuple row's positions
        found: dict[str, _Processor | None] = {}
        for name in self.names:
            if name not in found:
                bind_type = compiled.binds[name].type
                found[name] = (
                    None
                    if isinstance(bind_type, Boolean)
                    else bind_type.dialect_impl(dialect).bind_processor(dialect)
                )
        # By name for named parameters, by position (every one) for positional ones.
        self.processors = [(name, proc) for name, proc in found.items() if proc is not None]
        self.positions = [
            (index, proc) for index, name in enumerate(self.names) if (proc := found[name])
        ]

    def params(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        if not self.positional:
            if not self.processors:
                return list(rows)
            named = []
            for row in rows:
                mapping = dict(row)
                for name, processor in self.processors:
                    mapping[name] = processor(mapping[name])
                named.append(mapping)
            return named
        return self._positional(rows, self.names)

    def tuple_params(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """:meth:`params` for rows given as values in the order of ``keys``."""
        if not self.positional:
            return self.params([dict(zip(self.keys, row, strict=True)) for row in rows])
        return self._positional(rows, self.order)

    def _positional(self, rows: Sequence[Any], picks: Sequence[Any]) -> list[Any]:
        """Each row's values for the statement's positions, ``row[pick]`` each (a mapping's
        names, or a tuple's indexes), processed."""
        if not self.positions:
            return [tuple([row[pick] for pick in picks]) for row in rows]
        positional = []
        for row in rows:
            values = [row[pick] for pick in picks]
            for index, processor in self.positions:
                values[index] = processor(values[index])
            positional.append(tuple(values))
        return positional


class Bulk:
    """``statement`` (an INSERT or an UPDATE with bound parameters) for many rows at once."""

    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}

    def _plan(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
        plan = self._plans.get((dialect.name, keys))
        if plan is None:
            plan = _Plan(self.statement, dialect, keys)
            self._plans[(dialect.name, keys)] = plan
        return plan

    def prepare(self, dialect: Dialect, rows: Sequence[Mapping[str, Any]]) -> list[Statement]:
        """The statement and its parameters for every row of ``rows`` (all with the same
        keys), for one executemany at the driver; none for no rows."""
        if not rows:
            return []
        plan = self._plan(dialect, tuple(rows[0]))
        return [(plan.sql, plan.params(rows))]

    def prepare_tuples(
        self, dialect: Dialect, keys: tuple[str, ...], rows: Sequence[Sequence[Any]]
    ) -> list[Statement]:
        """:meth:`prepare` for rows given as their values for ``keys``, in that order."""
        if not rows:
            return []
        plan = self._plan(dialect, keys)
        return [(plan.sql, plan.tuple_params(rows))]
