"""Rate limits by client address: token buckets kept in memory by each process.

Per-person limits on posting live in the database with the post itself (``moderation.admit``:
slow mode, posts per minute), exact across processes. Limits by address guard what a person's
limit cannot: one machine opening connections or posting under many identities. They are kept
per process (a cluster of N processes lets an address through N times the rate, which is still a
bound) and are generous by default, since a whole hospital may watch from behind one address.
Addresses listed in ``RATE_LIMIT_EXEMPT`` (e.g. a load generator, a host site's server) pass.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict

MAX_TRACKED = 100_000  # addresses remembered at once; the least recently seen are forgotten


class RateLimiter:
    """At most ``per_minute`` actions a minute per key, in bursts of up to ``per_minute``."""

    def __init__(self, per_minute: int, exempt: str = "") -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.exempt = parse_networks(exempt)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._exempt_keys: dict[str, bool] = {}  # key -> is_exempt, parsed once per address

    def take(self, key: str) -> int | None:
        """Spend one action of ``key``: None if allowed, else the seconds until one is."""
        if self.rate <= 0 or self.is_exempt(key):
            return None
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self.rate))
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)
        return None

    def is_exempt(self, key: str) -> bool:
        if not self.exempt:
            return False
        known = self._exempt_keys.get(key)
        if known is None:
            if len(self._exempt_keys) >= MAX_TRACKED:
                self._exempt_keys.clear()
            known = self._exempt_keys[key] = self._in_exempt_network(key)
        return known

    def _in_exempt_network(self, key: str) -> bool:
        try:
            address = ipaddress.ip_address(key)
        except ValueError:
            return False
        return any(address in network for network in self.exempt)


def parse_networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``127.0.0.1, 10.0.0.0/8`` -> networks; a ``ValueError`` names a bad entry."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in value.split(",")
                 if item.strip())  # fmt: skip
