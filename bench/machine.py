"""The machine a run used, and what processes cost: CPU seconds and resident memory read from
``/proc`` (a process and all its descendants: the server's workers, PostgreSQL's backends)."""

from __future__ import annotations

import os
import platform
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory, Python, kernel, and the load when asked (a busy machine's
    figures are not comparable)."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    return {
        "cores": os.cpu_count() or 0,
        "cpu_model": model or platform.processor() or "unknown",
        "memory_gib": round(memory / 2**30, 1),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "load_average": load,
        "generator_loop": loop,
    }


def machine_line(info: dict[str, Any]) -> str:
    load = "/".join(str(x) for x in info.get("load_average", []))
    return (
        f"{info['cores']} cores, {info['cpu_model']}, {info.get('memory_gib', '?')} GiB, "
        f"Python {info['python']}, Linux {info.get('kernel', '?')}, load {load or '?'} at start"
    )


def raise_fd_limit(wanted: int = 1_000_000) -> int:
    """Raise the soft limit on open files as far as the hard limit allows; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else wanted
    target = min(target, wanted) if hard == resource.RLIM_INFINITY else target
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            except OSError:
                continue
            found.extend(int(c) for c in text.split())
    except OSError:
        pass
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants now."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(_children(current))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (its own, not its waited-for children)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_bytes(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * PAGE


def command_of(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


class TreeMeter:
    """CPU and memory of groups of processes over a run (``groups``: a name and a function
    that lists the group's processes now, e.g. ``lambda: tree(server_pid)``). A process that
    exits during the run keeps the CPU it had when last sampled: call :meth:`sample` now and
    then (the harness does, every second)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self._last: dict[int, float] = {}
        self._start: dict[int, float] = {}
        self._group: dict[int, str] = {}
        self.rss_peak: dict[str, int] = {}
        self.rss_series: dict[str, list[tuple[float, int]]] = {name: [] for name in groups}

    def start(self) -> None:
        self._last.clear()
        self._start.clear()
        self._group.clear()
        for name, members in self.groups.items():
            for pid in members():
                self._start[pid] = self._last[pid] = cpu_seconds(pid)
                self._group[pid] = name

    def sample(self, at: float | None = None) -> dict[str, int]:
        rss: dict[str, int] = {}
        for name, members in self.groups.items():
            total = 0
            for pid in members():
                seconds = cpu_seconds(pid)
                if pid not in self._start:  # born during the run: all its CPU counts
                    self._start[pid] = 0.0
                    self._group[pid] = name
                if seconds:
                    self._last[pid] = seconds
                total += rss_bytes(pid)
            rss[name] = total
            self.rss_peak[name] = max(self.rss_peak.get(name, 0), total)
            if at is not None:
                self.rss_series[name].append((round(at, 2), total))
        return rss

    def cpu(self) -> dict[str, float]:
        """CPU seconds of each group since :meth:`start`."""
        self.sample()
        out = dict.fromkeys(self.groups, 0.0)
        for pid, last in self._last.items():
            out[self._group[pid]] += max(0.0, last - self._start.get(pid, 0.0))
        return {name: round(value, 3) for name, value in out.items()}


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
