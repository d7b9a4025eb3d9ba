"""``jobpulse exec --job NAME [fields] -- cmd args...``: report a shell command as a run.

Sends ``start``, runs the command with its stdout and stderr tee'd through to ours, forwards
SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to it, and sends ``success`` (status 0)
or ``failure`` with the exit code and duration. A failure's ``error_type`` is ``exit_code``
(the status is in ``exit_code``), or the signal's name (``SIGKILL``) when one killed the command;
its error message is the last lines of stderr. The ends of stdout and stderr (4 KiB each) are
kept as the run's log, whatever the outcome.
Exits with the command's status, 128+N when a signal N killed it, 127 when the command does not
exist and 126 when it cannot be executed, as a shell does. Delivery is flushed before exiting,
within the client's exit timeout; what is left is spooled for the next process.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO, Final

from ._run import Run
from .client import HeartbeatClient
from .errors import ConfigError, JobpulseError
from .monitor import Monitor

__all__ = ["main"]

EX_USAGE: Final = 2
EX_CONFIG: Final = 78
TAIL_LINES: Final = 20
TAIL_BYTES: Final = 8192
LOG_BYTES: Final = 4096  # of each stream, in the run's log
FORWARDED: Final = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def main(args: argparse.Namespace) -> int:
    cmd = list(args.cmd)
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    if not cmd:
        print(
            "jobpulse exec: no command given: jobpulse exec --job NAME -- cmd args...",
            file=sys.stderr,
        )
        return EX_USAGE
    try:
        client = HeartbeatClient(url=args.url)
    except ConfigError as exc:
        print(f"jobpulse exec: {exc}", file=sys.stderr)
        return EX_CONFIG
    try:
        job = Monitor(
            args.job,
            schedule=args.schedule,
            every=args.every,
            timezone=args.timezone,
            grace=args.grace,
            max_runtime=args.max_runtime,
            client=client,
        )
    except JobpulseError as exc:
        client.close(0)
        print(f"jobpulse exec: {exc}", file=sys.stderr)
        return EX_USAGE
    try:
        with job.run() as run:
            code = _run_command(cmd, run)
    finally:
        client.close()
    return code


def _run_command(cmd: list[str], run: Run) -> int:
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except (FileNotFoundError, NotADirectoryError):
        return _not_started(run, f"{cmd[0]}: command not found", 127, "CommandNotFound")
    except PermissionError:
        return _not_started(run, f"{cmd[0]}: permission denied", 126, "PermissionError")
    except OSError as exc:
        return _not_started(run, f"{cmd[0]}: {exc.strerror or exc}", 126, type(exc).__name__)
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = _Tail(sys.stdout), _Tail(sys.stderr)
    tees = [
        threading.Thread(target=out.pump, args=(proc.stdout,), name="jobpulse-stdout"),
        threading.Thread(target=err.pump, args=(proc.stderr,), name="jobpulse-stderr"),
    ]
    for tee in tees:
        tee.start()
    with _forwarding_signals(proc):
        status = proc.wait()
    for tee in tees:
        tee.join()
    code = status if status >= 0 else 128 - status
    run.set_exit_code(code)
    log = _log(out.text(LOG_BYTES), err.text(LOG_BYTES))
    if log:
        run.set_log(log)
    if code != 0:
        error_type = _signal_name(-status) if status < 0 else "exit_code"
        message = err.lines() or (
            f"killed by {error_type}" if status < 0 else f"exited with status {code}"
        )
        run.fail(message, error_type=error_type)
    return code


def _log(stdout: str, stderr: str) -> str:
    if stdout and stderr:
        return f"--- stdout (end) ---\n{stdout}\n--- stderr (end) ---\n{stderr}"
    return stdout or stderr


def _not_started(run: Run, message: str, code: int, error_type: str) -> int:
    print(f"jobpulse exec: {message}", file=sys.stderr)
    run.set_exit_code(code)
    run.fail(message, error_type=error_type)
    return code


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


class _Tail:
    """Copies one of the child's streams to ours as it arrives and keeps its last bytes."""

    def __init__(self, target: IO[str]) -> None:
        self._target = target
        self._buffer = bytearray()

    def pump(self, source: IO[bytes]) -> None:
        out = getattr(self._target, "buffer", None)
        fd = source.fileno()
        while chunk := os.read(fd, 65536):
            if out is not None:
                try:
                    out.write(chunk)
                    out.flush()
                except (OSError, ValueError):
                    out = None  # our stream went away; keep draining the child's
            self._buffer += chunk
            if len(self._buffer) > 2 * TAIL_BYTES:
                del self._buffer[:-TAIL_BYTES]
        source.close()

    def text(self, limit: int = TAIL_BYTES) -> str:
        """The last ``limit`` bytes, from the first whole line among them."""
        data = bytes(self._buffer[-limit:])
        if len(self._buffer) > limit and b"\n" in data:
            data = data[data.index(b"\n") + 1 :]
        return data.decode("utf-8", "replace").rstrip("\n")

    def lines(self) -> str:
        return "\n".join(self.text().splitlines()[-TAIL_LINES:])


def _terminal_delivers(signum: int) -> bool:
    """A keyboard INT/QUIT reaches the child already when we run in the terminal's
    foreground process group (the child shares it); forwarding would deliver it twice."""
    if signum not in (signal.SIGINT, signal.SIGQUIT):
        return False
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


@contextmanager
def _forwarding_signals(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    def forward(signum: int, frame: object) -> None:
        if proc.returncode is None and not _terminal_delivers(signum):
            with suppress(ProcessLookupError):
                proc.send_signal(signum)

    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for name in FORWARDED:
            signum = getattr(signal, name, None)
            if signum is not None:
                previous[signum] = signal.signal(signum, forward)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
