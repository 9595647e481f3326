"""The data files app."""

from __future__ import annotations

from django.apps import AppConfig


class DatafilesConfig(AppConfig):
    name = "datafiles"
    verbose_name = "Data files"
    default_auto_field = "django.db.models.BigAutoField"
