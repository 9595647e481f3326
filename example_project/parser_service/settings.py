"""Settings of the parser service.

Everything it writes goes under one var folder (``DEMO_VAR_DIR``, by default
``example_project/var``); environment variables pick the broker, the result backend
and the storage (see :mod:`parser_service.environment` and the README).
"""

from __future__ import annotations

import os
from pathlib import Path

from parser_service.environment import celery_transport, storages_setting, var_dir

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = var_dir(os.environ, BASE_DIR / "var")
LOG_DIR = VAR_DIR / "logs"
BROKER_DIR = VAR_DIR / "broker"
for _folder in (LOG_DIR, BROKER_DIR):
    _folder.mkdir(parents=True, exist_ok=True)

# A local demo: the key protects nothing, and debug pages are welcome.
SECRET_KEY = "parser-service-demo-key-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    "celery_parselog",
    "datafiles",
    "demo",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "parser_service.urls"
WSGI_APPLICATION = "parser_service.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(VAR_DIR / "db.sqlite3"),
        # The worker and the web or demo process write to the same file.
        "OPTIONS": {"timeout": 30},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
STORAGES = storages_setting(os.environ, VAR_DIR / "media")

# -- Celery --------------------------------------------------------------------
_transport = celery_transport(os.environ, BROKER_DIR)
CELERY_BROKER_URL = _transport.broker_url
CELERY_BROKER_TRANSPORT_OPTIONS = _transport.broker_transport_options
CELERY_RESULT_BACKEND = _transport.result_backend
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_EXTENDED = True
CELERY_TASK_TRACK_STARTED = True
# Workers keep the handlers of LOGGING below instead of Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# print() in a task is output, not a warning.
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"

# -- A log file of its own for every parse run ---------------------------------
CELERY_PARSELOG_ENABLED = True
CELERY_PARSELOG_TASKS = ["datafiles.tasks.parse"]
CELERY_PARSELOG_KEY = "parsing_logs/{data_file_id}/{reparse_id}/{task_id}-{attempt}.log"
CELERY_PARSELOG_SPOOL_DIR = str(VAR_DIR / "spool")

# -- Logging, as deployed: the console, and a rotating file -----------------------
_LOGGERS: dict[str, dict[str, object]] = {
    # The parsers are noisy: their lines go to the handlers, never twice through root.
    "datafiles.parsers": {"handlers": ["console", "file"], "level": "INFO", "propagate": False},
    # Client libraries talk at INFO about things nobody needs in a parse log.
    "botocore": {"level": "WARNING"},
    "boto3": {"level": "WARNING"},
    "s3transfer": {"level": "WARNING"},
    "urllib3": {"level": "WARNING"},
}
if CELERY_BROKER_URL.startswith("filesystem:"):
    # kombu warns that a filesystem:// URL names no host, which that transport never needs.
    _LOGGERS["kombu.connection"] = {"level": "ERROR"}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "standard": {
            "format": "%(asctime)s %(levelname)s [%(name)s] %(process)d: %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "standard"},
        "file": {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": str(LOG_DIR / "parser_service.log"),
            "maxBytes": 5 * 1024 * 1024,
            "backupCount": 3,
            "encoding": "utf-8",
            "formatter": "standard",
        },
    },
    "root": {"handlers": ["console", "file"], "level": "INFO"},
    "loggers": _LOGGERS,
}
