"""Reports by attendees, sanctions on authors (flag, timeout, ban, "remove all") and slow mode
(set by a moderator, and automatic under a burst): real server, real database, real sockets."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from typing import Any

import pytest

from client import Api, ApiError, Feed

from .conftest import Board, make_token, new_board
from .servers import InProcessServer


class Person:
    """An attendee with one ``sub`` for their API client and their board's feed."""

    def __init__(self, board: Board, name: str, role: str = "attendee") -> None:
        self.board = board
        self.sub = f"{name.lower()}-{uuid.uuid4().hex[:8]}"
        self.token = make_token(role, board.event, sub=self.sub, name=name)

    def api(self) -> Api:
        return Api(self.board.url, self.token)

    def feed(self, since: int | None = None) -> Feed:
        return Feed(self.board.url, self.board.session, token=self.token, since=since)


async def notice(feed: Feed, kind: str, timeout: float = 10) -> dict[str, Any]:
    """The next ``notice`` of ``kind`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await feed.next_message("notice", max(0.1, deadline - time.monotonic()))
        if message["kind"] == kind:
            return message


async def queue_message(feed: Feed, kind: str) -> dict[str, Any]:
    while True:
        message = await feed.next_message("queue")
        if message["kind"] == kind:
            return message


# --- Reports -------------------------------------------------------------------------------------


async def test_reports_count_once_per_person_and_enter_the_queue(board: Board) -> None:
    async with board.api(name="Ana") as author, board.api("moderator") as moderator, \
            board.api() as first, board.api() as second:  # fmt: skip
        posted = await author.post(board.session, "My practice is hiring, message me for jobs")
        cid = posted["comment"]["id"]
        assert (await first.report(cid, "advertising", "recruiting"))["reports"] == 1
        again = await first.report(cid, "advertising")
        assert (again["reported"], again["reports"]) == (False, 1)  # counted once
        assert (await second.report(cid, "off_topic"))["reports"] == 2
        queue = await moderator.queue(board.event)
        [item] = queue["items"]
        assert (item["comment"]["id"], item["reason"], item["reports"]) == (cid, "reported", 2)
        assert item["report_reasons"] == ["advertising", "off_topic"]
        assert item["comment"]["status"] == "published"  # reports alone do not hide it
        with pytest.raises(ApiError) as own:
            await author.report(cid, "other")
        assert (own.value.status, own.value.code) == (400, "own_comment")
        with pytest.raises(ApiError) as bad:
            await first.request("POST", f"/v1/comments/{cid}/report", json={"reason": "meh"})
        assert (bad.value.status, bad.value.code) == (400, "invalid_field")


async def test_keeping_a_reported_comment_clears_it_and_rejecting_removes_it(board: Board) -> None:
    watching = Feed(board.url, board.session, since=0)
    async with board.api() as author, board.api("moderator") as moderator, \
            board.api() as reporter, watching as watcher:  # fmt: skip
        kept = (await author.post(board.session, "A fair point, I think"))["comment"]["id"]
        gone = (await author.post(board.session, "Buy my course today"))["comment"]["id"]
        await watcher.events(2)
        await reporter.report(kept, "other")
        await reporter.report(gone, "advertising")
        keep = await moderator.approve(kept, "fine")
        assert (keep["changed"], keep["comment"]["status"]) == (True, "published")
        removed = await moderator.reject(gone, "advertising")
        assert (removed["changed"], removed["comment"]["status"]) == (True, "removed")
        event = await watcher.next_event()
        assert (event["kind"], event["comment"]["id"]) == ("comment.removed", gone)
        assert event["comment"]["body"] is None
        assert (await moderator.queue(board.event))["items"] == []
        again = await moderator.reject(kept)  # already decided: nothing changes
        assert again["changed"] is False


async def test_enough_reports_hold_a_comment_for_review(server: InProcessServer) -> None:
    board = await new_board(server.url)
    async with board.api("moderator") as moderator:
        await moderator.request(
            "PATCH", f"/v1/events/{board.event}/rules", json={"report_threshold": 2}
        )
    author = Person(board, "Rae")
    async with author.api() as api, author.feed() as own, board.api() as a, board.api() as b, \
            Feed(board.url, board.session, since=0) as watcher:  # fmt: skip
        await own.next_message("auth.ok")
        cid = (await api.post(board.session, "Anyone have a referral for a lawyer?"))["comment"]
        cid = cid["id"]
        await watcher.next_event()
        assert (await a.report(cid, "referral"))["held"] is False
        second = await b.report(cid, "referral")
        assert (second["reports"], second["held"]) == (2, True)
        event = await watcher.next_event()  # every screen drops it
        assert (event["kind"], event["comment"]["status"]) == ("comment.held", "held")
        assert event["comment"]["body"] is None and event["total"] == 0
        held = await notice(own, "comment.held")  # its author sees it awaiting review
        assert held["comment"]["id"] == cid
        async with board.api("moderator") as moderator:
            [item] = (await moderator.queue(board.event))["items"]
            assert (item["reason"], item["reports"]) == ("reported", 2)
            assert (await moderator.approve(cid))["comment"]["status"] == "published"
        back = await watcher.next_event()
        assert (back["kind"], back["comment"]["id"], back["total"]) == ("comment.approved", cid, 1)


# --- Sanctions -----------------------------------------------------------------------------------


async def test_a_ban_is_shown_at_once_refuses_posts_and_removes_everything(board: Board) -> None:
    troll = Person(board, "Troll")
    async with troll.api() as api, troll.feed() as own, board.api("moderator") as moderator, \
            board.api() as other, Feed(board.url, board.session, since=0) as watcher:  # fmt: skip
        ok = await own.next_message("auth.ok")
        assert ok["sanction"] is None
        first = (await api.post(board.session, "First"))["comment"]
        second = (await api.post(board.session, "Second", parent_id=first["id"]))["comment"]
        pending = (await api.post(board.session, "see www.spam.example"))["comment"]
        bystander = (await other.post(board.session, "A real comment"))["comment"]
        assert pending["status"] == "held"
        await watcher.events(3)

        result = await moderator.sanction(
            board.event, first["author"]["id"], "ban", reason="spam", remove_comments=True
        )
        assert sorted(result["removed"]) == [first["id"], second["id"]]
        assert result["refused"] == [pending["id"]]
        told = await notice(own, "author.sanctioned")  # their open board is told at once
        assert (told["sanction"]["kind"], told["event"]) == ("ban", board.event)
        removed = [await watcher.next_event() for _ in range(2)]
        assert {e["comment"]["id"] for e in removed} == {first["id"], second["id"]}
        assert all(e["kind"] == "comment.removed" for e in removed)

        with pytest.raises(ApiError) as refused:
            await api.post(board.session, "Am I still here?")
        assert (refused.value.status, refused.value.code) == (403, "banned")
        with pytest.raises(ApiError) as report:
            await api.report(bystander["id"], "other")
        assert report.value.code == "banned"
        page = await other.page(board.session)
        bodies = [t["comment"]["body"] for t in page["threads"]]
        assert bodies == ["A real comment"]
        assert (await moderator.queue(board.event))["items"] == []
        [listed] = (await moderator.request("GET", f"/v1/events/{board.event}/sanctions"))["items"]
        assert (listed["kind"], listed["author"]["name"]) == ("ban", "Troll")

    async with troll.feed() as again:  # a reconnecting board still knows
        ok = await again.next_message("auth.ok")
        assert ok["sanction"]["kind"] == "ban"


async def test_a_timeout_ends_and_can_be_lifted(board: Board) -> None:
    person = Person(board, "Tim")
    async with person.api() as api, person.feed() as own, board.api("moderator") as moderator:
        await own.next_message("auth.ok")
        author_id = (await api.post(board.session, "hello"))["comment"]["author"]["id"]
        result = await moderator.sanction(board.event, author_id, "timeout", minutes=10)
        until = result["sanction"]["until"]
        assert until is not None
        assert (await notice(own, "author.sanctioned"))["sanction"]["until"] == until
        with pytest.raises(ApiError) as refused:
            await api.post(board.session, "again")
        assert (refused.value.status, refused.value.code) == (403, "timed_out")
        assert refused.value.details["until"] is not None
        assert (await moderator.lift(board.event, author_id))["lifted"] == 1
        assert (await notice(own, "author.reinstated"))["event"] == board.event
        assert (await api.post(board.session, "back again"))["comment"]["status"] == "published"
        assert (await moderator.lift(board.event, author_id))["lifted"] == 0
        with pytest.raises(ApiError) as wrong:
            await moderator.sanction(board.event, author_id, "ban", minutes=5)
        assert wrong.value.code == "bad_minutes"
        with pytest.raises(ApiError) as unknown:
            await moderator.sanction(board.event, 2**40, "ban")
        assert (unknown.value.status, unknown.value.code) == (404, "unknown_author")


async def test_a_flagged_authors_posts_wait_for_review(board: Board) -> None:
    async with board.api() as api, board.api("moderator") as moderator:
        author_id = (await api.post(board.session, "first"))["comment"]["author"]["id"]
        await moderator.sanction(board.event, author_id, "flag", reason="watch them")
        held = (await api.post(board.session, "a perfectly fine comment"))["comment"]
        assert (held["status"], held["hold_reason"]) == ("held", "flagged")
        mine = await api.mine(board.session)
        assert [c["id"] for c in mine["items"]] == [held["id"]]
        first = (await api.page(board.session))["threads"][0]["comment"]
        edited = await api.edit(first["id"], "first, with a second thought")
        assert (edited["comment"]["status"], edited["comment"]["hold_reason"]) == (
            "held",
            "flagged",
        )  # an edit of theirs waits for review too
        rejected = await moderator.reject(held["id"], "off topic")
        assert rejected["comment"]["status"] == "rejected"
        mine = {c["id"]: c for c in (await api.mine(board.session))["items"]}
        assert (mine[held["id"]]["status"], mine[held["id"]]["hold_reason"]) == (
            "rejected",
            "off topic",
        )
        assert mine[first["id"]]["status"] == "held"


# --- Slow mode -----------------------------------------------------------------------------------


async def test_slow_mode_refuses_a_second_post_with_the_time_left(board: Board) -> None:
    async with board.api() as api, board.api("moderator") as moderator, \
            board.api("presenter") as presenter, \
            Feed(board.url, board.session, since=0) as watcher:  # fmt: skip
        change = await moderator.update_session(board.session, slow_mode_seconds=30, reason="busy")
        assert (change["session"]["slow_mode"], change["session"]["slow_mode_auto"]) == (30, False)
        event = await watcher.next_event()  # every board learns it
        assert (event["kind"], event["session"]["slow_mode"]) == ("session.updated", 30)
        await api.post(board.session, "one")
        with pytest.raises(ApiError) as refused:
            await api.post(board.session, "two")
        error = refused.value
        assert (error.status, error.code, error.details["slow_mode"]) == (429, "slow_mode", 30)
        assert 1 <= error.details["retry_after"] <= 30
        assert f"{error.details['retry_after']} s" in error.message
        await presenter.post(board.session, "presenters are not slowed")
        await presenter.post(board.session, "not at all")
        await moderator.update_session(board.session, slow_mode_seconds=0)
        await api.post(board.session, "two, now that it is off")


async def test_concurrent_posts_cannot_race_slow_mode(board: Board) -> None:
    async with board.api() as api, board.api("moderator") as moderator:
        await moderator.update_session(board.session, slow_mode_seconds=60)
        results = await asyncio.gather(
            *(api.post(board.session, f"burst {i}") for i in range(8)), return_exceptions=True
        )
        accepted = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, ApiError) and r.code == "slow_mode"]
        assert (len(accepted), len(refused)) == (1, 7)


async def test_automatic_slow_mode_switches_on_under_a_burst_and_off_after(
    server: InProcessServer,
) -> None:
    # Posts per minute measured over 3 seconds: automatic slow mode reacts fast.
    board = await new_board(
        server.url, auto_slow_threshold=60, auto_slow_seconds=15, auto_slow_window=3
    )
    async with Feed(board.url, board.session, since=0) as watcher:
        # 12 posts from 12 people as fast as they go: over 3 s, 3 of them are 60 per minute.
        for i in range(12):
            async with board.api() as api:
                await api.post(board.session, f"tell me in the comments: {i}")
        while (event := await watcher.next_event(timeout=20))["kind"] != "session.updated":
            pass
        assert (event["session"]["slow_mode"], event["session"]["slow_mode_auto"]) == (15, True)
        # The rest of the burst may still arrive; then calm: the window empties.
        while (off := await watcher.next_event(timeout=20))["kind"] != "session.updated":
            pass
        assert (off["kind"], off["session"]["slow_mode"], off["session"]["slow_mode_auto"]) == (
            "session.updated",
            0,
            False,
        )
    async with board.api("moderator") as moderator:
        audit = await moderator.audit(board.event)
    automatic = [e for e in audit["entries"] if e["action"] == "slow_mode"]
    assert [e["role"] for e in automatic] == ["system", "system"]
    assert "automatic" in automatic[0]["reason"]


# --- Audit ---------------------------------------------------------------------------------------


async def test_the_audit_csv_lists_every_action_with_who_when_what_and_why(board: Board) -> None:
    async with board.api() as api, board.api("moderator", name="Erin") as moderator:
        comment = (await api.post(board.session, "hello"))["comment"]
        author_id = comment["author"]["id"]
        await moderator.remove(comment["id"])
        await moderator.update_session(board.session, slow_mode_seconds=10, reason="burst")
        await moderator.sanction(board.event, author_id, "timeout", minutes=60, reason="rude")
        await moderator.sanction(board.event, author_id, "ban", reason="again")
        await moderator.sanction(board.event, author_id, "flag", reason="watch")
        await moderator.lift(board.event, author_id)
        await moderator.close(board.session)
        response = await moderator.http.get(f"/v1/events/{board.event}/audit?format=csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    actions = [r["action"] for r in rows]
    assert actions == ["remove", "slow_mode", "timeout", "ban", "flag", "lift", "close"]
    assert {r["actor_name"] for r in rows} == {"Erin"}
    assert all(r["at"] for r in rows)
    by_action = {r["action"]: r for r in rows}
    assert by_action["slow_mode"]["reason"] == "burst"
    assert "60 min" in by_action["timeout"]["reason"] and "rude" in by_action["timeout"]["reason"]
    assert by_action["ban"]["author_id"] == str(author_id)
    assert "ban" in by_action["lift"]["reason"] and "flag" in by_action["lift"]["reason"]
