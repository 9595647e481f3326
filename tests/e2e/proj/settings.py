"""Settings of the end-to-end project; tests pick servers and options through the environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

_env = os.environ
_STATE = Path(_env.get("E2E_STATE_DIR", "/tmp/celery-parselog-e2e"))

SECRET_KEY = "e2e-only-not-secret"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_celery_results",
    "celery_parselog",
]
# SQLite in the state folder, unless a test hands over another database (a PostgreSQL
# server of its own) as Django's DATABASES entry in JSON.
DATABASES = {
    "default": json.loads(_env["E2E_DATABASE"])
    if "E2E_DATABASE" in _env
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": str(_STATE / "db.sqlite3")}
}

CELERY_BROKER_URL = _env.get("E2E_REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = _env.get("E2E_RESULT_BACKEND", CELERY_BROKER_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_EXTENDED = True
# How long Redis keeps an unacknowledged message (an acks_late task's) before a worker
# gives it to a consumer again; tests of lost workers shorten Kombu's default hour.
if "E2E_VISIBILITY_TIMEOUT" in _env:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": float(_env["E2E_VISIBILITY_TIMEOUT"])}

STORAGES = {
    "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": _env.get("E2E_BUCKET", "parselog-e2e"),
            "endpoint_url": _env.get("E2E_S3_ENDPOINT", "http://127.0.0.1:5000"),
            "access_key": "testing",
            "secret_key": "testing",
            "region_name": "us-east-1",
            "default_acl": "private",
        },
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

CELERY_PARSELOG_ENABLED = _env.get("E2E_PARSELOG_ENABLED", "1") == "1"
CELERY_PARSELOG_TASKS = ["tests.e2e.proj.tasks.parse", "tests.e2e.proj.tasks.*_parse"]
CELERY_PARSELOG_KEY = "parsing_logs/{data_file_id}/{reparse_id}/{task_id}-{attempt}.log"
CELERY_PARSELOG_FORMAT = _env.get("E2E_PARSELOG_FORMAT", "%(levelname)s %(name)s: %(message)s")
# Workers sharing a state folder (one database) may each have a spool folder of its own.
CELERY_PARSELOG_SPOOL_DIR = _env.get("E2E_SPOOL_DIR", str(_STATE / "spool"))
CELERY_PARSELOG_COMPRESS = _env.get("E2E_COMPRESS", "1") == "1"
CELERY_PARSELOG_CHECKPOINT_SECONDS = float(_env.get("E2E_CHECKPOINT_SECONDS", "0"))
CELERY_PARSELOG_RECOVERY_INTERVAL = float(_env.get("E2E_RECOVERY_INTERVAL", "60"))
CELERY_PARSELOG_UPLOAD_ATTEMPTS = int(_env.get("E2E_UPLOAD_ATTEMPTS", "3"))
CELERY_PARSELOG_UPLOAD_BACKOFF = float(_env.get("E2E_UPLOAD_BACKOFF", "0.5"))
if "E2E_MAX_BYTES" in _env:
    CELERY_PARSELOG_MAX_BYTES = int(_env["E2E_MAX_BYTES"])
CELERY_PARSELOG_METRICS_PORT = int(_env["E2E_METRICS_PORT"]) if "E2E_METRICS_PORT" in _env else None
if "E2E_PARSELOG_REDACT" in _env:  # comma-separated entries
    CELERY_PARSELOG_REDACT = _env["E2E_PARSELOG_REDACT"].split(",")

# Like a real deployment: a console handler, and a parsers logger that does not
# propagate and writes to a rotating file of its own. Capture must leave both as they are.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "parsers_file": {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": str(_STATE / "parsers.log"),
            "maxBytes": 1_000_000,
            "backupCount": 2,
            "formatter": "plain",
        },
    },
    "loggers": {
        "e2eproj.parsers": {"handlers": ["parsers_file"], "level": "INFO", "propagate": False},
    },
}
