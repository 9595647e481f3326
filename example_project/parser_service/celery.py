"""The Celery app of the parser service, configured from Django's settings."""

from __future__ import annotations

import os

import celery_parselog
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parser_service.settings")

app = Celery("parser_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Gives `celery -A parser_service worker` the --parselog/--no-parselog option.
celery_parselog.install(app)
