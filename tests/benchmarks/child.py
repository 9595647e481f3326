"""Run Python in a child process from the repository root, as the benchmarks' tests do.

The child gets a clean environment (none of the caller's ``DJANGO_`` or ``BENCH_``
variables, so a developer's own settings never steer what it measures), the repository
on ``PYTHONPATH``, and whatever variables the test adds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_python(*args: str, timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    """``python *args`` from the repository root, its output captured as text; not checked."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BENCH_"))}
    clean.update(PYTHONPATH=str(REPO), **env)
    command = [sys.executable, *args]
    return subprocess.run(
        command, cwd=REPO, env=clean, capture_output=True, text=True, timeout=timeout, check=False
    )
