"""Unit tests for celery_parselog.storage: which upload errors are retried, and how long."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.core.files.storage import Storage
from django.test import override_settings

from celery_parselog.storage import UploadError, is_permanent, store_log

STATICFILES = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}


class _ClientError(Exception):
    """Shaped like botocore's ClientError: a response with an error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


class RefusingStorage(Storage):
    """A storage whose saves fail with the error the test chose, counting the attempts."""

    error: ClassVar[Exception] = OSError("down")
    saves: ClassVar[int] = 0

    def exists(self, name: str) -> bool:
        return False

    def _save(self, name: str, content: Any) -> str:
        RefusingStorage.saves += 1
        raise RefusingStorage.error


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.log"
    path.write_text("one line\n")
    return path


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (_ClientError("AccessDenied"), True),
        (_ClientError("NoSuchBucket"), True),
        (_ClientError("InvalidAccessKeyId"), True),
        (PermissionError("read-only"), True),
        (_ClientError("SlowDown"), False),
        (_ClientError("InternalError"), False),
        (ConnectionError("reset"), False),
        (OSError("disk"), False),
    ],
)
def test_errors_no_retry_can_mend_are_permanent(error: Exception, permanent: bool) -> None:
    """Access refused, a missing bucket, bad keys are permanent; throttling and I/O are not."""
    assert is_permanent(error) is permanent


@pytest.mark.parametrize(("error", "saves"), [(_ClientError("AccessDenied"), 1), (OSError("x"), 3)])
def test_permanent_errors_are_tried_once_and_transient_ones_up_to_the_limit(
    log_file: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, saves: int
) -> None:
    """A permanent error stops at the first attempt, with no wait; a transient one is tried
    UPLOAD_ATTEMPTS times."""
    waits: list[float] = []
    monkeypatch.setattr("celery_parselog.storage.time.sleep", waits.append)
    RefusingStorage.error, RefusingStorage.saves = error, 0
    stores = {"default": {"BACKEND": f"{__name__}.RefusingStorage"}, "staticfiles": STATICFILES}
    with override_settings(STORAGES=stores), pytest.raises(UploadError, match="after"):
        store_log(log_file, "k/run.log", alias="default", attempts=3, backoff=1.0)
    assert RefusingStorage.saves == saves
    assert len(waits) == saves - 1


def test_backoff_doubles_with_jitter_within_the_documented_bound(
    log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waits are backoff * 2^(n-1) * a factor in [0.5, 1.5], so at most
    1.5 * backoff * (2^(attempts-1) - 1) in all."""
    waits: list[float] = []
    monkeypatch.setattr("celery_parselog.storage.time.sleep", waits.append)
    RefusingStorage.error, RefusingStorage.saves = OSError("down"), 0
    stores = {"default": {"BACKEND": f"{__name__}.RefusingStorage"}, "staticfiles": STATICFILES}
    with override_settings(STORAGES=stores), pytest.raises(UploadError):
        store_log(log_file, "k/run.log", alias="default", attempts=4, backoff=0.5)
    assert len(waits) == 3
    for number, wait in enumerate(waits, start=1):
        base = 0.5 * 2 ** (number - 1)
        assert 0.5 * base <= wait <= 1.5 * base
    assert sum(waits) <= 1.5 * 0.5 * (2**3 - 1)
