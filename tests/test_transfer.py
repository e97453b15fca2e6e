"""The data commands, as an operator runs them: ``backchannel export`` (JSON, CSV, full board
file), ``import`` (into a new database, and into this one), ``forget`` and ``retention``. Real
PostgreSQL, real servers where a page or a replay is checked, the CLI as a child process."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from client import Api, Feed
from server.auth import Identity
from server.config import Settings
from server.migrations import migrate
from server.protocol import NewSession
from server.storage import Hold, SessionRecord, Store

from .conftest import Board, make_token, new_board
from .servers import InProcessServer
from .test_migrations import fresh_database

FORMER = "Former participant"


# --- Helpers -------------------------------------------------------------------------------------


def cli(
    *args: str, database_url: str, redis_url: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "LOG_LEVEL": "warning",
            "RETENTION_DAYS": "0",
            **env,
        },
        timeout=120,
        check=False,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


async def new_database(database_url: str) -> str:
    url = await fresh_database(database_url)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


def person(
    sub: str,
    name: str = "",
    profession: str = "",
    city: str = "",
    region: str = "",
    country: str = "",
    role: str = "attendee",
    event: str = "*",
) -> Identity:
    return Identity(sub, name, profession, city, region, country, role, event, float("inf"))


def full_export(tmp_path: Path, database_url: str, slug: str, name: str) -> dict[str, Any]:
    out = tmp_path / name
    ok(cli("export", slug, "--format", "full", "--output", str(out), database_url=database_url))
    data: dict[str, Any] = json.loads(out.read_bytes())
    return data


class Ids:
    """Canonical names for one database's ids, so that boards in two databases compare: a
    comment by its position in the session's full export, an author by their external id."""

    def __init__(self, export: dict[str, Any]) -> None:
        self.comments = {c["id"]: f"c{i}" for i, c in enumerate(export["comments"])}
        self.authors = {a["id"]: a["external_id"] for a in export["authors"]}

    def __call__(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k in ("server_time", "exported_at"):
                    continue
                if k == "authors":
                    out[k] = [{**a, "id": self.authors[a["id"]]} for a in v]
                elif k == "author" and isinstance(v, dict):
                    out[k] = {**v, "id": self.authors.get(v["id"], v["id"])}
                elif k == "author" and isinstance(v, int):
                    out[k] = self.authors[v]
                elif k in ("id", "parent_id", "root_id", "comment", "comment_id") and isinstance(
                    v, int
                ):
                    out[k] = self.comments[v]
                elif k in ("replies_next", "next") and isinstance(v, str):
                    out[k] = self.comments[int(v)]
                elif k == "helpful" and isinstance(v, list) and all(isinstance(i, int) for i in v):
                    out[k] = [self.comments[i] for i in v]
                else:
                    out[k] = self(v, k)
            return out
        if isinstance(value, list):
            return [self(v, key) for v in value]
        return value


async def all_pages(url: str, slug: str) -> list[Any]:
    """Every page of the board from the newest, and every further page of replies."""
    pages: list[Any] = []
    async with Api(url) as api:
        before = None
        while True:
            page = await api.page(slug, before=before)
            pages.append(page)
            for thread in page["threads"]:
                after = thread["replies_next"]
                while after is not None:
                    more = await api.replies(thread["comment"]["id"], after=after)
                    pages.append(more)
                    after = more["next"]
            before = page["older"]
            if before is None:
                return pages


async def replay(url: str, slug: str) -> list[dict[str, Any]]:
    """What a watcher connecting with since=0 is sent, up to the head (gaps raise)."""
    async with Api(url) as api:
        head = (await api.session(slug))["head"]
    async with Feed(url, slug, since=0) as feed:
        return await feed.events(head) if head else []


# --- A realistic board ---------------------------------------------------------------------------


async def build_board(store: Store, board: Board, count: int = 500) -> SessionRecord:
    """``count`` comments by several authors (some places partial, one without a name): replies
    at several depths, questions, edits, held (approved, rejected, still held), removed (one
    restored), deleted (some with replies), highlighted and answered, helpful marks, reports
    (one comment held by them), a session closed and reopened."""
    rng = random.Random(20260115)
    session = await store.session(board.session)
    tag = uuid.uuid4().hex[:6]
    people = [
        person(f"ana-{tag}", "Ana Ruiz", "Nursing", "Albany", "NY", "US"),
        person(f"ben-{tag}", "Ben Okafor", "Counseling", "", "", "GB"),
        person(f"chen-{tag}", "Chen Wei", "", "Toronto", "", "CA"),
        person(f"dara-{tag}", "Dara", "Psychology"),
        person(f"eli-{tag}", "Eli Cohen", "Social Work", "Haifa", "Haifa District", "IL"),
        person(f"fay-{tag}", "Fay Moreau", "Teacher", "Lyon", "", "FR"),
        person(f"gus-{tag}"),
        person(f"hana-{tag}", "Hana Sato", "Medicine", "Osaka", "Osaka", "JP"),
    ]
    moderator = person(f"mod-{tag}", "Mona Park", role="moderator", event=board.event)
    start = datetime.now(UTC) - timedelta(hours=3)
    published: list[tuple[int, int, Identity]] = []  # (id, depth, author)
    author_of: dict[int, Identity] = {}
    held: list[int] = []
    recent: list[tuple[int, Identity]] = []
    for i in range(count):
        who = rng.choice(people)
        parent = None
        if published and i >= 20 and rng.random() < 0.6:
            parent = rng.choice([p for p in published if p[1] < 5][-60:])
        question = parent is None and rng.random() < 0.15
        hold = Hold("suspect", "webinar") if rng.random() < 0.05 else None
        at = None if i >= count - 30 else start + timedelta(seconds=15 * i)
        key = f"k{i}" if rng.random() < 0.3 else None
        result, _ = await store.post(
            session,
            who,
            f"Comment {i}: what stayed with me, part {rng.randrange(1000)}.",
            parent[0] if parent else None,
            key,
            question=question,
            hold=hold,
            at=at,
        )
        comment = result.comment
        author_of[comment.id] = who
        if comment.status == "held":
            held.append(comment.id)
            continue
        published.append((comment.id, comment.depth, who))
        if at is None:
            recent.append((comment.id, who))
    for comment_id, who in recent[:10]:
        await store.edit(session, comment_id, who, f"Edited: comment {comment_id}, said better.")
    for n, comment_id in enumerate(held):
        if n % 3 == 0:
            await store.review(session, comment_id, True, moderator, "fine after all")
        elif n % 3 == 1:
            await store.review(session, comment_id, False, moderator, "advertising")
    tops = [p for p in published if p[1] == 0]
    removed = rng.sample(published, 15)
    for comment_id, _, _ in removed:
        await store.set_status(session, comment_id, "removed", moderator, "off topic")
    await store.set_status(session, removed[0][0], "published", moderator, "on reflection")
    gone = {r[0] for r in removed[1:]}
    deletable = [p for p in published if p[0] not in gone]
    for comment_id, _, who in rng.sample(deletable[:200], 10):
        await store.delete(session, comment_id, who)
    alive = [p[0] for p in published if p[0] not in gone]
    current = {c.id: c for c in await store.export(session)}
    alive = [i for i in alive if current[i].status == "published"]
    for comment_id in rng.sample(alive, 10):
        await store.mark(session, comment_id, "highlighted", True)
    answered = [i for i in alive if current[i].question] or alive
    for comment_id in answered[:8]:
        await store.mark(session, comment_id, "answered", True)
    await store.mark(session, answered[0], "answered", False)
    marked: set[int] = set()
    for comment_id in rng.sample(alive, 80):
        for who in rng.sample(people, rng.randrange(1, 5)):
            await store.mark_helpful(session, comment_id, who)
        marked.add(comment_id)
        if len(marked) == 40:
            await store.helpful_event(session, sorted(marked))
            marked.clear()
    await store.helpful_event(session, sorted(marked))
    reported = rng.sample([i for i in alive if i != answered[0]], 2)
    others = [[p for p in people if p.sub != author_of[i].sub] for i in reported]
    await store.report(session, reported[0], others[0][0], "off_topic", "not about the session")
    for who in others[1][:3]:  # three reports: held for review
        await store.report(session, reported[1], who, "advertising", "")
    assert tops, "the board has top-level comments"
    await store.set_state(session, "closed", moderator, "break")
    await store.set_state(session, "open", moderator, "back")
    return await store.session(board.session)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = await Store.connect(database_url, 4)
    yield store
    await store.close()


# --- Export and import ---------------------------------------------------------------------------


async def test_export_then_import_into_a_new_database_gives_the_same_board(
    board: Board,
    store: Store,
    database_url: str,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    session = await build_board(store, board)
    moderator = board.api("moderator")
    async with moderator:
        route_json = await moderator.request("GET", f"/v1/sessions/{board.session}/export")
        route_csv = (
            await moderator.http.get(f"/v1/sessions/{board.session}/export?format=csv")
        ).text

    # The CLI's json and csv are the console's export.
    as_json = json.loads(ok(cli("export", board.session, database_url=database_url)))
    as_csv = ok(cli("export", board.session, "--format", "csv", database_url=database_url))
    for side in (as_json, route_json):
        del side["session"]["server_time"]
    assert as_json == route_json and len(as_json["comments"]) == 500
    assert as_csv.replace("\r\n", "\n") == route_csv.replace("\r\n", "\n")
    assert len(list(csv.DictReader(io.StringIO(as_csv)))) == 500

    original = full_export(tmp_path, database_url, board.session, "original.json")
    assert original["format"] == "backchannel-board/1"
    statuses = {c["status"] for c in original["comments"]}
    assert statuses == {"published", "removed", "deleted", "held", "rejected"}
    assert max(c["depth"] for c in original["comments"]) >= 3
    assert len(original["log"]) == session.last_seq

    target = await new_database(database_url)
    done = ok(cli("import", str(tmp_path / "original.json"), database_url=target))
    assert f"into session {board.session} of event {board.event} (created)" in done
    copied = full_export(tmp_path, target, board.session, "copied.json")
    left, right = Ids(original), Ids(copied)
    assert right(copied) == left(original)

    # Small pages and few replies per thread, so that paging (of threads and replies) is seen.
    paging = {"page_size": 20, "replies_per_thread": 3}
    source = await InProcessServer(make_settings(**paging)).start()
    server = await InProcessServer(make_settings(database_url=target, **paging)).start()
    try:
        board_pages = await all_pages(source.url, board.session)
        copy_pages = await all_pages(server.url, board.session)
        assert len([p for p in board_pages if "threads" in p]) > 10
        assert len([p for p in board_pages if "replies" in p]) > 5
        assert right(copy_pages) == left(board_pages)
        board_replay = await replay(board.url, board.session)
        copy_replay = await replay(server.url, board.session)
        assert [e["seq"] for e in copy_replay] == list(range(1, session.last_seq + 1))
        assert right(copy_replay) == left(board_replay)

        # The log continues: a new post is head + 1, and a replay from 0 has no gap.
        async with Api(server.url, make_token("attendee", board.event)) as attendee:
            posted = await attendee.post(board.session, "A first comment after the move")
        assert posted["seq"] == session.last_seq + 1
        assert (
            posted["comment"]["number"] == max(c["number"] or 0 for c in original["comments"]) + 1
        )
        after = await replay(server.url, board.session)
        assert [e["seq"] for e in after] == list(range(1, session.last_seq + 2))
        assert after[-1]["comment"]["body"] == "A first comment after the move"
    finally:
        await server.stop()
        await source.stop()

    # The import is audited in the new database.
    conn = await asyncpg.connect(target)
    try:
        actions = await conn.fetch("SELECT actor, action, reason FROM audit_log")
    finally:
        await conn.close()
    assert [(a["actor"], a["action"]) for a in actions] == [("cli", "import")]
    assert "imported 500 comments from original.json" in actions[0]["reason"]


async def test_import_into_an_existing_event_and_refusals_store_nothing(
    board: Board, store: Store, database_url: str, tmp_path: Path
) -> None:
    async with board.api(sub=f"writer-{uuid.uuid4().hex[:6]}", name="Wren") as writer:
        top = (await writer.post(board.session, "A thought"))["comment"]
        await writer.post(board.session, "A reply", parent_id=top["id"])
    file = tmp_path / "board.json"
    ok(
        cli(
            "export",
            board.session,
            "--format",
            "full",
            "--output",
            str(file),
            database_url=database_url,
        )
    )
    other = await new_board(board.url)
    moved = f"moved-{uuid.uuid4().hex[:8]}"
    done = ok(
        cli(
            "import",
            str(file),
            "--event",
            other.event,
            "--session",
            moved,
            database_url=database_url,
        )
    )
    assert f"into session {moved} of event {other.event};" in done
    async with Api(board.url) as api:
        page = await api.page(moved)
    assert page["total"] == 2 and page["head"] == 2
    [thread] = page["threads"]
    assert thread["comment"]["author"]["name"] == "Wren"
    assert thread["comment"]["author"]["id"] == top["author"]["id"]  # the same author row

    # A file without a log gets one comment.created per comment shown: a replay is the board.
    data = json.loads(file.read_bytes())
    del data["log"]
    unlogged = tmp_path / "unlogged.json"
    unlogged.write_text(json.dumps(data))
    bare = f"bare-{uuid.uuid4().hex[:8]}"
    ok(cli("import", str(unlogged), "--session", bare, database_url=database_url))
    events = await replay(board.url, bare)
    assert [(e["seq"], e["kind"], e["comment"]["body"]) for e in events] == [
        (1, "comment.created", "A thought"),
        (2, "comment.created", "A reply"),
    ]

    # A slug that exists is refused.
    again = cli(
        "import", str(file), "--event", other.event, "--session", moved, database_url=database_url
    )
    assert again.returncode == 1 and f"a session with slug {moved!r} exists" in again.stderr

    # A file that does not check out: nothing is stored, and the message says what is wrong.
    data = json.loads(file.read_bytes())
    data["comments"][1]["parent_id"] = 999_999_999
    data["comments"][0]["reply_count"] = 7
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    fresh_event, fresh_session = f"ev-{uuid.uuid4().hex[:8]}", f"se-{uuid.uuid4().hex[:8]}"
    refused = cli(
        "import",
        str(broken),
        "--event",
        fresh_event,
        "--session",
        fresh_session,
        database_url=database_url,
    )
    assert refused.returncode == 1
    assert "comments[1]" in refused.stderr and "parent 999999999" in refused.stderr
    assert "reply_count is 7" in refused.stderr

    data = json.loads(file.read_bytes())
    data["comments"][0]["body"] = ""
    broken.write_text(json.dumps(data))
    refused = cli("import", str(broken), "--session", fresh_session, database_url=database_url)
    assert refused.returncode == 1 and "$.comments[0].body" in refused.stderr

    moderation = tmp_path / "moderation.json"
    moderation.write_text(ok(cli("export", board.session, database_url=database_url)))
    refused = cli("import", str(moderation), "--session", fresh_session, database_url=database_url)
    assert refused.returncode == 1 and "--format full" in refused.stderr

    conn = await asyncpg.connect(database_url)
    try:
        assert (
            await conn.fetchval("SELECT count(*) FROM sessions WHERE slug = $1", fresh_session) == 0
        )
        assert await conn.fetchval("SELECT count(*) FROM events WHERE slug = $1", fresh_event) == 0
    finally:
        await conn.close()


# --- Forget --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def redis_server(
    make_settings: Callable[..., Settings], redis_url: str
) -> AsyncIterator[InProcessServer]:
    """A server on Redis, so that what the CLI publishes reaches it."""
    srv = await InProcessServer(make_settings(redis_url=redis_url)).start()
    yield srv
    await srv.stop()


def traces(text: str, *words: str) -> list[str]:
    return [w for w in words if w in text]


async def everything_shown(url: str, boards: list[Board], tmp_path: Path, database_url: str) -> str:
    """Every page, replay, export (console and full) and audit log (JSON and CSV) of the boards,
    as one text."""
    parts: list[str] = []
    for b in boards:
        parts.append(json.dumps(await all_pages(url, b.session)))
        parts.append(json.dumps(await replay(url, b.session)))
        async with b.api("moderator") as moderator:
            parts.append(
                json.dumps(await moderator.request("GET", f"/v1/sessions/{b.session}/export"))
            )
            parts.append(
                (await moderator.http.get(f"/v1/sessions/{b.session}/export?format=csv")).text
            )
            parts.append(json.dumps(await moderator.audit(b.event)))
            parts.append((await moderator.http.get(f"/v1/events/{b.event}/audit?format=csv")).text)
        parts.append(
            json.dumps(full_export(tmp_path, database_url, b.session, f"{b.session}.json"))
        )
    return "\n".join(parts)


async def test_forget_leaves_no_name_or_place_in_pages_replays_exports_or_audit(
    redis_server: InProcessServer, redis_url: str, database_url: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    sub, mod_sub = f"maya-{tag}", f"zed-{tag}"
    words = ("Quintrell", "Albuquerque", "New Mexico", "Quorrow")
    one, two = await new_board(redis_server.url), await new_board(redis_server.url)
    maya = dict(
        sub=sub,
        name="Maya Quintrell",
        profession="Nursing",
        city="Albuquerque",
        region="New Mexico",
        country="US",
    )
    zed = make_token("moderator", "*", sub=mod_sub, name="Zed Quorrow")
    async with (
        one.api(**maya) as her,
        one.api(sub=f"other-{tag}", name="Olu") as other,
        Api(one.url, zed) as moderator,
        Feed(one.url, one.session, since=0) as live,
    ):
        # The live watcher's server holds these events, with her name, in its ring.
        top = (await her.post(one.session, "Sleep hygiene changed my nights."))["comment"]
        reply = (await other.post(one.session, "Same here!", parent_id=top["id"]))["comment"]
        await her.post(one.session, "Thank you, Olu.", parent_id=reply["id"])
        spam = (await her.post(one.session, "Call me about my practice"))["comment"]
        await moderator.request(
            "POST",
            f"/v1/comments/{spam['id']}/remove",
            json={"reason": "Maya Quintrell from Albuquerque advertised"},
        )
        await moderator.sanction(
            one.event, top["author"]["id"], "flag", reason="watch Maya Quintrell"
        )
        async with Api(two.url, make_token("attendee", two.event, **maya)) as her_two:
            await her_two.post(two.session, "In the second event too.")
        before = await live.events(5)
        assert "Quintrell" in json.dumps(before)

        done = cli("forget", sub, database_url=database_url, redis_url=redis_url)
        assert done.returncode == 0, done.stderr
        assert "3 comments anonymised" not in done.stdout  # she wrote four
        assert "4 comments anonymised" in done.stdout and one.event in done.stdout
        assert two.event in done.stdout
        # Watching screens are told: each public comment of hers again, with her name gone.
        edits = [await live.next_event() for _ in range(2)]
        assert {e["kind"] for e in edits} == {"comment.edited"}
        assert {e["comment"]["author"]["name"] for e in edits} == {FORMER}
        assert not traces(json.dumps(edits), *words)

    ok(cli("forget", mod_sub, database_url=database_url, redis_url=redis_url))
    shown = await everything_shown(redis_server.url, [one, two], tmp_path, database_url)
    assert not traces(shown, *words)
    assert "Sleep hygiene changed my nights." in shown  # texts stay without --remove-texts
    async with Api(one.url) as api:
        [thread] = [
            t for t in (await api.page(one.session))["threads"] if t["comment"]["id"] == top["id"]
        ]
    author = thread["comment"]["author"]
    assert (
        author["name"],
        author["profession"],
        author["city"],
        author["region"],
        author["country"],
    ) == (FORMER, "", "", "", "")
    async with Api(one.url, zed) as moderator:
        entries = (await moderator.audit(one.event))["entries"]
    forgets = [e for e in entries if e["action"] == "forget"]
    assert [(e["actor"], e["role"]) for e in forgets] == [("cli", "operator")] * 2
    assert any(e["actor"] == mod_sub and e["actor_name"] == FORMER for e in entries)


async def test_forget_with_remove_texts_keeps_threads_readable(
    board: Board, database_url: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    sub = f"rosa-{tag}"
    rosa = dict(sub=sub, name="Rosa Lindqvist", city="Tromsø", region="Troms", country="NO")
    async with board.api(**rosa) as her, board.api(sub=f"kim-{tag}", name="Kim") as kim:
        top = (await her.post(board.session, "My secret story about the night shift"))["comment"]
        await kim.post(board.session, "Thank you for sharing", parent_id=top["id"])
        await her.post(board.session, "Another private detail")
        before = (await kim.page(board.session))["total"]
    assert before == 3
    done = cli("forget", sub, "--remove-texts", database_url=database_url)
    assert done.returncode == 0, done.stderr
    assert "2 texts removed" in done.stdout
    shown = await everything_shown(board.url, [board], tmp_path, database_url)
    assert not traces(shown, "Lindqvist", "Tromsø", "Troms", "secret story", "private detail")
    async with Api(board.url) as api:
        page = await api.page(board.session)
    assert page["total"] == 1
    [thread] = page["threads"]  # her comment with a reply stays as a placeholder
    assert thread["comment"]["status"] == "deleted" and thread["comment"]["body"] is None
    assert [r["body"] for r in thread["replies"]] == ["Thank you for sharing"]
    events = await replay(board.url, board.session)
    assert [e["seq"] for e in events] == list(range(1, page["head"] + 1))
    assert [e["kind"] for e in events[-2:]] == ["comment.deleted", "comment.deleted"]


async def test_forget_an_unknown_user_is_a_clear_error(database_url: str) -> None:
    done = cli("forget", f"nobody-{uuid.uuid4().hex}", database_url=database_url)
    assert done.returncode == 1 and "nothing is known about user" in done.stderr


# --- Retention -----------------------------------------------------------------------------------


async def counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {
            t: await conn.fetchval(f"SELECT count(*) FROM {t}")
            for t in (
                "events",
                "sessions",
                "comments",
                "session_events",
                "helpful_marks",
                "reports",
                "audit_log",
                "authors",
                "sanctions",
            )
        }
    finally:
        await conn.close()


async def test_retention_removes_old_closed_boards_and_keeps_recent_ones(
    tmp_path: Path, database_url: str
) -> None:
    url = await new_database(database_url)
    store = await Store.connect(url, 2)
    operator = person("ops", "Ops", role="admin")
    try:
        await store.create_event("old-event", "Old event")
        await store.create_event("mixed-event", "Mixed event")
        await store.create_event("empty-event", "An event without sessions yet")
        boards = {}
        for event, slug in (
            ("old-event", "old-only"),
            ("mixed-event", "old-mixed"),
            ("mixed-event", "recent"),
            ("mixed-event", "still-open"),
        ):
            boards[slug] = await store.create_session(event, NewSession(slug=slug, title=slug))
            who = person(f"{slug}-author", f"Author of {slug}", city="Bergen")
            first, _ = await store.post(boards[slug], who, f"On {slug}", None, None)
            await store.post(
                boards[slug], person("shared", "Shared"), "Reply", first.comment.id, None
            )
            await store.mark_helpful(boards[slug], first.comment.id, person("fan"))
            await store.report(boards[slug], first.comment.id, person("critic"), "other", "")
            if slug != "still-open":
                await store.set_state(boards[slug], "closed", operator, "over")
    finally:
        await store.close()
    conn = await asyncpg.connect(url)
    try:  # the old boards ended long ago: one at its closes_at, one at its last activity
        await conn.execute(
            """UPDATE sessions SET opens_at = now() - interval '101 days',
                   closes_at = now() - interval '100 days' WHERE slug = 'old-only'"""
        )
        for table, column in (("sessions", "updated_at"), ("sessions", "created_at")):
            await conn.execute(f"""UPDATE {table} SET {column} = now() - interval '90 days'
                                   WHERE slug IN ('old-mixed', 'still-open')""")
        for table, column in (("session_events", "at"), ("comments", "created_at")):
            await conn.execute(f"""UPDATE {table} SET {column} = now() - interval '90 days'
                                   WHERE session_id IN (SELECT id FROM sessions
                                   WHERE slug IN ('old-mixed', 'still-open'))""")
        await conn.execute("UPDATE authors SET updated_at = now() - interval '200 days'")
    finally:
        await conn.close()

    before = await counts(url)
    kept = cli("retention", database_url=url)
    assert "kept forever" in ok(kept) and await counts(url) == before

    dry = ok(cli("retention", "--dry-run", database_url=url, RETENTION_DAYS="30"))
    assert "would remove session old-only of event old-event" in dry
    assert "would remove session old-mixed of event mixed-event" in dry
    assert "would remove event old-event" in dry and "recent" not in dry.split("retention:")[0]
    assert await counts(url) == before

    done = ok(cli("retention", database_url=url, RETENTION_DAYS="30"))
    assert "removed 2 boards, 1 events" in done
    conn = await asyncpg.connect(url)
    try:
        assert [r["slug"] for r in await conn.fetch("SELECT slug FROM sessions ORDER BY id")] == [
            "recent",
            "still-open",
        ]
        assert [r["slug"] for r in await conn.fetch("SELECT slug FROM events ORDER BY id")] == [
            "mixed-event",
            "empty-event",
        ]
        assert await conn.fetchval("SELECT count(*) FROM comments") == 4
        assert await conn.fetchval("SELECT count(*) FROM helpful_marks") == 2
        assert await conn.fetchval("SELECT count(*) FROM reports") == 2
        names = {r["external_id"] for r in await conn.fetch("SELECT external_id FROM authors")}
        assert names == {"recent-author", "still-open-author", "shared"}
        audit = await conn.fetch(
            "SELECT action, actor, reason, session_id FROM audit_log WHERE action = 'retention'"
        )
        assert [(a["actor"], a["session_id"]) for a in audit] == [("cli", None)]
        assert "removed session old-mixed" in audit[0]["reason"]
        assert (
            await conn.fetchval("SELECT count(*) FROM audit_log WHERE session_id IS NOT NULL") == 1
        )  # the recent session's close
    finally:
        await conn.close()
    again = ok(cli("retention", database_url=url, RETENTION_DAYS="30"))
    assert "removed 0 boards" in again


# --- Help ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("export", ["--format", "--output", "session"]),
        ("import", ["--event", "--session", "file"]),
        ("forget", ["--remove-texts", "user"]),
        ("retention", ["--dry-run", "--days"]),
    ],
)
def test_each_data_command_has_help(command: str, options: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for option in options:
        assert option in done.stdout
