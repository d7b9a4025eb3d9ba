"""The on-disk spool: batches a process could not deliver, for the next process to send.

One file per batch (a JSON array of wire objects without ``sent_at``), written to a temporary
name and renamed into place, so a reader never sees half a batch. A sender claims a file by
renaming it to ``<name>.<pid>.claim`` (only one process wins the rename), deletes it once the
sidecar has answered for it, and renames it back when the sidecar is unreachable. A claim left
behind by a process that died is released after :data:`STALE_CLAIM` seconds. Resending is safe:
the sidecar deduplicates on ``(run_id, type)``.
"""

from __future__ import annotations

import contextlib
import json
import os
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


class Spool:
    """A directory of undelivered batches, bounded in total size."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    def write(self, batch: list[dict[str, Any]]) -> bool:
        """Store one batch; False when it does not fit (the caller counts the drop).

        Raises OSError when the directory cannot be written.
        """
        data = json.dumps(batch, separators=(",", ":")).encode()
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.size() + len(data) > self.max_bytes:
            return False
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.directory / name)
        return True

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

    def release(self, claimed: Path) -> None:
        """Put a claimed batch back for a later attempt."""
        original = claimed.name.split(SUFFIX)[0] + SUFFIX
        with contextlib.suppress(FileNotFoundError):
            os.replace(claimed, claimed.with_name(original))

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
