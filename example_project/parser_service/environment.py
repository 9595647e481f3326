"""Which broker, result backend and storage the service uses, picked from environment variables.

With none set, everything is embedded in the var folder, so the service runs with no
server at all: kombu's filesystem transport, django-celery-results' ``django-db``
backend on SQLite, and a ``FileSystemStorage``. ``DEMO_REDIS_URL`` switches to Redis
for the broker and the results; ``DEMO_S3_BUCKET`` to django-storages' ``S3Storage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CeleryTransport", "celery_transport", "storages_setting", "var_dir"]


def var_dir(env: Mapping[str, str], default: Path) -> Path:
    """The folder for everything the service writes: ``DEMO_VAR_DIR``, or ``default``."""
    return Path(env.get("DEMO_VAR_DIR") or default).resolve()


@dataclass(frozen=True)
class CeleryTransport:
    """The three Celery settings that depend on where messages and results go."""

    broker_url: str
    result_backend: str
    broker_transport_options: dict[str, Any] = field(default_factory=dict)


def celery_transport(env: Mapping[str, str], broker_dir: Path) -> CeleryTransport:
    """Redis when ``DEMO_REDIS_URL`` is set; otherwise files in ``broker_dir`` and the database."""
    redis_url = env.get("DEMO_REDIS_URL", "").strip()
    if redis_url:
        return CeleryTransport(broker_url=redis_url, result_backend=redis_url)
    folder = str(broker_dir)
    return CeleryTransport(
        broker_url="filesystem://",
        result_backend="django-db",
        broker_transport_options={
            # One folder for both directions, so every process sees every message.
            "data_folder_in": folder,
            "data_folder_out": folder,
            "processed_folder": folder,
            "control_folder": str(broker_dir / "control"),
            # The folder is polled; the default second would make each task wait.
            "polling_interval": 0.1,
        },
    )


def storages_setting(env: Mapping[str, str], media_dir: Path) -> dict[str, dict[str, Any]]:
    """Django's ``STORAGES``: S3 when ``DEMO_S3_BUCKET`` is set, else files in ``media_dir``.

    S3 credentials and region are not settings here: boto3 finds them the usual way
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ...).
    """
    bucket = env.get("DEMO_S3_BUCKET", "").strip()
    if bucket:
        options: dict[str, Any] = {"bucket_name": bucket}
        endpoint = env.get("DEMO_S3_ENDPOINT_URL", "").strip()
        if endpoint:
            options["endpoint_url"] = endpoint
        default = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
    else:
        default = {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(media_dir), "base_url": "/media/"},
        }
    return {
        "default": default,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
