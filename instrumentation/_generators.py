"""Generators and async generators as runs.

A wrapped generator is driven step by step, so the run's span is current only while the
generator's own code runs, never in its consumer's. Values sent in, exceptions thrown in and the
return value pass through unchanged. The run starts at the first step; it ends when the
generator is exhausted (``success``), raises (``failure``, the exception re-raised untouched) or
is closed before it is exhausted (``cancelled``: its consumer stopped early).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from ._run import Run

__all__ = ["wrap_async_generator", "wrap_generator"]


def wrap_generator(
    func: Callable[..., Generator[Any, Any, Any]], new_run: Callable[[], Run]
) -> Callable[..., Any]:
    """A generator function whose generators are each one run, from first step to end."""

    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        gen = func(*args, **kwargs)
        run = new_run()
        run.begin()
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            run.activate()  # the span is current only while the generator's code runs
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    item = gen.throw(exc)
                else:
                    item = gen.send(to_send)
            except StopIteration as stop:
                run.deactivate()
                run.end(None)
                return stop.value
            except BaseException as exc:
                run.deactivate()
                run.end(exc)
                raise
            run.deactivate()
            try:
                to_send = yield item
            except GeneratorExit as closed:
                _close(run, gen.close)
                run.end(closed)
                raise
            except BaseException as exc:
                to_throw = exc

    return wrapper


def wrap_async_generator(
    func: Callable[..., AsyncGenerator[Any, Any]], new_run: Callable[[], Run]
) -> Callable[..., Any]:
    """The same for async generators."""

    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        agen = func(*args, **kwargs)
        run = new_run()
        run.begin()
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            run.activate()
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    item = await agen.athrow(exc)
                else:
                    item = await agen.asend(to_send)
            except StopAsyncIteration:
                run.deactivate()
                run.end(None)
                return
            except BaseException as exc:
                run.deactivate()
                run.end(exc)
                raise
            run.deactivate()
            try:
                to_send = yield item
            except GeneratorExit as closed:
                run.activate()
                try:
                    await agen.aclose()
                except BaseException as exc:
                    run.deactivate()
                    run.end(exc)
                    raise
                run.deactivate()
                run.end(closed)
                raise
            except BaseException as exc:
                to_throw = exc

    return wrapper


def _close(run: Run, close: Callable[[], None]) -> None:
    """Close the wrapped generator with the span current; its own error ends the run."""
    run.activate()
    try:
        close()
    except BaseException as exc:
        run.deactivate()
        run.end(exc)
        raise
    run.deactivate()
