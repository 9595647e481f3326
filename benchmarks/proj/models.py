"""The row the hand-written designs save per run, as the memo's own design does.

A parse of a data file keeps the address of its log (``logs_uri``) on a row of its
own. Each baseline task saves one such row after its upload, so the baselines pay
for a database write per run, as capture does for its run records.
"""

from __future__ import annotations

from django.db import models


class Parse(models.Model):
    """One parse of a data file, with the address of its stored log."""

    data_file_id = models.BigIntegerField()
    logs_uri = models.CharField(max_length=2048, blank=True, default="")
