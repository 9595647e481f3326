"""The project's Celery app, set up the way Django projects usually do it."""

from __future__ import annotations

import os

from celery import Celery

import celery_parselog
from celery_parselog import lease

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.proj.settings")

app = Celery("e2eproj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["tests.e2e.proj"])
celery_parselog.install(app)

# Tests of lost hosts shorten the lease, so that they need not wait a minute and more.
if "E2E_LEASE_SECONDS" in os.environ:
    lease.LEASE_SECONDS = float(os.environ["E2E_LEASE_SECONDS"])
