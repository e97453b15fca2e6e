"""Peers: other ways to build the same service, measured beside Backchannel (bench/README.md)."""
