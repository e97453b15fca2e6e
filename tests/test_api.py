"""The HTTP API end to end, over real sockets against a real PostgreSQL: posting and reading
threads, paging, idempotent posts, every refusal (and that a refused write stores and publishes
nothing), moderation, sessions, editing, and the service routes."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from jwt.warnings import InsecureKeyLengthWarning
from starlette.routing import Route

from client import Api, ApiError, Feed
from server.app import routes

from .conftest import Board, make_token, new_board, nonce
from .servers import InProcessServer

SERVER_HEADER = "x-backchannel-server"
AUTHOR_CLAIMS = {
    "name": "Ada Lovelace",
    "profession": "Psychotherapy",
    "city": "London",
    "region": "Greater London",
    "country": "GB",
}


# --- Clients -------------------------------------------------------------------------------------


async def require_server_name(response: httpx.Response) -> None:
    """Every HTTP response names the process that answered it."""
    assert response.headers.get(SERVER_HEADER), (
        f"{response.request.method} {response.request.url} answered {response.status_code} "
        f"without {SERVER_HEADER}"
    )


class Clients:
    """The API clients one test opens, closed when it ends. Each checks the server header of
    every response it receives."""

    def __init__(self) -> None:
        self._opened: list[Api] = []

    def open(self, url: str, token: str | None) -> Api:
        api = Api(url, token)
        api.http.event_hooks = {"request": [], "response": [require_server_name]}
        self._opened.append(api)
        return api

    def actors(self, board: Board) -> Actors:
        return Actors(board, self)

    async def close(self) -> None:
        await asyncio.gather(*(api.http.aclose() for api in self._opened))


class Actors:
    """One board with a client for each kind of caller."""

    def __init__(self, board: Board, clients: Clients) -> None:
        self.board = board
        self.clients = clients
        self.slug = board.session
        self.attendee = self.role("attendee", **AUTHOR_CLAIMS)
        self.moderator = self.role("moderator", name="Mod Mary")
        self.admin = self.role("admin")
        self.reader = self.token(None)

    def token(self, token: str | None) -> Api:
        return self.clients.open(self.board.url, token)

    def role(self, role: str = "attendee", event: str | None = None, **claims: Any) -> Api:
        return self.token(make_token(role, event or self.board.event, **claims))

    async def post(self, body: str, **fields: Any) -> dict[str, Any]:
        return await post(self.attendee, self.slug, body, **fields)

    async def session(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.reader.session(self.slug)
        return result

    async def page(self, **cursor: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.reader.page(self.slug, **cursor)
        return result


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    opened = Clients()
    yield opened
    await opened.close()


@pytest.fixture
def actors(board: Board, clients: Clients) -> Actors:
    return clients.actors(board)


async def fresh(server: InProcessServer, clients: Clients, **session_fields: Any) -> Actors:
    return clients.actors(await new_board(server.url, **session_fields))


# --- Helpers -------------------------------------------------------------------------------------


async def call(api: Api, method: str, path: str, status: int, **kwargs: Any) -> Any:
    """Send a request that must succeed with exactly ``status``; its JSON body."""
    response = await api.http.request(method, path, **kwargs)
    assert response.status_code == status, (
        f"{method} {path}: {response.status_code} {response.text}"
    )
    return response.json()


async def post(
    api: Api,
    slug: str,
    body: str,
    *,
    parent_id: int | None = None,
    client_key: str | None = None,
    status: int = 201,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"body": body}
    if parent_id is not None:
        payload["parent_id"] = parent_id
    if client_key is not None:
        payload["client_key"] = client_key
    result: dict[str, Any] = await call(
        api, "POST", f"/v1/sessions/{slug}/comments", status, json=payload
    )
    return result


async def post_many(actors: Actors, bodies: list[str], parent_id: int | None = None) -> list[int]:
    """Post concurrently, 20 at a time; the new comments' ids in commit order."""
    ids: list[int] = []
    for start in range(0, len(bodies), 20):
        chunk = bodies[start : start + 20]
        posted = await asyncio.gather(*(actors.post(b, parent_id=parent_id) for b in chunk))
        ids += [p["comment"]["id"] for p in posted]
    return sorted(ids)


async def moderate(actors: Actors, comment_id: int, action: str, api: Api | None = None) -> Any:
    return await call(api or actors.moderator, "POST", f"/v1/comments/{comment_id}/{action}", 200)


async def observable(actors: Actors) -> dict[str, Any]:
    """All a reader can see of the board: the session (without the clock) and the first page."""
    session = await actors.session()
    del session["server_time"]
    return {"session": session, "page": await actors.page()}


async def expect_error(action: Awaitable[Any], status: int, code: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await action
    error = caught.value
    assert (error.status, error.code) == (status, code), f"{error.status} {error.code}: {error}"
    assert error.message
    return error


async def refused(
    actors: Actors, action: Callable[[], Awaitable[Any]], status: int, code: str
) -> ApiError:
    """The write is refused with ``status`` and ``code``, and nothing changed: same total, same
    head (no event was logged or published), same first page."""
    before = await observable(actors)
    error = await expect_error(action(), status, code)
    assert await observable(actors) == before
    return error


def numbers(page: dict[str, Any]) -> list[int]:
    return [thread["comment"]["number"] for thread in page["threads"]]


def ids(comments: Iterable[dict[str, Any]]) -> list[int]:
    return [comment["id"] for comment in comments]


def thread_of(page: dict[str, Any], comment_id: int) -> dict[str, Any]:
    found: list[dict[str, Any]] = [t for t in page["threads"] if t["comment"]["id"] == comment_id]
    assert len(found) == 1, f"comment {comment_id} is shown {len(found)} times"
    return found[0]


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def b64url(value: Any) -> str:
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned_token(event: str) -> str:
    """A token with ``alg: none`` and an empty signature, otherwise valid."""
    now = int(datetime.now(UTC).timestamp())
    signed = make_token("attendee", event)
    claims = json.loads(base64.urlsafe_b64decode(signed.split(".")[1] + "=="))
    assert claims["exp"] > now
    return f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims)}."


def unknown_key_token(event: str) -> str:
    """A token under kid ``k9``, which the server does not know (signed with conftest's short
    stand-in secret, which PyJWT warns about: not what this test is about)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return make_token("attendee", event, kid="k9")


def tampered_token(event: str) -> str:
    """A token whose signature is another token's: well formed, but it does not match."""
    header, payload, _ = make_token("attendee", event).split(".")
    signature = make_token("attendee", event, sub="someone-else").split(".")[2]
    return f"{header}.{payload}.{signature}"


# --- 1. Posting and reading ----------------------------------------------------------------------


async def test_top_level_post_answers_the_comment_and_moves_total_and_head(actors: Actors) -> None:
    before = await actors.session()
    assert (before["total"], before["head"], before["accepting"]) == (0, 0, True)

    posted = await actors.post("  First!\r\nSecond line  ")

    assert posted["created"] is True and posted["seq"] == 1
    comment = posted["comment"]
    assert comment["number"] == 1 and comment["status"] == "published"
    assert comment["body"] == "First!\nSecond line"
    assert (comment["parent_id"], comment["root_id"], comment["depth"]) == (None, None, 0)
    assert comment["session"] == actors.slug and comment["reply_count"] == 0
    assert comment["edited_at"] is None and comment["created_at"]
    author = comment["author"]
    assert {k: author[k] for k in AUTHOR_CLAIMS} == AUTHOR_CLAIMS
    after = await actors.session()
    assert (after["total"], after["head"]) == (1, 1)


async def test_replies_nest_and_the_page_shows_threads(actors: Actors) -> None:
    first = (await actors.post("top one"))["comment"]
    reply = await actors.post("a reply", parent_id=first["id"])
    nested = await actors.post("a reply to the reply", parent_id=reply["comment"]["id"])
    second = await actors.post("top two")

    r, n = reply["comment"], nested["comment"]
    assert (r["parent_id"], r["root_id"], r["depth"], r["number"]) == (
        first["id"],
        first["id"],
        1,
        None,
    )
    assert (n["parent_id"], n["root_id"], n["depth"], n["number"]) == (
        r["id"],
        first["id"],
        2,
        None,
    )
    assert [reply["seq"], nested["seq"], second["seq"]] == [2, 3, 4]
    assert second["comment"]["number"] == 2

    page = await actors.page()
    assert numbers(page) == [2, 1]
    assert (page["total"], page["head"], page["older"], page["newer"]) == (4, 4, None, None)
    top = thread_of(page, first["id"])
    assert top["comment"]["reply_count"] == 2  # replies at any depth
    assert ids(top["replies"]) == [r["id"], n["id"]]
    assert [c["reply_count"] for c in top["replies"]] == [1, 0]
    assert [c["body"] for c in top["replies"]] == ["a reply", "a reply to the reply"]
    assert top["replies_next"] is None
    assert thread_of(page, second["comment"]["id"])["replies"] == []
    more = await actors.reader.replies(first["id"])
    assert ids(more["replies"]) == [r["id"], n["id"]] and more["next"] is None
    assert (await actors.session())["total"] == 4


# --- 2. Paging -----------------------------------------------------------------------------------


async def follow(actors: Actors, direction: str, cursor: str | None) -> list[dict[str, Any]]:
    """The pages reached by following ``older`` (before=) or ``newer`` (after=) cursors."""
    param, key = ("before", "older") if direction == "older" else ("after", "newer")
    pages = []
    while cursor is not None:
        page = await actors.page(**{param: cursor})
        pages.append(page)
        cursor = page[key]
    return pages


def assert_descending_pages(pages: list[dict[str, Any]], size: int) -> list[int]:
    """Each page has at most ``size`` comments, newest first; the numbers they show, in order."""
    shown: list[int] = []
    for page in pages:
        assert 0 < len(numbers(page)) <= size
        assert numbers(page) == sorted(numbers(page), reverse=True)
        shown += numbers(page)
    return shown


async def test_paging_with_cursors_visits_every_comment_once(
    actors: Actors, server: InProcessServer
) -> None:
    size = server.settings.page_size
    assert size == 50
    await post_many(actors, [f"comment {i}" for i in range(120)])

    first = await actors.page()
    assert (first["total"], first["head"], first["newer"]) == (120, 120, None)
    older = [first, *await follow(actors, "older", first["older"])]
    assert len(older) == 3
    assert assert_descending_pages(older, size) == list(range(120, 0, -1))

    last = older[-1]
    assert last["older"] is None and last["newer"] is not None
    newer = await follow(actors, "newer", last["newer"])
    assert len(newer) == 2 and newer[-1]["newer"] is None
    shown = assert_descending_pages([*reversed(newer), last], size)
    assert shown == list(range(120, 0, -1))


@pytest.mark.parametrize(
    ("cursor", "code"),
    [
        ({"before": "10", "after": "5"}, "bad_cursor"),
        ({"before": "ten"}, "bad_before"),
        ({"after": "-3"}, "bad_after"),
        ({"before": "1e3"}, "bad_before"),
    ],
)
async def test_bad_cursors_are_refused(actors: Actors, cursor: dict[str, str], code: str) -> None:
    await actors.post("something to page")
    await expect_error(actors.page(**cursor), 400, code)


async def test_a_numeric_cursor_beyond_any_number_is_not_a_server_error(actors: Actors) -> None:
    await actors.post("only comment")
    response = await actors.reader.http.get(
        f"/v1/sessions/{actors.slug}/comments", params={"before": "99999999999"}
    )
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        assert numbers(response.json()) == [1]


# --- 3. Replies per thread -----------------------------------------------------------------------


async def test_thread_shows_a_bounded_number_of_replies_and_pages_the_rest(
    actors: Actors, server: InProcessServer
) -> None:
    limit = server.settings.replies_per_thread
    assert limit == 20
    top = (await actors.post("a popular comment"))["comment"]["id"]
    replies = await post_many(actors, [f"reply {i}" for i in range(25)], parent_id=top)

    thread = thread_of(await actors.page(), top)
    assert thread["comment"]["reply_count"] == 25
    assert ids(thread["replies"]) == replies[:limit]
    assert thread["replies_next"] is not None
    rest = await actors.reader.replies(top, after=thread["replies_next"])
    assert ids(rest["replies"]) == replies[limit:]
    assert rest["next"] is None
    assert (await actors.session())["total"] == 26


# --- 4. Idempotent posting -----------------------------------------------------------------------


async def test_a_retried_post_with_the_same_client_key_is_stored_once(actors: Actors) -> None:
    key = f"key-{uuid.uuid4().hex}"
    first = await actors.post("posted once", client_key=key)
    head = (await actors.session())["head"]

    again = await actors.post("posted once", client_key=key, status=200)

    assert (again["created"], again["seq"]) == (False, None)
    assert again["comment"]["id"] == first["comment"]["id"]
    assert again["comment"]["body"] == "posted once"
    session = await actors.session()
    assert (session["total"], session["head"]) == (1, head)
    assert ids(t["comment"] for t in (await actors.page())["threads"]) == [first["comment"]["id"]]


async def test_concurrent_duplicates_store_exactly_one_comment(actors: Actors) -> None:
    key = f"key-{uuid.uuid4().hex}"
    path = f"/v1/sessions/{actors.slug}/comments"
    responses = await asyncio.gather(
        *(
            actors.attendee.http.post(path, json={"body": "at once", "client_key": key})
            for _ in range(10)
        )
    )

    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    results = [r.json() for r in responses]
    assert len({r["comment"]["id"] for r in results}) == 1
    assert sorted(r["created"] for r in results) == [False] * 9 + [True]
    session = await actors.session()
    assert (session["total"], session["head"]) == (1, 1)
    assert len((await actors.page())["threads"]) == 1


async def test_the_same_client_key_from_another_author_is_another_comment(actors: Actors) -> None:
    key = f"key-{uuid.uuid4().hex}"
    mine = await actors.post("mine", client_key=key)
    theirs = await post(actors.role("attendee"), actors.slug, "theirs", client_key=key)
    assert theirs["comment"]["id"] != mine["comment"]["id"]
    assert (await actors.session())["total"] == 2


# --- 5. Refused writes ---------------------------------------------------------------------------


@dataclass
class Seeded:
    """A board with a published and a removed comment, for refusals to aim at."""

    actors: Actors
    published: int
    removed: int

    @property
    def comments_path(self) -> str:
        return f"/v1/sessions/{self.actors.slug}/comments"

    @classmethod
    async def on(cls, actors: Actors) -> Seeded:
        published = (await actors.post("a published comment"))["comment"]["id"]
        removed = (await actors.post("a comment about to be removed"))["comment"]["id"]
        await moderate(actors, removed, "remove")
        return cls(actors, published, removed)


Attempt = Callable[[Seeded], Awaitable[Any]]


def posting(body: Any = "a refused comment", **fields: Any) -> Attempt:
    async def attempt(seeded: Seeded) -> Any:
        payload = {"body": body, **fields}
        return await seeded.actors.attendee.request("POST", seeded.comments_path, json=payload)

    return attempt


def sending(content: bytes | Callable[[], AsyncIterator[bytes]]) -> Attempt:
    """Raw bytes as the request body (or chunks of an unannounced length)."""

    async def attempt(seeded: Seeded) -> Any:
        body = content if isinstance(content, bytes) else content()
        return await seeded.actors.attendee.request(
            "POST",
            seeded.comments_path,
            content=body,
            headers={"content-type": "application/json"},
        )

    return attempt


async def chunked_70k() -> AsyncIterator[bytes]:
    yield b'{"body": "'
    for _ in range(10):
        yield b"a" * 7000
    yield b'"}'


def replying_to(parent: Callable[[Seeded], Awaitable[int]]) -> Attempt:
    async def attempt(seeded: Seeded) -> Any:
        return await seeded.actors.attendee.post(
            seeded.actors.slug, "a reply", parent_id=await parent(seeded)
        )

    return attempt


async def comment_in_another_session(seeded: Seeded) -> int:
    other = seeded.actors.clients.actors(await new_board(seeded.actors.board.url))
    return int((await other.post("elsewhere"))["comment"]["id"])


async def removed_comment(seeded: Seeded) -> int:
    return seeded.removed


async def no_such_comment(seeded: Seeded) -> int:
    return 10**15


def posting_with(token: Callable[[Board], str | None]) -> Attempt:
    async def attempt(seeded: Seeded) -> Any:
        api = seeded.actors.token(token(seeded.actors.board))
        return await api.post(seeded.actors.slug, "a comment with a bad token")

    return attempt


async def post_to_unknown_session(seeded: Seeded) -> Any:
    return await seeded.actors.attendee.post(f"no-such-session-{uuid.uuid4().hex[:8]}", "hello")


async def attendee_removes(seeded: Seeded) -> Any:
    return await seeded.actors.attendee.remove(seeded.published)


async def moderator_of_another_event_removes(seeded: Seeded) -> Any:
    return await seeded.actors.role("moderator", "another-event").remove(seeded.published)


async def moderator_of_another_event_restores(seeded: Seeded) -> Any:
    return await seeded.actors.role("moderator", "another-event").restore(seeded.removed)


async def attendee_creates_event(seeded: Seeded) -> Any:
    api = seeded.actors.token(make_token("attendee", "*"))
    return await api.create_event(f"ev-{uuid.uuid4().hex[:10]}", "Not allowed")


async def another_attendee_edits(seeded: Seeded) -> Any:
    return await seeded.actors.role("attendee").edit(seeded.published, "not mine to edit")


async def author_edits_removed(seeded: Seeded) -> Any:
    return await seeded.actors.attendee.edit(seeded.removed, "bringing it back by editing")


def token_for(role: str = "attendee", **options: Any) -> Callable[[Board], str]:
    return lambda board: make_token(role, board.event, **options)


REFUSALS = [
    pytest.param(posting(""), 400, "body_empty", id="empty-body"),
    pytest.param(posting(" \n\t\r\n  "), 400, "body_empty", id="blank-body"),
    pytest.param(posting("\x00\x01"), 400, "body_empty", id="only-control-characters"),
    pytest.param(posting("a" * 5001), 400, "body_too_long", id="5001-characters"),
    pytest.param(posting("😀" * 5001), 400, "body_too_long", id="5001-emoji"),
    pytest.param(sending(b'{"body": "unterminated'), 400, "invalid_json", id="invalid-json"),
    pytest.param(sending(b""), 400, "invalid_json", id="no-body"),
    pytest.param(posting(5), 400, "invalid_field", id="body-not-a-string"),
    pytest.param(posting(parent_id="1"), 400, "invalid_field", id="parent-id-a-string"),
    pytest.param(posting(colour="red"), 400, "invalid_field", id="unknown-field"),
    pytest.param(posting(client_key=""), 400, "invalid_field", id="empty-client-key"),
    pytest.param(
        sending(json.dumps({"body": "a" * 70_000}).encode()),
        413,
        "request_too_large",
        id="over-64k",
    ),
    pytest.param(sending(chunked_70k), 413, "request_too_large", id="over-64k-chunked"),
    pytest.param(post_to_unknown_session, 404, "unknown_session", id="unknown-session"),
    pytest.param(
        replying_to(comment_in_another_session), 400, "bad_parent", id="parent-in-another-session"
    ),
    pytest.param(replying_to(no_such_comment), 400, "bad_parent", id="unknown-parent"),
    pytest.param(replying_to(removed_comment), 409, "parent_not_published", id="removed-parent"),
    pytest.param(posting_with(lambda board: None), 401, "token_missing", id="no-token"),
    pytest.param(
        posting_with(lambda board: "not-a-jwt"), 401, "token_malformed", id="malformed-token"
    ),
    pytest.param(posting_with(token_for(ttl=-120)), 401, "token_expired", id="expired-token"),
    pytest.param(posting_with(token_for(aud="other")), 401, "token_audience", id="other-audience"),
    pytest.param(posting_with(token_for(iss="other")), 401, "token_issuer", id="other-issuer"),
    pytest.param(
        posting_with(lambda board: unknown_key_token(board.event)),
        401,
        "token_unknown_key",
        id="unknown-kid",
    ),
    pytest.param(
        posting_with(lambda board: tampered_token(board.event)),
        401,
        "token_signature",
        id="bad-signature",
    ),
    pytest.param(
        posting_with(lambda board: unsigned_token(board.event)),
        401,
        "token_algorithm",
        id="alg-none",
    ),
    pytest.param(posting_with(token_for("superuser")), 401, "token_role", id="unknown-role"),
    pytest.param(
        posting_with(lambda board: make_token("attendee", "another-event")),
        403,
        "wrong_event",
        id="token-for-another-event",
    ),
    pytest.param(attendee_removes, 403, "role_required", id="attendee-removes"),
    pytest.param(
        moderator_of_another_event_removes,
        403,
        "wrong_event",
        id="moderator-of-another-event-removes",
    ),
    pytest.param(
        moderator_of_another_event_restores,
        403,
        "wrong_event",
        id="moderator-of-another-event-restores",
    ),
    pytest.param(attendee_creates_event, 403, "role_required", id="attendee-creates-event"),
    pytest.param(another_attendee_edits, 403, "not_author", id="another-attendee-edits"),
    pytest.param(author_edits_removed, 409, "not_published", id="author-edits-removed"),
]


@pytest.mark.parametrize(("attempt", "status", "code"), REFUSALS)
async def test_refused_writes_store_nothing(
    actors: Actors, attempt: Attempt, status: int, code: str
) -> None:
    seeded = await Seeded.on(actors)
    await refused(actors, lambda: attempt(seeded), status, code)


async def test_exactly_5000_emoji_are_accepted(actors: Actors) -> None:
    body = "😀" * 5000
    posted = await actors.post(body)
    assert posted["comment"]["body"] == body
    assert len(posted["comment"]["body"]) == 5000
    assert (await actors.page())["threads"][0]["comment"]["body"] == body


async def test_a_closed_session_refuses_posts(actors: Actors) -> None:
    seeded = await Seeded.on(actors)
    await actors.moderator.close(actors.slug)
    await refused(
        actors, lambda: actors.attendee.post(actors.slug, "too late"), 409, "session_closed"
    )
    await refused(
        actors,
        lambda: actors.attendee.post(actors.slug, "a late reply", parent_id=seeded.published),
        409,
        "session_closed",
    )


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        pytest.param({"state": "closed"}, "closed", id="created-closed"),
        pytest.param({"opens_at": iso(timedelta(hours=1))}, "open", id="not-open-yet"),
        pytest.param(
            {"opens_at": iso(timedelta(hours=-2)), "closes_at": iso(timedelta(hours=-1))},
            "open",
            id="window-over",
        ),
    ],
)
async def test_sessions_not_accepting_refuse_posts(
    server: InProcessServer, clients: Clients, fields: dict[str, str], state: str
) -> None:
    actors = await fresh(server, clients, **fields)
    session = await actors.session()
    assert (session["state"], session["accepting"]) == (state, False)
    await refused(
        actors, lambda: actors.attendee.post(actors.slug, "not now"), 409, "session_closed"
    )


# --- 6. Moderation -------------------------------------------------------------------------------


async def test_remove_is_idempotent_and_hides_a_comment_without_replies(actors: Actors) -> None:
    secret = f"secret-{nonce()}"
    kept = (await actors.post("this one stays"))["comment"]["id"]
    target = (await actors.post(f"please remove {secret}"))["comment"]["id"]
    assert (await actors.session())["total"] == 2

    removed = await moderate(actors, target, "remove")
    assert removed["changed"] is True and removed["seq"] == 3
    assert "Mod Mary" in removed["removed_by"] and removed["removed_at"]
    assert removed["comment"]["status"] == "removed"
    assert removed["comment"]["body"] is None and removed["comment"]["author"] is None
    session = await actors.session()
    assert (session["total"], session["head"]) == (1, 3)

    again = await moderate(actors, target, "remove")
    assert (again["changed"], again["seq"]) == (False, None)
    assert (again["removed_by"], again["removed_at"]) == (
        removed["removed_by"],
        removed["removed_at"],
    )
    assert (await actors.session())["head"] == 3

    response = await actors.reader.http.get(f"/v1/sessions/{actors.slug}/comments")
    assert secret not in response.text
    page = response.json()
    assert ids(t["comment"] for t in page["threads"]) == [kept]
    assert page["total"] == 1


async def test_a_removed_comment_with_replies_stays_as_a_placeholder(actors: Actors) -> None:
    secret = f"secret-{nonce()}"
    top = await actors.post(f"controversial {secret}")
    top_id = top["comment"]["id"]
    reply = (await actors.post("a reply", parent_id=top_id))["comment"]["id"]

    await moderate(actors, top_id, "remove")

    response = await actors.reader.http.get(f"/v1/sessions/{actors.slug}/comments")
    assert secret not in response.text
    thread = thread_of(response.json(), top_id)
    placeholder = thread["comment"]
    assert (placeholder["status"], placeholder["body"], placeholder["author"]) == (
        "removed",
        None,
        None,
    )
    assert ids(thread["replies"]) == [reply]
    assert thread["replies"][0]["body"] == "a reply"
    assert response.json()["total"] == 1
    replies = await actors.reader.http.get(f"/v1/comments/{top_id}/replies")
    assert secret not in replies.text

    restored = await moderate(actors, top_id, "restore")
    assert restored["changed"] is True
    assert restored["comment"]["body"] == top["comment"]["body"]
    assert restored["comment"]["status"] == "published"
    assert restored["comment"]["author"]["name"] == AUTHOR_CLAIMS["name"]
    page = await actors.page()
    assert page["total"] == 2
    assert thread_of(page, top_id)["comment"]["body"] == top["comment"]["body"]

    head = page["head"]
    unchanged = await moderate(actors, top_id, "restore")
    assert (unchanged["changed"], unchanged["seq"]) == (False, None)
    assert (await actors.session())["head"] == head


async def test_removing_a_reply_keeps_its_own_published_replies_visible(actors: Actors) -> None:
    top = (await actors.post("top"))["comment"]["id"]
    middle = (await actors.post("the middle reply", parent_id=top))["comment"]["id"]
    leaf = (await actors.post("a reply to the middle", parent_id=middle))["comment"]["id"]

    await moderate(actors, middle, "remove")

    page = await actors.page()
    assert page["total"] == 2
    thread = thread_of(page, top)
    assert ids(thread["replies"]) == [middle, leaf]
    assert thread["replies"][0]["status"] == "removed" and thread["replies"][0]["body"] is None
    assert thread["replies"][1]["body"] == "a reply to the middle"
    assert ids((await actors.reader.replies(top))["replies"]) == [middle, leaf]


async def test_removing_a_reply_lowers_its_parent_reply_count(actors: Actors) -> None:
    top = (await actors.post("top"))["comment"]["id"]
    first = (await actors.post("first reply", parent_id=top))["comment"]["id"]
    second = (await actors.post("second reply", parent_id=top))["comment"]["id"]

    await moderate(actors, first, "remove")

    page = await actors.page()
    thread = thread_of(page, top)
    assert thread["comment"]["reply_count"] == 1
    assert ids(thread["replies"]) == [second]
    assert page["total"] == 2


async def test_a_restored_reply_brings_the_placeholders_above_it(actors: Actors) -> None:
    top = (await actors.post("the thread"))["comment"]["id"]
    middle = (await actors.post("the middle reply", parent_id=top))["comment"]["id"]
    leaf = (await actors.post("a reply to the middle", parent_id=middle))["comment"]["id"]
    for cid in (leaf, middle, top):
        await moderate(actors, cid, "remove")
    page = await actors.page()
    assert page["threads"] == []  # nothing public beneath them: pages leave them out
    async with Feed(actors.board.url, actors.slug, since=page["head"]) as feed:
        await moderate(actors, leaf, "restore")
        event = await feed.next_event()
    assert (event["kind"], event["comment"]["id"]) == ("comment.restored", leaf)
    # The board never held the two removed comments above it: they come along, redacted.
    assert [p["id"] for p in event["parents"]] == [top, middle]
    assert all(p["body"] is None and p["author"] is None for p in event["parents"])
    assert [p["status"] for p in event["parents"]] == ["removed", "removed"]
    thread = thread_of(await actors.page(), top)
    assert ids([thread["comment"], *thread["replies"]]) == [top, middle, leaf]


# --- 7. Sessions ---------------------------------------------------------------------------------


async def test_open_and_close_are_idempotent(actors: Actors) -> None:
    opened = await actors.moderator.open(actors.slug)
    assert (opened["changed"], opened["seq"]) == (False, None)
    assert (await actors.session())["head"] == 0

    closed = await actors.moderator.close(actors.slug)
    assert (closed["changed"], closed["seq"]) == (True, 1)
    assert (closed["session"]["state"], closed["session"]["accepting"]) == ("closed", False)
    session = await actors.session()
    assert (session["state"], session["accepting"], session["head"]) == ("closed", False, 1)

    again = await actors.moderator.close(actors.slug)
    assert (again["changed"], again["seq"]) == (False, None)
    assert (await actors.session())["head"] == 1
    await refused(
        actors, lambda: actors.attendee.post(actors.slug, "closed?"), 409, "session_closed"
    )

    reopened = await actors.moderator.open(actors.slug)
    assert (reopened["changed"], reopened["seq"]) == (True, 2)
    assert reopened["session"]["accepting"] is True
    posted = await actors.post("open again")
    assert posted["seq"] == 3
    assert (await actors.session())["total"] == 1


async def test_a_moderator_of_another_event_cannot_close(actors: Actors) -> None:
    other = actors.role("moderator", "another-event")
    await refused(actors, lambda: other.close(actors.slug), 403, "wrong_event")
    await refused(actors, lambda: actors.attendee.close(actors.slug), 403, "role_required")


async def test_patch_changes_the_session_and_moves_the_head(actors: Actors) -> None:
    closes_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    change = await actors.moderator.update_session(
        actors.slug, title="A new title", prompt="A new prompt?", closes_at=closes_at.isoformat()
    )
    assert (change["changed"], change["seq"]) == (True, 1)
    session = await actors.session()
    assert (session["title"], session["prompt"], session["head"]) == (
        "A new title",
        "A new prompt?",
        1,
    )
    assert datetime.fromisoformat(session["closes_at"]) == closes_at
    assert session["accepting"] is True
    assert change["session"]["title"] == "A new title"

    same = await actors.moderator.update_session(actors.slug, title="A new title")
    assert (same["changed"], same["seq"]) == (False, None)
    assert (await actors.session())["head"] == 1  # a patch that changes nothing writes nothing


async def test_patch_with_opens_at_after_closes_at_is_refused(actors: Actors) -> None:
    patch = {"opens_at": iso(timedelta(days=3)), "closes_at": iso(timedelta(days=2))}
    await refused(
        actors, lambda: actors.moderator.update_session(actors.slug, **patch), 400, "bad_window"
    )
    await actors.moderator.update_session(actors.slug, closes_at=iso(timedelta(days=1)))
    await refused(
        actors,
        lambda: actors.moderator.update_session(actors.slug, opens_at=iso(timedelta(days=2))),
        400,
        "bad_window",
    )


async def test_patch_refuses_bad_fields(actors: Actors) -> None:
    await refused(actors, lambda: actors.moderator.update_session(actors.slug), 400, "empty_patch")
    await refused(
        actors, lambda: actors.moderator.update_session(actors.slug, title=""), 400, "invalid_field"
    )
    await refused(
        actors,
        lambda: actors.moderator.update_session(actors.slug, state="closed"),
        400,
        "invalid_field",
    )


async def test_an_event_lists_its_sessions(actors: Actors) -> None:
    second = f"se-{uuid.uuid4().hex[:10]}"
    created = await call(
        actors.admin,
        "POST",
        f"/v1/events/{actors.board.event}/sessions",
        201,
        json={"slug": second, "title": "Second session", "state": "closed"},
    )
    assert (created["slug"], created["state"], created["accepting"]) == (second, "closed", False)
    event = await call(actors.reader, "GET", f"/v1/events/{actors.board.event}", 200)
    assert event["slug"] == actors.board.event
    assert event["sessions"] == [actors.slug, second]
    await expect_error(
        actors.reader.request("GET", "/v1/events/no-such-event"), 404, "unknown_event"
    )


async def test_duplicate_and_malformed_slugs_are_refused(actors: Actors) -> None:
    admin = actors.admin
    await expect_error(admin.create_event(actors.board.event, "Again"), 409, "event_exists")
    await expect_error(
        admin.create_session(actors.board.event, actors.slug, "Again"), 409, "session_exists"
    )
    for bad in ("Upper-Case", "with spaces", "-leading-dash", "x" * 65, ""):
        await expect_error(admin.create_event(bad, "Bad slug"), 400, "invalid_field")
        await expect_error(
            admin.create_session(actors.board.event, bad, "Bad slug"), 400, "invalid_field"
        )
    event = await call(actors.reader, "GET", f"/v1/events/{actors.board.event}", 200)
    assert event["sessions"] == [actors.slug]


async def test_an_attendee_cannot_create_events_or_sessions(actors: Actors) -> None:
    slug = f"ev-{uuid.uuid4().hex[:10]}"
    wildcard = actors.token(make_token("attendee", "*"))
    await expect_error(wildcard.create_event(slug, "Nope"), 403, "role_required")
    await expect_error(actors.reader.request("GET", f"/v1/events/{slug}"), 404, "unknown_event")
    await expect_error(
        actors.attendee.create_session(actors.board.event, f"se-{slug}", "Nope"),
        403,
        "role_required",
    )
    await expect_error(actors.reader.create_event(slug, "Nope"), 401, "token_missing")


async def test_a_session_window_must_be_ordered_at_creation(actors: Actors) -> None:
    window = {"opens_at": iso(timedelta(hours=2)), "closes_at": iso(timedelta(hours=1))}
    slug = f"se-{uuid.uuid4().hex[:10]}"
    await expect_error(
        actors.admin.create_session(actors.board.event, slug, "Bad", **window), 400, "bad_window"
    )
    await expect_error(actors.reader.session(slug), 404, "unknown_session")


# --- 8. Editing ----------------------------------------------------------------------------------


async def test_the_author_can_edit(actors: Actors) -> None:
    author = actors.role("attendee", sub=f"author-{uuid.uuid4().hex}", name="Edith")
    posted = await post(author, actors.slug, "first draft")
    cid = posted["comment"]["id"]

    edited = await call(author, "PATCH", f"/v1/comments/{cid}", 200, json={"body": " final text "})

    assert edited["seq"] == 2
    assert edited["comment"]["body"] == "final text"
    assert edited["comment"]["edited_at"] is not None
    assert edited["comment"]["number"] == posted["comment"]["number"]
    session = await actors.session()
    assert (session["head"], session["total"]) == (2, 1)
    assert (await actors.page())["threads"][0]["comment"]["body"] == "final text"

    same = await author.edit(cid, "final text")
    assert same["seq"] is None
    assert (await actors.session())["head"] == 2


async def test_edits_by_others_and_of_removed_comments_are_refused(actors: Actors) -> None:
    author = actors.role("attendee", sub=f"author-{uuid.uuid4().hex}")
    cid = (await post(author, actors.slug, "my words"))["comment"]["id"]
    await refused(actors, lambda: actors.attendee.edit(cid, "your words"), 403, "not_author")
    await refused(actors, lambda: actors.moderator.edit(cid, "moderated words"), 403, "not_author")
    await moderate(actors, cid, "remove")
    await refused(actors, lambda: author.edit(cid, "sneaky"), 409, "not_published")
    await refused(actors, lambda: author.edit(cid, "   "), 400, "body_empty")
    await expect_error(author.edit(10**15, "ghost"), 404, "unknown_comment")


# --- 9. Service routes ---------------------------------------------------------------------------


async def test_openapi_describes_every_http_route(actors: Actors) -> None:
    response = await actors.reader.http.get("/openapi.json")
    assert response.status_code == 200
    document = json.loads(response.text)
    assert document["openapi"] == "3.1.0"
    missing = [
        f"{method} {route.path}"
        for route in routes()
        if isinstance(route, Route)
        for method in sorted((route.methods or set()) - {"HEAD"})
        if method.lower() not in document["paths"].get(route.path, {})
    ]
    assert missing == [], f"/openapi.json does not describe: {missing}"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/no-such-route", 404, "not_found"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
        ("GET", "/v1/comments/abc/replies", 400, "bad_comment_id"),
        ("GET", "/v1/comments/999999999999999/replies", 404, "unknown_comment"),
        ("GET", "/v1/sessions/no-such-session", 404, "unknown_session"),
        ("GET", "/v1/sessions/no-such-session/comments", 404, "unknown_session"),
    ],
)
async def test_unknown_things_answer_json_errors(
    actors: Actors, method: str, path: str, status: int, code: str
) -> None:
    response = await actors.reader.http.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


async def test_health_and_readiness(actors: Actors, server: InProcessServer) -> None:
    for path in ("/healthz", "/readyz"):
        response = await actors.reader.http.get(path)
        assert response.status_code == 200
        assert response.json()["server"] == server.settings.name
        assert response.headers[SERVER_HEADER] == server.settings.name


async def test_every_response_names_the_server(actors: Actors, server: InProcessServer) -> None:
    big = json.dumps({"body": "a" * 70_000})
    requests = [
        ("GET", "/healthz", None),
        ("GET", "/readyz", None),
        ("GET", "/openapi.json", None),
        ("GET", "/nowhere", None),
        ("DELETE", "/readyz", None),
        ("GET", f"/v1/sessions/{actors.slug}", None),
        ("GET", f"/v1/sessions/{actors.slug}/comments", None),
        ("POST", f"/v1/sessions/{actors.slug}/comments", '{"body": "hi"}'),
        ("POST", f"/v1/sessions/{actors.slug}/comments", big),
    ]
    headers = {"authorization": actors.attendee.http.headers["authorization"]}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        for method, path, content in requests:
            response = await http.request(method, path, content=content)
            assert response.headers.get(SERVER_HEADER) == server.settings.name, (method, path)
