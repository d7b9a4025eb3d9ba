"""Storage for the cached ``/metrics`` text: the whole fleet exposition as one bytes object.

The text is each family's header followed by every job's lines for that family, jobs in a
fixed order: a job keeps its position while it stays, new jobs go last (the order a dict keyed
by job id keeps); a removed job's position stays, empty, until the next full build. Besides
the text only lengths are kept: per family, the byte length of each job's lines, and their sums
over pages of ``PAGE`` positions, so finding where a job's lines start costs about
``PAGE + jobs / PAGE`` additions. An update splices the changed jobs' new lines into the
previous text (one copy of it); when no line differs the text stays the same object.

Compared with a bytes chunk per job and family joined on every scrape, the text is held once,
without a Python object per chunk, and a scrape no longer walks every chunk.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence

__all__ = ["PAGE", "ExpositionText"]

PAGE = 256

# (job id, state, one bytes chunk per family) for a rendered job.
Rendered = tuple[int, str, Sequence[bytes]]


def _prefixes(lens: array[int], pages: array[int], positions: Sequence[int]) -> list[int]:
    """``sum(lens[:p])`` for each ``p`` of ``positions`` (ascending), walking page sums over
    long stretches."""
    out = []
    acc = 0
    at = 0
    for p in positions:
        if p - at > 2 * PAGE:
            boundary = -(-at // PAGE) * PAGE
            acc += sum(lens[at:boundary])
            page = p // PAGE
            acc += sum(pages[boundary // PAGE : page])
            at = page * PAGE
        acc += sum(lens[at:p])
        at = p
        out.append(acc)
    return out


def _page_sums(lens: array[int]) -> array[int]:
    return array("Q", [sum(lens[i : i + PAGE]) for i in range(0, len(lens), PAGE)])


class ExpositionText:
    """The exposition of a set of jobs, family by family. Not thread-safe: the owner
    serialises updates; ``body`` is replaced, never modified, so readers may take it any
    time."""

    def __init__(self, headers: Sequence[bytes]) -> None:
        self._headers = list(headers)
        self.body = b"".join(self._headers)
        self._pos: dict[int, int] = {}  # job id -> position
        self._states: list[str | None] = []  # position -> state (None: removed)
        self._lens = [array("I") for _ in self._headers]
        self._pages = [array("Q") for _ in self._headers]
        self._totals = [0] * len(self._headers)
        self._counts: dict[str, int] = {}  # live jobs per state
        self._canon: dict[str, str] = {}  # one string object per state value

    def __len__(self) -> int:
        return len(self._pos)

    def ids(self) -> Iterable[int]:
        return self._pos.keys()

    def spans(self) -> list[tuple[int, int]]:
        """Where each family's lines start and end in ``body`` (after its header)."""
        out = []
        at = 0
        for header, total in zip(self._headers, self._totals, strict=True):
            at += len(header)
            out.append((at, at + total))
            at += total
        return out

    def state_counts(self, known: Sequence[str]) -> dict[str, int]:
        """Live jobs per state: ``known`` states first (zero included), then any other state
        with jobs, in the order of its first job."""
        counts = dict.fromkeys(known, 0)
        others = []
        for state, n in self._counts.items():
            if state in counts:
                counts[state] = n
            elif n > 0:
                others.append(state)
        others.sort(key=self._states.index)
        for state in others:
            counts[state] = self._counts[state]
        return counts

    def _set_state(self, position: int, state: str | None) -> None:
        old = self._states[position]
        if old is not None:
            self._counts[old] -= 1
        if state is not None:
            state = self._canon.setdefault(state, state)
            self._counts[state] = self._counts.get(state, 0) + 1
        self._states[position] = state

    # ------------------------------------------------------------------ build
    def build(self, jobs: Iterable[Rendered]) -> None:
        """Replace everything with ``jobs``, in their order."""
        nfam = len(self._headers)
        bufs = [bytearray() for _ in range(nfam)]
        lens = [array("I") for _ in range(nfam)]
        self._pos = {}
        self._states = []
        self._counts = {}
        batch: list[Sequence[bytes]] = []

        def flush() -> None:
            # Family by family for a batch of jobs: a join and an extend, not a loop per job.
            for f, column in enumerate(zip(*batch, strict=True)):
                bufs[f] += b"".join(column)
                lens[f].extend(map(len, column))
            batch.clear()

        for job_id, state, chunks in jobs:
            # Job ids are the store's primary key: each comes once.
            position = self._pos[job_id] = len(self._states)
            self._states.append(None)
            self._set_state(position, state)
            batch.append(chunks)
            if len(batch) == PAGE:
                flush()
        if batch:
            flush()
        parts: list[bytes | bytearray] = []
        for header, buf in zip(self._headers, bufs, strict=True):
            parts += (header, buf)
        self._totals = [len(buf) for buf in bufs]
        self.body = b"".join(parts)
        parts.clear()
        bufs.clear()  # the families' buffers: as much again as the text
        self._lens = lens
        self._pages = [_page_sums(x) for x in lens]

    # ------------------------------------------------------------------ update
    def update(self, changed: Iterable[Rendered], gone: Iterable[int]) -> None:
        """Replace the lines of ``changed`` jobs (new ones go last, in their order) and drop
        the jobs in ``gone``, with one copy of the text (none when no line differs)."""
        repl: dict[int, Sequence[bytes] | None] = {}
        for job_id, state, chunks in changed:
            position = self._pos.get(job_id)
            if position is None:
                position = self._pos[job_id] = len(self._states)
                self._states.append(None)
            self._set_state(position, state)
            repl[position] = chunks
        for job_id in gone:
            position = self._pos.pop(job_id, None)
            if position is not None:
                self._set_state(position, None)
                repl[position] = None
        if not repl:
            return
        count = len(self._states)
        grow = count - len(self._lens[0])
        if grow > 0:
            zeros = array("I", bytes(4 * grow))
            page_count = -(-count // PAGE)
            for f in range(len(self._headers)):
                self._lens[f].extend(zeros)
                missing = page_count - len(self._pages[f])
                if missing > 0:
                    self._pages[f].extend(array("Q", bytes(8 * missing)))
        positions = sorted(repl)
        empty = b""
        pieces: list[bytes | memoryview] = []
        with memoryview(self.body) as old:
            cur = 0
            start = 0
            for f, header in enumerate(self._headers):
                start += len(header)
                lens = self._lens[f]
                pages = self._pages[f]
                offsets = _prefixes(lens, pages, positions)
                delta = 0
                for position, offset in zip(positions, offsets, strict=True):
                    lines = repl[position]
                    new = lines[f] if lines is not None else empty
                    at = start + offset
                    before = lens[position]
                    if len(new) == before and (not new or old[at : at + before] == new):
                        continue  # re-read, but the same lines
                    if at > cur:
                        pieces.append(old[cur:at])
                    if new:
                        pieces.append(new)
                    cur = at + before
                    if len(new) != before:
                        lens[position] = len(new)
                        pages[position // PAGE] += len(new) - before
                        delta += len(new) - before
                start += self._totals[f]
                self._totals[f] += delta
            if not pieces:
                return  # nothing differs: the text stays the same object
            pieces.append(old[cur:])
            body = b"".join(pieces)
            for piece in pieces:
                if isinstance(piece, memoryview):
                    piece.release()
            del pieces
        self.body = body
