"""The OpenAPI 3.1 description of the HTTP API, served at ``/openapi.json``. Schemas come from the
wire types in ``protocol.py`` (msgspec renders them), so the description cannot drift from them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from . import __version__
from .protocol import (
    SLUG_PATTERN,
    AuditLog,
    BulkReview,
    BusySessions,
    CommentEdit,
    DemoIdentity,
    EditResult,
    EventInfo,
    EventRules,
    Health,
    HelpfulResult,
    LiftResult,
    Location,
    MarkChange,
    ModerationResult,
    ModeratorAction,
    MyPending,
    NewComment,
    NewEvent,
    NewReport,
    NewSanction,
    NewSession,
    Page,
    PostResult,
    Queue,
    RepliesPage,
    ReportResult,
    ReviewResult,
    SanctionResult,
    Sanctions,
    SessionChange,
    SessionPatch,
    SessionView,
)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    response: type
    request: type | None = None
    role: str | None = None
    status: int = 200
    query: tuple[str, ...] = ()
    optional_body: bool = False
    also: tuple[int, ...] = ()
    """Other success statuses with the same body (200 for a retried post, a repeated report)."""
    csv: bool = False
    """``?format=csv`` answers ``text/csv`` instead."""


OPERATIONS = (
    Operation("post", "/v1/events", "Create an event", EventInfo, NewEvent, "admin", 201),
    Operation("get", "/v1/events/{event}", "Read an event and its sessions", EventInfo),
    Operation(
        "post",
        "/v1/events/{event}/sessions",
        "Create a session",
        SessionView,
        NewSession,
        "admin",
        201,
    ),
    Operation("get", "/v1/sessions/{slug}", "Read a session with its counts", SessionView),
    Operation(
        "patch", "/v1/sessions/{slug}", "Change a session", SessionChange, SessionPatch, "moderator"
    ),
    Operation(
        "post",
        "/v1/sessions/{slug}/open",
        "Open (or reopen) a session for posts",
        SessionChange,
        ModeratorAction,
        "moderator",
        optional_body=True,
    ),
    Operation(
        "post",
        "/v1/sessions/{slug}/close",
        "Close a session for posts",
        SessionChange,
        ModeratorAction,
        "moderator",
        optional_body=True,
    ),
    Operation(
        "get",
        "/v1/sessions/{slug}/comments",
        "A page of top-level comments, newest first, with their reply trees",
        Page,
        query=("before", "after"),
    ),
    Operation(
        "post",
        "/v1/sessions/{slug}/comments",
        "Post a comment or a reply (200: a retry of a post already stored, by client_key)",
        PostResult,
        NewComment,
        "attendee",
        201,
        also=(200,),
    ),
    Operation(
        "patch",
        "/v1/comments/{comment_id}",
        "Edit one's own comment",
        EditResult,
        CommentEdit,
        "attendee",
    ),
    Operation("get", "/v1/comments/{comment_id}", "Where a comment is (permalinks)", Location),
    Operation(
        "delete",
        "/v1/comments/{comment_id}",
        "Delete one's own comment",
        EditResult,
        None,
        "attendee",
    ),
    Operation(
        "get",
        "/v1/events/{event}/audit",
        "Every moderator action in the event (?format=csv for CSV)",
        AuditLog,
        None,
        "moderator",
        query=("format",),
        csv=True,
    ),
    Operation(
        "get", "/v1/events/{event}/rules", "The event's word lists", EventRules, None, "moderator"
    ),
    Operation(
        "patch",
        "/v1/events/{event}/rules",
        "Change the event's word lists and support message",
        EventRules,
        EventRules,
        "moderator",
    ),
    Operation(
        "get",
        "/v1/events/{event}/queue",
        "Held posts and reported comments awaiting review, crises first",
        Queue,
        None,
        "moderator",
    ),
    Operation(
        "post",
        "/v1/events/{event}/queue/approve",
        "Approve held posts, in order",
        list[ReviewResult],
        BulkReview,
        "moderator",
    ),
    Operation(
        "post",
        "/v1/events/{event}/queue/reject",
        "Reject held posts, in order",
        list[ReviewResult],
        BulkReview,
        "moderator",
    ),
    Operation(
        "get",
        "/v1/events/{event}/sanctions",
        "Sanctions in force in the event (flags, timeouts, bans)",
        Sanctions,
        None,
        "moderator",
    ),
    Operation(
        "post",
        "/v1/events/{event}/authors/{author_id}/sanctions",
        "Flag, time out or ban an author (optionally removing their comments)",
        SanctionResult,
        NewSanction,
        "moderator",
        201,
    ),
    Operation(
        "delete",
        "/v1/events/{event}/authors/{author_id}/sanctions",
        "Lift every sanction in force on an author",
        LiftResult,
        None,
        "moderator",
    ),
    Operation(
        "get",
        "/v1/sessions/{slug}/mine",
        "The caller's own held and rejected posts in the session",
        MyPending,
        None,
        "attendee",
    ),
    Operation(
        "post",
        "/v1/comments/{comment_id}/report",
        "Report a comment to the moderators (200: reported by this person already)",
        ReportResult,
        NewReport,
        "attendee",
        201,
        also=(200,),
    ),
    Operation(
        "post",
        "/v1/comments/{comment_id}/approve",
        "Approve a held post (publish it) or a reported one (keep it)",
        ReviewResult,
        ModeratorAction,
        "moderator",
        optional_body=True,
    ),
    Operation(
        "post",
        "/v1/comments/{comment_id}/reject",
        "Reject a held post (the reason is shown to its author) or remove a reported one",
        ReviewResult,
        ModeratorAction,
        "moderator",
        optional_body=True,
    ),
    Operation(
        "get",
        "/v1/sessions/{slug}/export",
        "The session's comments (?format=csv for CSV)",
        dict,
        None,
        "moderator",
        query=("format",),
        csv=True,
    ),
    Operation(
        "post",
        "/v1/comments/{comment_id}/marks",
        "Highlight a comment or mark it answered (or clear that)",
        EditResult,
        MarkChange,
        "presenter",
    ),
    Operation(
        "post",
        "/v1/comments/{comment_id}/helpful",
        "Mark a comment helpful (once per person)",
        HelpfulResult,
        None,
        "attendee",
    ),
    Operation(
        "get",
        "/v1/comments/{comment_id}/replies",
        "More replies of a thread",
        RepliesPage,
        query=("after",),
    ),
    Operation(
        "post",
        "/v1/comments/{comment_id}/remove",
        "Remove a comment",
        ModerationResult,
        ModeratorAction,
        "moderator",
        optional_body=True,
    ),
    Operation(
        "post",
        "/v1/comments/{comment_id}/restore",
        "Restore a removed comment",
        ModerationResult,
        ModeratorAction,
        "moderator",
        optional_body=True,
    ),
    Operation(
        "post",
        "/v1/dev/token",
        "A token for the demo (only on a DEMO server with the development secret)",
        dict,
        DemoIdentity,
    ),
    Operation(
        "get",
        "/v1/admin/sessions",
        "The sessions with the most watchers on the answering process",
        BusySessions,
        None,
        "admin",
        query=("limit",),
    ),
    Operation("get", "/healthz", "Liveness: the process answers", Health),
    Operation("get", "/readyz", "Readiness: PostgreSQL (and Redis, if configured) answer", Health),
    Operation("get", "/openapi.json", "This description", dict),
)

_ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


@cache
def document() -> dict[str, Any]:
    types = {op.response for op in OPERATIONS} | {op.request for op in OPERATIONS if op.request}
    ordered = sorted(types, key=lambda t: t.__name__)
    schemas, components = msgspec.json.schema_components(
        ordered, ref_template="#/components/schemas/{name}"
    )
    by_type = dict(zip(ordered, schemas, strict=True))
    components["Error"] = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    }
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        params = [
            {"name": name, "in": "path", "required": True, "schema": path_schema(name)}
            for name in re.findall(r"{(\w+)}", op.path)
        ] + [{"name": q, "in": "query", "schema": query_schema(q)} for q in op.query]
        content: dict[str, Any] = {"application/json": {"schema": by_type[op.response]}}
        if op.csv:
            content["text/csv"] = {"schema": {"type": "string"}}
        responses: dict[str, Any] = {
            str(status): {"description": "OK", "content": content}
            for status in (op.status, *op.also)
        }
        responses["4XX"] = _ERROR
        entry: dict[str, Any] = {
            "summary": op.summary,
            "parameters": params,
            "responses": responses,
        }
        if op.request is not None:
            entry["requestBody"] = {
                "required": not op.optional_body,
                "content": {"application/json": {"schema": by_type[op.request]}},
            }
        if op.role is not None:
            entry["security"] = [{"bearer": []}]
            entry["description"] = f"Needs a token with at least the {op.role} role for the event."
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Backchannel", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def path_schema(name: str) -> dict[str, Any]:
    if name.endswith("_id"):
        return {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    return {"type": "string", "pattern": SLUG_PATTERN}


def query_schema(name: str) -> dict[str, Any]:
    if name == "format":
        return {"type": "string", "enum": ["json", "csv"]}
    return {"type": "string"}


async def openapi(request: Request) -> Response:
    return Response(msgspec.json.encode(document()), media_type="application/json")
