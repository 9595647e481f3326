"""The one error the demo reports: Django prints its message and exits with status 1."""

from __future__ import annotations

from django.core.management import CommandError


class DemoError(CommandError):
    """A step of the demo failed; the message says which and why."""
