"""A small Django + Celery project whose workers the benchmarks time and inspect."""

from benchmarks.proj.celery import app

__all__ = ["app"]
