"""Holds and the review queue: posts the community rules (or pre-moderation) hold are seen only
by their author and the moderators until approved; real server, real database."""

from __future__ import annotations

import asyncio
import json

import pytest

from client import Api, ApiError, Feed

from .conftest import Board, make_token, new_board
from .servers import InProcessServer


async def queue_ids(moderator: Api, event: str) -> list[int]:
    queue = await moderator.request("GET", f"/v1/events/{event}/queue")
    return [item["comment"]["id"] for item in queue["items"]]


async def test_a_link_is_held_until_approved_and_only_its_author_sees_it(board: Board) -> None:
    author_token = make_token("attendee", board.event, sub="linker", name="Lin")
    mod_token = make_token("moderator", board.event)
    async with Api(board.url, author_token) as author, board.api("moderator") as moderator, \
            Feed(board.url, board.session, since=0) as anonymous, \
            Feed(board.url, board.session, token=author_token) as own, \
            Feed(board.url, board.session, token=mod_token) as mods:  # fmt: skip
        await own.next_message("auth.ok")
        await mods.next_message("auth.ok")
        posted = await author.post(board.session, "Slides are at www.example.com/slides, enjoy")
        comment = posted["comment"]
        assert (comment["status"], comment["hold_reason"], posted["seq"]) == ("held", "link", None)
        assert comment["body"].startswith("Slides are at")  # its author sees it, awaiting review
        notice = await own.next_message("notice")
        assert (notice["kind"], notice["comment"]["id"]) == ("comment.held", comment["id"])
        item = await mods.next_message("queue")
        assert (item["kind"], item["item"]["comment"]["id"]) == ("held", comment["id"])
        assert await queue_ids(moderator, board.event) == [comment["id"]]
        assert (await author.session(board.session))["head"] == 0  # nothing public happened

        approved = await moderator.request("POST", f"/v1/comments/{comment['id']}/approve")
        assert approved["changed"] and approved["comment"]["status"] == "published"
        for feed in (anonymous, own):
            event = await feed.next_event()
            assert (event["kind"], event["comment"]["number"]) == ("comment.approved", 1)
        assert await queue_ids(moderator, board.event) == []


async def test_an_anonymous_replay_never_carries_held_or_rejected_posts(board: Board) -> None:
    secret = "write to me at someone@example.org for a session"
    async with board.api() as author, board.api("moderator") as moderator:
        held = (await author.post(board.session, secret))["comment"]
        assert held["hold_reason"] == "contact"
        await moderator.request(
            "POST", f"/v1/comments/{held['id']}/reject", json={"reason": "no contact details"}
        )
        await author.post(board.session, "A clean comment about the session")
        async with Feed(board.url, board.session, since=0) as replay:
            events = await replay.events(1)
            assert replay.last_seq == 1
    assert secret not in json.dumps(events)
    assert events[0]["comment"]["body"] == "A clean comment about the session"


async def test_premoderation_holds_everything_and_bulk_approval_publishes_in_order(
    server: InProcessServer,
) -> None:
    board = await new_board(server.url, premoderated=True)
    authors = [board.api(sub=f"author-{i}") for i in range(5)]
    async with board.api("moderator") as moderator, Feed(board.url, board.session) as watcher:
        ids = []
        for n in range(20):
            ids.append(
                (await authors[n % 5].post(board.session, f"Thought number {n}"))["comment"]["id"]
            )
        assert await queue_ids(moderator, board.event) == ids
        chosen = ids[3:13]
        results = await moderator.request(
            "POST", f"/v1/events/{board.event}/queue/approve", json={"ids": chosen}
        )
        assert [r["comment"]["id"] for r in results] == chosen and all(
            r["changed"] for r in results
        )
        events = await watcher.events(10)
        assert [e["comment"]["id"] for e in events] == chosen
        assert [e["kind"] for e in events] == ["comment.approved"] * 10
        assert sorted(await queue_ids(moderator, board.event)) == sorted(set(ids) - set(chosen))
    for api in authors:
        await api.http.aclose()


async def test_two_moderators_on_one_item_exactly_one_wins(board: Board) -> None:
    erin = make_token("moderator", board.event, name="Erin", sub="mod-erin")
    dana = make_token("moderator", board.event, name="Dana", sub="mod-dana")
    async with board.api() as author, Api(board.url, erin) as a, Api(board.url, dana) as b:
        cid = (await author.post(board.session, "see bit.ly/abc"))["comment"]["id"]
        approve, reject = await asyncio.gather(
            a.request("POST", f"/v1/comments/{cid}/approve"),
            b.request("POST", f"/v1/comments/{cid}/reject"),
        )
    assert sorted([approve["changed"], reject["changed"]]) == [False, True]
    winner, loser = (approve, reject) if approve["changed"] else (reject, approve)
    assert loser["reviewed_by"] == winner["reviewed_by"]
    assert loser["comment"]["status"] == winner["comment"]["status"]


async def test_an_approved_comment_edited_into_a_link_goes_back_to_the_queue(board: Board) -> None:
    async with board.api(sub="editor") as author, board.api("moderator") as moderator, \
            Feed(board.url, board.session, since=0) as watcher:  # fmt: skip
        comment = (await author.post(board.session, "A thoughtful comment"))["comment"]
        await watcher.next_event()
        edited = await author.edit(comment["id"], "A thoughtful comment, see ｗｗｗ.example.com")
        assert edited["comment"]["status"] == "held" and edited["comment"]["body"] is not None
        event = await watcher.next_event()
        assert (event["kind"], event["comment"]["body"]) == ("comment.held", None)
        assert await queue_ids(moderator, board.event) == [comment["id"]]


async def test_event_word_lists_refuse_or_hold(board: Board) -> None:
    async with board.api() as author, board.api("moderator") as moderator:
        await moderator.request(
            "PATCH",
            f"/v1/events/{board.event}/rules",
            json={"banned_words": ["scamword"], "suspect_words": ["webinar"],
                  "support_message": "You are not alone: call your local crisis line."},
        )  # fmt: skip
        head = (await author.session(board.session))["head"]
        with pytest.raises(ApiError) as refused:
            await author.post(board.session, "Buy my SCAMWORD course")
        assert (refused.value.status, refused.value.code) == (400, "banned_word")
        suspect = await author.post(board.session, "Join my webinar next week")
        assert suspect["comment"]["hold_reason"] == "suspect"
        assert (await author.session(board.session))["head"] == head
        crisis = await author.post(board.session, "I want to end my life, I can't go on anymore")
        assert crisis["comment"]["hold_reason"] == "crisis"
        assert crisis["support_message"] == "You are not alone: call your local crisis line."
        queue = await queue_ids(moderator, board.event)
        assert queue[0] == crisis["comment"]["id"]  # crises first
        mine = await author.request("GET", f"/v1/sessions/{board.session}/mine")
        assert mine["support_message"] == "You are not alone: call your local crisis line."
        audit = await moderator.request("GET", f"/v1/events/{board.event}/audit")
        assert [e["action"] for e in audit["entries"]] == ["rules"]
