"""Changing environment variables for a while, for this process and the worker it starts."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = ["environ"]


@contextmanager
def environ(values: Mapping[str, str], *, drop_prefix: str | None = None) -> Iterator[None]:
    """Set ``values``, after removing every variable named ``drop_prefix...``; restore on exit."""
    saved = dict(os.environ)
    if drop_prefix:
        for name in [name for name in os.environ if name.startswith(drop_prefix)]:
            del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
