"""A small Python client for Backchannel: the HTTP API and the live feed, for scripts, tests and
benchmarks. ``client/web/`` holds the browser screens."""

from .api import Api, ApiError
from .feed import Feed, FeedClosed, describe, watch

__all__ = ["Api", "ApiError", "Feed", "FeedClosed", "describe", "watch"]
