"""The HTTP API (JSON). Handlers are thin: parse, check the caller, call the store, publish what
changed, answer. ``docs/protocol.md`` documents each route; ``/openapi.json`` describes them."""

from __future__ import annotations

import csv
import io
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .auth import Identity, issue_token
from .bus import moderators_topic, user_topic
from .errors import (
    BackchannelError,
    BadRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)
from .moderation import screen
from .protocol import (
    AuditEntry,
    BulkReview,
    CommentEdit,
    CommentView,
    DemoIdentity,
    EventRules,
    Health,
    MarkChange,
    ModeratorAction,
    NewComment,
    NewEvent,
    NewSession,
    Queue,
    ReviewResult,
    SessionPatch,
    encode,
)
from .services import Services, dev_tokens, signing_keys
from .storage import SessionRecord, comment_view
from .text import TextError, clean_body

T = TypeVar("T")
MAX_REQUEST_BYTES = 64 * 1024


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)


def error_response(exc: BackchannelError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Unavailable) else None
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
    if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
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
        return msgspec.json.decode(bytes(body), type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest("invalid_field", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise BadRequest("invalid_json", f"the request body is not valid JSON: {exc}") from None


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
    if not text.isdigit() or len(text) > 19 or int(text) > maximum:
        raise BadRequest(f"bad_{name}", f"{name} must be a positive integer, got {text[:40]!r}")
    return int(text)


def comment_id(request: Request) -> int:
    value = int_param(request, "comment_id")
    assert value is not None
    return value


async def session_of(request: Request) -> SessionRecord:
    return await services(request).store.session(request.path_params["slug"])


# --- Events and sessions -------------------------------------------------------------------------


async def create_event(request: Request) -> Response:
    who = caller(request)
    new = await read_json(request, NewEvent)
    who.require("admin", new.slug)
    return JSONResponse(await services(request).store.create_event(new.slug, new.title), 201)


async def get_event(request: Request) -> Response:
    return JSONResponse(await services(request).store.event(request.path_params["event"]))


async def create_session(request: Request) -> Response:
    who = caller(request)
    event = request.path_params["event"]
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
    change, event = await services(request).store.update_session(session, patch)
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
    settings = services(request).settings
    page = await services(request).store.page(
        session,
        before=before,
        after=after,
        limit=settings.page_size,
        replies=settings.replies_per_thread,
    )
    return JSONResponse(page)


async def list_replies(request: Request) -> Response:
    root = comment_id(request)
    store = services(request).store
    session = await store.comment_session(root)
    after = int_param(request, "after", source="query")
    page = await store.replies(session, root, after, services(request).settings.replies_per_thread)
    return JSONResponse(page)


async def post_comment(request: Request) -> Response:
    who = caller(request)
    session = await session_of(request)
    who.require("attendee", session.event_slug)
    new = await read_json(request, NewComment)
    body = body_text(new.body)
    hold = screen(session, body)
    result, event = await services(request).store.post(
        session, who, body, new.parent_id, new.client_key, question=new.question, hold=hold
    )
    await publish(request, session, event)
    if hold is not None and result.created:
        await tell_held(request, session, who.sub, result.comment, result.support_message)
    return JSONResponse(result, 201 if result.created else 200)


async def comment_target(request: Request, role: str) -> tuple[Identity, int, SessionRecord]:
    """The caller, the comment in the path, and its session, once the caller's role is checked."""
    who = caller(request)
    cid = comment_id(request)
    session = await services(request).store.comment_session(cid)
    who.require(role, session.event_slug)
    return who, cid, session


async def publish(request: Request, session: SessionRecord, event: bytes | None) -> None:
    if event is not None:
        await services(request).hub.publish_session(session.id, event)


async def edit_comment(request: Request) -> Response:
    who, cid, session = await comment_target(request, "attendee")
    edit = await read_json(request, CommentEdit)
    body = body_text(edit.body)
    hold = screen(session, body, edit=True)
    result, event = await services(request).store.edit(session, cid, who, body, hold)
    await publish(request, session, event)
    if hold is not None and result.changed:
        await tell_held(request, session, who.sub, result.comment, None)
    return JSONResponse(result)


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


async def moderate_comment(request: Request) -> Response:
    who, cid, session = await comment_target(request, "moderator")
    status = "removed" if request.url.path.endswith("/remove") else "published"
    reason = await action_reason(request)
    store = services(request).store
    result, event, author = await store.set_status(session, cid, status, who, reason)
    if event is not None:
        hub = services(request).hub
        await hub.publish_session(session.id, event)
        notice = {
            "type": "notice",
            "kind": "comment." + ("removed" if status == "removed" else "restored"),
            "session": session.slug,
            "comment_id": cid,
        }
        await hub.publish_private(user_topic(author), encode(notice))
    return JSONResponse(result)


async def tell_held(
    request: Request,
    session: SessionRecord,
    author: str,
    comment: CommentView,
    support_message: str | None,
) -> None:
    """A held post is seen only by its author ("awaiting review", with the support message for
    a crisis) and by the event's moderators (a queue item), each on their own channel."""
    hub = services(request).hub
    notice = {"type": "notice", "kind": "comment.held", "session": session.slug,
              "comment": comment, "support_message": support_message}  # fmt: skip
    await hub.publish_private(user_topic(author), encode(notice))
    item = {"type": "queue", "kind": "held", "session": session.slug, "comment": comment}
    await hub.publish_private(moderators_topic(session.event_slug), encode(item))


async def review_comment(request: Request) -> Response:
    who, cid, session = await comment_target(request, "moderator")
    approve = request.url.path.endswith("/approve")
    result = await review(request, session, cid, approve, who, await action_reason(request))
    return JSONResponse(result)


async def review(
    request: Request,
    session: SessionRecord,
    cid: int,
    approve: bool,
    who: Identity,
    reason: str,
) -> ReviewResult:
    """Approve or reject one held post; publish what changed; tell its author and the other
    moderators."""
    svc = services(request)
    result, event, author = await svc.store.review(session, cid, approve, who, reason)
    await publish(request, session, event)
    if result.changed:
        kind = "comment.approved" if approve else "comment.rejected"
        notice = {"type": "notice", "kind": kind, "session": session.slug,
                  "comment_id": cid, "reason": reason}  # fmt: skip
        await svc.hub.publish_private(user_topic(author), encode(notice))
        item = {"type": "queue", "kind": "reviewed", "session": session.slug, "comment_id": cid,
                "status": result.comment.status, "reviewed_by": result.reviewed_by}  # fmt: skip
        await svc.hub.publish_private(moderators_topic(session.event_slug), encode(item))
    return result


async def review_many(request: Request) -> Response:
    """Approve or reject many held posts of the event at once, in the order given."""
    event = request.path_params["event"]
    who = caller(request)
    who.require("moderator", event)
    bulk = await read_json(request, BulkReview)
    approve = request.url.path.endswith("/approve")
    store = services(request).store
    results = []
    for cid in bulk.ids:
        session = await store.comment_session(cid)
        if session.event_slug != event:
            raise BadRequest("bad_comment_id", f"comment {cid} is not in event {event!r}")
        results.append(await review(request, session, cid, approve, who, bulk.reason))
    return JSONResponse(results)


async def review_queue(request: Request) -> Response:
    event = request.path_params["event"]
    caller(request).require("moderator", event)
    held = await services(request).store.queue(event)
    items = [comment_view(row, slug, redact=False) for slug, row in held]
    return JSONResponse(Queue(event=event, items=items))


async def get_event_rules(request: Request) -> Response:
    event = request.path_params["event"]
    caller(request).require("moderator", event)
    return JSONResponse(await services(request).store.event_rules(event))


async def set_event_rules(request: Request) -> Response:
    event = request.path_params["event"]
    who = caller(request)
    who.require("moderator", event)
    rules = await read_json(request, EventRules)
    return JSONResponse(await services(request).store.set_event_rules(event, rules, who))


async def delete_comment(request: Request) -> Response:
    who, cid, session = await comment_target(request, "attendee")
    result, event = await services(request).store.delete(session, cid, who)
    await publish(request, session, event)
    return JSONResponse(result)


async def audit_log(request: Request) -> Response:
    """Every moderator action in the event, as JSON or (``?format=csv``) CSV."""
    event = request.path_params["event"]
    caller(request).require("moderator", event)
    log = await services(request).store.audit_log(event)
    if request.query_params.get("format") == "csv":
        rows = [msgspec.structs.asdict(e) for e in log.entries]
        return csv_response(f"{event}-audit.csv", AUDIT_COLUMNS, rows)
    return JSONResponse(log)


async def export_session(request: Request) -> Response:
    """The session's comments, oldest first, as JSON or (``?format=csv``) CSV."""
    who = caller(request)
    session = await session_of(request)
    who.require("moderator", session.event_slug)
    comments = await services(request).store.export(session)
    if request.query_params.get("format") == "csv":
        return csv_response(
            f"{session.slug}.csv", EXPORT_COLUMNS, [export_row(c) for c in comments]
        )
    return JSONResponse({"session": session.view(), "comments": comments})


def spreadsheet_safe(value: object) -> object:
    """A cell that a spreadsheet will not run as a formula (CSV injection): text starting with
    ``= + - @`` or a tab or carriage return gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_row(comment: CommentView) -> dict[str, object]:
    row = msgspec.structs.asdict(comment)
    author = row.pop("author")
    for name in ("name", "profession", "city", "region", "country"):
        row[f"author_{name}"] = getattr(author, name) if author is not None else ""
    return row


AUDIT_COLUMNS = [f.name for f in msgspec.structs.fields(AuditEntry)]
EXPORT_COLUMNS = [f.name for f in msgspec.structs.fields(CommentView) if f.name != "author"] + [
    f"author_{name}" for name in ("name", "profession", "city", "region", "country")
]


def csv_response(filename: str, columns: list[str], rows: list[dict[str, object]]) -> Response:
    """A CSV download with a header row (also when there are no rows)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


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


# --- Health --------------------------------------------------------------------------------------


async def live(request: Request) -> Response:
    return JSONResponse(Health(status="ok", server=services(request).settings.name))


async def ready(request: Request) -> Response:
    svc = services(request)
    await svc.store.ping()
    if not svc.hub.bus.healthy:
        raise Unavailable("bus_unavailable", "redis is unreachable")
    return JSONResponse(Health(status="ready", server=svc.settings.name))
