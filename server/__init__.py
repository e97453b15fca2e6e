"""Backchannel: real-time comment boards for live broadcasts."""

__version__ = "0.1.0"
