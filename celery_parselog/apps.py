"""The Django app: registers the system checks and listens for a worker starting."""

from __future__ import annotations

from celery.signals import celeryd_after_setup, worker_init, worker_ready, worker_shutdown
from django.apps import AppConfig

__all__ = ["CeleryParselogConfig"]


class CeleryParselogConfig(AppConfig):
    name = "celery_parselog"
    verbose_name = "Celery task logs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery_parselog import checks, worker

        checks.register_checks()
        # Strong reference and a fixed uid: connected once however often ready() runs.
        worker_init.connect(
            worker.on_worker_init, weak=False, dispatch_uid="celery_parselog.worker_init"
        )
        # Sent once the worker's logging is set up, before its banner: where it says
        # what capture does, or refuses to start.
        celeryd_after_setup.connect(
            worker.on_worker_setup, weak=False, dispatch_uid="celery_parselog.worker_setup"
        )
        worker_ready.connect(
            worker.on_worker_ready, weak=False, dispatch_uid="celery_parselog.worker_ready"
        )
        worker_shutdown.connect(
            worker.on_worker_shutdown, weak=False, dispatch_uid="celery_parselog.worker_shutdown"
        )
