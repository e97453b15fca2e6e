"""A small mergeable latency histogram (log-linear buckets, HDR-style: under 0.1 % relative
error), so that every generator process can count millions of samples and send back a few
hundred numbers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SUB_BITS = 10  # 1024 sub-buckets per power of two
_LINEAR = 2 << SUB_BITS  # values below this (2048 µs) are counted exactly


def bucket(value: int) -> int:
    """The bucket of a non-negative integer (microseconds)."""
    if value < _LINEAR:
        return value
    shift = value.bit_length() - SUB_BITS - 1
    return (shift << SUB_BITS) + (value >> shift)


def lower_bound(index: int) -> int:
    """The smallest value counted in bucket ``index``."""
    if index < _LINEAR:
        return index
    shift = (index >> SUB_BITS) - 1
    return (index - (shift << SUB_BITS)) << shift


class Histogram:
    """Counts of latencies in microseconds. ``add`` is the hot path: keep it short."""

    __slots__ = ("counts", "max", "min", "negative", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.max = 0
        self.min = -1
        self.negative = 0

    def add(self, micros: int) -> None:
        if micros < 0:
            self.negative += 1
            micros = 0
        index = micros if micros < _LINEAR else bucket(micros)
        counts = self.counts
        counts[index] = counts.get(index, 0) + 1
        self.total += 1
        if micros > self.max:
            self.max = micros
        if self.min < 0 or micros < self.min:
            self.min = micros

    def add_many(self, values: Iterable[int]) -> None:
        for value in values:
            self.add(value)

    def merge(self, other: Histogram) -> Histogram:
        for index, count in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + count
        self.total += other.total
        self.negative += other.negative
        self.max = max(self.max, other.max)
        if other.min >= 0 and (self.min < 0 or other.min < self.min):
            self.min = other.min
        return self

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0-100) in microseconds, or None when empty."""
        if not self.total:
            return None
        rank = max(1, round(p / 100 * self.total))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return float(min(lower_bound(index), self.max))
        return float(self.max)

    def summary(self) -> dict[str, Any]:
        """p50/p90/p95/p99/p99.9/max in milliseconds, and the count."""

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value / 1000, 3)

        return {
            "count": self.total,
            "p50": ms(self.percentile(50)),
            "p90": ms(self.percentile(90)),
            "p95": ms(self.percentile(95)),
            "p99": ms(self.percentile(99)),
            "p999": ms(self.percentile(99.9)),
            "max": ms(float(self.max) if self.total else None),
            "min": ms(float(self.min) if self.total else None),
            "negative": self.negative,
        }

    def to_wire(self) -> dict[str, Any]:
        return {
            "counts": list(self.counts.items()),
            "total": self.total,
            "max": self.max,
            "min": self.min,
            "negative": self.negative,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Histogram:
        hist = cls()
        hist.counts = {int(k): int(v) for k, v in data["counts"]}
        hist.total = int(data["total"])
        hist.max = int(data["max"])
        hist.min = int(data["min"])
        hist.negative = int(data["negative"])
        return hist


def merged(histograms: Iterable[Histogram]) -> Histogram:
    total = Histogram()
    for hist in histograms:
        total.merge(hist)
    return total
