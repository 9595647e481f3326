"""Small helpers shared by the parsing code."""

from __future__ import annotations

import logging


def log(message: str) -> None:
    """Log a line through the root logger.

    Older parsing code calls this rather than a module logger; it stays because
    those lines are what operators are used to grepping for.
    """
    logging.info(message)
