"""Moving boards in and out, and the command line's data commands: the moderation export's JSON
and CSV (shared by ``GET /v1/sessions/{slug}/export`` and ``backchannel export``), the
full-fidelity board file ``backchannel-board/1`` that ``backchannel export --format full`` writes
and ``backchannel import`` reads, with its validation, and ``backchannel export``, ``import``,
``forget`` and ``retention`` themselves (their SQL is in ``storage/transfer.py``).

The moderation export shows comments as the board does (hidden ones redacted). A board file
holds everything needed to rebuild the board exactly: the event's title and rules, the session's
fields, the authors (with their external ids), every comment in every state with its body,
marks, hold and review details, the helpful marks, the reports and the session's event log.
Ids in a file are the exporting database's; an import gives new ones and maps every reference.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import re
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import msgspec

from .auth import Identity
from .protocol import EVENT_KINDS, PUBLIC_STATES, AuditEntry, CommentView, SessionView, encode

if TYPE_CHECKING:
    from .config import Settings
    from .storage import SessionRecord, Store
    from .storage.transfer import ExpiredBoard

# --- The moderation export (JSON and CSV) -------------------------------------------------------


def export_body(session: SessionView, comments: list[CommentView]) -> dict[str, object]:
    """The moderation export as JSON: ``{"session": SessionView, "comments": [...]}``."""
    return {"session": session, "comments": comments}


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


def csv_text(columns: list[str], rows: list[dict[str, object]]) -> str:
    """CSV with a header row (also when there are no rows), every cell spreadsheet-safe."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
    return out.getvalue()


# --- The board file: backchannel-board/1 --------------------------------------------------------

FORMAT: Final = "backchannel-board/1"
FORMER_PARTICIPANT = "Former participant"
"""The name an author forgotten by ``backchannel forget`` is shown with."""

Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Label = Annotated[str, msgspec.Meta(max_length=100)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Id = Annotated[int, msgspec.Meta(ge=1)]
Status = Literal["published", "removed", "deleted", "held", "rejected"]


class BoardEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The event the session belonged to, with its own rules (used when the import creates it)."""

    slug: Slug
    title: Title
    banned_words: list[Label] = []
    suspect_words: list[Label] = []
    support_message: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    report_threshold: Count = 3


class BoardSession(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    slug: Slug
    title: Title
    speakers: list[Annotated[str, msgspec.Meta(max_length=200)]] = []
    prompt: Annotated[str, msgspec.Meta(max_length=500)] = ""
    state: Literal["open", "closed"] = "open"
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    premoderated: bool = False
    slow_mode_seconds: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 0
    auto_slow_threshold: Count = 0
    auto_slow_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 30
    slow_auto: bool = False
    created_at: datetime
    updated_at: datetime
    comment_count: Count
    """Published comments, replies included: checked against the comments."""


class BoardAuthor(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: Id
    external_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    """The host site's user id (the token's ``sub``): the import finds or creates the author by
    it, so an author already in the database keeps their current name and place."""
    name: Label = ""
    profession: Label = ""
    city: Label = ""
    region: Label = ""
    country: Annotated[str, msgspec.Meta(pattern=r"^([A-Z]{2})?$")] = ""


class BoardComment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: Id
    author: Id
    parent_id: Id | None = None
    root_id: Id | None = None
    depth: Count = 0
    number: Id | None = None
    status: Status
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=5000)]
    reply_count: Count = 0
    client_key: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    created_at: datetime
    edited_at: datetime | None = None
    removed_at: datetime | None = None
    removed_by: str | None = None
    question: bool = False
    highlighted_at: datetime | None = None
    answered_at: datetime | None = None
    helpful_count: Count = 0
    hold_reason: str | None = None
    hold_match: str | None = None
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    open_reports: Count = 0


class BoardMark(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One person's helpful mark (``user`` is their ``sub``)."""

    comment: Id
    user: Annotated[str, msgspec.Meta(min_length=1)]
    at: datetime


class BoardReport(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    comment: Id
    reporter: Annotated[str, msgspec.Meta(min_length=1)]
    reason: str
    detail: Annotated[str, msgspec.Meta(max_length=500)] = ""
    at: datetime
    resolved_at: datetime | None = None


class BoardLogEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One entry of the session's event log: ``comment`` for ``comment.*`` kinds, ``helpful``
    (the comments whose counts moved) for ``helpful.counts``."""

    seq: Id
    kind: str
    at: datetime
    comment: Id | None = None
    helpful: list[Id] | None = None


class Board(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A whole board: ``backchannel export --format full`` writes it, ``backchannel import``
    reads it. Comments are in id order (a parent before its replies)."""

    format: Literal["backchannel-board/1"]
    exported_at: datetime
    event: BoardEvent
    session: BoardSession
    authors: list[BoardAuthor]
    comments: list[BoardComment]
    helpful_marks: list[BoardMark] = []
    reports: list[BoardReport] = []
    log: list[BoardLogEntry] | None = None
    """The event log, seq 1..N. Absent (null): the import writes one ``comment.created`` per
    comment a page shows, in id order, so a watcher replaying from 0 sees the whole board."""


class BoardError(ValueError):
    """A board file that cannot be imported; the message says what is wrong, and where."""


class CommandError(Exception):
    """A data command cannot do what it was asked (not an error of the HTTP API)."""


class _Header(msgspec.Struct):
    format: str | None = None
    comments: Any = None


MAX_PROBLEMS = 20


def read_board(data: bytes) -> Board:
    """Decode and check a board file: :class:`BoardError` names what is wrong."""
    try:
        header = msgspec.json.decode(data, type=_Header)
    except msgspec.DecodeError as exc:
        raise BoardError(f"not a board file: {exc}") from None
    except msgspec.ValidationError:
        raise BoardError("not a board file: expected a JSON object") from None
    if header.format is None:
        hint = ""
        if header.comments is not None:
            hint = (
                ": this looks like the moderation export (--format json), which leaves hidden "
                "comments out; export with --format full to import"
            )
        raise BoardError(f'not a board file: no "format" member{hint}')
    if header.format != FORMAT:
        raise BoardError(f"unsupported format {header.format!r}: this version reads {FORMAT!r}")
    try:
        board = msgspec.json.decode(data, type=Board)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `")
        raise BoardError(f"{where.rstrip('`') or '$'}: {message}") from None
    problems = check_board(board)
    if problems:
        more = len(problems) - MAX_PROBLEMS
        shown = problems[:MAX_PROBLEMS] + ([f"... and {more} more"] if more > 0 else [])
        raise BoardError("the board is inconsistent:\n  " + "\n  ".join(shown))
    return board


def shown(comment: BoardComment) -> bool:
    """Whether a page shows it: public, or a placeholder for its published replies."""
    return comment.status in PUBLIC_STATES or comment.reply_count > 0


def check_board(board: Board) -> list[str]:
    """Everything that would make the imported board differ from the exported one, or break a
    rule the database keeps (numbering, threads, counts, the event log)."""
    problems: list[str] = []
    say = problems.append
    session = board.session
    if session.opens_at and session.closes_at and session.opens_at >= session.closes_at:
        say("session: opens_at must be before closes_at")
    authors = {a.id for a in board.authors}
    for where, count in _duplicates((a.id for a in board.authors), "id"):
        say(f"authors: {where} is there {count} times")
    for where, count in _duplicates((a.external_id for a in board.authors), "external_id"):
        say(f"authors: {where} is there {count} times")
    comments: dict[int, BoardComment] = {}
    numbers: set[int] = set()
    published_below: Counter[int] = Counter()
    last_id = 0
    for i, c in enumerate(board.comments):
        at = f"comments[{i}] (id {c.id})"
        if c.id <= last_id:
            say(f"{at}: comments must be in increasing id order")
        last_id = max(last_id, c.id)
        if c.author not in authors:
            say(f"{at}: author {c.author} is not in authors")
        if c.parent_id is None:
            if c.root_id is not None or c.depth != 0:
                say(f"{at}: a top-level comment has no root_id and depth 0")
            if c.number is None and c.status in ("published", "removed"):
                say(f"{at}: a {c.status} top-level comment has a number")
            if c.number is not None:
                if c.number in numbers:
                    say(f"{at}: number {c.number} is used twice")
                numbers.add(c.number)
        else:
            parent = comments.get(c.parent_id)
            if parent is None:
                say(f"{at}: parent {c.parent_id} is not an earlier comment of the file")
            else:
                root = parent.root_id or parent.id
                if c.root_id != root or c.depth != parent.depth + 1:
                    say(f"{at}: expected root_id {root} and depth {parent.depth + 1}")
            if c.number is not None:
                say(f"{at}: a reply has no number")
        comments[c.id] = c
        if c.status in PUBLIC_STATES:
            ancestor = c.parent_id
            while ancestor is not None and ancestor in comments:
                published_below[ancestor] += 1
                ancestor = comments[ancestor].parent_id
    for i, c in enumerate(board.comments):
        if c.reply_count != published_below[c.id]:
            say(
                f"comments[{i}] (id {c.id}): reply_count is {c.reply_count} but "
                f"{published_below[c.id]} of its replies are published"
            )
    published = sum(1 for c in board.comments if c.status in PUBLIC_STATES)
    if session.comment_count != published:
        say(f"session: comment_count is {session.comment_count} but {published} are published")
    marks: Counter[int] = Counter()
    for i, m in enumerate(board.helpful_marks):
        if m.comment not in comments:
            say(f"helpful_marks[{i}]: comment {m.comment} is not in comments")
        marks[m.comment] += 1
    for where, count in _duplicates(((m.comment, m.user) for m in board.helpful_marks), "mark"):
        say(f"helpful_marks: {where} is there {count} times")
    for i, c in enumerate(board.comments):
        if c.helpful_count != marks[c.id]:
            say(
                f"comments[{i}] (id {c.id}): helpful_count is {c.helpful_count} but "
                f"helpful_marks has {marks[c.id]}"
            )
    for i, r in enumerate(board.reports):
        if r.comment not in comments:
            say(f"reports[{i}]: comment {r.comment} is not in comments")
    for where, count in _duplicates(((r.comment, r.reporter) for r in board.reports), "report"):
        say(f"reports: {where} is there {count} times")
    if board.log is not None:
        problems.extend(_check_log(board.log, comments))
    return problems


def _check_log(log: list[BoardLogEntry], comments: dict[int, BoardComment]) -> list[str]:
    problems: list[str] = []
    logged: set[int] = set()
    for i, entry in enumerate(log):
        at = f"log[{i}]"
        if entry.kind not in EVENT_KINDS:
            problems.append(f"{at}: unknown kind {entry.kind!r}")
        if entry.seq != i + 1:
            problems.append(f"{at}: seq {entry.seq}, expected {i + 1} (seqs run 1..N)")
        if entry.kind.startswith("comment."):
            if entry.comment is None or entry.comment not in comments:
                problems.append(f"{at}: {entry.kind} names no comment of the file")
            else:
                logged.add(entry.comment)
        elif entry.comment is not None:
            problems.append(f"{at}: {entry.kind} names no comment")
        if (entry.kind == "helpful.counts") != (entry.helpful is not None):
            problems.append(f"{at}: helpful is given with helpful.counts, and only then")
        missing = [i for i in entry.helpful or [] if i not in comments]
        if missing:
            problems.append(f"{at}: helpful names comments not in the file: {missing}")
    for c in comments.values():
        if shown(c) and c.id not in logged:
            problems.append(f"comment {c.id} is on the board but no log entry names it")
    return problems


def _duplicates(values: Any, label: str) -> list[tuple[str, int]]:
    counts = Counter(values)
    return [(f"{label} {value!r}", n) for value, n in counts.items() if n > 1]


def encode_board(board: Board) -> bytes:
    return msgspec.json.encode(board)


def synthesized_log(board: Board) -> list[BoardLogEntry]:
    """For a file without a log: one ``comment.created`` per comment a page shows, in id order,
    at the comment's time."""
    return [
        BoardLogEntry(seq=i, kind="comment.created", at=c.created_at, comment=c.id)
        for i, c in enumerate((c for c in board.comments if shown(c)), start=1)
    ]


# --- The commands --------------------------------------------------------------------------------

# Who the audit log names for what the data commands do.
OPERATOR = Identity(
    sub="cli", name="Operator (command line)", profession="", city="", region="", country="",
    role="operator", event="*", expires_at=float("inf"),
)  # fmt: skip
DATA_COMMANDS = ("export", "import", "forget", "retention")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The data commands' parsers, for ``server/cli.py``."""
    export = commands.add_parser(
        "export",
        help="write a session's comments as JSON, CSV or a full board file",
        description="Write a session's comments: json and csv are the moderation console's "
        f"export (hidden comments redacted); full is a {FORMAT} file with everything needed "
        "to rebuild the board exactly (backchannel import reads it).",
    )
    export.add_argument("session", help="the session's slug")
    export.add_argument(
        "--format", choices=("json", "csv", "full"), default="json",
        help="json (default) or csv: as GET /v1/sessions/{slug}/export; full: a board file",
    )  # fmt: skip
    export.add_argument("--output", metavar="FILE", help="write to FILE (default: standard output)")

    load = commands.add_parser(
        "import",
        help="load a board file (export --format full) into a new session",
        description="Load a board file into a new session, in one transaction: the same numbers, "
        "authors, threads, states, texts, times, counts and event log, under new ids. A file "
        "that does not check out, or a session slug that exists, stores nothing.",
    )
    load.add_argument("file", help="the board file ('-': standard input)")
    load.add_argument(
        "--event",
        help="the event to add the session to (default: the file's); created from the file's "
        "title and rules when it does not exist",
    )
    load.add_argument("--session", help="the new session's slug (default: the file's)")

    forget = commands.add_parser(
        "forget",
        help="anonymise a user across every event",
        description="Anonymise a user (by their external id, the token's sub) in every event: "
        f'their comments are shown as by "{FORMER_PARTICIPANT}" with no profession or place, '
        "and their name and place leave the audit log, sanctions and moderation records. "
        "Audited as forget in each event concerned.",
    )
    forget.add_argument("user", help="the user's external id (the sub of their tokens)")
    forget.add_argument(
        "--remove-texts",
        action="store_true",
        help="also remove their comments' texts (shown comments become deleted placeholders, "
        "so that replies keep their place)",
    )

    retention = commands.add_parser(
        "retention",
        help="remove boards closed more than RETENTION_DAYS ago",
        description="Remove the boards (sessions with their comments, events, helpful marks and "
        "reports) of sessions that closed more than RETENTION_DAYS days ago (at closes_at, or "
        "at their last activity), events left without sessions, and authors left without "
        "anything. RETENTION_DAYS=0 keeps everything.",
    )
    retention.add_argument(
        "--dry-run", action="store_true", help="list what would be removed; change nothing"
    )
    retention.add_argument(
        "--days", type=int, metavar="N", help="use N days instead of RETENTION_DAYS"
    )


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run a data command against ``DATABASE_URL`` (migrated already); 1 on a clear error."""
    import asyncpg

    from .errors import BackchannelError
    from .storage import Store

    try:
        store = await Store.connect(settings.database_url, 2)
    except OSError as exc:
        return _fail(args.command, f"cannot reach the database: {exc}")
    try:
        return await COMMANDS[args.command](store, settings, args)
    except (BackchannelError, BoardError, CommandError, OSError) as exc:
        message = exc.message if isinstance(exc, BackchannelError) else str(exc)
        return _fail(args.command, message)
    except asyncpg.PostgresError as exc:  # rolled back: nothing was stored
        return _fail(args.command, f"the database refused it, nothing changed: {exc}")
    finally:
        await store.close()


def _fail(command: str, message: str) -> int:
    print(f"backchannel {command}: {message}", file=sys.stderr)
    return 1


async def export_command(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    session = await store.session(args.session)
    data: bytes
    if args.format == "full":
        data = encode_board(await store.export_board(session, datetime.now(UTC)))
    else:
        comments = await store.export(session)
        if args.format == "csv":
            data = csv_text(EXPORT_COLUMNS, [export_row(c) for c in comments]).encode()
        else:
            data = encode(export_body(session.view(), comments))
    if args.output:
        await asyncio.to_thread(Path(args.output).write_bytes, data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


async def import_command(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    read = sys.stdin.buffer.read if args.file == "-" else Path(args.file).read_bytes
    data = await asyncio.to_thread(read)
    board = read_board(data)
    event = args.event or board.event.slug
    slug = args.session or board.session.slug
    for option, value in (("--event", event), ("--session", slug)):
        if not SLUG.match(value):
            return _fail("import", f"{option} {value!r} is not a slug (a-z, 0-9 and -)")
    source = "standard input" if args.file == "-" else Path(args.file).name
    done = await store.import_board(board, event, slug, OPERATOR, source)
    created = " (created)" if done.event_created else ""
    print(
        f"imported {done.comments} comments into session {done.session} of event "
        f"{done.event}{created}; its event log runs to seq {done.head}"
    )
    return 0


async def forget_command(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    done = await store.forget(args.user, args.remove_texts, OPERATOR)
    await publish(settings, done.events)
    texts = f", {done.texts_removed} texts removed" if args.remove_texts else ""
    events = ", ".join(done.events_audited) or "none"
    print(f"forgot user {done.sub}: {done.comments} comments anonymised{texts}; events: {events}")
    return 0


async def publish(settings: Settings, events: list[tuple[SessionRecord, bytes]]) -> None:
    """Tell running servers (through Redis) about events written here, so that their watchers
    and their rings of recent events show them now. Without Redis, a server learns of them at
    the session's next event (or when a watcher asks for a newer head)."""
    if not events:
        return
    if not settings.redis_url:
        print(
            "backchannel: no REDIS_URL: a running server shows these changes at each session's "
            "next event",
            file=sys.stderr,
        )
        return
    from .bus import BusUnavailable, session_topic
    from .bus_redis import RedisBus

    bus = RedisBus(settings.redis_url)
    try:
        for session, payload in events:
            await bus.publish(session_topic(session.id), payload)
    except BusUnavailable as exc:
        print(f"backchannel: {exc}; servers read the changes at the next event", file=sys.stderr)
    finally:
        await bus.close()


async def retention_command(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    days = settings.retention_days if args.days is None else args.days
    if days < 0:
        return _fail("retention", f"--days must be 0 or more, not {days}")
    if days == 0:
        print("retention: RETENTION_DAYS is 0: boards are kept forever; nothing removed")
        return 0
    if args.dry_run:
        boards, events = await store.expired_boards(days)
        for b in boards:
            print(f"would remove {_board_line(b)}")
        for slug in events:
            print(f"would remove event {slug} (no sessions left)")
        print(f"retention: {len(boards)} boards older than {days} days; nothing changed (dry run)")
        return 0
    done = await store.remove_expired(days, OPERATOR)
    for b in done.boards:
        print(f"removed {_board_line(b)}")
    for slug in done.events_removed:
        print(f"removed event {slug} (no sessions left), with its audit log and sanctions")
    print(
        f"retention: removed {len(done.boards)} boards, {len(done.events_removed)} events "
        f"and {done.authors_removed} authors older than {days} days"
    )
    return 0


def _board_line(board: ExpiredBoard) -> str:
    return (
        f"session {board.session} of event {board.event} (ended "
        f"{board.ended_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC, {board.comments} comments)"
    )


Command = Callable[["Store", "Settings", argparse.Namespace], Awaitable[int]]
COMMANDS: dict[str, Command] = {
    "export": export_command,
    "import": import_command,
    "forget": forget_command,
    "retention": retention_command,
}
