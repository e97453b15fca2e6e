"""Who watches what in this process, and the fan-out to them.

For each session watched here the hub keeps one :class:`SessionChannel`: one bus subscription,
the seq of the last event delivered (``head``), and a ring of recent events. Events reach a channel
from the bus (any process's posts) and directly from this process's own posts; the channel puts
them in ``seq`` order, drops duplicates, and fills gaps from PostgreSQL (waiting briefly first,
since publications of different processes may arrive out of order). Every watcher therefore
sees each event once, in order.

Events are coalesced into frames: a channel writes at most one frame per ``FLUSH_TICK`` (an event
after a quiet spell goes out at once; under load, the events due within a tick share a frame),
built once and written as the same bytes to every watcher's transport. A large audience is
written in slices of ``FANOUT_SLICE`` watchers with the event loop free in between, so requests
and database replies are not held up by a fan-out; while one is under way, new events wait for
the next frame, which therefore grows with the audience instead of the backlog. A watcher whose
unsent bytes pass its bound is cut off with close code 4008 (``too_slow``) and reconnects with
``since``: the hub never queues without bound, and a slow client never slows the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .bus import Bus, BusUnavailable, session_topic
from .errors import BadRequest
from .protocol import (
    EventHead,
    chunk_events,
    comment_of,
    events_message,
    read_event_head,
    text_frame,
)
from .ring import Ring

if TYPE_CHECKING:
    from .storage import SessionRecord, Store

log = logging.getLogger("backchannel.hub")

CLOSE_TOO_SLOW = 4008
GAP_WAIT = 0.1  # seconds an out-of-order event waits for the missing ones before a DB read
MAX_PENDING = 10_000  # out-of-order events held per channel before the DB is asked at once
CATCH_UP_BATCH = 500  # events per database read while a watcher catches up
MAX_FRAME = 256 * 1024  # bytes of events per frame (clients accept 1 MiB messages)
FANOUT_SAMPLES = 10_000  # fan-out timings kept between two reads by the metrics task
LINGER = 10.0  # seconds a channel with no watchers stays subscribed, its ring warm
POLL_EVERY = 1.0  # seconds between database polls while the bus is down
FLUSH_TICK = 0.02  # seconds between two frames of a channel, at the least
FANOUT_SLICE = 256  # watchers written to before the event loop runs other work


class Sink(Protocol):
    """A client connection the hub writes pre-built frames to (see ``transport.py``)."""

    def write(self, frame: bytes) -> int:
        """Write ``frame``; return the bytes still unsent, or -1 if the connection is closing."""

    def close(self, code: int, reason: str) -> None:
        """Close with ``code``: no more writes; the socket is aborted if the close cannot go out."""

    @property
    def open(self) -> bool:
        """False once the connection is closed or closing."""


@dataclass(eq=False)
class Watcher:
    sink: Sink
    limit: int
    topics: set[str] = field(default_factory=set)

    def send(self, frame: bytes) -> bool:
        """Write ``frame``; False when the watcher is over its bound and must be shed."""
        # -1: the connection is closed or closing; it goes too (leaves the hub).
        return 0 <= self.sink.write(frame) <= self.limit


@dataclass
class HubStats:
    published: int = 0
    """Events committed by this process and handed to the bus."""
    deliveries: int = 0
    frames: int = 0
    bytes: int = 0
    shed: int = 0
    gap_fills: int = 0
    catch_up_reads: int = 0
    fanout_seconds: list[float] = field(default_factory=list)
    """From an event's arrival at its session's channel to its frame written to every local
    watcher; drained by the metrics task (bounded by ``FANOUT_SAMPLES``)."""


class TopicChannel:
    """A private topic (one user's notices, one event's moderators): live only, no seq."""

    def __init__(self, hub: Hub, topic: str) -> None:
        self.hub = hub
        self.topic = topic
        self.watchers: set[Watcher] = set()

    def offer(self, payload: bytes) -> None:
        self.hub.write_all(self.watchers, text_frame(payload))

    def remove(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)


class SessionChannel:
    def __init__(self, hub: Hub, session: SessionRecord) -> None:
        self.hub = hub
        self.session = session
        self.topic = session_topic(session.id)
        self.watchers: set[Watcher] = set()
        self.joining = 0  # watchers catching up, not yet in ``watchers``
        self.watching = 0  # watchers over all processes, as last reported by presence.py
        self.head = -1  # unknown until the subscription is confirmed and the head read
        self.ready = asyncio.Event()
        self.ring = Ring(hub.ring_size)
        self._pending: dict[int, tuple[EventHead, bytes]] = {}
        self._batch: list[tuple[int, bytes]] = []  # (seq, event) delivered, not yet in a frame
        self._batch_since = 0.0
        self.sent = -1  # the newest seq handed to the fan-out; watchers join after it
        self._ahead: dict[Watcher, int] = {}  # joined with a since beyond ``sent``: that since
        self._flush_handle: asyncio.Handle | None = None
        self._fanning_out = False
        self._last_flush = 0.0
        self._gap_timer: asyncio.TimerHandle | None = None
        self._filling: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.hub.bus.subscribe(self.topic)
        self.head = self.sent = await self.hub.store.head(self.session.id)
        self.ready.set()
        self._drain_pending()

    def offer(self, payload: bytes) -> None:
        head = read_event_head(payload)
        if head.seq <= self.head or head.seq in self._pending:
            return
        self._pending[head.seq] = (head, payload)
        if self.ready.is_set():
            self._drain_pending()

    def _drain_pending(self) -> None:
        while (nxt := self._pending.pop(self.head + 1, None)) is not None:
            self._deliver(*nxt)
        for seq in [s for s in self._pending if s <= self.head]:
            del self._pending[seq]
        if not self._pending:
            if self._gap_timer is not None:
                self._gap_timer.cancel()
                self._gap_timer = None
        elif len(self._pending) > MAX_PENDING:
            self.fill()
        elif self._gap_timer is None:
            self._gap_timer = asyncio.get_running_loop().call_later(GAP_WAIT, self.fill)

    def _deliver(self, head: EventHead, payload: bytes) -> None:
        if not self._batch:
            self._batch_since = time.perf_counter()
        self.head = head.seq
        comment_id = head.comment.id if head.comment is not None else None
        if comment_id is not None and head.kind != "comment.created":
            self.ring.refresh(comment_id, comment_of(payload))
        self.ring.append(head.seq, comment_id, payload)
        self._batch.append((head.seq, payload))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_handle is not None or self._fanning_out:
            return  # a frame is due already, or one is being written (the next follows it)
        loop = asyncio.get_running_loop()
        wait = self._last_flush + FLUSH_TICK - loop.time()
        if wait > 0:
            self._flush_handle = loop.call_later(wait, self.flush)
        else:
            self._flush_handle = loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the events delivered since the last frame to every watcher, in slices."""
        self._flush_handle = None
        if not self._batch or self._fanning_out:
            return
        loop = asyncio.get_running_loop()
        self._last_flush = loop.time()
        batch, self._batch = self._batch, []
        self.sent = batch[-1][0]
        watchers = list(self.watchers)
        if self._ahead:
            watchers = [w for w in watchers if w not in self._ahead]
            self._send_ahead(batch)
        frame = self._frame([event for _, event in batch])
        self.hub.stats.deliveries += len(batch) * len(watchers)
        self._fanning_out = True
        self._fan_out(frame, watchers, 0, self._batch_since)

    def _fan_out(self, frame: bytes, watchers: list[Watcher], start: int, since: float) -> None:
        """Write ``frame`` to the slice of ``watchers`` from ``start``, then let the loop run
        before the next slice (``since``: when its first event reached the channel)."""
        end = start + FANOUT_SLICE
        part = watchers[start:end]
        if start:  # those that left while the earlier slices were written are not written to
            part = [watcher for watcher in part if watcher in self.watchers]
        try:
            self.hub.write_all(part, frame)
        except Exception:  # a bug; the channel must not stop delivering because of it
            log.exception(
                "session %s: writing a frame to %d watchers failed", self.session.slug, len(part)
            )
        if end < len(watchers):
            asyncio.get_running_loop().call_soon(self._fan_out, frame, watchers, end, since)
            return
        self._fanning_out = False
        stats = self.hub.stats
        if watchers and len(stats.fanout_seconds) < FANOUT_SAMPLES:
            stats.fanout_seconds.append(time.perf_counter() - since)
        if self._batch:
            self._schedule_flush()

    def _send_ahead(self, batch: list[tuple[int, bytes]]) -> None:
        """Watchers that joined with a ``since`` inside this batch get only what follows it."""
        ahead, self._ahead = self._ahead, {}
        for watcher, since in ahead.items():
            events = [event for seq, event in batch if seq > since]
            if watcher in self.watchers and events and not watcher.send(self._frame(events)):
                self.hub.shed(watcher)

    def _frame(self, events: list[bytes]) -> bytes:
        """One or more frames (each under ``MAX_FRAME``), as one run of bytes."""
        runs = chunk_events(events, MAX_FRAME)
        return b"".join(text_frame(events_message(self.session.slug, run)) for run in runs)

    def attach(self, watcher: Watcher, since: int | None) -> None:
        """Let ``watcher`` receive the frames after the ones it has: it has every event up to
        ``since`` (None: live only, it takes what comes)."""
        self.watchers.add(watcher)
        if since is not None and since > self.sent:
            self._ahead[watcher] = since

    def fill(self, upto: int | None = None) -> None:
        """Read from PostgreSQL what the bus did not bring (up to the oldest pending event, or
        the newest committed one), in the background, once at a time."""
        self._gap_timer = None
        if self._filling is None or self._filling.done():
            self._filling = asyncio.create_task(self._fill(upto), name=f"fill-{self.topic}")

    async def _fill(self, upto: int | None) -> None:
        delay = 0.2
        while True:
            try:
                await self._read_missed(upto)
                return
            except Exception as exc:
                log.warning(
                    "session %s: reading missed events failed (%s); retry in %.1fs",
                    self.session.slug,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _read_missed(self, upto: int | None) -> None:
        if upto is None:
            upto = min(self._pending) - 1 if self._pending else None
        if upto is None:
            upto = await self.hub.store.head(self.session.id)
        if upto > self.head:
            self.hub.stats.gap_fills += 1
            for payload in await self.hub.store.read_events(self.session, self.head, upto):
                self.offer(payload)
            self._drain_pending()

    async def catch_up(self, watcher: Watcher, since: int) -> bool:
        """Send ``watcher`` every event after ``since``, then attach it to the live stream, with
        no gap and no duplicate. False if the watcher fell behind while catching up (shed)."""
        if since > self.head:
            await self._read_missed(since)
            if since > self.head:
                raise BadRequest(
                    "since_ahead", f"since={since} is ahead of the log (head {self.head})"
                )
        while True:
            # Up to ``sent`` from here; what is newer comes with the next frame.
            if since >= self.sent or self.ring.covers(since + 1):
                if not self._send(watcher, self.ring.after(since, upto=self.sent)):
                    return False
                self.attach(watcher, since)
                return True
            self.hub.stats.catch_up_reads += 1
            upto = min(self.sent, since + CATCH_UP_BATCH)
            events = await self.hub.store.read_events(self.session, since, upto)
            if not self._send(watcher, events):
                return False
            since = upto

    def _send(self, watcher: Watcher, events: list[bytes]) -> bool:
        if events and not watcher.send(self._frame(events)):
            self.hub.shed(watcher)
            return False
        return True

    def remove(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)
        self._ahead.pop(watcher, None)

    def close(self) -> None:
        for handle in (self._gap_timer, self._filling, self._flush_handle):
            if handle is not None:
                handle.cancel()


Channel = SessionChannel | TopicChannel


class Hub:
    def __init__(self, bus: Bus, store: Store, ring_size: int, watcher_limit: int) -> None:
        self.bus = bus
        self.store = store
        self.ring_size = ring_size
        self.watcher_limit = watcher_limit
        self.stats = HubStats()
        self._channels: dict[str, Channel] = {}
        self._opening: dict[str, asyncio.Task[None]] = {}
        self._lingering: dict[str, asyncio.TimerHandle] = {}
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.bus.start(self._on_message, self.resync)
        self._poller = asyncio.create_task(self._poll_while_bus_down(), name="hub-poller")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        for channel in self._channels.values():
            if isinstance(channel, SessionChannel):
                channel.close()
        await self.bus.close()

    def new_watcher(self, sink: Sink) -> Watcher:
        return Watcher(sink=sink, limit=self.watcher_limit)

    def session_channels(self) -> list[SessionChannel]:
        return [c for c in self._channels.values() if isinstance(c, SessionChannel)]

    def watchers_of(self, session_id: int) -> int:
        channel = self._channels.get(session_topic(session_id))
        return len(channel.watchers) if channel is not None else 0

    # --- Joining and leaving ---------------------------------------------------------------------

    async def watch(
        self, session: SessionRecord, watcher: Watcher, since: int | None
    ) -> SessionChannel:
        """Attach ``watcher`` to ``session``'s live events, after replaying those after
        ``since`` (None: live only)."""
        channel = await self._session_channel(session)
        watcher.topics.add(channel.topic)
        channel.joining += 1
        try:
            if since is None:
                channel.attach(watcher, None)
            else:
                await channel.catch_up(watcher, since)
        finally:
            channel.joining -= 1
        return channel

    async def join(self, topic: str, watcher: Watcher) -> None:
        """Attach ``watcher`` to a private topic (its user's, or its event's moderators')."""
        channel = self._channels.get(topic)
        if channel is None:
            channel = self._channels[topic] = TopicChannel(self, topic)
            await self.bus.subscribe(topic)
        self._keep(topic)
        watcher.topics.add(topic)
        channel.watchers.add(watcher)

    def leave(self, watcher: Watcher, topics: Iterable[str] | None = None) -> None:
        for topic in list(watcher.topics if topics is None else topics):
            watcher.topics.discard(topic)
            channel = self._channels.get(topic)
            if channel is None:
                continue
            channel.remove(watcher)
            if not channel.watchers and topic not in self._lingering:
                self._lingering[topic] = asyncio.get_running_loop().call_later(
                    LINGER, self._drop, topic
                )

    async def _session_channel(self, session: SessionRecord) -> SessionChannel:
        topic = session_topic(session.id)
        self._keep(topic)
        channel = self._channels.get(topic)
        if channel is None:
            channel = SessionChannel(self, session)
            self._channels[topic] = channel
            self._opening[topic] = asyncio.create_task(channel.open())
        opening = self._opening.get(topic)
        if opening is not None:
            try:
                await asyncio.shield(opening)
            except BaseException:
                if self._channels.get(topic) is channel and not channel.ready.is_set():  # type: ignore[union-attr]
                    del self._channels[topic]
                raise
            finally:
                if opening.done():
                    self._opening.pop(topic, None)
        assert isinstance(channel, SessionChannel)
        return channel

    def _keep(self, topic: str) -> None:
        timer = self._lingering.pop(topic, None)
        if timer is not None:
            timer.cancel()

    def _drop(self, topic: str) -> None:
        self._lingering.pop(topic, None)
        channel = self._channels.get(topic)
        if channel is None or channel.watchers:
            return
        if isinstance(channel, SessionChannel) and channel.joining:
            return
        del self._channels[topic]
        if isinstance(channel, SessionChannel):
            channel.close()
        task = asyncio.create_task(self.bus.unsubscribe(topic))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- Events in -------------------------------------------------------------------------------

    async def publish_session(self, session_id: int, payload: bytes) -> None:
        """Deliver a committed event here at once, then to every other process by the bus."""
        self.stats.published += 1
        topic = session_topic(session_id)
        channel = self._channels.get(topic)
        if isinstance(channel, SessionChannel):
            channel.offer(payload)
        await self._publish(topic, payload)

    async def publish_private(self, topic: str, payload: bytes) -> None:
        await self._publish(topic, payload)

    async def _publish(self, topic: str, payload: bytes) -> None:
        try:
            await self.bus.publish(topic, payload)
        except BusUnavailable as exc:
            # Committed already: other processes find it by polling PostgreSQL meanwhile.
            log.warning("%s", exc)

    def _on_message(self, topic: str, payload: bytes) -> None:
        channel = self._channels.get(topic)
        if channel is not None:
            channel.offer(payload)

    def resync(self) -> None:
        """After the bus reconnected: look in PostgreSQL for events missed meanwhile."""
        for channel in list(self._channels.values()):
            if isinstance(channel, SessionChannel) and channel.ready.is_set():
                channel.fill()

    async def _poll_while_bus_down(self) -> None:
        while True:
            await asyncio.sleep(POLL_EVERY)
            if not self.bus.healthy:
                self.resync()

    # --- Events out ------------------------------------------------------------------------------

    def write_all(self, watchers: Collection[Watcher], frame: bytes) -> None:
        """Write one pre-built frame to each watcher; shed those past their bound."""
        slow: list[Watcher] = []
        for watcher in watchers:
            if not watcher.send(frame):
                slow.append(watcher)
        self.stats.frames += len(watchers)
        self.stats.bytes += len(frame) * len(watchers)
        for watcher in slow:
            self.shed(watcher)

    def shed(self, watcher: Watcher) -> None:
        if not watcher.sink.open:  # already closed (e.g. a ping timeout): it just leaves
            self.leave(watcher)
            return
        self.stats.shed += 1
        self.leave(watcher)
        watcher.sink.close(CLOSE_TOO_SLOW, "too slow: reconnect with since")
