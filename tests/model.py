"""Helpers for the property-based tests (``tests/test_properties.py``):

- :class:`BoardModel`, what one session's board must be after a sequence of actions, as
  ``docs/protocol.md`` describes it (states of comments, redaction, numbers, reply counts, the
  total, the head);
- :class:`BoardView`, a watcher's board: a page (or nothing, with ``since=0``) and then every
  event applied as "Applying events" says (state replaces state, counts are values to set);
- :func:`fetch_board`, the whole board as ``GET /v1/sessions/{slug}/comments`` pages show it,
  with the page shape checked on the way;
- :class:`LoopThread`, an asyncio loop in a thread, so that Hypothesis's synchronous rules can
  drive asynchronous clients whose connections outlive a rule.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

PUBLIC = "published"

# What a comparison looks at: everything a watcher is shown, with the author by name and
# ``edited_at`` as "was it edited" (the model has no clock).
View = dict[str, Any]


def normalize(comment: dict[str, Any]) -> View:
    """A comment as received (page, event or response), reduced to what the model predicts."""
    author = comment.get("author")
    return {
        "id": comment["id"],
        "parent_id": comment["parent_id"],
        "root_id": comment["root_id"],
        "depth": comment["depth"],
        "number": comment["number"],
        "status": comment["status"],
        "body": comment["body"],
        "author": author["name"] if author else None,
        "reply_count": comment["reply_count"],
        "edited": comment["edited_at"] is not None,
        "question": comment["question"],
        "helpful_count": comment["helpful_count"],
        "hold_reason": comment["hold_reason"],
    }


def shown(view: View) -> bool:
    """Whether pages show a comment: published, or holding the place of published replies."""
    return view["status"] == PUBLIC or view["reply_count"] > 0


# --- The model ------------------------------------------------------------------------------


@dataclass
class ModelComment:
    id: int
    author: str
    parent_id: int | None
    root_id: int | None
    depth: int
    number: int | None
    body: str
    question: bool
    client_key: str | None = None
    status: str = PUBLIC
    edited: bool = False


@dataclass
class Refused:
    """The answer the model expects for a request that must fail."""

    status: int
    code: str


@dataclass
class BoardModel:
    """One session's board as the protocol says it must be. Every change the server accepts
    adds one event (``head``); a request that changes nothing adds none."""

    comments: dict[int, ModelComment] = field(default_factory=dict)
    head: int = 0
    last_number: int = 0

    # -- reading --

    def ids(self, *statuses: str) -> list[int]:
        return sorted(c.id for c in self.comments.values() if not statuses or c.status in statuses)

    def total(self) -> int:
        return sum(1 for c in self.comments.values() if c.status == PUBLIC)

    def reply_count(self, comment_id: int) -> int:
        """Published replies beneath, at any depth."""
        children: dict[int, list[int]] = {}
        for c in self.comments.values():
            if c.parent_id is not None:
                children.setdefault(c.parent_id, []).append(c.id)
        count, stack = 0, list(children.get(comment_id, []))
        while stack:
            cid = stack.pop()
            count += self.comments[cid].status == PUBLIC
            stack.extend(children.get(cid, []))
        return count

    def view(self, comment_id: int) -> View:
        """The comment as every watcher sees it (redacted unless published)."""
        c = self.comments[comment_id]
        public = c.status == PUBLIC
        return {
            "id": c.id,
            "parent_id": c.parent_id,
            "root_id": c.root_id,
            "depth": c.depth,
            "number": c.number,
            "status": c.status,
            "body": c.body if public else None,
            "author": c.author if public else None,
            "reply_count": self.reply_count(c.id),
            "edited": c.edited,
            "question": c.question,
            "helpful_count": 0,
            "hold_reason": None,
        }

    def visible(self) -> dict[int, View]:
        """What pages show, by id."""
        views = {cid: self.view(cid) for cid in self.comments}
        return {cid: v for cid, v in views.items() if shown(v)}

    # -- what each request must do --

    def expect_reply(self, parent_id: int) -> Refused | None:
        if self.comments[parent_id].status != PUBLIC:
            return Refused(409, "parent_not_published")
        return None

    def expect_remove(self, comment_id: int) -> Refused | bool:
        """True: changes; False: already so (no event)."""
        status = self.comments[comment_id].status
        if status == "deleted":
            return Refused(409, "not_allowed")
        return status == PUBLIC

    def expect_restore(self, comment_id: int) -> Refused | bool:
        status = self.comments[comment_id].status
        if status == "deleted":
            return Refused(409, "not_allowed")
        return status == "removed"

    def expect_delete(self, comment_id: int, by: str) -> Refused | bool:
        c = self.comments[comment_id]
        if c.author != by:
            return Refused(403, "not_author")
        if c.status == "removed":
            return Refused(409, "not_published")
        return c.status == PUBLIC

    def expect_edit(self, comment_id: int, by: str, body: str) -> Refused | bool:
        c = self.comments[comment_id]
        if c.author != by:
            return Refused(403, "not_author")
        if c.status != PUBLIC:
            return Refused(409, "not_published")
        return c.body != body

    # -- applying what the server accepted --

    def add(
        self,
        comment_id: int,
        author: str,
        body: str,
        parent_id: int | None,
        question: bool,
        client_key: str | None,
        number: int | None,
    ) -> None:
        parent = self.comments[parent_id] if parent_id is not None else None
        self.comments[comment_id] = ModelComment(
            id=comment_id,
            author=author,
            parent_id=parent_id,
            root_id=(parent.root_id or parent.id) if parent else None,
            depth=parent.depth + 1 if parent else 0,
            number=number,
            body=body,
            question=question,
            client_key=client_key,
        )
        self.head += 1

    def set_status(self, comment_id: int, status: str) -> None:
        self.comments[comment_id].status = status
        self.head += 1

    def set_body(self, comment_id: int, body: str) -> None:
        c = self.comments[comment_id]
        c.body, c.edited = body, True
        self.head += 1


# --- A watcher's board ------------------------------------------------------------------------


@dataclass
class BoardView:
    """What a client holds: comments by id, the total, and the seq of the last event applied
    (``seqs``: every seq applied, over all its connections, to check there is no gap and no
    duplicate)."""

    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    total: int = 0
    start: int = 0
    last_seq: int = 0
    seqs: list[int] = field(default_factory=list)

    @classmethod
    def from_page(cls, comments: Iterable[dict[str, Any]], total: int, head: int) -> BoardView:
        return cls({c["id"]: c for c in comments}, total, head, head)

    def apply(self, event: dict[str, Any]) -> None:
        self.seqs.append(event["seq"])
        self.last_seq = max(self.last_seq, event["seq"])
        self.total = event["total"]
        for parent in event.get("parents", ()):
            # Placeholders above a reply that reappears: added only where not held.
            self.comments.setdefault(parent["id"], parent)
        comment = event.get("comment")
        if comment is not None:
            self.comments[comment["id"]] = comment
        for entry in event.get("reply_counts", ()):
            held = self.comments.get(entry["id"])
            if held is not None:
                self.comments[entry["id"]] = {**held, "reply_count": entry["reply_count"]}
        for entry in event.get("helpful", ()):
            held = self.comments.get(entry["id"])
            if held is not None:
                self.comments[entry["id"]] = {**held, "helpful_count": entry["helpful_count"]}

    def visible(self) -> dict[int, View]:
        views = {cid: normalize(c) for cid, c in self.comments.items()}
        return {cid: v for cid, v in views.items() if shown(v)}

    def gaps(self) -> list[str]:
        """What is wrong with the seqs applied: empty when they are start+1, start+2, ..."""
        expected = list(range(self.start + 1, self.start + 1 + len(self.seqs)))
        if self.seqs == expected:
            return []
        dupes = sorted({s for s in self.seqs if self.seqs.count(s) > 1})
        missing = sorted(set(range(self.start + 1, self.last_seq + 1)) - set(self.seqs))
        return [f"seqs {self.seqs} (from {self.start}): duplicates {dupes}, missing {missing}"]


# --- Reading the board over HTTP ---------------------------------------------------------------


@dataclass
class FetchedBoard:
    comments: list[dict[str, Any]]
    total: int
    head: int


async def fetch_board(http: httpx.AsyncClient, slug: str) -> FetchedBoard:
    """Every comment pages show, following ``older`` and each thread's ``replies_next``; checks
    the shape of each page: threads newest first, replies in creation order under their own
    thread, each after its parent. The first page's ``head`` and ``total`` are returned (the
    caller makes sure nothing is written meanwhile)."""
    comments: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    params: dict[str, str] = {}
    last_number: int | None = None
    while True:
        response = await http.get(f"/v1/sessions/{slug}/comments", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        first = first or page
        for thread in page["threads"]:
            top = thread["comment"]
            assert top["parent_id"] is None and top["depth"] == 0, top
            assert last_number is None or top["number"] < last_number, "threads newest first"
            last_number = top["number"]
            comments.append(top)
            replies = list(thread["replies"])
            cursor = thread["replies_next"]
            while cursor is not None:
                more = await http.get(f"/v1/comments/{top['id']}/replies", params={"after": cursor})
                assert more.status_code == 200, more.text
                replies += more.json()["replies"]
                cursor = more.json()["next"]
            placed = {top["id"]}
            for reply in replies:
                assert reply["root_id"] == top["id"], (reply, top)
                assert reply["parent_id"] in placed, f"reply {reply['id']} before its parent"
                placed.add(reply["id"])
            assert [r["id"] for r in replies] == sorted(r["id"] for r in replies)
            comments += replies
        if page["older"] is None:
            break
        params = {"before": page["older"]}
    assert first is not None
    return FetchedBoard(comments, first["total"], first["head"])


# --- An event loop for synchronous callers ------------------------------------------------------


class LoopThread:
    """An asyncio event loop running in a daemon thread; :meth:`run` waits for a coroutine."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        self.run(cancel_all(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()
