"""Authors' own posts (edit for 5 minutes, delete at any time) and the moderators' audit log and
exports, on the real server and database."""

from __future__ import annotations

import csv
import io
import json

import asyncpg
import pytest

from client import Api, ApiError, Feed

from .conftest import Board, make_token


async def backdate(database_url: str, comment_id: int, minutes: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE comments SET created_at = now() - make_interval(mins => $2) WHERE id = $1",
            comment_id,
            minutes,
        )
    finally:
        await conn.close()


async def refused(call: object, status: int, code: str) -> None:
    with pytest.raises(ApiError) as error:
        await call  # type: ignore[misc]
    assert (error.value.status, error.value.code) == (status, code)


async def test_author_edits_within_five_minutes_only(board: Board, database_url: str) -> None:
    async with board.api(sub="writer") as writer, board.api(sub="someone-else") as other:
        comment = (await writer.post(board.session, "First thoughts"))["comment"]
        edited = await writer.edit(comment["id"], "First thoughts, edited")
        assert edited["changed"] and edited["comment"]["edited_at"] is not None
        await refused(other.edit(comment["id"], "not mine"), 403, "not_author")
        await backdate(database_url, comment["id"], 6)
        head = (await writer.session(board.session))["head"]
        await refused(writer.edit(comment["id"], "too late"), 409, "edit_window_closed")
        assert (await writer.session(board.session))["head"] == head


async def test_author_deletes_and_a_thread_keeps_its_replies(board: Board) -> None:
    secret = "something I would rather take back"
    async with board.api(sub="author") as author, board.api(sub="replier") as replier, \
            board.api("moderator") as moderator:  # fmt: skip
        top = (await author.post(board.session, secret))["comment"]
        await replier.post(board.session, "a reply that stays", parent_id=top["id"])
        lonely = (await author.post(board.session, "a comment without replies"))["comment"]
        async with Feed(board.url, board.session) as feed:
            await refused(replier.delete(top["id"]), 403, "not_author")
            deleted = await author.delete(top["id"])
            assert deleted["changed"] and deleted["comment"]["status"] == "deleted"
            event = await feed.next_event()
            assert event["kind"] == "comment.deleted" and event["comment"]["body"] is None
            again = await author.delete(top["id"])
            assert again["changed"] is False and again["seq"] is None
            await author.delete(lonely["id"])
            await refused(moderator.restore(top["id"]), 409, "not_allowed")
        page = await author.page(board.session)
    assert secret not in json.dumps(page)
    assert page["total"] == 1  # only the reply is still published
    [thread] = page["threads"]
    assert thread["comment"]["status"] == "deleted"
    assert [r["body"] for r in thread["replies"]] == ["a reply that stays"]


async def test_every_moderator_action_is_audited_and_exported(board: Board) -> None:
    moderator_token = make_token("moderator", board.event, name="Erin", sub="mod-erin")
    async with board.api() as attendee, Api(board.url, moderator_token) as moderator:
        comment = (await attendee.post(board.session, '=HYPERLINK("x") advert'))["comment"]
        await moderator.request(
            "POST", f"/v1/comments/{comment['id']}/remove", json={"reason": "advertising"}
        )
        await moderator.request("POST", f"/v1/comments/{comment['id']}/remove")
        await moderator.restore(comment["id"])
        await moderator.request(
            "POST", f"/v1/sessions/{board.session}/close", json={"reason": "break"}
        )
        await moderator.open(board.session)
        log = await moderator.request("GET", f"/v1/events/{board.event}/audit")
        audit_csv = await moderator.http.get(f"/v1/events/{board.event}/audit?format=csv")
        export = await moderator.request("GET", f"/v1/sessions/{board.session}/export")
        export_csv = await moderator.http.get(f"/v1/sessions/{board.session}/export?format=csv")
        await refused(
            attendee.request("GET", f"/v1/events/{board.event}/audit"), 403, "role_required"
        )
    actions = [(e["action"], e["reason"], e["changed"], e["actor_name"]) for e in log["entries"]]
    assert actions == [
        ("remove", "advertising", True, "Erin"),
        ("remove", "", False, "Erin"),
        ("restore", "", True, "Erin"),
        ("close", "break", True, "Erin"),
        ("open", "", True, "Erin"),
    ]
    rows = list(csv.DictReader(io.StringIO(audit_csv.text)))
    assert [r["action"] for r in rows] == ["remove", "remove", "restore", "close", "open"]
    assert audit_csv.headers["content-type"].startswith("text/csv")
    assert [c["id"] for c in export["comments"]] == [comment["id"]]
    [row] = list(csv.DictReader(io.StringIO(export_csv.text)))
    assert row["body"].startswith("'=")  # a spreadsheet will not run it as a formula
    assert row["author_name"] == export["comments"][0]["author"]["name"]
