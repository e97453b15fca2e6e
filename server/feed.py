"""The WebSocket live feed of one session: ``/v1/sessions/{slug}/live?since=<seq>``.

The connection is accepted, a ``hello`` is sent, then every event after ``since`` (if given) and
the live ones, in ``seq`` order, in ``events`` frames. Watching needs no token; a client that has
one sends ``{"type": "auth", "token": ...}`` (first, and again with a fresh token), which joins the
connection to its user's private notices and, for moderators, to its event's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.websockets import WebSocket

from . import logs
from .auth import Identity
from .bus import moderators_topic, user_topic
from .endpoints import SLUG
from .errors import BackchannelError, BadRequest, NotFound
from .hub import SessionChannel
from .notices import for_author
from .presence import watching_message
from .protocol import Auth, ProtocolError, decode_client_message, encode, error_message
from .services import Services
from .storage import SessionRecord
from .transport import RawSink, sink_of

log = logging.getLogger("backchannel.feed")

CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_RATE_LIMITED = 4429
BURST = 20  # client messages allowed at once
REFILL_PER_SECOND = 1.0


def origin_allowed(websocket: WebSocket, allowed: frozenset[str]) -> bool:
    """Browsers send ``Origin``: allow the service's own origin and the configured host sites,
    so that no other site can open a feed with its visitors' credentials (CSWSH)."""
    origin = websocket.headers.get("origin")
    if origin is None or "*" in allowed or origin.rstrip("/") in allowed:
        return True
    return urlsplit(origin).netloc == websocket.headers.get("host")


async def live(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    settings = services.settings
    sink = sink_of(websocket.scope)
    if not origin_allowed(websocket, settings.origins()):
        log.info("feed refused: origin %s not allowed", websocket.headers.get("origin"))
        await websocket.close(CLOSE_POLICY)  # before accepting: the handshake answers 403
        return
    await websocket.accept()
    address = websocket.client.host if websocket.client else ""
    retry = services.address_connects.take(address)
    if retry is not None:
        log.info("feed refused: %s connects too often", address)
        await websocket.close(CLOSE_RATE_LIMITED, f"too many connections; retry in {retry} s")
        return
    if sink is None:
        log.error("feed: the server runs without BackchannelWebSocketProtocol; closing")
        await websocket.close(CLOSE_INTERNAL, "server misconfigured")
        return
    sink.grace = settings.ws_shed_grace
    try:
        since = _since(websocket.query_params.get("since"))
        slug = websocket.path_params["slug"]
        if not SLUG.match(slug):
            raise NotFound("unknown_session", f"no session has slug {slug[:80]!r}")
        # Only what never changes is used here (ids, slugs), so a record kept from earlier
        # does: a storm of reconnections then costs no database reads.
        session = await services.store.session(slug, recent=True)
        logs.session.set(session.slug)
    except BackchannelError as exc:
        sink.close(exc.close_code, exc.message)
        return
    await Connection(services, session, sink).run(since)


def _since(value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise BadRequest("bad_since", "since must be a non-negative integer seq")
    return int(value)


class Connection:
    """One watcher's connection, once accepted. :meth:`run` sets it up, then hands it over to
    the transport (``RawSink.hand_over``) and the app returns: an idle watcher then holds no task,
    no coroutine frames and no ASGI scope, only this, its :class:`~server.hub.Watcher` and
    uvicorn's protocol. The client's messages come to :meth:`receive`, one at a time."""

    __slots__ = (
        "_expiry",
        "_last",
        "_tokens",
        "hub",
        "identity",
        "services",
        "session",
        "sink",
        "watcher",
    )

    def __init__(self, services: Services, session: SessionRecord, sink: RawSink) -> None:
        self.services = services
        self.session = session
        self.sink = sink
        self.hub = services.hub
        self.watcher = services.hub.new_watcher(sink)
        self.identity: Identity | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._tokens = float(BURST)
        self._last = time.monotonic()

    async def run(self, since: int | None) -> None:
        hello = {
            "type": "hello",
            "session": self.session.slug,
            "server": self.services.settings.name,
            "since": since,
        }
        self.sink.send(encode(hello))
        try:
            try:
                channel = await self._watch(since)
            except BackchannelError as exc:
                self.sink.close(exc.close_code, exc.message)
                self._end()
                return
            count = max(channel.watching, len(channel.watchers))
            self.sink.send(watching_message(self.session.slug, count))
            self.sink.hand_over(self.receive)
        except BaseException:
            self._end()
            raise

    async def _watch(self, since: int | None) -> SessionChannel:
        try:
            return await self.hub.watch(self.session, self.watcher, since)
        except NotFound:
            # The record was kept from before its session was deleted (perhaps made anew since,
            # with the same slug): once more with the session as it is now.
            self.session = await self.services.store.session(self.session.slug)
            return await self.hub.watch(self.session, self.watcher, since)

    async def receive(self, message: Mapping[str, Any]) -> None:
        """One event from the client, after the hand-over; a disconnect is the last."""
        if message["type"] == "websocket.disconnect":
            self._end()
            return
        try:
            await self._handle(message)
        except BaseException:
            self._end()
            raise

    def _end(self) -> None:
        self._forget_identity()
        self.hub.leave(self.watcher)

    async def _handle(self, message: Mapping[str, Any]) -> None:
        if not self._allow():
            log.info("feed %s: client flooding; closing", self.session.slug)
            self.sink.close(CLOSE_POLICY, "too many messages")
            return
        text = message.get("text")
        if not isinstance(text, str):
            self.sink.close(CLOSE_UNSUPPORTED, "only text messages are accepted")
            return
        try:
            command = decode_client_message(text)
        except ProtocolError as exc:
            self.sink.close(4400, f"bad message: {exc}")
            return
        if isinstance(command, Auth):
            await self._authenticate(command.token)

    async def _authenticate(self, token: str) -> None:
        """Take on the token's identity (replacing any earlier one): its private topics join, and
        leave again when the token expires unless a fresh one came first. A refused token leaves
        the connection anonymous, still watching."""
        self._forget_identity()
        try:
            identity = self.services.verifier.verify(token)
        except BackchannelError as exc:
            self.sink.send(error_message(exc.code, exc.message))
            return
        self.identity = identity
        for topic in self._private_topics(identity):
            await self.hub.join(topic, self.watcher)
        author_id = await self.services.store.author_of(identity)
        # A timed-out or banned author's board shows it instead of the form, after any reconnect.
        sanction = await self.services.store.posting_sanction(self.session.event_id, identity.sub)
        self.sink.send(
            encode(
                {
                    "type": "auth.ok",
                    "role": identity.role,
                    "event": identity.event,
                    "author_id": author_id,
                    "expires_at": identity.expires_at,
                    "sanction": for_author(sanction) if sanction else None,
                }
            )
        )
        # Verification allows the leeway past ``exp``; so does the connection.
        delay = max(0.0, identity.expires_at + self.services.settings.jwt_leeway - time.time())
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        self._forget_identity()
        self.sink.send(error_message("token_expired", "the token has expired; send a fresh one"))

    def _forget_identity(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self.identity is not None:
            self.hub.leave(self.watcher, self._private_topics(self.identity))
            self.identity = None

    def _private_topics(self, identity: Identity) -> list[str]:
        topics = [user_topic(identity.sub)]
        if identity.has_role("moderator", self.session.event_slug):
            topics.append(moderators_topic(self.session.event_slug))
        return topics

    def _allow(self) -> bool:
        """A token bucket: ``BURST`` messages at once, ``REFILL_PER_SECOND`` after that."""
        now = time.monotonic()
        self._tokens = min(BURST, self._tokens + (now - self._last) * REFILL_PER_SECOND)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
