"""Carrying a run's capture into threads and executors that a task starts itself.

Records are routed to a run through a context variable, and a new thread starts
with an empty context: what a task's own threads log is not captured, under every
pool. Wrapping the work with :func:`carry_context` gives it the task's context, so
its records land in the task's log (and in no other).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["carry_context"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def carry_context(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap ``function`` to run in a copy of the caller's context, wherever it is called.

    Call it in the task, then hand the result to ``threading.Thread`` or an
    executor::

        with ThreadPoolExecutor() as pool:
            list(pool.map(carry_context(parse_chunk), chunks))

    Each call runs in its own copy, so the wrapper may run in many threads at once.
    """
    context = contextvars.copy_context()

    @functools.wraps(function)
    def run_in_context(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return context.copy().run(function, *args, **kwargs)

    return run_in_context
