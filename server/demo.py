"""The demo board: an event, a session and a realistic set of comments and replies from
``demo/board.json``, created at start-up with ``backchannel serve --demo`` when absent."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .auth import Identity
from .errors import Conflict
from .protocol import NewSession
from .storage import Store

BOARD = Path(__file__).parent / "demo" / "board.json"

log = logging.getLogger("backchannel.demo")


def board() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(BOARD.read_text(encoding="utf-8"))
    return data


async def load_demo(store: Store) -> str:
    """Create the demo board, or complete one that a stopped process left half loaded; returns
    the session's slug. One process at a time (several replicas start together): each comment
    is posted with its key, so one already there is found, not posted again."""
    async with store.exclusive("backchannel-demo"):
        return await _load(store)


async def _load(store: Store) -> str:
    data = board()
    event, session = data["event"], data["session"]
    with contextlib.suppress(Conflict):
        await store.create_event(event["slug"], event["title"])
    try:
        record = await store.create_session(
            event["slug"],
            NewSession(
                slug=session["slug"],
                title=session["title"],
                speakers=session["speakers"],
                prompt=session["prompt"],
            ),
        )
    except Conflict:
        record = await store.session(session["slug"])
    authors = {a["sub"]: a for a in data["authors"]}
    ids: dict[str, int] = {}
    comments = data["comments"]
    start = datetime.now(UTC) - timedelta(days=2)
    step = timedelta(days=2) / max(len(comments), 1)
    for index, comment in enumerate(comments):
        a = authors[comment["author"]]
        who = Identity(
            sub=a["sub"],
            name=a["name"].strip(),
            profession=a["profession"],
            city=a["city"].strip(),
            region=a["region"].strip(),
            country=a["country"],
            role="attendee",
            event=event["slug"],
            expires_at=0,
        )
        parent = ids[comment["parent"]] if comment.get("parent") else None
        result, _ = await store.post(
            record, who, comment["body"], parent, comment["key"], at=start + step * index
        )
        ids[comment["key"]] = result.comment.id
    log.info("demo board %s ready with %d comments", session["slug"], len(comments))
    return str(session["slug"])
