"""The HTTP API of moderation (JSON): removing and restoring, the review queue, attendees'
reports, sanctions on authors, the event's rules, the audit log and the session export. Thin
like ``endpoints.py``, whose helpers they share; private messages go through ``notices.py``."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .auth import Identity
from .endpoints import (
    JSONResponse,
    action_reason,
    caller,
    comment_target,
    int_param,
    limit_address,
    path_slug,
    publish,
    read_json,
    services,
    session_of,
)
from .errors import BadRequest
from .moderation import check_sanctions
from .protocol import (
    BulkReview,
    EventRules,
    LiftResult,
    MyPending,
    NewReport,
    NewSanction,
    Queue,
    ReviewResult,
    Sanctions,
)
from .storage import SessionRecord
from .transfer import AUDIT_COLUMNS, EXPORT_COLUMNS, csv_text, export_body, export_row


def event_moderator(request: Request) -> tuple[str, Identity]:
    """The event in the path, and the caller, once they are known to moderate it."""
    event = path_slug(request, "event")
    who = caller(request)
    who.require("moderator", event)
    return event, who


# --- Removing and restoring ----------------------------------------------------------------------


async def moderate_comment(request: Request) -> Response:
    who, cid, session = await comment_target(request, "moderator")
    status = "removed" if request.url.path.endswith("/remove") else "published"
    reason = await action_reason(request)
    svc = services(request)
    result, event, author = await svc.store.set_status(session, cid, status, who, reason)
    if event is not None:
        await svc.hub.publish_session(session.id, event)
        kind = "comment." + ("removed" if status == "removed" else "restored")
        await svc.notices.to_author(author, kind, session.slug, comment_id=cid)
        if status == "removed":  # a reported comment leaves the queue
            await svc.notices.reviewed(
                session.event_slug, session.slug, cid, status, result.removed_by
            )
    return JSONResponse(result)


# --- The review queue ----------------------------------------------------------------------------


async def review_queue(request: Request) -> Response:
    event, _ = event_moderator(request)
    return JSONResponse(Queue(event=event, items=await services(request).store.queue(event)))


async def my_pending(request: Request) -> Response:
    """The caller's own posts in the session that others do not see (held, rejected)."""
    who = caller(request)
    session = await session_of(request)
    who.require("attendee", session.event_slug)
    items = await services(request).store.pending(session, who)
    crisis = any(c.status == "held" and c.hold_reason == "crisis" for c in items)
    support = session.support_message if crisis and session.support_message else None
    return JSONResponse(MyPending(session=session.slug, items=items, support_message=support))


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
    """Decide one queue item; publish what changed; tell its author and the other moderators."""
    svc = services(request)
    result, event, author = await svc.store.review(session, cid, approve, who, reason)
    await publish(request, session, event)
    if result.changed:
        status = result.comment.status
        if status == "published" and event is not None:  # a held post approved
            await svc.notices.to_author(
                author, "comment.approved", session.slug, comment_id=cid, reason=reason
            )
        elif status == "rejected":
            await svc.notices.to_author(
                author, "comment.rejected", session.slug, comment_id=cid, reason=reason
            )
        elif status == "removed":  # a reported comment removed
            await svc.notices.to_author(author, "comment.removed", session.slug, comment_id=cid)
        await svc.notices.reviewed(
            session.event_slug, session.slug, cid, status, result.reviewed_by
        )
    return result


async def review_many(request: Request) -> Response:
    """Approve or reject many queue items of the event at once, in the order given."""
    event, who = event_moderator(request)
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


# --- Reports -------------------------------------------------------------------------------------


async def report_comment(request: Request) -> Response:
    """An attendee reports a published comment; enough reports hold it for review."""
    limit_address(request)
    who, cid, session = await comment_target(request, "attendee")
    report = await read_json(request, NewReport)
    svc = services(request)
    check_sanctions(await svc.store.standing_of(session, who))
    result, event, author = await svc.store.report(session, cid, who, report.reason, report.detail)
    await publish(request, session, event)
    if result.reported:
        item = await svc.store.queue_item(cid)
        if result.held:
            await svc.notices.held(session, author, item.comment, item, None)
        else:
            await svc.notices.to_moderators(session.event_slug, "reported", session.slug, item=item)
    return JSONResponse(result, 201 if result.reported else 200)


# --- Sanctions -----------------------------------------------------------------------------------


def author_id(request: Request) -> int:
    value = int_param(request, "author_id")
    assert value is not None
    return value


async def sanction_author(request: Request) -> Response:
    """Flag, time out or ban an author in the event; their open boards are told at once."""
    event, who = event_moderator(request)
    new = await read_json(request, NewSanction)
    if new.kind != "timeout" and new.minutes is not None:
        raise BadRequest("bad_minutes", f"minutes applies to a timeout, not to a {new.kind}")
    svc = services(request)
    outcome = await svc.store.sanction(event, author_id(request), new, who)
    for session, change in outcome.events:
        await svc.hub.publish_session(session.id, change)
    by = f"{who.name or 'moderator'} ({who.sub})"
    for slug, cid, status in outcome.dropped:
        await svc.notices.reviewed(event, slug, cid, status, by)
    if new.kind != "flag":
        await svc.notices.sanctioned(outcome.author_sub, outcome.result.sanction)
    return JSONResponse(outcome.result, 201)


async def lift_sanctions(request: Request) -> Response:
    event, who = event_moderator(request)
    svc = services(request)
    lifted, sub = await svc.store.lift(event, author_id(request), who)
    if set(lifted) - {"flag"}:  # the author was never told of a flag
        await svc.notices.reinstated(sub, event)
    return JSONResponse(LiftResult(lifted=len(lifted)))


async def list_sanctions(request: Request) -> Response:
    event, _ = event_moderator(request)
    items = await services(request).store.sanctions(event)
    return JSONResponse(Sanctions(event=event, items=items))


# --- The event's rules ---------------------------------------------------------------------------


async def get_event_rules(request: Request) -> Response:
    event, _ = event_moderator(request)
    return JSONResponse(await services(request).store.event_rules(event))


async def set_event_rules(request: Request) -> Response:
    event, who = event_moderator(request)
    rules = await read_json(request, EventRules)
    return JSONResponse(await services(request).store.set_event_rules(event, rules, who))


# --- Audit and export ----------------------------------------------------------------------------


async def audit_log(request: Request) -> Response:
    """Every moderator action in the event, as JSON or (``?format=csv``) CSV."""
    event, _ = event_moderator(request)
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
    return JSONResponse(export_body(session.view(), comments))


def csv_response(filename: str, columns: list[str], rows: list[dict[str, object]]) -> Response:
    """A CSV download with a header row (also when there are no rows)."""
    return Response(
        csv_text(columns, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
