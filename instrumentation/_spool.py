"""The on-disk spool: batches a process could not deliver, for the next process to send.

One file per batch (a JSON array of wire objects without ``sent_at``), written to a temporary
name and renamed into place, so a reader never sees half a batch. A sender claims a file by
renaming it to ``<name>.<pid>.claim`` (only one process wins the rename), deletes it once the
sidecar has answered for it, and renames it back when the sidecar is unreachable. A claim left
behind by a process that died is released after :data:`STALE_CLAIM` seconds. Resending is safe:
the sidecar deduplicates on ``(run_id, type)``.

A batch the sidecar keeps failing on carries its count of such failures in its name
(``<stem>.f<n>.batch.json``), so the count survives the processes that tried it; the sender
moves it to the ``quarantine`` folder inside the spool at the limit (see ``_delivery.py``),
where the newest :data:`QUARANTINE_KEEP` batches are kept for an operator to inspect.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

__all__ = ["Spool"]

SUFFIX: Final = ".batch.json"
CLAIM: Final = ".claim"
STALE_CLAIM: Final = 600.0
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
QUARANTINE: Final = "quarantine"
QUARANTINE_KEEP: Final = 20
_NAME_RE: Final = re.compile(r"(?P<stem>[^.]+)(?:\.f(?P<failures>[0-9]+))?" + re.escape(SUFFIX))


class Spool:
    """A directory of undelivered batches, bounded in total size."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    def write(self, batch: list[dict[str, Any]]) -> bool:
        """Store one batch; False when it does not fit (the caller counts the drop).

        Raises OSError when the directory cannot be written.
        """
        data = _encode(batch)
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.size() + len(data) > self.max_bytes:
            return False
        self._put(f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}", data)
        return True

    def split(self, claimed: Path, batch: list[dict[str, Any]]) -> None:
        """Replace the claimed ``batch`` (of two events or more) with its two halves, in its
        place in the spool's order and with its count of failures (the sidecar's limits are
        below its length). The halves replace the same bytes, so the size bound is not
        checked.

        Raises OSError when the directory cannot be written (the claim is then released)."""
        match = _NAME_RE.match(claimed.name)
        stem = match["stem"] if match is not None else uuid.uuid4().hex
        failures = f".f{match['failures']}" if match is not None and match["failures"] else ""
        half = len(batch) // 2
        try:
            for part, events in (("a", batch[:half]), ("b", batch[half:])):
                self._put(f"{stem}-{part}{failures}{SUFFIX}", _encode(events))
        except OSError:
            self.release(claimed)
            raise
        self.done(claimed)

    def _put(self, name: str, data: bytes) -> None:
        """Write ``data`` to ``name``, whole or not at all."""
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.directory / name)

    def size(self) -> int:
        """Bytes held by spooled batches (claimed ones included)."""
        total = 0
        for path in self._entries():
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                continue
        return total

    def pending(self) -> list[Path]:
        """Unclaimed batch files, oldest first; stale claims are released on the way."""
        now = time.time()
        for path in self._entries():
            if path.name.endswith(CLAIM):
                try:
                    if now - path.stat().st_mtime > STALE_CLAIM:
                        os.replace(path, self.directory / (path.name.split(SUFFIX)[0] + SUFFIX))
                except FileNotFoundError:
                    continue
        return sorted(p for p in self._entries() if p.name.endswith(SUFFIX))

    def claim(self, path: Path) -> Path | None:
        """Take ``path`` for sending; None when another process got it first."""
        claimed = path.with_name(f"{path.name}.{os.getpid()}{CLAIM}")
        try:
            os.replace(path, claimed)
        except FileNotFoundError:
            return None
        os.utime(claimed)  # the claim's age starts now
        return claimed

    def read(self, claimed: Path) -> list[dict[str, Any]] | None:
        """The batch in a claimed file; None (and the file removed) when it is unreadable."""
        try:
            batch = json.loads(claimed.read_bytes())
        except (OSError, ValueError):
            batch = None
        if not isinstance(batch, list) or not all(isinstance(e, dict) for e in batch):
            self.done(claimed)
            return None
        return batch

    def release(self, claimed: Path, *, failures: int | None = None) -> Path:
        """Put a claimed batch back for a later attempt, recording ``failures`` (the times the
        sidecar failed on it) when given; returns its unclaimed path."""
        original = claimed.name.split(SUFFIX)[0] + SUFFIX
        if failures is not None:
            match = _NAME_RE.match(claimed.name)
            if match is not None:
                original = f"{match['stem']}.f{failures}{SUFFIX}"
        path = claimed.with_name(original)
        with contextlib.suppress(FileNotFoundError):
            os.replace(claimed, path)
        return path

    @staticmethod
    def failures(path: Path) -> int:
        """How many times the sidecar failed on the batch at ``path`` (claimed or not)."""
        match = _NAME_RE.match(path.name)
        return int(match["failures"] or 0) if match is not None else 0

    def quarantine(self, claimed: Path) -> Path:
        """Move a claimed batch to the quarantine folder, never to be sent again; keeps the
        newest :data:`QUARANTINE_KEEP` there. Returns its new path.

        Raises OSError when the folder cannot be written."""
        folder = self.directory / QUARANTINE
        folder.mkdir(exist_ok=True)
        target = folder / (claimed.name.split(SUFFIX)[0] + SUFFIX)
        os.replace(claimed, target)
        kept = sorted(p for p in folder.iterdir() if p.name.endswith(SUFFIX))
        for old in kept[:-QUARANTINE_KEEP]:
            old.unlink(missing_ok=True)
        return target

    def done(self, claimed: Path) -> None:
        claimed.unlink(missing_ok=True)

    def _entries(self) -> Iterator[Path]:
        try:
            with os.scandir(self.directory) as it:
                for entry in it:
                    if not entry.name.startswith(".") and SUFFIX in entry.name:
                        yield Path(entry.path)
        except FileNotFoundError:
            return


def _encode(batch: list[dict[str, Any]]) -> bytes:
    return json.dumps(batch, separators=(",", ":")).encode()
