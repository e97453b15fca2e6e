"""Logging: one line per thing that happened, naming what it happened to."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str) -> None:
    """Log to stderr at ``level``, unless logging is already set up (tests, embedding apps)."""
    root = logging.getLogger()
    if root.handlers:
        return
    logging.basicConfig(level=level.upper(), format=FORMAT, stream=sys.stderr)
