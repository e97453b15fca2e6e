"""The load generator: worker processes that hold watchers (WebSocket readers) or post
comments over HTTP, driven by the harness through a pipe.

Each worker is its own process with its own event loop (uvloop when installed), so that the
generator is never the bottleneck on a machine with cores to spare; each reports its own CPU
time, and the harness prints the generator's total beside the server's.

A watcher checks everything the protocol promises: each post's marker (see ``marks.py``) is
recorded once per watcher (a second arrival is a duplicate; a post accepted but never seen is
lost), and, where the target numbers its events, each frame's first ``seq`` follows the last
one seen. Latency is measured on arrival, from the marker's send time and scheduled time.

A target whose clients speak Engine.IO (``protocol = "engineio"``: Socket.IO) gets the few
packets that protocol needs from a client (``WatcherWorker.on_engineio``); everything else is
the same for every target.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import json
import multiprocessing
import os
import random
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from .hist import Histogram
from .machine import raise_fd_limit, self_cpu
from .marks import Parsed, body, parse
from .wire import HttpPool, WebSocketReader, open_websocket

CACHE_LIMIT = 50_000


# --- Watchers ------------------------------------------------------------------------------------


@dataclass(eq=False)
class Watch:
    """One watcher: its connection now, and what it saw over all its connections."""

    host: str
    port: int
    slug: str
    session: int
    group: str = "normal"  # latency is kept per group (the slow watcher apart)
    read_rate: float = 0.0
    receive_buffer: int = 0
    reconnect: bool = True
    reader: WebSocketReader | None = None
    got: bytearray = field(default_factory=bytearray)
    unique: int = 0
    duplicates: int = 0
    foreign: int = 0
    events: int = 0
    frames: int = 0
    seq_breaks: int = 0
    last_seq: int | None = None
    server: str | None = None
    joined: bool = False  # Engine.IO: the namespace's connect acknowledged
    closes: dict[int, int] = field(default_factory=dict)
    connects: int = 0
    catching: bool = False
    catch_started: float = 0.0
    catch_up: float | None = None
    shed_at: float | None = None
    dropping: bool = False
    done: bool = False  # closed for good (the harness closed it, or it does not reconnect)


class WatcherWorker:
    def __init__(self, config: dict[str, Any]) -> None:
        self.run = config["run"].encode()
        self.ready = config.get("ready", "").encode()
        self.path_live = config["path_live"]  # "/v1/sessions/{slug}/live"
        self.since_query = config.get("since_query", "?since={since}")
        self.engineio = config.get("protocol", "websocket") == "engineio"
        self.hello: bool = config.get("hello", True)
        self.watches: list[Watch] = []
        self.cache: dict[bytes, Parsed] = {}
        self.hists: dict[str, tuple[Histogram, Histogram]] = {}
        self.catch_up = Histogram()
        self.t0 = time.monotonic()
        self.cpu0 = self_cpu()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.lag = LagProbe()

    def hist(self, group: str) -> tuple[Histogram, Histogram]:
        pair = self.hists.get(group)
        if pair is None:
            pair = self.hists[group] = (Histogram(), Histogram())
        return pair

    # --- per frame (the hot path) ----------------------------------------------------------------

    def on_text(self, reader: WebSocketReader, payload: bytes, arrival: float) -> None:
        watch: Watch = reader.state
        entry = self.cache.get(payload)
        if entry is None:
            if len(self.cache) > CACHE_LIMIT:
                self.cache.clear()
            entry = self.cache[payload] = parse(payload, self.run, self.ready)
        kind = entry.kind
        if kind != "events":
            if kind == "ready":
                if watch.catching:
                    watch.catching = False
                    watch.catch_up = arrival - watch.catch_started
                    self.catch_up.add(int(watch.catch_up * 1e6))
            elif kind == "hello":
                watch.server = entry.server
            return
        watch.frames += 1
        first = entry.first_seq
        if first is not None:
            if watch.last_seq is not None and first != watch.last_seq + 1:
                watch.seq_breaks += 1
            watch.last_seq = entry.last_seq
        marks = entry.marks
        if not marks:
            return
        watch.events += len(marks)
        now = int(arrival * 1e6)
        by_send, by_schedule = self.hist("catch-up" if watch.catching else watch.group)
        got = watch.got
        session = watch.session
        for mark in marks:
            if mark.session != session:
                watch.foreign += 1
                continue
            k = mark.k
            if k >= len(got):
                got.extend(bytes(k - len(got) + 256))
            if got[k]:
                watch.duplicates += 1
                continue
            got[k] = 1
            watch.unique += 1
            by_send.add(now - mark.sent_us)
            by_schedule.add(now - mark.scheduled_us)

    def on_engineio(self, reader: WebSocketReader, payload: bytes, arrival: float) -> None:
        """Engine.IO 4 over a WebSocket, a client's part of it: answer the open packet (``0{...}``)
        with the default namespace's connect (``40``), each ping (``2``) with a pong (``3``), and
        read Socket.IO events (``42[...]``) as any target's text frames. The namespace's connect
        acknowledged (``40{...}``) means the server has run its connect handler (the watcher is
        in its room)."""
        kind = payload[:2]
        if kind == b"42":
            self.on_text(reader, payload, arrival)
        elif kind == b"2":
            reader.pings += 1
            reader.send_text(b"3")
        elif kind[:1] == b"0":
            reader.send_text(b"40")
        elif kind == b"40":
            reader.state.joined = True

    def on_close(self, reader: WebSocketReader, code: int) -> None:
        watch: Watch = reader.state
        if watch.reader is not reader:
            return
        watch.reader = None
        if watch.dropping or watch.done:
            return
        watch.closes[code] = watch.closes.get(code, 0) + 1
        if code == 4008 and watch.shed_at is None:
            watch.shed_at = time.monotonic() - self.t0
        if watch.reconnect:
            self._spawn(self._reopen(watch, delay=0.05 + random.random() * 0.2))
        else:
            watch.done = True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- connecting ------------------------------------------------------------------------------

    def path(self, watch: Watch, since: int | None) -> str:
        path = self.path_live.format(slug=watch.slug)
        if since is not None and self.since_query:
            path += self.since_query.format(since=since)
        return path

    async def _open(self, watch: Watch, since: int | None, attempts: int = 5) -> bool:
        delay = 0.1
        for attempt in range(attempts):
            watch.joined = False
            try:
                reader = await open_websocket(
                    watch.host,
                    watch.port,
                    self.path(watch, since),
                    self.on_engineio if self.engineio else self.on_text,
                    self.on_close,
                    read_rate=watch.read_rate,
                    receive_buffer=watch.receive_buffer,
                    state=watch,
                )
            except (OSError, ConnectionError, TimeoutError) as exc:
                if attempt == attempts - 1:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    return False
                await asyncio.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
                continue
            watch.reader = reader
            watch.connects += 1
            if reader.closed:  # closed while the handshake completed
                self.on_close(reader, reader.close_code or 1006)
            return True
        return False

    async def _reopen(self, watch: Watch, delay: float) -> None:
        await asyncio.sleep(delay)
        if watch.done:
            return
        since = watch.last_seq if watch.last_seq is not None else None
        if not await self._open(watch, since, attempts=20):
            watch.done = True

    async def connect(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Open watchers, ``rate`` a second at most, ``concurrency`` handshakes at once."""
        rate = float(msg.get("rate", 2000))
        limit = asyncio.Semaphore(int(msg.get("concurrency", 100)))
        started = time.monotonic()
        new: list[Watch] = []
        for spec in msg["watchers"]:
            watch = Watch(
                host=spec["host"],
                port=spec["port"],
                slug=spec["slug"],
                session=spec["session"],
                group=spec.get("group", "normal"),
                read_rate=spec.get("read_rate", 0.0),
                receive_buffer=spec.get("receive_buffer", 0),
                reconnect=spec.get("reconnect", True),
            )
            new.append(watch)
        self.last_error = ""
        connect_times = Histogram()

        async def one(i: int, watch: Watch, since: int | None) -> bool:
            wait = started + i / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            async with limit:
                began = time.monotonic()
                ok = await self._open(watch, since)
                connect_times.add(int((time.monotonic() - began) * 1e6))
                return ok

        results = await asyncio.gather(
            *(
                one(i, w, s.get("since"))
                for i, (w, s) in enumerate(zip(new, msg["watchers"], strict=False))
            )
        )
        self.watches.extend(new)
        servers: dict[str, int] = {}

        # The hello (naming the server process) comes right after the handshake; over Engine.IO,
        # the namespace's connect acknowledged.
        def waiting(w: Watch) -> bool:
            if w.reader is None:
                return False
            return not w.joined if self.engineio else self.hello and w.server is None

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(map(waiting, new)):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        for watch in new:
            servers[str(watch.server)] = servers.get(str(watch.server), 0) + 1
        return {
            "connected": sum(results),
            "failed": len(results) - sum(results),
            "error": self.last_error,
            "seconds": round(time.monotonic() - started, 3),
            "connect_ms": connect_times.summary(),
            "servers": servers,
        }

    # --- measuring -------------------------------------------------------------------------------

    def reset(self) -> dict[str, Any]:
        self.hists.clear()
        self.catch_up = Histogram()
        self.cpu0 = self_cpu()
        self.lag.reset()
        for watch in self.watches:
            watch.events = 0
            watch.frames = 0
        return {}

    def progress(self, msg: dict[str, Any]) -> dict[str, Any]:
        """How many watchers have seen as many distinct posts as were accepted in their session
        (``expect``: session index -> count); the slow group is left out."""
        expect = {int(k): v for k, v in msg["expect"].items()}
        complete = behind = 0
        for watch in self.watches:
            if watch.group != "normal" or watch.done:
                continue
            if watch.unique >= expect.get(watch.session, 0):
                complete += 1
            else:
                behind += 1
        return {"complete": complete, "behind": behind}

    def result(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Every figure of this worker; ``accepted``: session index -> the ks accepted."""
        accepted = {int(k): v for k, v in msg["accepted"].items()}
        groups: dict[str, dict[str, Any]] = {}
        for watch in self.watches:
            g = groups.setdefault(
                watch.group,
                {
                    "watchers": 0,
                    "lost": 0,
                    "duplicates": 0,
                    "foreign": 0,
                    "unexpected": 0,
                    "deliveries": 0,
                    "frames": 0,
                    "seq_breaks": 0,
                    "closes": {},
                    "reconnects": 0,
                    "shed": 0,
                    "shed_at": [],
                    "bytes_read": 0,
                },
            )
            g["watchers"] += 1
            ks = accepted.get(watch.session, [])
            got = watch.got
            size = len(got)
            seen = 0
            for k in ks:
                if k < size and got[k]:
                    seen += 1
            g["lost"] += len(ks) - seen
            g["unexpected"] += watch.unique - seen
            g["duplicates"] += watch.duplicates
            g["foreign"] += watch.foreign
            g["deliveries"] += watch.events
            g["frames"] += watch.frames
            g["seq_breaks"] += watch.seq_breaks
            g["reconnects"] += max(0, watch.connects - 1)
            for code, count in watch.closes.items():
                g["closes"][str(code)] = g["closes"].get(str(code), 0) + count
            if watch.shed_at is not None:
                g["shed"] += 1
                g["shed_at"].append(round(watch.shed_at, 2))
            if watch.reader is not None:
                g["bytes_read"] += watch.reader.bytes_read
                g["pings"] = g.get("pings", 0) + watch.reader.pings
        return {
            "groups": groups,
            "latency": {
                name: {"from_send": a.to_wire(), "from_schedule": b.to_wire()}
                for name, (a, b) in self.hists.items()
            },
            "catch_up": self.catch_up.to_wire(),
            "cpu": round(self_cpu() - self.cpu0, 3),
            "loop_lag": self.lag.hist.to_wire(),
            "pid": os.getpid(),
        }

    # --- faults ----------------------------------------------------------------------------------

    async def drop(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Drop ``fraction`` of the watchers at once (no close frame), and reconnect each with
        ``since`` at a random moment within ``window`` seconds. Answers once every one has
        caught up (its replay done) or ``timeout`` passed."""
        fraction = float(msg.get("fraction", 1.0))
        window = float(msg.get("window", 5.0))
        timeout = float(msg.get("catch_up_timeout", 60.0))
        chosen = [w for w in self.watches if w.reader is not None and w.group == "normal"]
        chosen = chosen[: int(len(chosen) * fraction)]
        self.catch_up = Histogram()
        for watch in chosen:
            watch.dropping = True
            watch.catch_up = None
            reader = watch.reader
            watch.reader = None
            if reader is not None:
                reader.abort()
        dropped_at = time.monotonic()

        async def back(watch: Watch) -> None:
            await asyncio.sleep(random.random() * window)
            watch.dropping = False
            watch.catching = True
            watch.catch_started = time.monotonic()
            await self._open(watch, watch.last_seq, attempts=20)

        tasks = [asyncio.create_task(back(w)) for w in chosen]
        await asyncio.gather(*tasks)
        deadline = dropped_at + window + timeout
        while time.monotonic() < deadline and any(w.catching for w in chosen):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return {
            "dropped": len(chosen),
            "caught_up": sum(1 for w in chosen if w.catch_up is not None),
            "seconds": round(time.monotonic() - dropped_at, 3),
        }

    async def close_all(self) -> dict[str, Any]:
        for watch in self.watches:
            watch.done = True
            if watch.reader is not None:
                watch.reader.close()
        await asyncio.sleep(0.2)
        for watch in self.watches:
            if watch.reader is not None:
                watch.reader.abort()
        return {}

    def count(self) -> dict[str, Any]:
        return {
            "open": sum(1 for w in self.watches if w.reader is not None),
            "total": len(self.watches),
        }

    async def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.lag.start()
        op = msg["op"]
        if op == "connect":
            return await self.connect(msg)
        if op == "reset":
            return self.reset()
        if op == "progress":
            return self.progress(msg)
        if op == "result":
            return self.result(msg)
        if op == "drop":
            return await self.drop(msg)
        if op == "close":
            return await self.close_all()
        if op == "count":
            return self.count()
        if op == "cpu":
            return {"cpu": round(self_cpu() - self.cpu0, 3)}
        raise ValueError(f"unknown op {op!r}")


class LagProbe:
    """How late this process's event loop runs a callback due every 20 ms: a generator whose
    loop lags adds that lag to every arrival it timestamps (reported beside the results)."""

    EVERY = 0.02

    def __init__(self) -> None:
        self.hist = Histogram()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def reset(self) -> None:
        self.hist = Histogram()

    async def _run(self) -> None:
        while True:
            due = time.monotonic() + self.EVERY
            await asyncio.sleep(self.EVERY)
            self.hist.add(int((time.monotonic() - due) * 1e6))


# --- Posters -------------------------------------------------------------------------------------


class PosterWorker:
    def __init__(self, config: dict[str, Any]) -> None:
        self.run = config["run"]
        self.host = config["host"]
        self.port = config["port"]
        self.ports: list[int] = config.get("ports") or [self.port]
        self.path_post = config["path_post"]  # "/v1/sessions/{slug}/comments"
        self.tokens: list[str] = config["tokens"]
        self.body_size = int(config.get("body_size", 0))
        self.pools = [HttpPool(self.host, p, int(config.get("pool", 256))) for p in self.ports]
        self.cpu0 = self_cpu()

    async def post(
        self, session: tuple[int, str], k: int, author: int, scheduled: float, out: dict[str, Any]
    ) -> None:
        index, slug = session
        sent = time.monotonic()
        text = body(self.run, index, k, int(scheduled * 1e6), int(sent * 1e6), self.body_size)
        payload = json.dumps({"body": text}).encode()
        headers = {"Authorization": "Bearer " + self.tokens[author]} if self.tokens else None
        pool = self.pools[k % len(self.pools)]
        try:
            status, answer = await pool.request(
                "POST", self.path_post.format(slug=slug), payload, headers
            )
        except Exception as exc:
            name = f"exception:{type(exc).__name__}"
            out["statuses"][name] = out["statuses"].get(name, 0) + 1
            return
        done = time.monotonic()
        out["statuses"][str(status)] = out["statuses"].get(str(status), 0) + 1
        if 200 <= status < 300:
            if b'"status":"held"' in answer:
                out["held"] += 1
                return
            out["accepted"].setdefault(str(index), []).append(k)
            out["from_send"].add(int((done - sent) * 1e6))
            out["from_schedule"].add(int((done - scheduled) * 1e6))
        elif len(out["errors"]) < 5:
            out["errors"].append(f"{status} {answer[:200].decode(errors='replace')}")

    async def run_posts(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Open loop (``rate`` posts a second for ``duration`` seconds from ``t0``, each at its
        time whatever happened to the previous ones) or closed loop (``concurrency`` clients
        each posting as soon as its previous post is answered)."""
        sessions: list[tuple[int, str]] = [tuple(s) for s in msg["sessions"]]  # type: ignore[misc]
        stride, offset = int(msg.get("stride", 1)), int(msg.get("offset", 0))
        duration = float(msg["duration"])
        t0 = float(msg.get("t0") or time.monotonic())
        out: dict[str, Any] = {
            "statuses": {},
            "accepted": {},
            "held": 0,
            "errors": [],
            "from_send": Histogram(),
            "from_schedule": Histogram(),
        }
        counters = [0] * len(sessions)
        self.cpu0 = self_cpu()
        n_authors = max(1, len(self.tokens))

        def next_post(i: int) -> tuple[tuple[int, str], int, int]:
            # This poster's i-th post is the run's (i * stride + offset)-th: the posters take
            # turns through the sessions and authors, so the run's consecutive posts go to
            # consecutive sessions. (Each poster starting at the first session would send every
            # post twice into one session, from one author, a millisecond apart.) ``k`` stays
            # unique in a session that several posters reach (with one session, all of them do).
            run_index = i * stride + offset
            which = run_index % len(sessions)
            k = counters[which] * stride + offset
            counters[which] += 1
            return sessions[which], k, run_index % n_authors

        pending: set[asyncio.Task[None]] = set()
        if msg.get("mode", "open") == "open":
            rate = float(msg["rate"])
            total = int(rate * duration)
            for i in range(total):
                scheduled = t0 + i / rate
                wait = scheduled - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                session, k, author = next_post(i)
                task = asyncio.create_task(self.post(session, k, author, scheduled, out))
                pending.add(task)
                task.add_done_callback(pending.discard)
        else:
            wait = t0 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            deadline = t0 + duration
            counter = iter(range(10**12))

            async def client() -> None:
                while time.monotonic() < deadline:
                    session, k, author = next_post(next(counter))
                    await self.post(session, k, author, time.monotonic(), out)

            await asyncio.gather(*(client() for _ in range(int(msg["concurrency"]))))
        if pending:
            await asyncio.wait(pending, timeout=60)
        finished = time.monotonic()
        return {
            "statuses": out["statuses"],
            "accepted": out["accepted"],
            "held": out["held"],
            "errors": out["errors"],
            "from_send": out["from_send"].to_wire(),
            "from_schedule": out["from_schedule"].to_wire(),
            "seconds": round(finished - t0, 3),
            "cpu": round(self_cpu() - self.cpu0, 3),
        }

    async def requests(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Closed-loop GETs (``paths``, taken in turn) by ``concurrency`` clients for
        ``duration`` seconds: status counts and latency."""
        paths: list[str] = msg["paths"]
        duration = float(msg["duration"])
        hist = Histogram()
        statuses: dict[str, int] = {}
        sizes = [0, 0]
        self.cpu0 = self_cpu()
        start = time.monotonic()
        deadline = start + duration
        counter = iter(range(10**12))

        async def client() -> None:
            while time.monotonic() < deadline:
                i = next(counter)
                began = time.monotonic()
                try:
                    status, answer = await self.pools[i % len(self.pools)].request(
                        "GET", paths[i % len(paths)]
                    )
                except Exception as exc:
                    name = f"exception:{type(exc).__name__}"
                    statuses[name] = statuses.get(name, 0) + 1
                    continue
                hist.add(int((time.monotonic() - began) * 1e6))
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                sizes[0] += len(answer)
                sizes[1] += 1

        await asyncio.gather(*(client() for _ in range(int(msg["concurrency"]))))
        return {
            "statuses": statuses,
            "latency": hist.to_wire(),
            "seconds": round(time.monotonic() - start, 3),
            "bytes_mean": round(sizes[0] / sizes[1]) if sizes[1] else 0,
            "cpu": round(self_cpu() - self.cpu0, 3),
        }

    async def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        op = msg["op"]
        if op == "run":
            return await self.run_posts(msg)
        if op == "requests":
            return await self.requests(msg)
        if op == "cpu":
            return {"cpu": round(self_cpu() - self.cpu0, 3)}
        raise ValueError(f"unknown op {op!r}")


# --- The process side ----------------------------------------------------------------------------


def worker_main(conn: Connection, role: str, config: dict[str, Any]) -> None:
    faulthandler.enable()
    raise_fd_limit()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(conn, role, config))


async def _serve(conn: Connection, role: str, config: dict[str, Any]) -> None:
    worker: WatcherWorker | PosterWorker = (
        WatcherWorker(config) if role == "watchers" else PosterWorker(config)
    )
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def reader() -> None:
        # A thread of its own: the event loop must not poll the pipe (uvloop would make it
        # non-blocking, and a large message would then be cut short).
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                loop.call_soon_threadsafe(inbox.put_nowait, None)
                return
            loop.call_soon_threadsafe(inbox.put_nowait, msg)

    threading.Thread(target=reader, daemon=True, name="bench-pipe").start()
    conn.send({"ok": True, "pid": os.getpid()})
    while True:
        msg = await inbox.get()
        if msg is None or msg.get("op") == "exit":
            break
        try:
            reply = await worker.handle(msg)
            conn.send({"ok": True, **reply})
        except Exception:
            conn.send({"ok": False, "error": traceback.format_exc()})
    if isinstance(worker, WatcherWorker):
        await worker.close_all()


class Worker:
    """The harness's handle on one worker process."""

    def __init__(self, role: str, config: dict[str, Any]) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.role = role
        self.process = context.Process(
            target=worker_main, args=(child, role, config), daemon=True, name=f"bench-{role}"
        )
        self.process.start()
        child.close()
        self.pid: int = self.process.pid or 0
        self._lock = asyncio.Lock()

    async def call(self, op: str, timeout: float = 600, **fields: Any) -> dict[str, Any]:
        async with self._lock:
            self.conn.send({"op": op, **fields})
            reply = await _receive(self.conn, timeout)
        if not reply.get("ok"):
            raise RuntimeError(f"{self.role} worker {self.pid} failed at {op}:\n{reply['error']}")
        return reply

    async def ready(self, timeout: float = 60) -> None:
        reply = await _receive(self.conn, timeout)
        if not reply.get("ok"):
            raise RuntimeError(f"worker did not start: {reply}")

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send({"op": "exit"})
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


async def _receive(conn: Connection, timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[dict[str, Any]] = loop.create_future()
    fd = conn.fileno()

    def readable() -> None:
        loop.remove_reader(fd)
        try:
            future.set_result(conn.recv())
        except Exception as exc:
            future.set_exception(exc)

    loop.add_reader(fd, readable)
    try:
        return await asyncio.wait_for(future, timeout)
    finally:
        loop.remove_reader(fd)


async def start_workers(role: str, count: int, config: dict[str, Any]) -> list[Worker]:
    workers = [Worker(role, config) for _ in range(count)]
    await asyncio.gather(*(w.ready() for w in workers))
    return workers


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """Round-robin ``items`` into ``parts`` lists."""
    return [items[i::parts] for i in range(parts)]
