"""The machine a run happened on, for the report's first line."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["code_line", "code_state", "describe", "machine_line"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe() -> dict[str, Any]:
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {
        "cores": os.cpu_count() or 0,
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "load_average_at_start": [round(value, 2) for value in load],
    }


def machine_line(info: dict[str, Any]) -> str:
    load = ", ".join(f"{value:.2f}" for value in info["load_average_at_start"])
    return (
        f"{info['cores']} cores, {info['cpu_model']}, {info['implementation']} "
        f"{info['python']}, {info['system']}; load average at start {load}"
    )


def code_state(repo: Path) -> dict[str, Any]:
    """Which code was measured: the commit, and the package files changed since it."""

    def git(*args: str) -> str:
        try:
            completed = subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=30, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return completed.stdout.strip()

    changed = git("status", "--porcelain", "--", "celery_parselog")
    return {
        "commit": git("rev-parse", "HEAD") or "unknown",
        # Porcelain lines are "XY path"; the first line may have lost its leading space.
        "uncommitted": [line.split(maxsplit=1)[1] for line in changed.splitlines() if line.strip()],
    }


def code_line(state: dict[str, Any]) -> str:
    commit = str(state["commit"])[:12]
    changed = state["uncommitted"]
    if not changed:
        return f"commit {commit}"
    return f"commit {commit} with uncommitted changes to {', '.join(changed)}"
