"""The benchmark suite (bench/) runs: every scenario against Backchannel at its smallest size
(``python -m bench --smoke``), as it would at full size (separate generator processes,
``backchannel serve`` with Redis on a durable embedded PostgreSQL). Only correctness is checked:
every scenario finished, no post lost, none delivered twice. Speed is never asserted here (see
docs/performance.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = (
    "broadcast",
    "busy",
    "two-processes",
    "posting",
    "history",
    "reconnect-storm",
    "many-rooms",
    "slow-watcher",
    "idle",
)


def run_bench(out: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args, "--smoke", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_every_scenario_runs_without_losing_or_doubling_a_post(tmp_path: Path) -> None:
    started = time.monotonic()
    done = run_bench(tmp_path, *SCENARIOS, "--targets", "backchannel")
    output = done.stdout[-6000:] + done.stderr[-4000:]
    assert done.returncode == 0, output
    results = {}
    for path in sorted(tmp_path.glob("*.json")):
        record = json.loads(path.read_text())
        results[record["scenario"]] = record
    assert sorted(results) == sorted(SCENARIOS), output
    for name, record in results.items():
        entry = record["targets"]["backchannel"]
        assert "error" not in entry, (name, entry.get("traceback"))
        assert not entry.get("problems"), (name, entry["problems"])
        assert entry["measurements"], name
        for m in entry["measurements"]:
            assert m["lost"] == 0 and m["duplicated"] == 0, (name, m["label"])
            assert m["complete"], (name, m["label"])
            connected = m.get("connected") or {}
            assert not connected.get("failed"), (name, m["label"], connected)
        # What the run says it ran on: durable PostgreSQL, the machine beside the figures.
        assert entry["postgres"]["fsync"] == "on", entry["postgres"]
        assert entry["postgres"]["synchronous_commit"] == "on"
        assert entry["postgres"]["full_page_writes"] == "on"
        assert record["machine"]["cores"] >= 1 and record["machine"]["python"]
    storm = results["reconnect-storm"]["targets"]["backchannel"]["measurements"][0]
    assert storm["fault"]["caught_up"] == storm["fault"]["dropped"] > 0
    idle = results["idle"]["targets"]["backchannel"]["measurements"][0]
    assert idle["pings_received"] > 0
    print(f"bench smoke: {time.monotonic() - started:.0f} s")


@pytest.mark.parametrize("scenario", ["broadcast"])
def test_the_floor_runs_too(tmp_path: Path, scenario: str) -> None:
    done = run_bench(tmp_path, scenario, "--targets", "floor")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    (path,) = tmp_path.glob("*.json")
    entry = json.loads(path.read_text())["targets"]["floor"]
    for m in entry["measurements"]:
        assert m["lost"] == 0 and m["duplicated"] == 0 and m["complete"]


def test_the_library_peers_run_too(tmp_path: Path) -> None:
    """The peers built on libraries lose and double nothing either: broadcaster (with its
    workaround for broadcaster 0.3.1's races when watchers join at once) and socketio (the
    generator speaking Engine.IO). Only ``broadcast``: the whole suite's smoke stays short."""
    peers = ("broadcaster", "socketio")
    done = run_bench(tmp_path, "broadcast", "--targets", ",".join(peers))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    (path,) = tmp_path.glob("*.json")
    targets = json.loads(path.read_text())["targets"]
    for name in peers:
        entry = targets[name]
        assert "error" not in entry, (name, entry.get("traceback"))
        assert entry["measurements"], name
        for m in entry["measurements"]:
            assert m["lost"] == 0 and m["duplicated"] == 0 and m["complete"], (name, m["label"])
            assert m["deliveries"] > 0 and not (m.get("connected") or {}).get("failed"), name
