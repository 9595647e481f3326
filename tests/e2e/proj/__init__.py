"""A small Django + Celery project that the end-to-end tests run real workers of."""

from tests.e2e.proj.celery import app

__all__ = ["app"]
