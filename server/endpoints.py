"""The HTTP API (JSON). Handlers are thin: parse, check the caller, call the store, publish what
changed, answer. ``docs/protocol.md`` documents each route; ``/openapi.json`` describes them."""

from __future__ import annotations

import re
import time
from functools import partial
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from . import logs
from .auth import Identity, issue_token
from .errors import (
    BackchannelError,
    BadRequest,
    NotFound,
    PayloadTooLarge,
    SessionChanged,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from .moderation import admit, check_sanctions, screen
from .protocol import (
    SLUG_PATTERN,
    BusySession,
    BusySessions,
    CommentEdit,
    CommentView,
    DemoIdentity,
    Health,
    MarkChange,
    ModeratorAction,
    NewComment,
    NewEvent,
    NewSession,
    SessionPatch,
    encode,
)
from .services import Services, dev_tokens, signing_keys
from .storage import Hold, SessionRecord
from .text import TextError, clean_body

T = TypeVar("T")
MAX_REQUEST_BYTES = 64 * 1024
SLUG = re.compile(SLUG_PATTERN)
# Fields that text.clean_body cleans (control characters dropped, bad Unicode refused by name).
CLEANED = frozenset({"body"})


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)


class EncodedJSON(Response):
    """JSON encoded already (a kept page)."""

    media_type = "application/json"


def error_response(exc: BackchannelError) -> JSONResponse:
    retry = exc.retry_after
    headers = {"Retry-After": str(retry)} if retry is not None else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def caller(request: Request) -> Identity:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("token_missing", "this needs a token: Authorization: Bearer <token>")
    return services(request).verifier.verify(token.strip())


async def action_reason(request: Request) -> str:
    """The optional ``{"reason": ...}`` of a moderator's action (an empty body is fine)."""
    if request.headers.get("content-length") in (None, "0"):
        return ""
    return (await read_json(request, ModeratorAction)).reason


async def read_json(request: Request, kind: type[T]) -> T:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() \
            and int(declared) > MAX_REQUEST_BYTES:  # fmt: skip
        raise PayloadTooLarge(
            "request_too_large", f"requests are limited to {MAX_REQUEST_BYTES} bytes"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            raise PayloadTooLarge(
                "request_too_large", f"requests are limited to {MAX_REQUEST_BYTES} bytes"
            )
    try:
        value = msgspec.json.decode(bytes(body), type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest("invalid_field", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise BadRequest("invalid_json", f"the request body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise BadRequest("invalid_json", "the request body is not valid UTF-8") from None
    check_storable(value, "$")
    return value


def check_storable(value: object, where: str) -> None:
    """400 ``invalid_field`` for text no database stores: NUL characters or lone surrogates
    (JSON can carry both as escapes), anywhere in a request body."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest("invalid_field", f"{where} contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("invalid_field", f"{where} contains a lone surrogate") from None
    elif isinstance(value, msgspec.Struct):
        # The names only: msgspec.structs.fields() evaluates the annotations on every call.
        for name in value.__struct_fields__:
            if name not in CLEANED:
                check_storable(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_storable(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, where)
            check_storable(item, f"{where}.{key}")


def path_slug(request: Request, name: str) -> str:
    """A slug of the path, or 404: what no slug can be never reaches the database."""
    value: str = request.path_params[name]
    if not SLUG.match(value):
        kind = "session" if name == "slug" else "event"
        raise NotFound(f"unknown_{kind}", f"no {kind} has slug {value[:80]!r}")
    return value


def body_text(body: str) -> str:
    try:
        return clean_body(body)
    except TextError as exc:
        raise BadRequest(exc.code, str(exc)) from None


def int_param(
    request: Request, name: str, *, source: str = "path", maximum: int = 2**63 - 1
) -> int | None:
    raw = (request.path_params if source == "path" else request.query_params).get(name)
    if raw is None or raw == "":
        return None
    text = str(raw)
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > maximum:
        raise BadRequest(f"bad_{name}", f"{name} must be a positive integer, got {text[:40]!r}")
    return int(text)


def comment_id(request: Request) -> int:
    value = int_param(request, "comment_id")
    assert value is not None
    return value


def limit_address(request: Request) -> None:
    """429 ``rate_limited`` when the client's address posts faster than its limit."""
    address = request.client.host if request.client else ""
    retry = services(request).address_posts.take(address)
    if retry is not None:
        raise TooManyRequests(
            "rate_limited",
            f"too many requests from your address; retry in {retry} s",
            retry_after=retry,
        )


async def session_of(request: Request, *, recent: bool = False) -> SessionRecord:
    """The session in the path; with ``recent``, perhaps as read a moment ago (for posting)."""
    session = await services(request).store.session(path_slug(request, "slug"), recent=recent)
    logs.session.set(session.slug)
    return session


# --- Events and sessions -------------------------------------------------------------------------


async def create_event(request: Request) -> Response:
    who = caller(request)
    new = await read_json(request, NewEvent)
    who.require("admin", new.slug)
    return JSONResponse(await services(request).store.create_event(new.slug, new.title), 201)


async def get_event(request: Request) -> Response:
    return JSONResponse(await services(request).store.event(path_slug(request, "event")))


async def create_session(request: Request) -> Response:
    who = caller(request)
    event = path_slug(request, "event")
    who.require("admin", event)
    new = await read_json(request, NewSession)
    session = await services(request).store.create_session(event, new)
    return JSONResponse(session.view(), 201)


async def get_session(request: Request) -> Response:
    return JSONResponse((await session_of(request)).view())


async def update_session(request: Request) -> Response:
    who = caller(request)
    session = await session_of(request)
    who.require("moderator", session.event_slug)
    patch = await read_json(request, SessionPatch)
    change, event = await services(request).store.update_session(session, patch, who)
    await publish(request, session, event)
    return JSONResponse(change)


async def set_session_state(request: Request) -> Response:
    who = caller(request)
    session = await session_of(request)
    who.require("moderator", session.event_slug)
    state = "open" if request.url.path.endswith("/open") else "closed"
    reason = await action_reason(request)
    change, event = await services(request).store.set_state(session, state, who, reason)
    await publish(request, session, event)
    return JSONResponse(change)


# --- Comments ------------------------------------------------------------------------------------


async def list_comments(request: Request) -> Response:
    session = await session_of(request)
    # Cursors are top-level numbers (32-bit in the schema).
    before = int_param(request, "before", source="query", maximum=2**31 - 1)
    after = int_param(request, "after", source="query", maximum=2**31 - 1)
    if before is not None and after is not None:
        raise BadRequest("bad_cursor", "give before or after, not both")
    svc = services(request)

    async def read() -> tuple[int, bytes]:
        page = await svc.store.page(
            session,
            before=before,
            after=after,
            limit=svc.settings.page_size,
            replies=svc.settings.replies_per_thread,
        )
        return page.head, encode(page)

    key = ("page", session.id, before, after)
    return EncodedJSON(await svc.pages.get(key, session.last_seq, read))


async def list_replies(request: Request) -> Response:
    root = comment_id(request)
    svc = services(request)
    session = await svc.store.comment_session(root)
    after = int_param(request, "after", source="query")

    async def read() -> tuple[int, bytes]:
        # Read after the session was: it shows at least what the session's head says.
        page = await svc.store.replies(session, root, after, svc.settings.replies_per_thread)
        return session.last_seq, encode(page)

    key = ("replies", session.id, root, after)
    return EncodedJSON(await svc.pages.get(key, session.last_seq, read))


# Times a post is judged when its session's settings keep changing under it (SessionChanged).
POST_ATTEMPTS = 3


async def post_comment(request: Request) -> Response:
    started = time.perf_counter()
    try:
        return await _post_comment(request)
    finally:
        services(request).metrics.post_seconds.observe(time.perf_counter() - started)


async def _post_comment(request: Request) -> Response:
    limit_address(request)
    settings = services(request).settings
    who = caller(request)
    session = await session_of(request, recent=True)
    who.require("attendee", session.event_slug)
    new = await read_json(request, NewComment)
    body = body_text(new.body)
    for attempt in range(1, POST_ATTEMPTS + 1):
        hold = screen(session, body)
        try:
            result, event = await services(request).store.post(
                session, who, body, new.parent_id, new.client_key, question=new.question,
                hold=hold, admit=partial(
                    admit, session=session, who=who, hold=hold, per_minute=settings.posts_per_minute
                ),
            )  # fmt: skip
            break
        except SessionChanged:
            if attempt == POST_ATTEMPTS:
                raise
            session = await session_of(request)  # afresh, and kept for the next posts
    await publish(request, session, event)
    if result.created and result.comment.status == "held":
        await tell_held(request, session, who.sub, result.comment, result.support_message)
    return JSONResponse(result, 201 if result.created else 200)


async def comment_target(request: Request, role: str) -> tuple[Identity, int, SessionRecord]:
    """The caller, the comment in the path, and its session, once the caller's role is checked."""
    who = caller(request)
    cid = comment_id(request)
    session = await services(request).store.comment_session(cid)
    logs.session.set(session.slug)
    who.require(role, session.event_slug)
    return who, cid, session


async def publish(request: Request, session: SessionRecord, event: bytes | None) -> None:
    if event is not None:
        await services(request).hub.publish_session(session.id, event)


async def edit_comment(request: Request) -> Response:
    limit_address(request)
    who, cid, session = await comment_target(request, "attendee")
    edit = await read_json(request, CommentEdit)
    body = body_text(edit.body)
    hold = screen(session, body, edit=True)
    store = services(request).store
    standing = await store.standing_of(session, who)
    check_sanctions(standing)
    if hold is None and standing is not None and standing.flagged:
        hold = Hold("flagged")  # a flagged author's edit waits for review, as their posts do
    result, event = await store.edit(session, cid, who, body, hold)
    await publish(request, session, event)
    if hold is not None and result.changed:
        await tell_held(request, session, who.sub, result.comment, None)
    return JSONResponse(result)


async def tell_held(
    request: Request,
    session: SessionRecord,
    author: str,
    comment: CommentView,
    support_message: str | None,
) -> None:
    svc = services(request)
    item = await svc.store.queue_item(comment.id)
    await svc.notices.held(session, author, comment, item, support_message)


async def mark_comment(request: Request) -> Response:
    _, cid, session = await comment_target(request, "presenter")
    change = await read_json(request, MarkChange)
    result, event = await services(request).store.mark(session, cid, change.mark, change.on)
    await publish(request, session, event)
    return JSONResponse(result)


async def mark_helpful(request: Request) -> Response:
    who, cid, session = await comment_target(request, "attendee")
    result = await services(request).store.mark_helpful(session, cid, who)
    if result.marked:
        services(request).tally.moved(session, cid)
    return JSONResponse(result)


async def locate_comment(request: Request) -> Response:
    store = services(request).store
    return JSONResponse(
        await store.locate(comment_id(request), services(request).settings.page_size)
    )


async def delete_comment(request: Request) -> Response:
    who, cid, session = await comment_target(request, "attendee")
    result, event = await services(request).store.delete(session, cid, who)
    await publish(request, session, event)
    return JSONResponse(result)


async def dev_token(request: Request) -> Response:
    """A token for the demo: any name, profession, place and role (see ``dev_tokens``)."""
    svc = services(request)
    if not dev_tokens(svc.settings):
        raise NotFound("not_found", "tokens are handed out only by a demo (DEMO=true) server")
    claims = await read_json(request, DemoIdentity)
    token = issue_token(
        signing_keys(svc.settings),
        issuer=svc.settings.jwt_issuer,
        audience=svc.settings.jwt_audience,
        ttl=claims.ttl,
        sub=claims.sub,
        name=claims.name,
        profession=claims.profession,
        city=claims.city,
        region=claims.region,
        country=claims.country,
        role=claims.role,
        event="*",
    )
    return JSONResponse({"token": token})


# --- Operations ---------------------------------------------------------------------------------


async def busiest_sessions(request: Request) -> Response:
    """The sessions this process serves, busiest first (``?limit=``, at most 200)."""
    caller(request).require("admin", "*")
    limit = int_param(request, "limit", source="query", maximum=200) or 20
    svc = services(request)
    busy = [
        BusySession(
            slug=c.session.slug,
            event=c.session.event_slug,
            watching=max(c.watching, len(c.watchers)),
            here=len(c.watchers),
        )
        for c in svc.hub.session_channels()
    ]
    busy.sort(key=lambda b: (-b.watching, b.slug))
    return JSONResponse(BusySessions(server=svc.settings.name, sessions=busy[:limit]))


# --- Health --------------------------------------------------------------------------------------


async def live(request: Request) -> Response:
    return JSONResponse(Health(status="ok", server=services(request).settings.name))


async def ready(request: Request) -> Response:
    svc = services(request)
    await svc.store.ping()
    if not svc.hub.bus.healthy:
        raise Unavailable("bus_unavailable", "redis is unreachable")
    return JSONResponse(Health(status="ready", server=svc.settings.name))
