"""Boards in and out, and personal data: the full export and the import of a board (the
``backchannel-board/1`` file of :mod:`server.transfer`), forgetting an author, and removing boards
past their retention. Used by the command line (``backchannel export|import|forget|retention``)."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from ..auth import Identity
from ..errors import Conflict, NotFound
from ..protocol import PUBLIC_STATES
from ..transfer import (
    FORMAT,
    FORMER_PARTICIPANT,
    Board,
    BoardAuthor,
    BoardComment,
    BoardEvent,
    BoardLogEntry,
    BoardMark,
    BoardReport,
    BoardSession,
    CommandError,
    synthesized_log,
)
from .base import COMMENT, SESSION, SESSION_FROM, SessionRecord, audit_event, next_seq
from .comments import CommentStore

log = logging.getLogger("backchannel.store")

REMOVED_TEXT = "[removed at the author's request]"
"""The body of a comment whose author was forgotten with ``--remove-texts``."""
REMOVED_PLACE = "[removed]"
# What a moderator's name defaults to in ``removed_by`` and friends: never scrubbed from texts.
GENERIC_NAMES = frozenset({"", "moderator", "author", FORMER_PARTICIPANT.lower()})

BOARD_COMMENT_COLUMNS = """id, author_id, parent_id, root_id, depth, number, status, body,
    reply_count, client_key, created_at, edited_at, removed_at, removed_by, question,
    highlighted_at, answered_at, helpful_count, hold_reason, hold_match, reviewed_by, reviewed_at,
    open_reports"""


@dataclass
class Imported:
    event: str
    session: str
    event_created: bool
    comments: int
    head: int


@dataclass
class Forgotten:
    """What ``forget`` changed; ``events`` are to be published once committed."""

    sub: str
    comments: int = 0
    texts_removed: int = 0
    events_audited: list[str] = field(default_factory=list)
    events: list[tuple[SessionRecord, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class ExpiredBoard:
    session_id: int
    session: str
    event_id: int
    event: str
    ended_at: datetime
    comments: int


@dataclass
class Retention:
    boards: list[ExpiredBoard]
    events_removed: list[str] = field(default_factory=list)
    authors_removed: int = 0


class TransferStore(CommentStore):
    # --- The full export -------------------------------------------------------------------------

    async def export_board(self, session: SessionRecord, now: datetime) -> Board:
        """Everything of the session, read in one snapshot (``backchannel-board/1``)."""
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            s = await conn.fetchrow(
                """SELECT s.*, e.slug AS event_slug, e.title AS event_title, e.banned_words,
                          e.suspect_words, e.support_message, e.report_threshold
                   FROM sessions s JOIN events e ON e.id = s.event_id WHERE s.id = $1""",
                session.id,
            )
            if s is None:
                raise NotFound("unknown_session", f"no session matches {session.slug!r}")
            authors = await conn.fetch(
                """SELECT id, external_id, name, profession, city, region, country FROM authors
                   WHERE id IN (SELECT author_id FROM comments WHERE session_id = $1)
                   ORDER BY id""",
                session.id,
            )
            comments = await conn.fetch(
                f"""SELECT {BOARD_COMMENT_COLUMNS} FROM comments WHERE session_id = $1
                    ORDER BY id""",
                session.id,
            )
            marks = await conn.fetch(
                """SELECT m.comment_id, m.user_id, m.at
                   FROM helpful_marks m JOIN comments c ON c.id = m.comment_id
                   WHERE c.session_id = $1 ORDER BY m.comment_id, m.user_id""",
                session.id,
            )
            reports = await conn.fetch(
                """SELECT r.comment_id, r.reporter, r.reason, r.detail, r.at, r.resolved_at
                   FROM reports r JOIN comments c ON c.id = r.comment_id
                   WHERE c.session_id = $1 ORDER BY r.comment_id, r.reporter""",
                session.id,
            )
            events = await conn.fetch(
                """SELECT seq, kind, at, comment_id, data FROM session_events
                   WHERE session_id = $1 ORDER BY seq""",
                session.id,
            )
        return Board(
            format=FORMAT,
            exported_at=now,
            event=BoardEvent(
                slug=s["event_slug"],
                title=s["event_title"],
                banned_words=list(s["banned_words"]),
                suspect_words=list(s["suspect_words"]),
                support_message=s["support_message"],
                report_threshold=s["report_threshold"],
            ),
            session=BoardSession(
                slug=s["slug"],
                title=s["title"],
                speakers=list(s["speakers"]),
                prompt=s["prompt"],
                state=s["state"],
                opens_at=s["opens_at"],
                closes_at=s["closes_at"],
                premoderated=s["premoderated"],
                slow_mode_seconds=s["slow_mode_seconds"],
                auto_slow_threshold=s["auto_slow_threshold"],
                auto_slow_seconds=s["auto_slow_seconds"],
                slow_auto=s["slow_auto"],
                created_at=s["created_at"],
                updated_at=s["updated_at"],
                comment_count=s["comment_count"],
            ),
            authors=[BoardAuthor(**dict(a)) for a in authors],
            comments=[board_comment(c) for c in comments],
            helpful_marks=[
                BoardMark(comment=m["comment_id"], user=m["user_id"], at=m["at"]) for m in marks
            ],
            reports=[
                BoardReport(
                    comment=r["comment_id"],
                    reporter=r["reporter"],
                    reason=r["reason"],
                    detail=r["detail"],
                    at=r["at"],
                    resolved_at=r["resolved_at"],
                )
                for r in reports
            ],
            log=[
                BoardLogEntry(
                    seq=e["seq"],
                    kind=e["kind"],
                    at=e["at"],
                    comment=e["comment_id"],
                    helpful=json.loads(e["data"])["ids"] if e["data"] is not None else None,
                )
                for e in events
            ],
        )

    # --- The import ------------------------------------------------------------------------------

    async def import_board(
        self, board: Board, event: str, slug: str, who: Identity, source: str
    ) -> Imported:
        """Rebuild ``board`` (checked by :func:`server.transfer.read_board`) as the new session
        ``slug`` of ``event`` (created from the file when it does not exist), in one
        transaction: the same numbers, authors, threads, states, texts, times, counts and event
        log, under new ids. Audited as ``import``."""
        entries = board.log if board.log is not None else synthesized_log(board)
        async with self._connection() as conn, conn.transaction():
            if await conn.fetchval("SELECT 1 FROM sessions WHERE slug = $1", slug):
                raise Conflict("session_exists", f"a session with slug {slug!r} exists")
            event_id = await conn.fetchval("SELECT id FROM events WHERE slug = $1", event)
            created = event_id is None
            if created:
                e = board.event
                event_id = await conn.fetchval(
                    """INSERT INTO events (slug, title, banned_words, suspect_words,
                                           support_message, report_threshold)
                       VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
                    event, e.title, e.banned_words, e.suspect_words, e.support_message,
                    e.report_threshold,
                )  # fmt: skip
            s = board.session
            session_id = await conn.fetchval(
                """INSERT INTO sessions (event_id, slug, title, speakers, prompt, state, opens_at,
                                         closes_at, premoderated, slow_mode_seconds,
                                         auto_slow_threshold, auto_slow_seconds, slow_auto,
                                         created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                   RETURNING id""",
                event_id, slug, s.title, s.speakers, s.prompt, s.state, s.opens_at, s.closes_at,
                s.premoderated, s.slow_mode_seconds, s.auto_slow_threshold, s.auto_slow_seconds,
                s.slow_auto, s.created_at, s.updated_at,
            )  # fmt: skip
            authors = await self._import_authors(conn, board.authors)
            ids = await self._import_comments(conn, session_id, board.comments, authors)
            await conn.executemany(
                "INSERT INTO helpful_marks (comment_id, user_id, at) VALUES ($1, $2, $3)",
                [(ids[m.comment], m.user, m.at) for m in board.helpful_marks],
            )
            await conn.executemany(
                """INSERT INTO reports (comment_id, reporter, reason, detail, at, resolved_at)
                   VALUES ($1, $2, $3, $4, $5, $6)""",
                [
                    (ids[r.comment], r.reporter, r.reason, r.detail, r.at, r.resolved_at)
                    for r in board.reports
                ],
            )
            await conn.executemany(
                """INSERT INTO session_events (session_id, seq, kind, comment_id, at, data)
                   VALUES ($1, $2, $3, $4, $5, $6::jsonb)""",
                [
                    (
                        session_id,
                        e.seq,
                        e.kind,
                        ids[e.comment] if e.comment is not None else None,
                        e.at,
                        json.dumps({"ids": [ids[i] for i in e.helpful]})
                        if e.helpful is not None
                        else None,
                    )
                    for e in entries
                ],
            )
            counts = await conn.fetchrow(
                """UPDATE sessions SET last_seq = $2,
                       last_number = coalesce((SELECT max(number) FROM comments
                                               WHERE session_id = $1), 0)
                   WHERE id = $1 RETURNING comment_count""",
                session_id,
                len(entries),
            )
            assert counts is not None
            if counts["comment_count"] != s.comment_count:  # read_board checked: never
                raise CommandError("the published comments do not add up to comment_count")
            reason = f"imported {len(board.comments)} comments from {source}"[:500]
            await audit_event(conn, event_id, who, "import", reason, True, session_id=session_id)
        log.info("session %s: imported %d comments", slug, len(board.comments))
        return Imported(event, slug, created, len(board.comments), len(entries))

    async def _import_authors(
        self, conn: asyncpg.Connection, authors: list[BoardAuthor]
    ) -> dict[int, int]:
        """File id -> database id. An author already known (by external id) is kept as is."""
        await conn.executemany(
            """INSERT INTO authors (external_id, name, profession, city, region, country)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (external_id) DO NOTHING""",
            [(a.external_id, a.name, a.profession, a.city, a.region, a.country) for a in authors],
        )
        rows = await conn.fetch(
            "SELECT id, external_id FROM authors WHERE external_id = ANY($1::text[])",
            [a.external_id for a in authors],
        )
        found = {r["external_id"]: r["id"] for r in rows}
        return {a.id: found[a.external_id] for a in authors}

    async def _import_comments(
        self,
        conn: asyncpg.Connection,
        session_id: int,
        comments: list[BoardComment],
        authors: dict[int, int],
    ) -> dict[int, int]:
        """File id -> database id. Each comment starts in a state it may start in (the database
        allows only ``published`` and ``held``) and then moves to its own, so that the triggers
        count it as they counted the original; numbers are given, never assigned."""
        insert = await conn.prepare(
            """INSERT INTO comments (session_id, author_id, parent_id, root_id, depth, number,
                   status, body, client_key, created_at, edited_at, removed_at, removed_by,
                   question, highlighted_at, answered_at, helpful_count, hold_reason,
                   hold_match, reviewed_by, reviewed_at, open_reports)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                       $17, $18, $19, $20, $21, $22)
               RETURNING id"""
        )
        move = await conn.prepare("UPDATE comments SET status = $2 WHERE id = $1")
        ids: dict[int, int] = {}
        for c in comments:
            first = c.status if c.status in ("published", "held") else INITIAL[c.status]
            new_id = await insert.fetchval(
                session_id, authors[c.author],
                ids[c.parent_id] if c.parent_id is not None else None,
                ids[c.root_id] if c.root_id is not None else None,
                c.depth, c.number, first, c.body, c.client_key, c.created_at, c.edited_at,
                c.removed_at, c.removed_by, c.question, c.highlighted_at, c.answered_at,
                c.helpful_count, c.hold_reason, c.hold_match, c.reviewed_by, c.reviewed_at,
                c.open_reports,
            )  # fmt: skip
            if first != c.status:
                await move.fetchval(new_id, c.status)
            ids[c.id] = new_id
        return ids

    # --- Forgetting an author --------------------------------------------------------------------

    async def forget(self, sub: str, remove_texts: bool, who: Identity) -> Forgotten:
        """Anonymise the user ``sub`` everywhere, in one transaction: their comments (in every
        event) move to a new pseudonymous author shown as "Former participant", their author
        row loses its name and place, and their name and place leave the audit log, the
        sanctions and the moderation marks (``removed_by``, ``reviewed_by``) where they acted as
        a moderator. Each public comment of theirs gets an event (``comment.edited``, or with
        ``remove_texts`` ``comment.deleted``) so that watching screens and the servers' rings
        show the change. With ``remove_texts`` their bodies are replaced and their visible
        comments deleted (threads keep their place). Audited as ``forget`` in every event
        concerned. :class:`CommandError` when nothing is known of ``sub``."""
        done = Forgotten(sub)
        marker = f" ({sub})"
        async with self._connection() as conn, conn.transaction():
            author = await conn.fetchrow(
                "SELECT id, name, city, region FROM authors WHERE external_id = $1", sub
            )
            author_id = author["id"] if author is not None else None
            # Every writer of a session locks its row first, in id order: no deadlock.
            sessions = [
                SessionRecord(**dict(r))
                for r in await conn.fetch(
                    f"""SELECT {SESSION} FROM {SESSION_FROM}
                        WHERE s.id IN (SELECT session_id FROM comments WHERE author_id = $1)
                        ORDER BY s.id FOR NO KEY UPDATE OF s""",
                    author_id,
                )
            ]
            names = await self._names_of(conn, sub, marker)
            places: set[str] = set()
            comment_ids: list[int] = []
            if author is not None:
                names.add(author["name"])
                places.update((author["city"], author["region"]))
                comment_ids = await self._pseudonymise(conn, author["id"])
                done.comments = len(comment_ids)
            events = await self._scrub_texts(
                conn, sub, marker, author_id, comment_ids, names, places
            )
            for session in sessions:
                events.add(session.event_id)
                await self._comment_events(conn, session, comment_ids, remove_texts, done)
            if remove_texts:
                done.texts_removed += await self._remove_texts(conn, sub, comment_ids)
            if author is None and not events:
                raise CommandError(f"nothing is known about user {sub!r}")
            reason = f"a user's name and place removed; {done.comments} comments anonymised"
            if remove_texts:
                reason += ", their texts removed"
            slugs = await conn.fetch(
                "SELECT id, slug FROM events WHERE id = ANY($1::bigint[]) ORDER BY id",
                sorted(events),
            )
            for row in slugs:
                await audit_event(conn, row["id"], who, "forget", reason, True, author_id=author_id)
                done.events_audited.append(row["slug"])
        log.info("forgot a user: %d comments in %d events", done.comments, len(slugs))
        return done

    async def _names_of(self, conn: asyncpg.Connection, sub: str, marker: str) -> set[str]:
        """The names ``sub`` acted under as a moderator (audit log, removals, reviews,
        sanctions), to be scrubbed from texts about them."""
        rows = await conn.fetch(
            """SELECT actor_name AS name FROM audit_log WHERE actor = $1
               UNION SELECT left(removed_by, strpos(removed_by, $2) - 1) FROM comments
                   WHERE strpos(removed_by, $2) > 0
               UNION SELECT left(reviewed_by, strpos(reviewed_by, $2) - 1) FROM comments
                   WHERE strpos(reviewed_by, $2) > 0
               UNION SELECT left(created_by, strpos(created_by, $2) - 1) FROM sanctions
                   WHERE strpos(created_by, $2) > 0""",
            sub,
            marker,
        )
        return {r["name"] for r in rows}

    async def _pseudonymise(self, conn: asyncpg.Connection, author_id: int) -> list[int]:
        """Move the author's comments to a new author "Former participant" (so that the person
        posting again later, under their name, does not bring it back on these), and clear the
        name and place of their own row (which sanctions keep pointing at). Their comment ids."""
        rows = await conn.fetch(
            "SELECT id FROM comments WHERE author_id = $1 ORDER BY id FOR UPDATE", author_id
        )
        ids = [r["id"] for r in rows]
        if ids:
            pseudonym = await conn.fetchval(
                "INSERT INTO authors (external_id, name) VALUES ($1, $2) RETURNING id",
                f"forgotten-{uuid.uuid4().hex}",
                FORMER_PARTICIPANT,
            )
            await conn.execute(
                "UPDATE comments SET author_id = $2 WHERE author_id = $1", author_id, pseudonym
            )
        await conn.execute(
            """UPDATE authors SET name = $2, profession = '', city = '', region = '',
                   country = '', updated_at = now()
               WHERE id = $1""",
            author_id,
            FORMER_PARTICIPANT,
        )
        return ids

    async def _scrub_texts(
        self,
        conn: asyncpg.Connection,
        sub: str,
        marker: str,
        author_id: int | None,
        comment_ids: list[int],
        names: set[str],
        places: set[str],
    ) -> set[int]:
        """Their name and place out of what moderators wrote about them, and out of what
        records them as the moderator who acted. The events whose records changed."""
        events: set[int] = set()
        rows = await conn.fetch(
            "UPDATE audit_log SET actor_name = $2 WHERE actor = $1 RETURNING event_id",
            sub,
            FORMER_PARTICIPANT,
        )
        events.update(r["event_id"] for r in rows)
        about = """(actor = $1 OR author_id = $2 OR comment_id = ANY($3::bigint[]))"""
        terms = [(n, FORMER_PARTICIPANT) for n in names if n.strip().lower() not in GENERIC_NAMES]
        terms += [(p, REMOVED_PLACE) for p in places if len(p.strip()) >= 2]
        # Longest first: "Maya Lin" before "Maya".
        for term, replacement in sorted(terms, key=lambda t: -len(t[0])):
            rows = await conn.fetch(
                f"""UPDATE audit_log SET reason = replace(reason, $4, $5)
                    WHERE {about} AND strpos(reason, $4) > 0 RETURNING event_id""",
                sub, author_id, comment_ids, term, replacement,
            )  # fmt: skip
            events.update(r["event_id"] for r in rows)
            rows = await conn.fetch(
                """UPDATE sanctions SET reason = replace(reason, $2, $3)
                   WHERE author_id = $1 AND strpos(reason, $2) > 0 RETURNING event_id""",
                author_id,
                term,
                replacement,
            )
            events.update(r["event_id"] for r in rows)
        # "Maya Lin (sub)" -> "Former participant (sub)": who acted stays traceable by sub.
        for column in ("removed_by", "reviewed_by"):
            rows = await conn.fetch(
                f"""UPDATE comments c SET {column} = $2 || substr({column}, strpos({column}, $1))
                    FROM sessions s
                    WHERE s.id = c.session_id AND strpos({column}, $1) > 0
                    RETURNING s.event_id""",
                marker,
                FORMER_PARTICIPANT,
            )
            events.update(r["event_id"] for r in rows)
        for column in ("created_by", "lifted_by"):
            rows = await conn.fetch(
                f"""UPDATE sanctions SET {column} = $2 || substr({column}, strpos({column}, $1))
                    WHERE strpos({column}, $1) > 0 RETURNING event_id""",
                marker,
                FORMER_PARTICIPANT,
            )
            events.update(r["event_id"] for r in rows)
        if author_id is not None:
            rows = await conn.fetch(
                """SELECT event_id FROM audit_log WHERE author_id = $1
                   UNION SELECT event_id FROM sanctions WHERE author_id = $1""",
                author_id,
            )
            events.update(r["event_id"] for r in rows)
        return events

    async def _comment_events(
        self,
        conn: asyncpg.Connection,
        session: SessionRecord,
        comment_ids: list[int],
        remove_texts: bool,
        done: Forgotten,
    ) -> None:
        """One event per public comment of theirs in ``session``: ``comment.edited`` (the author
        shown changed), or with ``remove_texts`` ``comment.deleted``."""
        rows = await conn.fetch(
            """SELECT id FROM comments WHERE session_id = $1 AND id = ANY($2::bigint[])
                 AND status = ANY($3::text[]) ORDER BY id""",
            session.id,
            comment_ids,
            list(PUBLIC_STATES),
        )
        for (comment_id,) in rows:
            seq = await next_seq(conn, session, accepting=False)
            if remove_texts:
                kind = "comment.deleted"
                update = """UPDATE comments SET status = 'deleted', body = $2, hold_match = NULL
                            WHERE id = $1 RETURNING *"""
                args: tuple[object, ...] = (comment_id, REMOVED_TEXT)
                done.texts_removed += 1
            else:
                kind = "comment.edited"
                update = "SELECT * FROM comments WHERE id = $1"
                args = (comment_id,)
            row = await conn.fetchrow(
                f"""WITH c AS ({update})
                    SELECT {COMMENT} FROM c JOIN authors a ON a.id = c.author_id""",
                *args,
            )
            _, event = await self._comment_event(conn, session, kind, seq, row)
            done.events.append((session, event))

    async def _remove_texts(
        self, conn: asyncpg.Connection, sub: str, comment_ids: list[int]
    ) -> int:
        """The bodies of their comments that no event was needed for (hidden ones), and the
        details they wrote in reports. Held ones are withdrawn (deleted), as their author may."""
        rows = await conn.fetch(
            """UPDATE comments SET body = $2, hold_match = NULL,
                   status = CASE WHEN status = 'held' THEN 'deleted' ELSE status END
               WHERE id = ANY($1::bigint[]) AND body <> $2 RETURNING id""",
            comment_ids,
            REMOVED_TEXT,
        )
        await conn.execute("UPDATE reports SET detail = '' WHERE reporter = $1", sub)
        return len(rows)

    # --- Retention -------------------------------------------------------------------------------

    async def expired_boards(self, days: int) -> tuple[list[ExpiredBoard], list[str]]:
        """Sessions that closed more than ``days`` ago: closed (or past ``closes_at``), and
        ended (``closes_at`` once passed, else their last activity) before the cut-off; and the
        events that removing them would leave without sessions."""
        async with self._connection() as conn:
            boards = await _expired(conn, days)
            events = await conn.fetch(
                """SELECT slug FROM events e WHERE id = ANY($1::bigint[])
                     AND NOT EXISTS (SELECT 1 FROM sessions s
                                     WHERE s.event_id = e.id AND s.id <> ALL($2::bigint[]))
                   ORDER BY id""",
                sorted({b.event_id for b in boards}),
                [b.session_id for b in boards],
            )
        return boards, [r["slug"] for r in events]

    async def remove_expired(self, days: int, who: Identity) -> Retention:
        """Delete the expired boards with everything of theirs (comments, events, helpful marks,
        reports, their audit entries), then events left without sessions (with their sanctions
        and audit log), then authors nothing refers to any more and not seen within ``days``.
        One transaction. A removed board whose event stays is audited there as ``retention``."""
        async with self._connection() as conn, conn.transaction():
            candidates = await _expired(conn, days)
            await conn.execute(
                "SELECT 1 FROM sessions WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
                [b.session_id for b in candidates],
            )
            boards = await _expired(conn, days, [b.session_id for b in candidates])
            done = Retention(boards)
            if not boards:
                return done
            ids = [b.session_id for b in boards]
            in_boards = "IN (SELECT id FROM comments WHERE session_id = ANY($1::bigint[]))"
            authors = {
                r["author_id"]
                for r in await conn.fetch(
                    "SELECT DISTINCT author_id FROM comments WHERE session_id = ANY($1::bigint[])",
                    ids,
                )
            }
            await conn.execute(f"DELETE FROM helpful_marks WHERE comment_id {in_boards}", ids)
            await conn.execute(f"DELETE FROM reports WHERE comment_id {in_boards}", ids)
            await conn.execute(
                f"""DELETE FROM audit_log
                    WHERE session_id = ANY($1::bigint[]) OR comment_id {in_boards}""",
                ids,
            )
            await conn.execute(
                "DELETE FROM session_events WHERE session_id = ANY($1::bigint[])", ids
            )
            await conn.execute("DELETE FROM comments WHERE session_id = ANY($1::bigint[])", ids)
            await conn.execute("DELETE FROM sessions WHERE id = ANY($1::bigint[])", ids)
            emptied = await conn.fetch(
                """SELECT id, slug FROM events e WHERE id = ANY($1::bigint[])
                     AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.event_id = e.id)
                   ORDER BY id FOR UPDATE""",
                sorted({b.event_id for b in boards}),
            )
            gone = [r["id"] for r in emptied]
            if gone:
                authors.update(
                    r["author_id"]
                    for r in await conn.fetch(
                        """SELECT author_id FROM sanctions WHERE event_id = ANY($1::bigint[])
                           UNION SELECT author_id FROM audit_log
                           WHERE event_id = ANY($1::bigint[]) AND author_id IS NOT NULL""",
                        gone,
                    )
                )
                await conn.execute("DELETE FROM sanctions WHERE event_id = ANY($1::bigint[])", gone)
                await conn.execute("DELETE FROM audit_log WHERE event_id = ANY($1::bigint[])", gone)
                await conn.execute("DELETE FROM events WHERE id = ANY($1::bigint[])", gone)
                done.events_removed = [r["slug"] for r in emptied]
            for board in boards:
                if board.event_id not in gone:
                    reason = (
                        f"removed session {board.session} (ended {board.ended_at:%Y-%m-%d}, "
                        f"{board.comments} comments): older than {days} days"
                    )
                    await audit_event(conn, board.event_id, who, "retention", reason, True)
            done.authors_removed = await _remove_orphans(conn, sorted(authors), days)
        for board in boards:
            log.info("retention: removed session %s of event %s", board.session, board.event)
        for slug in done.events_removed:
            log.info("retention: removed event %s (no sessions left)", slug)
        return done


# A comment that may not start in its state starts in this one, then moves (see the
# comment_transitions table): a removed comment was published; a rejected or deleted one is
# taken from held (no count moves, no number is assigned).
INITIAL = {"removed": "published", "rejected": "held", "deleted": "held"}


def board_comment(row: asyncpg.Record) -> BoardComment:
    fields = dict(row)
    fields["author"] = fields.pop("author_id")
    return BoardComment(**fields)


async def _expired(
    conn: asyncpg.Connection, days: int, among: list[int] | None = None
) -> list[ExpiredBoard]:
    rows = await conn.fetch(
        """SELECT s.id AS session_id, s.slug AS session, s.event_id, e.slug AS event,
                  ended.at AS ended_at,
                  (SELECT count(*) FROM comments c WHERE c.session_id = s.id) AS comments
           FROM sessions s JOIN events e ON e.id = s.event_id
           CROSS JOIN LATERAL (
               SELECT CASE WHEN s.closes_at <= now() THEN s.closes_at ELSE greatest(
                   s.updated_at,
                   (SELECT x.at FROM session_events x WHERE x.session_id = s.id
                    ORDER BY x.seq DESC LIMIT 1),
                   (SELECT max(c.created_at) FROM comments c WHERE c.session_id = s.id)) END AS at
           ) ended
           WHERE (s.state = 'closed' OR s.closes_at <= now())
             AND ended.at < now() - make_interval(days => $1)
             AND ($2::bigint[] IS NULL OR s.id = ANY($2::bigint[]))
           ORDER BY s.id""",
        days,
        among,
    )
    return [ExpiredBoard(**dict(r)) for r in rows]


async def _remove_orphans(conn: asyncpg.Connection, candidates: list[int], days: int) -> int:
    """Authors of removed boards that nothing refers to any more, unless seen within ``days``
    (a server may still hold a recent one in its cache)."""
    rows = await conn.fetch(
        """DELETE FROM authors a
           WHERE a.id = ANY($1::bigint[]) AND a.updated_at < now() - make_interval(days => $2)
             AND NOT EXISTS (SELECT 1 FROM comments c WHERE c.author_id = a.id)
             AND NOT EXISTS (SELECT 1 FROM sanctions x WHERE x.author_id = a.id)
             AND NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.author_id = a.id)
           RETURNING id""",
        candidates,
        days,
    )
    return len(rows)
