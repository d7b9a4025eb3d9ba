"""The pairs lookups probe their table's unique index once per pair, at every size.

SQLite's planner, with no statistics, answers a VALUES list of 512 pairs joined to a table by
building an automatic index over the whole table for each statement: a duplicate check that
grows with every stored event. The statements stop at ``MAX_PAIRS``; these plans must hold up
to it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from jobpulse.sidecar.store import appender, readahead
from jobpulse.sidecar.store.pairs import MAX_PAIRS, pairs_params, pairs_statement
from tests.sidecar.harness import T0, Harness

TEMPLATES = {
    "inbox keys": appender._KEYS_STORED[0],
    "stored keys": appender._KEYS_STORED[1],
    "runs": readahead._RUNS,
    "event keys": readahead._EVENT_KEYS,
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_size_up_to_the_cap_probes_the_index(tmp_path: Path, name: str) -> None:
    h = Harness(f"sqlite:///{tmp_path}/p.db", "", start=T0)
    try:
        sizes = [2**n for n in range(3, MAX_PAIRS.bit_length()) if 2**n <= MAX_PAIRS]
        assert sizes[-1] == MAX_PAIRS
        with h.sidecar.store.engine.connect() as conn:
            for size in sizes:
                pairs = [("job", f"run-{i}") for i in range(size)]
                statement = pairs_statement(TEMPLATES[name], size)
                plan = [
                    row[-1]
                    for row in conn.execute(
                        text(f"EXPLAIN QUERY PLAN {statement}"), pairs_params(pairs)
                    )
                ]
                assert not [step for step in plan if "AUTOMATIC" in step], (size, plan)
                # The table itself: one search of its unique index per pair.
                probes = [step for step in plan if step.startswith("SEARCH") and "INDEX" in step]
                assert probes, (size, plan)
    finally:
        h.close()


def test_more_pairs_than_the_cap_is_refused() -> None:
    with pytest.raises(ValueError, match=f"1 to {MAX_PAIRS}"):
        pairs_statement(readahead._RUNS, MAX_PAIRS + 1)
