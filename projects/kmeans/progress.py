"""Progress reports from inside compiled loops, through `jax.debug.callback`.

A compiled loop cannot take a Python callable as an argument without recompiling for each new one,
so it calls the fixed function `report` and `reporting_to` decides where those calls go.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import jax

__all__ = ["report", "reporting_to"]

_handler: Callable[[int, float], None] | None = None


def _forward(iteration, inertia) -> None:
    if _handler is not None:
        _handler(int(iteration), float(inertia))


def report(iteration: jax.Array, inertia: jax.Array) -> None:
    """Send (iteration, inertia) to the current handler. Call it from traced code."""
    jax.debug.callback(_forward, iteration, inertia)


@contextlib.contextmanager
def reporting_to(handler: Callable[[int, float], None] | None) -> Iterator[None]:
    """Route `report` calls to `handler` (ignored when None) while the block runs."""
    global _handler
    previous, _handler = _handler, handler
    try:
        yield
    finally:
        _handler = previous
