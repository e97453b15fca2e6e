"""The Redis bus: publications go out with PUBLISH; one subscriber connection per process carries
every topic this process watches (one subscription per topic, never one per client).

The subscriber speaks RESP directly over one asyncio stream (parsed by ``hiredis``, the C parser
redis-py itself uses, a chunk of messages at a time), so that reconnection is ours to get right
rather than a client library's: a supervised task connects, resubscribes every topic, waits
for the broker's confirmations, then tells the hub to look for what it missed (``on_resync``).
It pings every few seconds and treats silence as a dead connection. Redis drops a subscriber
whose output buffer overflows; that is one more disconnection, handled the same way.

Publications go out in order, in pipelines: those made while one pipeline is in flight wait and
go together in the next (posts written in one batch are published together), one round trip for
them all instead of one each.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import hiredis
import redis.asyncio as redis
from redis.exceptions import RedisError

from .bus import BusUnavailable, MessageHandler, ResyncHandler

log = logging.getLogger("backchannel.bus")

PING_EVERY = 5.0
SILENCE_LIMIT = 15.0
CONNECT_WAIT = 2.0
REPLY_WAIT = 2.0  # seconds a publication's acknowledgement may take
READ_SIZE = 256 * 1024  # bytes read from the subscriber connection at a time, at most
CONFIRM_WAIT = 2.0
MAX_BACKOFF = 5.0
PRESENCE = "bc:presence:"
SERVERS = "bc:servers"

Reply = bytes | int | None | list["Reply"]


class BrokerError(Exception):
    """Redis answered with an error."""


# What ends a connection to Redis: it is closed, and opened afresh.
CONNECTION_LOST = (OSError, TimeoutError, BrokerError, hiredis.ProtocolError)


@dataclass(slots=True)
class Outgoing:
    """Publications that go out together, and the future their publishers wait on."""

    sent: asyncio.Future[None]
    messages: list[tuple[str, bytes]] = field(default_factory=list)


class RedisBus:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"REDIS_URL must start with redis://, got {parts.scheme!r}")
        self._host = parts.hostname or "localhost"
        self._port = parts.port or 6379
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._ssl = parts.scheme == "rediss"
        self._client = redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, retry_on_timeout=False
        )
        self._topics: set[str] = set()
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._on_message: MessageHandler | None = None
        self._on_resync: ResyncHandler | None = None
        self._resync_pending: set[str] | None = None
        self._outgoing: Outgoing | None = None  # publications waiting for the next pipeline
        self._sending: asyncio.Task[None] | None = None
        # The connection publications go out on (the subscriber's cannot publish).
        self._publishing: tuple[Replies, asyncio.StreamWriter] | None = None
        self.reconnects = 0

    @property
    def healthy(self) -> bool:
        return self._writer is not None

    async def start(self, on_message: MessageHandler, on_resync: ResyncHandler) -> None:
        self._on_message, self._on_resync = on_message, on_resync
        self._task = asyncio.create_task(self._supervise(), name="redis-bus-subscriber")
        try:
            await asyncio.wait_for(self._connected.wait(), 5)
        except TimeoutError:
            log.warning(
                "redis bus: no connection to %s:%d yet; retrying in the background",
                self._host,
                self._port,
            )

    async def publish(self, topic: str, payload: bytes) -> None:
        outgoing = self._outgoing
        if outgoing is None:
            outgoing = self._outgoing = Outgoing(asyncio.get_running_loop().create_future())
            # Its publishers may all have given up waiting: the failure is logged by the hub
            # for those who did not, and need not be reported again as never retrieved.
            outgoing.sent.add_done_callback(lambda sent: sent.cancelled() or sent.exception())
            if self._sending is None or self._sending.done():
                self._sending = asyncio.create_task(self._send_outgoing(), name="redis-publisher")
        outgoing.messages.append((topic, payload))
        await asyncio.shield(outgoing.sent)

    async def _send_outgoing(self) -> None:
        """Send what waits to be published, one pipeline at a time, until nothing waits."""
        while (outgoing := self._outgoing) is not None:
            self._outgoing = None
            try:
                await self._pipeline(
                    [_command(b"PUBLISH", t.encode(), p) for t, p in outgoing.messages]
                )
            except CONNECTION_LOST as exc:
                topics = sorted({topic for topic, _ in outgoing.messages})
                failed = f"redis publish to {', '.join(topics)} failed: {exc!r}"
                outgoing.sent.set_exception(BusUnavailable(failed))
            except BaseException as exc:
                outgoing.sent.set_exception(BusUnavailable(f"redis publish failed: {exc!r}"))
                raise
            else:
                outgoing.sent.set_result(None)

    async def _pipeline(self, commands: list[bytes]) -> None:
        """Send ``commands`` in one write on the publishing connection (opened on first use,
        and again after a failure) and wait for as many replies."""
        if self._publishing is None:
            reader, writer = await asyncio.wait_for(self._open(), CONNECT_WAIT)
            self._publishing = (Replies(reader, REPLY_WAIT), writer)
        replies, writer = self._publishing
        try:
            writer.write(b"".join(commands))
            answered = 0
            while answered < len(commands):
                answered += len(await replies.read())
        except BaseException:
            self._publishing = None  # its replies are out of step now: start afresh
            writer.close()
            raise

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to Redis, authenticated if the URL says so."""
        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl or None
        )
        if self._password is not None:
            auth = [self._username.encode()] if self._username else []
            writer.write(_command(b"AUTH", *auth, self._password.encode()))
            try:
                await Replies(reader, REPLY_WAIT).next()
            except BaseException:
                writer.close()
                raise
        return reader, writer

    async def subscribe(self, topic: str) -> None:
        if topic not in self._topics:
            self._topics.add(topic)
            self._confirmations[topic] = asyncio.get_running_loop().create_future()
            self._send(b"SUBSCRIBE", topic.encode())
        waiter = self._confirmations.get(topic)
        if waiter is not None:
            try:
                await asyncio.wait_for(asyncio.shield(waiter), CONFIRM_WAIT)
            except TimeoutError:
                log.warning("redis bus: subscription to %s not confirmed yet", topic)

    async def unsubscribe(self, topic: str) -> None:
        if topic in self._topics:
            self._topics.discard(topic)
            self._confirmations.pop(topic, None)
            self._send(b"UNSUBSCRIBE", topic.encode())

    async def share_counts(self, server: str, counts: dict[int, int], ttl: float) -> dict[int, int]:
        """Each process keeps a hash ``bc:presence:<server>`` of session -> watchers that expires
        unless refreshed; the totals add up the hashes of every server still listed."""
        mine = f"{PRESENCE}{server}"
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(mine)
                if counts:
                    pipe.hset(mine, mapping={str(k): v for k, v in counts.items()})
                pipe.expire(mine, max(1, int(ttl)))
                pipe.sadd(SERVERS, server)
                pipe.smembers(SERVERS)
                *_, members = await pipe.execute()
            servers = sorted(m.decode() for m in members)
            fields = [str(k) for k in counts]
            async with self._client.pipeline(transaction=False) as pipe:
                for name in servers:
                    pipe.exists(f"{PRESENCE}{name}")
                    if fields:
                        pipe.hmget(f"{PRESENCE}{name}", fields)
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis presence update failed: {exc}") from exc
        totals = dict.fromkeys(counts, 0)
        step = 2 if fields else 1
        for index, name in enumerate(servers):
            if not replies[index * step]:
                await self._client.srem(SERVERS, name)  # its hash expired: it is gone
                continue
            if fields:
                for key, value in zip(counts, replies[index * step + 1], strict=True):
                    totals[key] += int(value or 0)
        return totals

    async def close(self) -> None:
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._client.aclose()
        if self._publishing is not None:
            self._publishing[1].close()

    def _send(self, *args: bytes) -> None:
        if self._writer is not None:
            self._writer.write(_command(*args))

    async def _supervise(self) -> None:
        """Keep one subscriber connection up for as long as the bus runs."""
        delay = 0.1
        first = True
        while True:
            try:
                reader, writer = await asyncio.wait_for(self._open(), CONNECT_WAIT)
            except CONNECTION_LOST as exc:
                log.warning(
                    "redis bus: cannot connect to %s:%d (%s); retry in %.1fs",
                    self._host,
                    self._port,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            try:
                replies = Replies(reader, SILENCE_LIMIT)
                self._resubscribe(writer)
                if not first:
                    self.reconnects += 1
                    log.info("redis bus: reconnected; resubscribing %d topics", len(self._topics))
                first = False
                delay = 0.1
                await self._listen(replies, writer)
            except (*CONNECTION_LOST, ValueError) as exc:  # ValueError: a topic not UTF-8
                log.warning(
                    "redis bus: connection lost (%s: %s); reconnecting", type(exc).__name__, exc
                )
            finally:
                self._writer = None
                self._connected.clear()
                writer.close()
            await asyncio.sleep(delay)

    def _resubscribe(self, writer: asyncio.StreamWriter) -> None:
        """Make ``writer`` the subscriber connection and subscribe it to every topic."""
        self._writer = writer
        self._connected.set()
        topics = sorted(self._topics)
        self._resync_pending = set(topics)
        for topic in topics:
            self._confirmations.setdefault(topic, asyncio.get_running_loop().create_future())
        if topics:
            writer.write(_command(b"SUBSCRIBE", *(t.encode() for t in topics)))
        else:
            self._resynced()

    async def _listen(self, replies: Replies, writer: asyncio.StreamWriter) -> None:
        pinger = asyncio.create_task(self._ping(writer))
        try:
            while True:
                for reply in await replies.read():
                    if isinstance(reply, list) and len(reply) >= 3:
                        self._dispatch(reply)
        finally:
            pinger.cancel()

    async def _ping(self, writer: asyncio.StreamWriter) -> None:
        while True:
            await asyncio.sleep(PING_EVERY)
            writer.write(_command(b"PING"))

    def _dispatch(self, reply: list[Reply]) -> None:
        kind, topic_bytes, payload = reply[0], reply[1], reply[2]
        if not isinstance(topic_bytes, bytes):
            return
        topic = topic_bytes.decode()
        if kind == b"message" and isinstance(payload, bytes) and self._on_message is not None:
            try:
                self._on_message(topic, payload)
            except Exception:
                log.exception("redis bus: handling a message on %s failed", topic)
        elif kind == b"subscribe":
            waiter = self._confirmations.pop(topic, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            if self._resync_pending is not None:
                self._resync_pending.discard(topic)
                if not self._resync_pending:
                    self._resynced()

    def _resynced(self) -> None:
        self._resync_pending = None
        if self._on_resync is not None:
            self._on_resync()


def _command(*args: bytes) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class Replies:
    """The replies arriving on a connection, parsed as they come: each read takes what the
    socket holds and returns every reply complete in it."""

    def __init__(self, reader: asyncio.StreamReader, patience: float) -> None:
        self._reader = reader
        self._patience = patience
        self._parser = hiredis.Reader()

    async def read(self) -> list[Reply]:
        """At least one reply; ``TimeoutError`` after ``patience`` seconds without a byte,
        ``ConnectionError`` at the end of the stream, ``BrokerError`` for an error reply."""
        replies: list[Reply] = []
        while not replies:
            data = await asyncio.wait_for(self._reader.read(READ_SIZE), self._patience)
            if not data:
                raise ConnectionError("redis closed the connection")
            self._parser.feed(data)
            while (reply := self._parser.gets()) is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise BrokerError(str(reply))
                replies.append(reply)
        return replies

    async def next(self) -> Reply:
        """One reply (when no other can come before it is answered, as in the handshake)."""
        replies = await self.read()
        if len(replies) != 1:
            raise BrokerError(f"expected one reply, got {len(replies)}")
        return replies[0]
