"""celery-parselog: a log file of its own for every run of the Celery tasks you choose.

The public API is small: :func:`install` adds the worker's ``--parselog`` option,
:func:`log_info` reads where a run's log is stored, :class:`KeyContext` is what a
key function receives, :func:`carry_context` lets a task's own threads log into its
file, and :func:`register_secret` masks a value known only at run time. Everything
else is configured with ``CELERY_PARSELOG_*`` settings.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from celery_parselog.keys import KeyContext
from celery_parselog.metadata import LogInfo, log_info
from celery_parselog.redaction import register_secret
from celery_parselog.threads import carry_context
from celery_parselog.worker import install

__all__ = [
    "KeyContext",
    "LogInfo",
    "__version__",
    "carry_context",
    "install",
    "log_info",
    "register_secret",
]

try:
    __version__ = version("celery-parselog")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
