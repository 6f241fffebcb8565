"""Count XLA compilations and the seconds spent tracing, lowering and compiling, through jax.monitoring."""

from __future__ import annotations

import jax

__all__ = ["CompileWatcher"]

_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    _BACKEND_COMPILE_EVENT,
)


class CompileWatcher:
    """Context manager that records every compilation that JAX reports while it is active.

        with CompileWatcher() as watcher:
            f(x)
        watcher.backend_compiles, watcher.seconds

    Event names are those of JAX 0.10 (`jax._src.dispatch`); if a JAX release renames them, the counts
    stay at zero.
    """

    def __init__(self) -> None:
        self.backend_compiles = 0
        self.seconds = 0.0

    def _listener(self, event: str, duration: float, **kwargs) -> None:
        if event in _COMPILE_EVENTS:
            self.seconds += duration
        if event == _BACKEND_COMPILE_EVENT:
            self.backend_compiles += 1

    def __enter__(self) -> CompileWatcher:
        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc_info) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listener)
