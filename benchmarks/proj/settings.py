"""Settings of the benchmark project; the benchmark picks servers and options by environment.

``BENCH_STORAGE`` chooses where logs go: ``fs`` (``FileSystemStorage`` under the
state folder) or ``s3`` (django-storages' ``S3Storage`` on the benchmark's moto
server). The database is SQLite at ``BENCH_DB``, or the one ``BENCH_DATABASE``
gives as Django's ``DATABASES`` entry in JSON (the benchmark's PostgreSQL server,
with Django's default ``CONN_MAX_AGE``). Workers are started with ``--parselog`` or
``--no-parselog``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

_env = os.environ
STATE = Path(_env.get("BENCH_STATE_DIR", "/tmp/celery-parselog-bench"))

SECRET_KEY = "benchmarks-only-not-secret"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "celery_parselog",
    "benchmarks.proj",
]
DATABASES = {
    "default": json.loads(_env["BENCH_DATABASE"])
    if _env.get("BENCH_DATABASE")
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": _env.get("BENCH_DB", ":memory:")}
}

CELERY_BROKER_URL = _env.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

_S3 = {
    "BACKEND": "storages.backends.s3.S3Storage",
    "OPTIONS": {
        "bucket_name": _env.get("BENCH_BUCKET", "parselog-bench"),
        "endpoint_url": _env.get("BENCH_S3_ENDPOINT", "http://127.0.0.1:5000"),
        "access_key": "testing",
        "secret_key": "testing",
        "region_name": "us-east-1",
        "default_acl": "private",
    },
}
_FILES = {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": str(STATE / "media")},
}
STORAGES = {
    "default": _S3 if _env.get("BENCH_STORAGE", "fs") == "s3" else _FILES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

CELERY_PARSELOG_ENABLED = False
CELERY_PARSELOG_TASKS = [
    "benchmarks.proj.tasks.tiny",
    "benchmarks.proj.tasks.interleave",
    "benchmarks.proj.tasks.spew",
]
CELERY_PARSELOG_COMPRESS = _env.get("BENCH_COMPRESS", "1") == "1"
if "BENCH_MAX_BYTES" in _env:
    CELERY_PARSELOG_MAX_BYTES = int(_env["BENCH_MAX_BYTES"])
CELERY_PARSELOG_SPOOL_DIR = str(STATE / "spool")
