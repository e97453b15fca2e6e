"""The wire format, without I/O: JSON shapes of the HTTP API and WebSocket messages, decoding of
client input into typed commands, and the building of WebSocket frames.

Nothing here imports Starlette, websockets, asyncpg or redis. ``docs/protocol.md`` describes every
message below (a test checks that each ``type`` and ``kind`` appears there).

Server-to-client frames on the feed are built by concatenating already-encoded events, so an event
is encoded to JSON once, where it is committed, and never again on its way to any watcher.
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Annotated, Literal

import msgspec

PUBLIC_STATES = frozenset({"published"})
EVENT_KINDS = (
    "comment.created",
    "comment.edited",
    "comment.removed",
    "comment.restored",
    "comment.deleted",
    "comment.approved",
    "comment.held",
    "comment.marked",
    "helpful.counts",
    "session.opened",
    "session.closed",
    "session.updated",
)
ROLES = ("attendee", "presenter", "moderator", "admin")
PROFESSIONS = (
    "Psychotherapy",
    "Counseling",
    "Social Work",
    "Medicine",
    "Nursing",
    "Psychology",
    "Coach",
    "Clergy",
    "Teacher",
    "Marriage/Family Therapy",
    "Exercise Physiology",
    "Health Education",
    "Other",
    "Another Field",
)

# ``(?![\s\S])`` and not ``$``, which in Python also matches before a final newline.
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}(?![\s\S])"
Slug = Annotated[str, msgspec.Meta(pattern=SLUG_PATTERN)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


# --- What the server sends -----------------------------------------------------------------------


class AuthorView(msgspec.Struct, frozen=True):
    id: int
    name: str
    profession: str
    city: str
    region: str
    country: str


class CommentView(msgspec.Struct, frozen=True):
    """A comment as every watcher may see it: a comment not in a public state is redacted (no
    body, no author), so a removed comment's text never leaves the server."""

    id: int
    session: str
    parent_id: int | None
    root_id: int | None
    depth: int
    number: int | None
    status: str
    body: str | None
    author: AuthorView | None
    reply_count: int
    created_at: datetime
    edited_at: datetime | None
    question: bool
    """Its author marked it "Ask the presenter"."""
    highlighted_at: datetime | None
    """Set by a presenter: shown to every attendee as highlighted."""
    answered_at: datetime | None
    """Set by a presenter: "answered live at 14:32"."""
    helpful_count: int
    hold_reason: str | None
    """Why it awaits review (``link``, ``contact``, ``crisis``, ...): shown only to its author
    and to moderators; null in every public view."""


class ThreadView(msgspec.Struct, frozen=True):
    """A top-level comment with the first replies of its thread, in creation order (a parent
    always comes before its replies); ``replies_next`` pages on when the thread has more."""

    comment: CommentView
    replies: list[CommentView]
    replies_next: str | None


class SessionView(msgspec.Struct, frozen=True):
    slug: str
    event: str
    title: str
    speakers: list[str]
    prompt: str
    state: Literal["open", "closed"]
    opens_at: datetime | None
    closes_at: datetime | None
    accepting: bool
    """Whether a post would be accepted now: open, and inside the window where one is set."""
    total: int
    """Published comments, replies included."""
    head: int
    """The seq of the session's newest event: connect the feed with ``since=head``."""
    server_time: datetime
    premoderated: bool
    """Every post waits for a moderator's approval."""
    slow_mode: int
    """Slow mode in force: at most one comment per this many seconds per person (0: off). The
    larger of the moderator's setting and, while a burst lasts, the automatic one."""
    slow_mode_auto: bool
    """Slow mode is on because posts per minute exceed ``auto_slow_threshold``."""
    slow_mode_seconds: int
    """Slow mode as a moderator set it (0: off)."""
    auto_slow_threshold: int
    """Posts per minute above which slow mode switches on by itself (0: never)."""
    auto_slow_seconds: int
    """The interval of automatic slow mode."""
    auto_slow_window: int
    """Seconds over which posts per minute are measured for automatic slow mode."""


class BusySession(msgspec.Struct, frozen=True):
    slug: str
    event: str
    watching: int
    """Watchers on every server process (as of the last presence round, every few seconds)."""
    here: int
    """Watchers connected to the process that answered."""


class BusySessions(msgspec.Struct, frozen=True):
    """The sessions with the most watchers, busiest first, as one process sees them: for
    operators (metrics carry no per-session labels)."""

    server: str
    sessions: list[BusySession]


class EventInfo(msgspec.Struct, frozen=True):
    slug: str
    title: str
    sessions: list[str]


Word = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class EventRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """An event's own rules, set by its moderators: words refused outright, words that hold a
    post for review, and the support message shown to the author of a post held as a crisis."""

    banned_words: list[Word] | msgspec.UnsetType = msgspec.UNSET
    suspect_words: list[Word] | msgspec.UnsetType = msgspec.UNSET
    support_message: Annotated[str, msgspec.Meta(max_length=2000)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    report_threshold: Annotated[int, msgspec.Meta(ge=0, le=1000)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    """This many reports hold a published comment for review (0: reports never hold)."""


class ReplyCount(msgspec.Struct, frozen=True):
    id: int
    reply_count: int


class HelpfulCount(msgspec.Struct, frozen=True):
    id: int
    helpful_count: int


class Event(msgspec.Struct, frozen=True, omit_defaults=True):
    """One entry of a session's event log.

    ``comment`` (for ``comment.*``) and ``session`` (for ``session.*``) hold the state to show:
    set it, keyed by id. ``reply_counts`` carries the reply count of each of a reply's ancestors
    (nearest first) and ``total`` the session's total, so every count is a value to set, never a
    delta to apply.
    """

    seq: int
    kind: str
    at: datetime
    total: int
    comment: CommentView | None = None
    reply_counts: list[ReplyCount] = []
    session: SessionView | None = None
    helpful: list[HelpfulCount] = []
    """For ``helpful.counts``: the comments whose helpful count moved, with their counts."""
    parents: list[CommentView] = []
    """For ``comment.restored`` and ``comment.approved`` of a reply: its ancestors that are not
    public, redacted, outermost first, so that a board that never held them (pages leave out a
    hidden comment without public replies) can show them as placeholders above it."""


class Health(msgspec.Struct, frozen=True):
    status: str
    server: str


class Page(msgspec.Struct, frozen=True):
    threads: list[ThreadView]
    older: str | None
    newer: str | None
    total: int
    head: int


class RepliesPage(msgspec.Struct, frozen=True):
    replies: list[CommentView]
    next: str | None


class PostResult(msgspec.Struct, frozen=True):
    comment: CommentView
    seq: int | None
    """The event's seq, or None when a retried post (same ``client_key``) was already stored,
    or when it is held for review (no one else sees it until approved)."""
    created: bool
    support_message: str | None = None
    """For a post held as ``crisis``: the event's support message, to show its author."""


class EditResult(msgspec.Struct, frozen=True):
    comment: CommentView
    changed: bool
    """False when the comment already had this text (or these marks): nothing was written."""
    seq: int | None


class HelpfulResult(msgspec.Struct, frozen=True):
    comment_id: int
    marked: bool
    """False when this person had marked it helpful already: marks count once."""
    helpful_count: int


class Location(msgspec.Struct, frozen=True):
    """Where a comment is on its board, for permalinks: load the page ``before`` (null: the
    first page) and find the comment in the thread of ``root_id``."""

    comment: CommentView
    root_id: int
    before: str | None


class ModerationResult(msgspec.Struct, frozen=True):
    comment: CommentView
    changed: bool
    """False when the comment was already in the requested state: nothing was written."""
    removed_by: str | None
    removed_at: datetime | None
    seq: int | None


class SessionChange(msgspec.Struct, frozen=True):
    session: SessionView
    changed: bool
    seq: int | None


# --- What clients send over HTTP -----------------------------------------------------------------


class NewComment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    body: str
    parent_id: Id | None = None
    client_key: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    question: bool = False


class CommentEdit(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    body: str


class ModeratorAction(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The optional body of a moderator's action: why, for the audit log."""

    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class ReviewResult(msgspec.Struct, frozen=True):
    """A moderator's approval or rejection of a held post. ``changed`` false: another moderator
    reviewed it first (``reviewed_by``, ``reviewed_at`` say who and when), nothing was written."""

    comment: CommentView
    changed: bool
    reviewed_by: str | None
    reviewed_at: datetime | None
    seq: int | None


class BulkReview(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=500)]
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class QueueItem(msgspec.Struct, frozen=True):
    """One item of the review queue: a held post, or a published one that attendees reported
    (``reason`` ``reported``). Unredacted: only moderators see it."""

    session: str
    comment: CommentView
    reason: str
    """The hold reason (``link``, ``crisis``, ``reported``, ``flagged``, ...)."""
    match: str | None
    """What the rules matched, when they held it."""
    reports: int
    """Open reports by attendees."""
    report_reasons: list[str]


class Queue(msgspec.Struct, frozen=True):
    """The event's review queue: crises first, then oldest first."""

    event: str
    items: list[QueueItem]


class MyPending(msgspec.Struct, frozen=True):
    """The caller's own posts in a session that others do not see: held (awaiting review) or
    rejected (``hold_reason`` says why)."""

    session: str
    items: list[CommentView]
    support_message: str | None = None
    """The event's support message, when one of the items is held as ``crisis``."""


ReportReason = Literal["personal", "referral", "advertising", "offensive", "off_topic", "other"]


class NewReport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: ReportReason
    detail: Annotated[str, msgspec.Meta(max_length=500)] = ""


class ReportResult(msgspec.Struct, frozen=True):
    comment_id: int
    reported: bool
    """False when this person had reported it already: reports count once per person."""
    reports: int
    """Open reports on the comment."""
    held: bool
    """The reports reached the event's threshold: the comment now awaits review."""


class NewSanction(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A moderator's decision about an author in the event: ``flag`` (their posts await review),
    ``timeout`` (no posting for ``minutes``, or for the rest of the event when null) or ``ban``.
    ``remove_comments`` also removes their comments in the event, and every kind but ``flag``
    refuses their posts awaiting review."""

    kind: Literal["flag", "timeout", "ban"]
    minutes: Annotated[int, msgspec.Meta(ge=1, le=60 * 24 * 14)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    remove_comments: bool = False


class SanctionView(msgspec.Struct, frozen=True):
    id: int
    event: str
    author: AuthorView
    kind: str
    until: datetime | None
    """When a timeout ends; null: for the rest of the event (always so for a ban)."""
    reason: str
    created_by: str
    created_at: datetime


class SanctionResult(msgspec.Struct, frozen=True):
    sanction: SanctionView
    removed: list[int]
    """Their comments removed by this action (``remove_comments``)."""
    refused: list[int]
    """Their posts that were awaiting review, now rejected."""


class Sanctions(msgspec.Struct, frozen=True):
    """Sanctions in force in an event, newest first."""

    event: str
    items: list[SanctionView]


class LiftResult(msgspec.Struct, frozen=True):
    lifted: int
    """Sanctions lifted (0: none was in force)."""


class AuditEntry(msgspec.Struct, frozen=True):
    """One moderator action: who, when, what and why; ``changed`` false when it was already so."""

    at: datetime
    session: str | None
    actor: str
    actor_name: str
    role: str
    action: str
    comment_id: int | None
    author_id: int | None
    """The author a ban, timeout, flag or lift was about."""
    reason: str
    changed: bool


class AuditLog(msgspec.Struct, frozen=True):
    event: str
    entries: list[AuditEntry]


class MarkChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A presenter sets (``on``) or clears a mark on a comment."""

    mark: Literal["highlighted", "answered"]
    on: bool = True


class NewEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    slug: Slug
    title: Title


class NewSession(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    slug: Slug
    title: Title
    speakers: list[Annotated[str, msgspec.Meta(max_length=200)]] = []
    prompt: Annotated[str, msgspec.Meta(max_length=500)] = ""
    state: Literal["open", "closed"] = "open"
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    premoderated: bool = False
    slow_mode_seconds: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 0
    auto_slow_threshold: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    auto_slow_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 30
    auto_slow_window: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 60


class SessionPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Fields to change; a field left out keeps its value. ``opens_at``/``closes_at`` set to
    null remove that edge of the window."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    speakers: list[Annotated[str, msgspec.Meta(max_length=200)]] | msgspec.UnsetType = msgspec.UNSET
    prompt: Annotated[str, msgspec.Meta(max_length=500)] | msgspec.UnsetType = msgspec.UNSET
    opens_at: datetime | msgspec.UnsetType | None = msgspec.UNSET
    closes_at: datetime | msgspec.UnsetType | None = msgspec.UNSET
    premoderated: bool | msgspec.UnsetType = msgspec.UNSET
    slow_mode_seconds: Annotated[int, msgspec.Meta(ge=0, le=3600)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    auto_slow_threshold: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    auto_slow_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    auto_slow_window: Annotated[int, msgspec.Meta(ge=1, le=3600)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    reason: Annotated[str, msgspec.Meta(max_length=500)] | msgspec.UnsetType = msgspec.UNSET
    """Why (for the audit log); not a field of the session."""


class DemoIdentity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Who to be on the demo (``POST /v1/dev/token``)."""

    sub: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    name: Annotated[str, msgspec.Meta(max_length=100)] = ""
    profession: Annotated[str, msgspec.Meta(max_length=100)] = ""
    city: Annotated[str, msgspec.Meta(max_length=100)] = ""
    region: Annotated[str, msgspec.Meta(max_length=100)] = ""
    country: Annotated[str, msgspec.Meta(max_length=2)] = ""
    role: Literal["attendee", "presenter", "moderator", "admin"] = "attendee"
    ttl: Annotated[float, msgspec.Meta(ge=60, le=86400)] = 3 * 3600


# --- WebSocket messages from clients -------------------------------------------------------------


class Auth(msgspec.Struct, frozen=True, tag="auth", tag_field="type", forbid_unknown_fields=True):
    """Sent first by a client that has a token (and again with a fresh one before expiry)."""

    token: Annotated[str, msgspec.Meta(max_length=8192)]


ClientMessage = Auth

_client_decoder = msgspec.json.Decoder(ClientMessage)


class ProtocolError(ValueError):
    """A client message that is not valid; the message says why."""


def decode_client_message(data: str | bytes) -> ClientMessage:
    try:
        return _client_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ProtocolError(str(exc)) from None


# --- Frames --------------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
encode = _encoder.encode


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def events_message(session: str, events: list[bytes]) -> bytes:
    """``{"type":"events","session":...,"events":[...]}`` from events already encoded."""
    return b"".join(
        (
            b'{"type":"events","session":',
            _encoder.encode(session),
            b',"events":[',
            b",".join(events),
            b"]}",
        )
    )


def chunk_events(events: list[bytes], max_bytes: int) -> list[list[bytes]]:
    """Split encoded events into runs of at most ``max_bytes`` (a lone larger event keeps a run
    of its own), so that no frame exceeds what clients accept."""
    runs: list[list[bytes]] = []
    run: list[bytes] = []
    size = 0
    for event in events:
        if run and size + len(event) > max_bytes:
            runs.append(run)
            run, size = [], 0
        run.append(event)
        size += len(event) + 1
    if run:
        runs.append(run)
    return runs


def text_frame(payload: bytes) -> bytes:
    """A complete, unmasked WebSocket text frame (RFC 6455 §5.2): server frames carry no mask,
    so the same bytes can be written to every watcher."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


class EventHead(msgspec.Struct, frozen=True):
    """The few fields of an encoded event the hub reads to order it and keep its ring current."""

    seq: int
    kind: str
    comment: CommentRef | None = None


class CommentRef(msgspec.Struct, frozen=True):
    id: int
    status: str


_head_decoder = msgspec.json.Decoder(EventHead)


def read_event_head(payload: bytes) -> EventHead:
    return _head_decoder.decode(payload)


def replace_comment(payload: bytes, current: bytes) -> bytes:
    """The encoded event ``payload`` with its ``comment`` replaced by the encoded ``current``
    state, so that a replay never shows text that has since been removed."""
    event = msgspec.json.decode(payload)
    event["comment"] = msgspec.Raw(current)
    return _encoder.encode(event)


def comment_of(payload: bytes) -> bytes:
    """The encoded ``comment`` member of an encoded event."""
    return bytes(msgspec.json.decode(payload, type=_WithRawComment).comment)


class _WithRawComment(msgspec.Struct):
    comment: msgspec.Raw


def error_message(code: str, message: str) -> bytes:
    return _encoder.encode({"type": "error", "code": code, "message": message})
