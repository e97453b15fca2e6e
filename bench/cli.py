"""``python -m bench [SCENARIO ...] [--quick] [--targets backchannel,floor]`` runs scenarios and
writes ``bench/results/<timestamp>-<scenario>.json``; ``python -m bench report`` turns the
results into ``docs/performance.md``; ``python -m bench list`` names what there is."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .environment import Environment
from .harness import Options
from .machine import machine_line, raise_fd_limit
from .scenarios import DESCRIPTIONS, SCENARIOS, SIZES
from .targets import available, load

# Every scenario runs against Backchannel, the floor and the peers (a peer skips the scenarios
# it cannot run: posting, history, reconnect-storm).
DEFAULT_TARGETS = "backchannel,floor,tutorial,broadcaster,socketio"

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of Backchannel against the floor and its peers.",
        epilog="`python -m bench report` writes docs/performance.md from bench/results; "
        "`python -m bench list` lists scenarios and targets.",
    )
    top.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"any of: {', '.join(SCENARIOS)} (default: all)",
    )
    top.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    top.add_argument("--smoke", action="store_true", help="tiny sizes (the test suite's)")
    top.add_argument(
        "--targets",
        default=DEFAULT_TARGETS,
        help=f"comma-separated, of: {', '.join(available())}",
    )
    top.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    top.add_argument("--no-save", action="store_true", help="print only")
    top.add_argument("--workdir", type=Path, help="keep servers' data and logs here")
    top.add_argument("--keep", action="store_true", help="keep the temporary folder")
    top.add_argument("--watcher-procs", type=int, default=0, help="generator processes")
    top.add_argument("--poster-procs", type=int, default=0, help="posting processes")
    top.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record the server with py-spy during each measurement (into DIR)",
    )
    top.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one size of the chosen profile, e.g. --set watchers=[10000] "
        "or --set duration=10 (values are JSON)",
    )
    top.add_argument("--quiet", action="store_true")
    return top


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        from .report import main as report_main

        return report_main(argv[1:])
    if argv[:1] == ["list"]:
        print("scenarios:")
        for name in SCENARIOS:
            print(f"  {name:16} {DESCRIPTIONS[name]}")
        print("targets:", ", ".join(available()))
        return 0
    args = parser().parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        print(
            f"bench: unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}", file=sys.stderr
        )
        return 2
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    for name in targets:
        load(name)
    options = Options(
        quick=args.quick,
        smoke=args.smoke,
        watcher_procs=args.watcher_procs,
        poster_procs=args.poster_procs,
        verbose=not args.quiet,
        profile_dir=args.profile,
    )
    results = asyncio.run(run(args.scenarios or list(SCENARIOS), targets, options, args))
    failed = [r for r in results if not r["ok"]]
    return 1 if failed else 0


async def run(
    scenarios: list[str], targets: list[str], options: Options, args: argparse.Namespace
) -> list[dict[str, Any]]:
    limit = raise_fd_limit()
    env = Environment(args.workdir, keep=args.keep)
    info = env.machine
    print(f"machine: {machine_line(info)}; open files: {limit}", flush=True)
    if info["load_average"] and info["load_average"][0] > 0.5 * info["cores"]:
        print(
            "note: the machine is busy (load average above half its cores): figures are "
            "not comparable",
            flush=True,
        )
    out: list[dict[str, Any]] = []
    try:
        for scenario in scenarios:
            out.append(await run_scenario(env, scenario, targets, options, args))
    finally:
        await asyncio.to_thread(env.close)
    return out


async def run_scenario(
    env: Environment,
    scenario: str,
    targets: list[str],
    options: Options,
    args: argparse.Namespace,
) -> dict[str, Any]:
    size = dict(SIZES[scenario][options.profile])
    for item in args.set:
        key, _, value = item.partition("=")
        if key in size:
            size[key] = json.loads(value)
    started = datetime.now(UTC)
    record: dict[str, Any] = {
        "scenario": scenario,
        "description": DESCRIPTIONS[scenario],
        "profile": options.profile,
        "size": size,
        "started": started.isoformat(timespec="seconds"),
        "machine": env.machine,
        "targets": {},
        "ok": True,
    }
    print(f"\n== {scenario} ({options.profile}): {DESCRIPTIONS[scenario]}", flush=True)
    print(f"   machine: {machine_line(env.machine)}", flush=True)
    for name in targets:
        print(f"-- {name}", flush=True)
        began = time.monotonic()
        entry: dict[str, Any] = {}
        try:
            measurements, described = await SCENARIOS[scenario](env, load(name), options, size)
            entry = {
                "described": described,
                "measurements": [m.to_json() for m in measurements],
            }
            if "skipped" in described:
                entry["skipped"] = described["skipped"]
                print(f"   skipped: {described['skipped']}", flush=True)
            problems = correctness(entry["measurements"])
            if problems:
                entry["problems"] = problems
                record["ok"] = False
                print(f"   PROBLEMS: {problems}", flush=True)
        except Exception as exc:
            entry = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            record["ok"] = False
            print(f"   FAILED: {entry['traceback']}", flush=True)
        entry["seconds"] = round(time.monotonic() - began, 1)
        if name == "backchannel" and env.pg_settings:
            entry["postgres"] = dict(env.pg_settings)
        record["targets"][name] = entry
    if env.pg_settings:
        settings = ", ".join(f"{k}={v}" for k, v in env.pg_settings.items())
        print(f"   postgres: {settings}", flush=True)
    record["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        path = args.out / f"{stamp}-{scenario}.json"
        path.write_text(json.dumps(record, indent=1, default=str) + "\n")
        print(f"   results: {path}", flush=True)
    return record


def correctness(measurements: list[dict[str, Any]]) -> list[str]:
    """What must hold whatever the speed: nothing lost, nothing doubled, every run finished."""
    problems = []
    for m in measurements:
        for key in ("lost", "duplicated"):
            if m.get(key):
                problems.append(f"{m['label']}: {key} {m[key]}")
        if not m.get("complete", True):
            problems.append(f"{m['label']}: did not finish (watchers still behind, or errors)")
        connected = m.get("connected") or {}
        if connected.get("failed"):
            problems.append(f"{m['label']}: {connected['failed']} watchers failed to connect")
    return problems


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
