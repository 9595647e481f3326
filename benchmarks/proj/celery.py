"""The project's Celery app, set up as Django projects usually do it."""

from __future__ import annotations

import os

from celery import Celery

import celery_parselog

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.proj.settings")

app = Celery("benchproj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["benchmarks.proj"])
celery_parselog.install(app)
