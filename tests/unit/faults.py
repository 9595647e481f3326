"""Making the machine misbehave for a test, and seeing what a process holds open."""

from __future__ import annotations

import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["file_size_limit", "is_open", "open_paths"]


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Make writes past ``limit`` bytes fail with EFBIG, as on a full or quota-limited disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if hard != resource.RLIM_INFINITY and hard < limit:
        pytest.skip("the hard file size limit is already lower")
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write, not the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def open_paths() -> set[str]:
    """Every file this process has open, read from /proc/self/fd."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc/self/fd to list open files")
    paths = set()
    for entry in fd_dir.iterdir():
        try:
            paths.add(str(entry.readlink()))
        except OSError:
            continue  # the descriptor listing the folder itself is gone already
    return paths


def is_open(path: Path) -> bool:
    """Whether this process holds a file descriptor on ``path``."""
    return str(path.resolve()) in open_paths()
