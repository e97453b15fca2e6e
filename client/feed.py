"""The live feed of one session: connects, authenticates if given a token, and yields events in
``seq`` order, unpacking batched frames. It checks what the server promises: each event's
``seq`` is one more than the last one seen (a gap or duplicate raises)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake


class FeedClosed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"feed closed: {code} {reason}")
        self.code = code
        self.reason = reason


class Feed:
    def __init__(
        self,
        base_url: str,
        session: str,
        *,
        since: int | None = None,
        token: str | None = None,
        **connect_options: Any,
    ) -> None:
        ws_base = base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        query = f"?since={since}" if since is not None else ""
        self.url = f"{ws_base}/v1/sessions/{session}/live{query}"
        self.token = token
        self.last_seq = since
        self.hello: dict[str, Any] = {}
        self.messages: list[dict[str, Any]] = []  # everything that is not an event
        self._events: deque[dict[str, Any]] = deque()
        self._options = {"max_size": 2**22, **connect_options}
        self.ws: ClientConnection | None = None

    async def __aenter__(self) -> Feed:
        self.ws = await connect(self.url, **self._options)
        self.hello = json.loads(await self.ws.recv())
        if self.token is not None:
            await self.ws.send(json.dumps({"type": "auth", "token": self.token}))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def next_event(self, timeout: float | None = 10) -> dict[str, Any]:
        while not self._events:
            await self._receive(timeout)
        return self._events.popleft()

    async def events(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        return [await self.next_event(timeout) for _ in range(count)]

    async def next_message(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        """The next non-event message of ``type`` ``kind`` (events received meanwhile are kept)."""
        seen = 0
        while True:
            for message in self.messages[seen:]:
                if message.get("type") == kind:
                    self.messages.remove(message)
                    return message
            seen = len(self.messages)
            await self._receive(timeout)

    async def _receive(self, timeout: float | None) -> None:
        assert self.ws is not None
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            raise FeedClosed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "") from None
        message = json.loads(raw)
        if message.get("type") != "events":
            self.messages.append(message)
            return
        for event in message["events"]:
            if self.last_seq is not None and event["seq"] != self.last_seq + 1:
                raise AssertionError(f"expected seq {self.last_seq + 1}, got {event['seq']}")
            self.last_seq = event["seq"]
            self._events.append(event)


FATAL_CLOSE_CODES = {1003, 1008, 1009, 4400, 4401, 4403, 4404}


async def watch(
    base_url: str,
    session: str,
    *,
    since: int | None = None,
    token: str | None = None,
    max_backoff: float = 5.0,
) -> AsyncIterator[dict[str, Any]]:
    """Every event of ``session`` after ``since`` (None: from now), in ``seq`` order, each once,
    for as long as the caller iterates: after any disconnect it reconnects by itself with
    ``since`` set to the last event it yielded. A refusal that retrying cannot fix (unknown
    session, bad request) raises :class:`FeedClosed`."""
    if since is None:
        async with httpx.AsyncClient(base_url=base_url) as http:
            response = await http.get(f"/v1/sessions/{session}")
            response.raise_for_status()
            since = int(response.json()["head"])
    delay = 0.1
    while True:
        try:
            async with Feed(base_url, session, since=since, token=token) as feed:
                delay = 0.1
                while True:
                    event = await feed.next_event(timeout=None)
                    since = event["seq"]
                    yield event
        except FeedClosed as closed:
            if closed.code in FATAL_CLOSE_CODES:
                raise
        except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
            pass
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_backoff)


def describe(event: dict[str, Any]) -> str:
    """One line for a terminal: ``#12 comment.created 3. Maya, Nursing, Albany, NY, US: text``."""
    head = f"#{event['seq']} {event['kind']}"
    comment = event.get("comment")
    if comment is None:
        session = event.get("session") or {}
        extra = f" {session.get('state', '')} {session.get('title', '')}" if session else ""
        return head + extra + (f" total {event['total']}" if "total" in event else "")
    author = comment.get("author") or {}
    parts = [author.get(k, "").strip() for k in ("name", "profession", "city", "region", "country")]
    who = ", ".join(p for p in parts if p) or "(removed)"
    number = f" {comment['number']}." if comment.get("number") else " ↳"
    text = (comment.get("body") or "").replace("\n", " ⏎ ")
    return f"{head}{number} {who}: {text}"
