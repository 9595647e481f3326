"""The parser service's Django project. Importing it loads the Celery app, as Django projects do."""

from parser_service.celery import app as celery_app

__all__ = ["celery_app"]
