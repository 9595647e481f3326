"""What a process holds, read from ``/proc`` and ``logging`` without extra dependencies.

Used by the leak and memory benchmarks inside the process that runs the captures.
"""

from __future__ import annotations

import gc
import logging
import threading
from pathlib import Path
from typing import Any

__all__ = ["count_files", "reset_peak_rss", "snapshot", "status_kib"]


def status_kib(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` such as ``VmRSS`` or ``VmHWM``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _os_threads() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs`` 5); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def count_files(folder: Path) -> int:
    if not folder.exists():
        return 0
    return sum(1 for path in folder.rglob("*") if path.is_file())


def _loggers() -> list[logging.Logger]:
    found = [
        logger
        for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger)
    ]
    return [logging.getLogger(), *found]


def snapshot(files_in: Path) -> dict[str, Any]:
    """Everything a finished run could leave behind, after a full garbage collection."""
    gc.collect()
    return {
        "loggers": len(logging.Logger.manager.loggerDict),
        "handlers": sum(len(logger.handlers) for logger in _loggers()),
        "fds": sum(1 for _ in Path("/proc/self/fd").iterdir()),
        "threads": threading.active_count(),
        "os_threads": _os_threads(),
        "files": count_files(files_in),
        "rss_kib": status_kib("VmRSS"),
    }
