"""The two home-made ways of giving a task run its own log, measured against capture.

Both are written as a careful developer would write them within their design: the
handler is closed and removed, the local file is deleted once uploaded. Each uploads
through the project's own Django storage (the one capture stores to in the same
comparison) and returns the stored log's address, which the task then saves on a
row (see ``benchmarks/proj/models.py``). What remains are the limits of the designs
themselves, which the benchmarks are meant to show:

* **per-run logger**: every run makes a logger named after the data file and a
  timestamp. The task has to log through that logger (records of ordinary module
  loggers never reach its file), and ``logging`` keeps every logger ever created.
* **global handler swap**: one module-level ``FileHandler`` on the root logger whose
  file is swapped at the start of each run. Runs are told apart only by the file
  name, so runs that overlap write into each other's files, and records logged after
  a run ended (Celery's own "succeeded" line) reopen the last file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["GlobalHandlerSwap", "Uploader", "per_run_logger", "storage_uploader"]

# Uploads a local file under a key and returns the stored object's address.
Uploader = Callable[[Path, str], str]


def storage_uploader(storage: Any) -> Uploader:
    """An uploader through a Django storage: one ``save`` of the file, as a project
    would write it; the address is ``s3://bucket/name`` on S3, the file's path otherwise."""
    bucket = getattr(storage, "bucket_name", None)

    def upload(path: Path, key: str) -> str:
        from django.core.files import File

        with path.open("rb") as stream:
            name = storage.save(key, File(stream, name=key))
        return f"s3://{bucket}/{name}" if bucket else f"file://{storage.path(name)}"

    return upload


def _deliver(
    path: Path, key: str, upload: Uploader | None, stored: Callable[[str], None] | None
) -> None:
    """What both designs do with a run's closed file: upload it, delete it, report where."""
    if upload is None:
        return
    uri = upload(path, key)
    path.unlink(missing_ok=True)
    if stored is not None:
        stored(uri)


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")


@contextmanager
def per_run_logger(
    data_file_id: int,
    folder: Path,
    formatter: logging.Formatter,
    upload: Uploader | None = None,
    stored: Callable[[str], None] | None = None,
) -> Iterator[tuple[logging.Logger, str]]:
    """A logger of this run's own, with a ``FileHandler``; uploaded when the run ends.

    Yields the logger and the key the log is uploaded under; ``stored`` is then
    given the stored log's address.
    """
    stamp = _stamp()
    name = f"parsing.{data_file_id}.{stamp}"
    key = f"perrun/{data_file_id}/{stamp}.log"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data_file_id}-{stamp}-{threading.get_ident()}.log"
    run_logger = logging.getLogger(name)
    run_logger.setLevel(logging.INFO)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(formatter)
    run_logger.addHandler(handler)
    try:
        yield run_logger, key
    finally:
        run_logger.removeHandler(handler)
        handler.close()
        _deliver(path, key, upload, stored)


class GlobalHandlerSwap:
    """One ``FileHandler`` shared by the whole process, pointed at each run's file in turn."""

    def __init__(self, folder: Path, formatter: logging.Formatter) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.handler = logging.FileHandler(folder / "current.log", encoding="utf-8", delay=True)
        self.handler.setFormatter(formatter)

    def attach(self, logger: logging.Logger | None = None) -> None:
        (logger or logging.getLogger()).addHandler(self.handler)

    def detach(self, logger: logging.Logger | None = None) -> None:
        (logger or logging.getLogger()).removeHandler(self.handler)
        self.handler.close()

    def path_for(self, data_file_id: int) -> Path:
        return self.folder / f"parse-{data_file_id}.log"

    @contextmanager
    def run(
        self,
        data_file_id: int,
        upload: Uploader | None = None,
        stored: Callable[[str], None] | None = None,
    ) -> Iterator[str]:
        """Swap the handler's file to this run's, and upload that file at the end.

        Yields the key the log is uploaded under; ``stored`` is then given the stored
        log's address.
        """
        path = self.path_for(data_file_id)
        key = f"swap/{data_file_id}.log"
        handler = self.handler
        handler.acquire()
        try:
            handler.close()
            handler.baseFilename = str(path.resolve())
            handler.stream = handler._open()
        finally:
            handler.release()
        try:
            yield key
        finally:
            handler.close()
            _deliver(path, key, upload, stored)
