"""Django settings for the unit tests: in-memory database, files under a temporary folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "celery_parselog",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
_ROOT = Path(tempfile.mkdtemp(prefix="celery-parselog-tests-"))
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(_ROOT / "media")},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
CELERY_PARSELOG_SPOOL_DIR = str(_ROOT / "spool")
CELERY_PARSELOG_TASKS = ["tests.*"]
