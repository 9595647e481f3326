"""Tasks registered on the current app when autodiscovery imports this module."""

from __future__ import annotations

from celery import current_app


@current_app.task(name="checkproj.parse", shared=False)
def parse(data_file_id: int, reparse_id: int | None = None) -> None:
    """A parse task whose parameters the key and subject of the check tests misspell."""
