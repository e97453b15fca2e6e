"""``python -m bench report``: docs/performance.md from the newest result of each scenario in
bench/results (``--results DIR``), with an SVG chart per scenario (bench/charts/).
Hand-written findings in bench/findings.md are included as they are."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
from pathlib import Path
from typing import Any

from .machine import machine_line
from .scenarios import DESCRIPTIONS, SCENARIOS
from .svg import grouped_bars

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OUTPUT = ROOT / "docs" / "performance.md"
FINDINGS = ROOT / "bench" / "findings.md"
CHARTS = ROOT / "bench" / "charts"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench report")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--charts", type=Path, help="default: bench/charts")
    args = parser.parse_args(argv)
    records = newest(args.results)
    if not records:
        print(f"bench report: no results in {args.results}; run python -m bench first")
        return 1
    charts = args.charts or CHARTS
    text = render(records, charts, args.output.parent)
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(records)} scenarios), charts in {charts}")
    return 0


def newest(folder: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError:
            continue
        record["_file"] = path.name
        found[record["scenario"]] = record  # sorted by timestamp: the last one wins
    return {name: found[name] for name in SCENARIOS if name in found}


def ms(value: Any) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def render(records: dict[str, dict[str, Any]], charts: Path, docs: Path) -> str:
    charts.mkdir(parents=True, exist_ok=True)
    bare = sorted(
        {
            machine_line({**r["machine"], "load_average": []}).split(", load")[0]
            for r in records.values()
        }
    )
    loads = sorted(
        {"/".join(str(x) for x in r["machine"].get("load_average", [])) for r in records.values()}
    )
    profiles = sorted({r["profile"] for r in records.values()})
    busy = any(
        r["machine"].get("load_average")
        and r["machine"]["load_average"][0] > 0.5 * r["machine"]["cores"]
        for r in records.values()
    )
    small = any(r["machine"]["cores"] < 8 for r in records.values())
    lines = [
        "# Performance",
        "",
        "Written by `python -m bench report` from the newest result of each scenario in",
        "`bench/results/`; the harness, the scenarios and how to add a peer are described in",
        "[bench/README.md](../bench/README.md). Run `python -m bench` (all scenarios, full sizes)",
        "on a quiet machine, then `python -m bench report`.",
        "",
    ]
    if busy or small or profiles != ["full"]:
        lines += [
            "> **These figures are not meaningful as performance figures.** They come from",
            "> "
            + (
                "a machine that was busy with other work (load average above half its cores)"
                if busy
                else "a small machine"
            )
            + f"{' with fewer than 8 cores' if small and busy else ''}, where the generator, the",
            "> server, PostgreSQL and Redis share the same cores, and from the "
            f"`{'`, `'.join(profiles)}` size{'s' if len(profiles) > 1 else ''}"
            + (
                ""
                if profiles == ["full"]
                else " (some at the issue’s full sizes; each section says which)"
                if "full" in profiles
                else " (not the issue’s full sizes)"
            )
            + ". They show that",
            "> every scenario runs and what it reports (correctness holds: nothing lost or",
            "> doubled); compare targets only within one table, and only as a rough guide.",
            "> The result files named below stay on the machine that made them (only a final",
            "> run's files are committed, beside this page regenerated from them).",
            "",
        ]
    lines += [
        "Machine"
        + ("s" if len(bare) > 1 else "")
        + ": "
        + "; ".join(bare)
        + f" (load average at the start of each scenario: {', '.join(loads)})",
        "",
    ]
    backchannel = next(
        (
            r["targets"]["backchannel"]
            for r in records.values()
            if "backchannel" in r["targets"] and r["targets"]["backchannel"].get("postgres")
        ),
        None,
    )
    if backchannel:
        pg = backchannel["postgres"]
        settings = ", ".join(
            f"`{k}={pg[k]}`"
            for k in ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method")
            if k in pg
        )
        lines += [
            "Backchannel ran as in production: `backchannel serve --workers N` with `REDIS_URL`,",
            f"on an embedded PostgreSQL {pg.get('server_version', '')} with {settings}, the",
            "community rules on (and the event's own word lists), posts from many authors (one",
            "token `sub` each). Limits were raised for the load generator only:",
            "`RATE_LIMIT_EXEMPT=127.0.0.0/8`, and `POSTS_PER_MINUTE` just above each author's",
            "share of the scenario's rate (each table says what it was).",
            "",
        ]
    lines += [
        "Columns: delivery latency **from accept** runs from the moment the generator sent a post",
        "the server accepted to the frame's arrival at a watcher (so it includes the accept path,",
        "the commit and its fsync); **from schedule** from the moment the fixed schedule meant",
        "the post to go out (a server that falls behind cannot hide it). *Server CPU / 1,000",
        "deliveries* is the user + system time of the server's processes over the run divided by",
        "the events delivered; *RSS / connection* the server's resident memory after connecting",
        "the watchers, less before, per watcher; *generator CPU* the load generator's own, for",
        "judging whether it kept up. *Lost* and *dup* must be 0.",
        "",
    ]
    for name, record in records.items():
        lines += section(name, record, charts, docs)
    if FINDINGS.exists():
        lines += ["## Findings", "", FINDINGS.read_text().strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def header(name: str, record: dict[str, Any]) -> list[str]:
    out = [
        f"## {name}",
        "",
        f"{DESCRIPTIONS[name][0].upper()}{DESCRIPTIONS[name][1:]}. "
        f"Profile `{record['profile']}`: "
        + ", ".join(f"{k} {v}" for k, v in record["size"].items())
        + f". Run {record['started']} (`{record['_file']}`).",
        "",
        f"Machine: {machine_line(record['machine'])}.",
        "",
    ]
    for target, entry in record["targets"].items():
        described = entry.get("described") or {}
        if "error" in entry:
            out += [f"- **{target}** failed: `{entry['error']}`"]
        elif entry.get("skipped"):
            out += [f"- **{target}**: skipped ({entry['skipped']})"]
        else:
            settings = described.get("settings", {})
            shown = {k: settings[k] for k in ("WORKERS", "POSTS_PER_MINUTE", "RATE_LIMIT_EXEMPT",
                                              "WS_SEND_BUFFER_LIMIT", "WS_PING_INTERVAL")
                     if k in settings}  # fmt: skip
            extra = ", ".join(f"`{k}={v}`" for k, v in shown.items())
            command = re.sub(r"--port \d+", "--port <free port>", described.get("command", ""))
            command = re.sub(r" --stats-dir( /\S+)?", "", command)
            command = re.sub(r"redis://\S+", "<the run's Redis>", command)
            out += [f"- **{target}**: `{command}`" + (f"; {extra}" if extra else "")]
        if entry.get("problems"):
            out += [f"  - **problems**: {'; '.join(entry['problems'])}"]
    return [*out, ""]


def section(name: str, record: dict[str, Any], charts: Path, docs: Path) -> list[str]:
    out = header(name, record)
    rows: list[tuple[str, dict[str, Any]]] = [
        (target, m)
        for target, entry in record["targets"].items()
        for m in entry.get("measurements", [])
    ]
    if not rows:
        return out
    if name == "history":
        out += history_table(rows)
        chart = chart_for(name, rows, lambda m: m["latency_ms"]["p99"], "p99 latency, ms")
    elif name == "idle":
        out += idle_table(rows)
        chart = chart_for(
            name, rows, lambda m: m["rss"]["per_connection_kib"], "KiB per connection"
        )
    else:
        out += fanout_table(rows)
        if name == "posting":
            out += posting_table(rows)
            chart = chart_for(name, rows, lambda m: m["posts"]["per_second"], "accepted posts/s")
        else:
            chart = chart_for(
                name, rows, lambda m: m["delivery_ms"]["from_accept"]["p99"],
                "delivery p99 from accept, ms",
            )  # fmt: skip
        if name == "reconnect-storm":
            out += storm_table(rows)
        if name == "slow-watcher":
            out += slow_table(rows)
        if name in ("two-processes", "many-rooms"):
            out += split_lines(rows)
    path = charts / f"{name}.svg"
    path.write_text(chart)
    try:
        relative = path.resolve().relative_to(docs.resolve().parent)
        link = "../" + relative.as_posix()
    except ValueError:
        link = path.as_posix()
    out += [f"![{name}]({link})", ""]
    return out


def fanout_table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    out = [
        "| target | run | from accept p50 / p99 / max (ms) | from schedule p99 / max (ms) "
        "| posts/s | deliveries/s | frames written/s | server CPU / 1,000 deliveries (ms) "
        "| RSS / connection (KiB) | lost | dup | CPU s: server / PostgreSQL / Redis / generator "
        "| generator loop lag p99 (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for target, m in rows:
        a = m["delivery_ms"]["from_accept"]
        s = m["delivery_ms"]["from_schedule"]
        cpu = m["cpu_s"]
        out.append(
            f"| {target} | {m['label']} | {ms(a['p50'])} / {ms(a['p99'])} / {ms(a['max'])} "
            f"| {ms(s['p99'])} / {ms(s['max'])} | {num(m['posts']['per_second'], 1)} "
            f"| {num(m['deliveries_per_s'])} | {num(m.get('frames_written_per_s'))} "
            f"| {ms(m['server_cpu_per_1000_deliveries_ms'])} "
            f"| {ms(m['rss']['per_connection_kib'])} | {m['lost']} | {m['duplicated']} "
            f"| {num(cpu.get('server'), 2)} / {num(cpu.get('postgres'), 2)} / "
            f"{num(cpu.get('redis'), 2)} / {num(m.get('generator_cpu_s'), 2)} "
            f"| {ms(m.get('generator_loop_lag_ms', {}).get('p99'))} |"
        )
    return [*out, ""]


def posting_table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    out = [
        "| target | run | accepted posts/s | post latency p50 / p99 / max (ms) | statuses |",
        "|---|---|---|---|---|",
    ]
    for target, m in rows:
        p = m["posts"]
        lat = p["latency_ms"]
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(p["statuses"].items()))
        out.append(
            f"| {target} | {m['label']} | {num(p['per_second'], 1)} | {ms(lat['p50'])} / "
            f"{ms(lat['p99'])} / {ms(lat['max'])} | {statuses} |"
        )
    return [*out, ""]


def storm_table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    out = [
        "| target | run | dropped / caught up | catch-up p50 / p95 / p99 / max (ms) "
        "| database reads (catch-up) | replayed events' latency p99 from accept (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for target, m in rows:
        fault = m.get("fault", {})
        c = m["catch_up_ms"]
        replay = m.get("other_latency_ms", {}).get("catch-up", {}).get("from_send", {})
        out.append(
            f"| {target} | {m['label']} | {fault.get('dropped')} / {fault.get('caught_up')} "
            f"| {ms(c['p50'])} / {ms(c.get('p95'))} / {ms(c['p99'])} / {ms(c['max'])} "
            f"| {num(m['server_counters'].get('catch_up_reads'))} | {ms(replay.get('p99'))} |"
        )
    return [*out, ""]


def slow_table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    out = [
        "| target | run | slow watcher shed | after (s, its socket leaving ESTABLISHED on the "
        "server) | bytes it read | largest kernel send queue (bytes) | bound (bytes) "
        "| server RSS at connect / peak / end (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for target, m in rows:
        slow = m.get("slow")
        if not slow:
            continue
        rss = m["rss"]
        by_server = slow.get("shed_by_server")
        queues = m.get("fault", {}).get("kernel_send_queue_bytes", [])
        if slow.get("shed_after_s") is None and by_server:
            slow["shed_after_s"] = next(
                (
                    t
                    for i, (t, q) in enumerate(queues)
                    if q == 0 and any(q0 for _, q0 in queues[:i])
                ),
                None,
            )
        shed = "yes" if (by_server or slow["shed"]) else "no" if by_server == 0 else "?"
        out.append(
            f"| {target} | {m['label']} | {shed} (server counter {num(by_server)}; watcher saw "
            f"{', '.join(slow['closes']) or 'no close yet'}) | {slow['shed_after_s'] or '–'} "
            f"| {num(slow['bytes_read'])} | {num(slow.get('kernel_send_queue_max'))} "
            f"| {num(slow['bound_bytes'])} "
            f"| {rss['connected_mib']} / {rss['peak_mib']} / {rss['end_mib']} |"
        )
    return [*out, ""]


def split_lines(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    out = []
    for target, m in rows:
        servers = m["connected"].get("servers", {})
        if servers:
            out.append(
                f"- {target}, {m['label']}: watchers per server process "
                + ", ".join(str(n) for n in sorted(servers.values(), reverse=True))
            )
    return [*out, ""] if out else []


def history_table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    out = [
        "| target | request | p50 / p99 / max (ms) | requests/s | bytes "
        "| server CPU / request (ms) | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for target, m in rows:
        lat = m["latency_ms"]
        out.append(
            f"| {target} | {m['label']} (`{m['params']['path'].split('/')[-1][:40]}`) "
            f"| {ms(lat['p50'])} / {ms(lat['p99'])} / {ms(lat['max'])} "
            f"| {num(m['requests_per_s'], 1)} | {num(m['bytes_mean'])} "
            f"| {ms(m['server_cpu_per_request_ms'])} | {m['errors']} |"
        )
    return [*out, ""]


def idle_table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    out = [
        "| target | watchers | still open | pings answered | RSS / connection (KiB) "
        "| server CPU (% of a core) | server CPU per 1,000 connections per minute (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for target, m in rows:
        out.append(
            f"| {target} | {m['params']['watchers']} (idle {m['params']['idle_s']} s, pings "
            f"every {m['params']['ping_interval_s']} s) | {m['still_open']} "
            f"| {num(m['pings_received'])} | {ms(m['rss']['per_connection_kib'])} "
            f"| {ms(m['server_cpu_percent'])} "
            f"| {ms(m['server_cpu_per_1000_connections_per_minute_ms'])} |"
        )
    return [*out, ""]


def chart_for(name: str, rows: list[tuple[str, dict[str, Any]]], value: Any, unit: str) -> str:
    labels: list[str] = []
    for _, m in rows:
        if m["label"] not in labels:
            labels.append(m["label"])
    series: dict[str, list[float | None]] = {}
    for target, m in rows:
        values = series.setdefault(target, [None] * len(labels))
        with contextlib.suppress(KeyError, TypeError):
            values[labels.index(m["label"])] = value(m)
    return grouped_bars(f"{name}: {unit}", labels, series, unit)
