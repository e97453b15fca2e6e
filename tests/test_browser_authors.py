"""Authors' own comments and the moderator's reasons, audit log and exports, in a real Chromium
against a real server (``docs/screens.md``): an author edits a comment for 5 minutes after
posting (others see the new text live, marked edited), deletes it at any time (a comment with
replies stays as "Comment deleted by its author"), and a moderator's reason reaches the audit
log panel and its CSV download.

Each person is a browser context of their own, holding a token in the page's URL fragment; an
author's page and API client share the token's ``sub``, so the server knows them as one."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page, expect

from client import Api, ApiError

from .browser import (
    Tab,
    Tabs,
    axe_violations,
    browser_fixture,  # noqa: F401 (the fixture "browser")
    by_id,
    comment_id_of,
    part,
    post_from_form,
    replies_of,
    screen_url,
    tabs_fixture,  # noqa: F401 (the fixture "tabs")
    wait_live,
)
from .conftest import Board, make_token

MAYA = {"name": "Maya", "profession": "Nursing", "city": "Albany", "region": "NY", "country": "US"}
CHIDI = {"name": "Chidi Okonkwo", "profession": "Medicine", "city": "Enugu", "country": "NG"}
ERIN = {"name": "Erin", "profession": "Moderation"}


class Person:
    """One person: the same ``sub`` in their page's token and in their API client's."""

    def __init__(self, board: Board, role: str = "attendee", **claims: Any) -> None:
        self.board = board
        self.role = role
        self.claims = claims
        self.sub = f"{role}-{uuid.uuid4().hex[:10]}"

    def token(self) -> str:
        return make_token(self.role, self.board.event, sub=self.sub, **self.claims)

    def api(self) -> Api:
        return Api(self.board.url, self.token())

    def url(self, screen: str) -> str:
        return screen_url(self.board.url, screen, self.board.session, self.token())

    async def open(self, tabs: Tabs, screen: str, name: str, *, clock: bool = False) -> Tab:
        tab = await tabs.open(None, name)
        if clock:
            await tab.page.clock.install()  # time flows; fast_forward jumps it (and its timers)
        await tab.page.goto(self.url(screen))
        await wait_live(tab.page)
        return tab


async def total_is(page: Page, n: int) -> None:
    word = "Comment" if n == 1 else "Comments"
    await expect(page.get_by_test_id("total")).to_contain_text(re.compile(rf"\b{n} {word}\b"))


# --- Editing -------------------------------------------------------------------------------------


async def test_author_edits_within_five_minutes_and_not_after(
    board: Board, tabs: Tabs, database_url: str
) -> None:
    maya, chidi = Person(board, **MAYA), Person(board, **CHIDI)
    a = await maya.open(tabs, "board", "author", clock=True)
    b = await chidi.open(tabs, "board", "other attendee")

    original = f"First thoughts {uuid.uuid4().hex[:6]}: the body keeps watch at night."
    await post_from_form(a.page, original)
    cid = await comment_id_of(a.page, original)
    await expect(part(a.page, cid, "edit")).to_be_visible()
    await expect(part(a.page, cid, "delete")).to_be_visible()
    await expect(a.page.locator("body")).not_to_contain_text("No comments yet")
    await expect(part(b.page, cid, "body")).to_have_text(original)
    await expect(part(b.page, cid, "edit")).to_have_count(0)  # not B's comment
    await expect(part(b.page, cid, "delete")).to_have_count(0)
    await expect(part(b.page, cid, "edited")).to_have_count(0)

    # A edits inline; B sees the new text live, marked edited.
    await part(a.page, cid, "edit").click()
    form = part(a.page, cid, "edit-form")
    await expect(form).to_be_visible()
    await expect(form.locator("textarea[name=body]")).to_have_value(original)
    assert not (found := await axe_violations(a.page)), f"board with an edit form:\n{found}"
    edited = f"Second thoughts {uuid.uuid4().hex[:6]}: the watchman needs rest too."
    await form.locator("textarea[name=body]").fill(edited)
    await form.get_by_test_id("save-edit").click()
    await expect(form).to_have_count(0)
    for tab in (a, b):
        await expect(part(tab.page, cid, "body")).to_have_text(edited)
        await expect(part(tab.page, cid, "edited")).to_contain_text("edited")
        await expect(tab.page.locator("body")).not_to_contain_text(original)
    # Cancel leaves the text alone.
    await part(a.page, cid, "edit").click()
    await part(a.page, cid, "edit-form").locator("textarea[name=body]").fill("Not this")
    await part(a.page, cid, "cancel-edit").click()
    await expect(part(a.page, cid, "edit-form")).to_have_count(0)
    await expect(part(a.page, cid, "body")).to_have_text(edited)

    # Six minutes later (by the database's clock), a reload offers no edit; the server refuses.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE comments SET created_at = now() - interval '6 minutes' WHERE id = $1", cid
        )
    finally:
        await conn.close()
    await a.page.reload()
    await wait_live(a.page)
    await expect(part(a.page, cid, "delete")).to_be_visible()  # still A's: known from auth.ok
    await expect(part(a.page, cid, "edit")).to_have_count(0)
    async with maya.api() as api:
        with pytest.raises(ApiError) as refused:
            await api.edit(cid, "Too late")
    assert (refused.value.status, refused.value.code) == (409, "edit_window_closed")
    await expect(part(b.page, cid, "body")).to_have_text(edited)

    # An Edit button goes away by itself when its five minutes are up.
    fresh = f"Posted now {uuid.uuid4().hex[:6]}"
    await post_from_form(a.page, fresh)
    fresh_id = await comment_id_of(a.page, fresh)
    await expect(part(a.page, fresh_id, "edit")).to_be_visible()
    await a.page.clock.fast_forward("05:05")
    await expect(part(a.page, fresh_id, "edit")).to_have_count(0)
    await expect(part(a.page, fresh_id, "delete")).to_be_visible()


# --- Deleting ------------------------------------------------------------------------------------


async def test_author_deletes_comments_with_and_without_replies(board: Board, tabs: Tabs) -> None:
    maya, chidi = Person(board, **MAYA), Person(board, **CHIDI)
    moderator = Person(board, "moderator", **ERIN)
    presenter = Person(board, "presenter", name="Renata")
    async with maya.api() as api:
        parent = (await api.post(board.session, "A comment that will get a reply"))["comment"]
        lonely = (await api.post(board.session, "A comment nobody answers"))["comment"]
    async with chidi.api() as api:
        reply = (await api.post(board.session, "Chidi's reply stays", parent["id"]))["comment"]
    pid, lid, rid = parent["id"], lonely["id"], reply["id"]

    a = await maya.open(tabs, "board", "author")
    b = await chidi.open(tabs, "board", "replier")
    console = await moderator.open(tabs, "moderator", "moderator")
    feed = await presenter.open(tabs, "presenter", "presenter")
    for tab in (a, b):
        await total_is(tab.page, 3)
    # A's page knows A's comments from the feed's auth.ok (nothing was posted from this page).
    await expect(part(a.page, pid, "delete")).to_be_visible()
    await expect(part(a.page, rid, "delete")).to_have_count(0)
    await expect(part(b.page, pid, "delete")).to_have_count(0)
    await expect(part(b.page, rid, "delete")).to_be_visible()

    # The confirm step is in the page: No keeps the comment, Yes deletes it.
    await part(a.page, pid, "delete").click()
    await expect(part(a.page, pid, "delete-confirm")).to_be_visible()
    assert not (found := await axe_violations(a.page)), f"board confirming a delete:\n{found}"
    await part(a.page, pid, "delete-cancel").click()
    await expect(part(a.page, pid, "delete-confirm")).to_have_count(0)
    await expect(part(a.page, pid, "body")).to_have_text("A comment that will get a reply")
    await part(a.page, pid, "delete").click()
    await part(a.page, pid, "delete-confirm").click()

    for tab in (a, b):
        page = tab.page
        await expect(by_id(page, pid)).to_have_attribute("data-status", "deleted")
        placeholder = part(page, pid, "placeholder")
        await expect(placeholder).to_have_text("Comment deleted by its author")
        await expect(page.locator("body")).not_to_contain_text("will get a reply")
        await expect(replies_of(page, pid)).to_have_count(1)
        await expect(part(page, rid, "body")).to_have_text("Chidi's reply stays")
        above, below = await placeholder.bounding_box(), await by_id(page, rid).bounding_box()
        assert above and below and above["y"] < below["y"], f"{tab.name}: placeholder not above"
        await total_is(page, 2)

    # Without replies, a deleted comment vanishes.
    await part(a.page, lid, "delete").click()
    await part(a.page, lid, "delete-confirm").click()
    for tab in (a, b):
        await expect(by_id(tab.page, lid)).to_have_count(0)
        await total_is(tab.page, 1)
    await expect(a.page.get_by_test_id("error")).to_be_hidden()

    # The staff screens: the console labels it, with nothing to restore; the presenter's feed
    # drops it and says what the reply answers.
    stream = console.page.get_by_test_id("stream")
    for cid in (pid, lid):
        await expect(part(stream, cid, "deleted-by")).to_contain_text("Deleted by its author")
        await expect(part(stream, cid, "restore")).to_have_count(0)
        await expect(part(stream, cid, "remove")).to_have_count(0)
        await expect(part(stream, cid, "removed-by")).to_have_count(0)
    presenter_feed = feed.page.get_by_test_id("feed")
    await expect(by_id(presenter_feed, pid)).to_have_count(0)
    await expect(by_id(presenter_feed, rid)).to_contain_text("a comment deleted by its author")
    async with moderator.api() as api:
        with pytest.raises(ApiError) as refused:
            await api.restore(pid)
    assert (refused.value.status, refused.value.code) == (409, "not_allowed")

    # When the last reply goes too, so does the placeholder it kept.
    await part(b.page, rid, "delete").click()
    await part(b.page, rid, "delete-confirm").click()
    for tab in (a, b):
        await expect(by_id(tab.page, pid)).to_have_count(0)
        await total_is(tab.page, 0)
        await expect(tab.page.locator("body")).to_contain_text("No comments yet")


# --- The moderator's reasons, audit log and exports ----------------------------------------------


async def test_moderator_reason_reaches_the_audit_log_and_its_csv(
    board: Board, tabs: Tabs, tmp_path: Path
) -> None:
    chidi = Person(board, **CHIDI)
    moderator = Person(board, "moderator", **ERIN)
    other = Person(board, "moderator", name="Dana")
    async with chidi.api() as api:
        kept = (await api.post(board.session, "A comment that stays"))["comment"]["id"]
        removed = (await api.post(board.session, "Off-topic chatter about parking"))["comment"]
        twice = (await api.post(board.session, "Removed twice"))["comment"]["id"]
    async with other.api() as api:
        await api.request("POST", f"/v1/comments/{twice}/remove", json={"reason": "spam"})
        again = await api.request("POST", f"/v1/comments/{twice}/remove")
        assert again["changed"] is False

    tab = await moderator.open(tabs, "moderator", "moderator")
    page = tab.page
    stream = page.get_by_test_id("stream")
    audit = page.get_by_test_id("audit")
    await expect(audit).to_be_hidden()
    await page.get_by_test_id("show-audit").click()
    await expect(audit).to_be_visible()
    entries = audit.get_by_test_id("audit-entry")
    await expect(entries).to_have_count(2)
    await expect(entries.first).to_contain_text("(already so)")  # newest first
    await expect(entries.nth(1)).to_contain_text("spam")
    await expect(entries.nth(1)).not_to_contain_text("already so")
    assert not (found := await axe_violations(page)), f"console with its audit log:\n{found}"

    reason = "Referral request (rule 3)"
    await page.get_by_test_id("reason").fill(reason)
    await part(stream, removed["id"], "remove").click()
    await expect(part(stream, removed["id"], "removed-by")).to_contain_text("Removed by Erin")
    await expect(entries).to_have_count(3)  # reloaded after the action
    newest = entries.first
    await expect(newest).to_have_attribute("data-action", "remove")
    await expect(newest).to_have_attribute("data-comment-id", str(removed["id"]))
    for text in ("Erin", reason, f"#{removed['id']}"):
        await expect(newest).to_contain_text(text)
    await expect(page.get_by_test_id("reason")).to_have_value(reason)  # kept for next actions

    async with page.expect_download() as started:
        await page.get_by_test_id("audit-csv").click()
    download = await started.value
    assert download.suggested_filename == f"{board.event}-audit.csv"
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    audit_csv = saved.read_text(encoding="utf-8")
    assert reason in audit_csv and str(removed["id"]) in audit_csv and "Erin" in audit_csv
    assert "spam" in audit_csv

    async with page.expect_download() as started:
        await page.get_by_test_id("export-csv").click()
    download = await started.value
    assert download.suggested_filename == f"{board.session}.csv"
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    export_csv = saved.read_text(encoding="utf-8")
    assert "A comment that stays" in export_csv and str(kept) in export_csv
    assert "refer me to a clinic" not in export_csv  # removed: redacted in the export
    await expect(page.get_by_test_id("error")).to_be_hidden()
