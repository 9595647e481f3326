"""Run Python in a child process from the repository root, for tests that need a fresh one.

By default the child gets the caller's environment without its ``DJANGO_`` or ``BENCH_``
variables (so a developer's own settings never steer what it runs or measures); with
``inherit=False`` it gets nothing of the caller's. Either way the repository is on
``PYTHONPATH`` and the test's own variables are added.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_python(
    *args: str, timeout: float, inherit: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python *args`` from the repository root, its output captured as text; not checked."""
    base = os.environ if inherit else {}
    clean = {k: v for k, v in base.items() if not k.startswith(("DJANGO_", "BENCH_"))}
    clean.update(PYTHONPATH=str(REPO), **env)
    command = [sys.executable, *args]
    return subprocess.run(
        command, cwd=REPO, env=clean, capture_output=True, text=True, timeout=timeout, check=False
    )
