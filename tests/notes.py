"""The package's own notes as they read in a log of the default text format."""

from __future__ import annotations

from celery_parselog.formatting import INCOMPLETE_NOTE, INTERRUPTED_NOTE, cut_note

INCOMPLETE_TRAILER = f"-- {INCOMPLETE_NOTE} --"
INTERRUPTED_TRAILER = f"-- {INTERRUPTED_NOTE} --"
CUT_MARKER = f"-- {cut_note()} --"
