"""Holds and the review queue on the screens, in a real Chromium against a real server
(``docs/screens.md``): a post the rules hold shows to its author only, "Awaiting review", in its
place; the moderator console lists it in the review queue and approves or rejects it (buttons,
keys, or many at once); approval publishes it live on every board, rejection tells its author
why; a crisis leads the queue and its author sees the event's support message; two consoles
stay in step; the rules editor changes what is held.

Each person is a browser context of their own, holding a token in the page's URL fragment; an
author's page and API client share the token's ``sub``."""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

from playwright.async_api import Locator, Page, WebSocketRoute, expect

from client import Api

from .browser import (
    ROOT,
    Tab,
    Tabs,
    axe_violations,
    browser_fixture,  # noqa: F401 (the fixture "browser")
    by_id,
    comment_id_of,
    numbers_text,
    part,
    post_from_form,
    tabs_fixture,  # noqa: F401 (the fixture "tabs")
    visible_numbers,
    wait_live,
)
from .conftest import Board, new_board
from .servers import InProcessServer
from .test_browser_authors import CHIDI, ERIN, MAYA, Person, total_is

DANA = {"name": "Dana", "profession": "Moderation"}
SUPPORT = "You matter. If you are in crisis, please call or text your local crisis line now."
CRISIS = "I want to end my life, I can't go on anymore"


def queue_items(page: Page) -> Locator:
    return page.get_by_test_id("queue").get_by_test_id("queue-item")


def queue_item(page: Page, comment_id: int) -> Locator:
    return page.get_by_test_id("queue").locator(
        f'[data-testid="queue-item"][data-id="{comment_id}"]'
    )


async def held_id(page: Page, body: str) -> int:
    """The id of one's own comment awaiting review whose body reads ``body``."""
    cid = await comment_id_of(page, body)
    await expect(by_id(page, cid)).to_have_attribute("data-status", "held")
    return cid


async def published_and_seen(api: Api, session: str, tabs: list[Tab], body: str) -> int:
    """Post a comment that the rules let through and wait until every tab shows it: whatever
    those tabs were sent before it has been applied by then."""
    cid = int((await api.post(session, body))["comment"]["id"])
    for tab in tabs:
        await expect(part(tab.page, cid, "body")).to_have_text(body)
    return cid


async def set_rules(board: Board, **rules: Any) -> None:
    async with board.api("moderator") as moderator:
        await moderator.request("PATCH", f"/v1/events/{board.event}/rules", json=rules)


# --- Held, approved with the keyboard ------------------------------------------------------------


async def test_a_held_link_is_seen_by_its_author_only_until_approved_from_the_queue(
    board: Board, tabs: Tabs
) -> None:
    maya, chidi = Person(board, **MAYA), Person(board, **CHIDI)
    moderator = Person(board, "moderator", **ERIN)
    a = await maya.open(tabs, "board", "author")
    b = await chidi.open(tabs, "board", "other attendee")
    console = await moderator.open(tabs, "moderator", "moderator")
    await expect(console.page.get_by_test_id("queue-count")).to_have_text("0")

    linked = f"My notes from today are at www.example.com/sleep-notes {uuid.uuid4().hex[:6]}"
    await post_from_form(a.page, linked)
    cid = await held_id(a.page, linked)
    held = part(a.page, cid, "held")
    await expect(held).to_contain_text("Awaiting review")
    await expect(held).to_contain_text("before others see it")
    await expect(part(a.page, cid, "number")).to_have_count(0)
    await expect(part(a.page, cid, "reply-link")).to_have_count(0)
    await expect(a.page.get_by_test_id("error")).to_be_hidden()
    assert not (found := await axe_violations(a.page)), f"board with a held post:\n{found}"

    # Nobody else sees it: once a later comment has arrived, the other board still has no trace.
    async with chidi.api() as api:
        first = await published_and_seen(api, board.session, [a, b], "A comment everyone sees")
    await expect(by_id(b.page, cid)).to_have_count(0)
    await expect(b.page.locator("body")).not_to_contain_text("sleep-notes")
    await total_is(b.page, 1)
    await total_is(a.page, 1)
    await expect(a.page.get_by_test_id("comment").first).to_have_attribute("data-id", str(cid))

    # The moderator's queue has it, with why and what matched.
    row = queue_item(console.page, cid)
    await expect(row).to_have_attribute("data-reason", "link")
    await expect(row.get_by_test_id("hold-reason")).to_have_text("Link")
    await expect(row.get_by_test_id("match")).to_contain_text("link")
    await expect(row.get_by_test_id("item-body")).to_have_text(linked)
    await expect(row.get_by_test_id("author")).to_contain_text("Maya, Nursing, Albany, NY, US")
    await expect(console.page.get_by_test_id("queue-count")).to_have_text("1")
    assert not (found := await axe_violations(console.page)), f"console with a queue:\n{found}"

    # j from nowhere enters the queue; a approves the focused row.
    await console.page.keyboard.press("j")
    await expect(row).to_be_focused()
    await console.page.keyboard.press("a")
    await expect(queue_items(console.page)).to_have_count(0)
    await expect(console.page.get_by_test_id("queue-count")).to_have_text("0")
    await expect(part(console.page.get_by_test_id("stream"), cid, "body")).to_have_text(linked)

    # Published live on both boards, in its place: number 2, above number 1.
    for tab in (a, b):
        await expect(by_id(tab.page, cid)).to_have_attribute("data-status", "published")
        await expect(part(tab.page, cid, "body")).to_have_text(linked)
        await expect(part(tab.page, cid, "held")).to_have_count(0)
        await expect(visible_numbers(tab.page)).to_have_text(numbers_text([2, 1]))
        await total_is(tab.page, 2)
    await expect(part(b.page, first, "number")).to_have_text("1.")
    await expect(part(a.page, cid, "delete")).to_be_visible()  # still Maya's own comment


async def test_a_held_reply_sits_under_its_parent(board: Board, tabs: Tabs) -> None:
    maya, chidi = Person(board, **MAYA), Person(board, **CHIDI)
    async with chidi.api() as api:
        parent = await api.post(board.session, "What helps you sleep after a night shift?")
    pid = parent["comment"]["id"]
    a = await maya.open(tabs, "board", "author")
    await part(a.page, pid, "reply-link").click()
    form = a.page.get_by_test_id("reply-form")
    reply = "Write to me at maya.nurse@example.org and I will send my routine"
    await form.locator("textarea[name=body]").fill(reply)
    await form.get_by_test_id("post-reply").click()
    await expect(form).to_have_count(0)
    cid = await held_id(a.page, reply)
    reply_article = part(a.page, pid, "comment")
    await expect(reply_article).to_have_attribute("data-id", str(cid))
    await expect(part(a.page, cid, "held")).to_contain_text("Awaiting review")
    await expect(part(a.page, pid, "reply-count")).to_be_hidden()  # it counts for nobody yet


async def test_an_edit_the_rules_hold_sends_a_comment_back_to_review(
    board: Board, tabs: Tabs
) -> None:
    maya, chidi = Person(board, **MAYA), Person(board, **CHIDI)
    moderator = Person(board, "moderator", **ERIN)
    a = await maya.open(tabs, "board", "author")
    b = await chidi.open(tabs, "board", "other attendee")
    console = await moderator.open(tabs, "moderator", "moderator")
    original = "The night watchman image stayed with me"
    await post_from_form(a.page, original)
    cid = await comment_id_of(a.page, original)
    await expect(part(b.page, cid, "body")).to_have_text(original)

    edited = f"{original}: more at www.example.com/night-watch"
    await part(a.page, cid, "edit").click()
    await part(a.page, cid, "edit-form").locator("textarea[name=body]").fill(edited)
    await part(a.page, cid, "save-edit").click()
    await expect(by_id(a.page, cid)).to_have_attribute("data-status", "held")
    await expect(part(a.page, cid, "held")).to_contain_text("Awaiting review")
    await expect(part(a.page, cid, "body")).to_have_text(edited)
    await expect(part(a.page, cid, "number")).to_have_text("1.")  # in its place
    await expect(by_id(b.page, cid)).to_have_count(0)
    await total_is(b.page, 0)
    stream = console.page.get_by_test_id("stream")
    await expect(by_id(stream, cid)).to_have_attribute("data-status", "held")
    await expect(part(stream, cid, "restore")).to_have_count(0)

    await queue_item(console.page, cid).get_by_test_id("approve").click()
    for tab in (a, b):
        await expect(by_id(tab.page, cid)).to_have_attribute("data-status", "published")
        await expect(part(tab.page, cid, "body")).to_have_text(edited)
        await expect(part(tab.page, cid, "number")).to_have_text("1.")
    await expect(part(stream, cid, "body")).to_have_text(edited)


# --- Rejected ------------------------------------------------------------------------------------


async def test_a_rejected_post_tells_its_author_why_and_nobody_else(
    board: Board, tabs: Tabs
) -> None:
    maya, chidi = Person(board, **MAYA), Person(board, **CHIDI)
    moderator = Person(board, "moderator", **ERIN)
    a = await maya.open(tabs, "board", "author")
    b = await chidi.open(tabs, "board", "other attendee")
    console = await moderator.open(tabs, "moderator", "moderator")

    contact = "Call me on 555-123-4567 to talk about my private practice"
    await post_from_form(a.page, contact)
    cid = await held_id(a.page, contact)
    row = queue_item(console.page, cid)
    await expect(row).to_have_attribute("data-reason", "contact")
    why = "Please do not share contact details on the board."
    await console.page.get_by_test_id("reason").fill(why)
    await row.get_by_test_id("reject").click()
    await expect(row).to_have_count(0)

    await expect(by_id(a.page, cid)).to_have_attribute("data-status", "rejected")
    await expect(part(a.page, cid, "rejected")).to_have_text(f"Not published: {why}")
    await expect(part(a.page, cid, "body")).to_have_text(contact)
    async with chidi.api() as api:
        await published_and_seen(api, board.session, [a, b], "Thank you for the session")
    await expect(by_id(b.page, cid)).to_have_count(0)
    await expect(b.page.locator("body")).not_to_contain_text(why)
    await expect(b.page.locator("body")).not_to_contain_text("555-123-4567")
    await expect(part(console.page.get_by_test_id("stream"), cid, "body")).to_have_count(0)

    await part(a.page, cid, "dismiss").click()
    await expect(by_id(a.page, cid)).to_have_count(0)
    await expect(a.page.get_by_test_id("error")).to_be_hidden()


# --- Crisis --------------------------------------------------------------------------------------


async def test_a_crisis_post_shows_the_support_message_and_leads_the_queue(
    board: Board, tabs: Tabs
) -> None:
    await set_rules(board, support_message=SUPPORT)
    maya, chidi = Person(board, **MAYA), Person(board, **CHIDI)
    moderator = Person(board, "moderator", **ERIN)
    async with chidi.api() as api:
        earlier = (await api.post(board.session, "Slides at bit.ly/sleep-slides"))["comment"]
    assert earlier["status"] == "held"
    console = await moderator.open(tabs, "moderator", "moderator")
    await expect(queue_items(console.page)).to_have_count(1)

    a = await maya.open(tabs, "board", "author")
    await post_from_form(a.page, CRISIS)
    cid = await held_id(a.page, CRISIS)
    support = part(a.page, cid, "support-message")
    await expect(support).to_be_visible()
    await expect(support).to_contain_text(SUPPORT)
    await expect(support).to_have_attribute("role", "alert")
    await expect(part(a.page, cid, "held")).to_contain_text("Awaiting review")
    await expect(part(a.page, cid, "held")).not_to_contain_text("crisis")
    await expect(a.page.get_by_test_id("error")).to_be_hidden()
    assert not (found := await axe_violations(a.page)), f"board with a support message:\n{found}"
    await a.page.reload()  # the same tab keeps the message with the post (sessionStorage)
    await wait_live(a.page)
    await expect(part(a.page, cid, "support-message")).to_contain_text(SUPPORT)

    # First in the queue although it came last, and unmistakable.
    items = queue_items(console.page)
    await expect(items).to_have_count(2)
    await expect(items.first).to_have_attribute("data-id", str(cid))
    await expect(items.first).to_have_attribute("data-reason", "crisis")
    await expect(items.first).to_have_class(re.compile(r"\bis-urgent\b"))
    await expect(items.first.get_by_test_id("hold-reason")).to_have_text("Crisis")
    await expect(items.nth(1)).to_have_attribute("data-id", str(earlier["id"]))
    await expect(console.page.get_by_test_id("queue-count")).to_have_text("2")
    # A console opened now reads the same order from the server.
    again = await moderator.open(tabs, "moderator", "second console")
    await expect(queue_items(again.page).first).to_have_attribute("data-id", str(cid))


# --- Many at once --------------------------------------------------------------------------------


async def test_bulk_approve_and_reject_of_selected_posts(
    server: InProcessServer, tabs: Tabs
) -> None:
    board = await new_board(server.url, premoderated=True)
    chidi = Person(board, **CHIDI)
    moderator = Person(board, "moderator", **ERIN)
    ids = []
    async with chidi.api() as api:
        for n in range(4):
            ids.append(
                (await api.post(board.session, f"Premoderated thought {n}"))["comment"]["id"]
            )
    watcher = await tabs.open(None, "anonymous watcher")
    await watcher.page.goto(f"{board.url}/board.html?session={board.session}")
    await wait_live(watcher.page)
    console = await moderator.open(tabs, "moderator", "moderator")
    page = console.page
    await expect(queue_items(page)).to_have_count(4)
    await expect(page.get_by_test_id("approve-selected")).to_be_disabled()

    # Select by clicking one checkbox and pressing x on another row; A approves the selection.
    await queue_item(page, ids[0]).get_by_test_id("select").check()
    await queue_item(page, ids[2]).focus()
    await page.keyboard.press("x")
    await expect(queue_item(page, ids[2]).get_by_test_id("select")).to_be_checked()
    await expect(page.get_by_test_id("approve-selected")).to_have_text("Approve selected (2)")
    await page.keyboard.press("Shift+A")
    await expect(queue_items(page)).to_have_count(2)
    for cid in (ids[1], ids[3]):
        await expect(queue_item(page, cid)).to_be_visible()
    stream = page.get_by_test_id("stream")
    for tab_page in (page, watcher.page):
        for n in (0, 2):
            await expect(part(tab_page, ids[n], "body")).to_have_text(f"Premoderated thought {n}")
    await expect(visible_numbers(watcher.page)).to_have_text(numbers_text([2, 1]))

    # The rest, rejected with the bulk button.
    for cid in (ids[1], ids[3]):
        await queue_item(page, cid).get_by_test_id("select").check()
    await page.get_by_test_id("reject-selected").click()
    await expect(queue_items(page)).to_have_count(0)
    await expect(page.get_by_test_id("queue-count")).to_have_text("0")
    await expect(stream.locator("[data-testid=comment]")).to_have_count(2)
    async with Api(board.url) as anonymous:
        shown = [t["comment"]["id"] for t in (await anonymous.page(board.session))["threads"]]
    assert shown == [ids[2], ids[0]]


# --- Reported ------------------------------------------------------------------------------------


async def test_a_reported_comment_joins_the_queue_live_and_can_be_removed(
    board: Board, tabs: Tabs
) -> None:
    chidi = Person(board, **CHIDI)
    moderator = Person(board, "moderator", **ERIN)
    async with chidi.api() as api:
        held = (await api.post(board.session, "Details at example.com/x"))["comment"]
        ad = await api.post(board.session, "Book a session with me, first one is half price")
    cid = ad["comment"]["id"]
    console = await moderator.open(tabs, "moderator", "moderator")
    page = console.page
    await expect(queue_items(page)).to_have_count(1)
    for reason in ("advertising", "off_topic"):
        async with Person(board, **MAYA).api() as api:
            await api.request("POST", f"/v1/comments/{cid}/report", json={"reason": reason})
    row = queue_item(page, cid)
    await expect(row).to_have_attribute("data-reason", "reported")
    await expect(row.get_by_test_id("reports")).to_have_text(
        "Reported 2 times: advertising, off topic"
    )
    await expect(row.get_by_test_id("reject")).to_have_text("Remove")
    await expect(queue_items(page)).to_have_count(2)
    await expect(queue_items(page).first).to_have_attribute("data-id", str(held["id"]))
    await row.focus()
    await page.keyboard.press("r")
    await expect(row).to_have_count(0)
    stream = page.get_by_test_id("stream")
    await expect(part(stream, cid, "removed-by")).to_be_visible()
    await expect(page.get_by_test_id("queue-count")).to_have_text("1")


# --- Two consoles --------------------------------------------------------------------------------


def drop_reviewed(ws: WebSocketRoute) -> None:
    """A console that misses the `reviewed` queue messages, as if they came a moment late."""
    server = ws.connect_to_server()
    server.on_message(
        lambda message: (
            None if isinstance(message, str) and '"reviewed"' in message else ws.send(message)
        )
    )


async def test_two_consoles_stay_in_step_and_a_stale_row_says_who_handled_it(
    board: Board, tabs: Tabs
) -> None:
    chidi = Person(board, **CHIDI)
    erin = Person(board, "moderator", **ERIN)
    dana = Person(board, "moderator", **DANA)
    async with chidi.api() as api:
        first = (await api.post(board.session, "Free guide at example.com/guide"))["comment"]
        second = (await api.post(board.session, "More at example.org/more"))["comment"]
    one = await erin.open(tabs, "moderator", "Erin's console")
    two = await dana.open(tabs, "moderator", "Dana's console")
    late = await tabs.open(None, "Dana's late console")
    await late.page.route_web_socket(re.compile(r"/live"), drop_reviewed)
    await late.page.goto(dana.url("moderator"))
    await wait_live(late.page)
    for tab in (one, two, late):
        await expect(queue_items(tab.page)).to_have_count(2)

    await queue_item(one.page, first["id"]).get_by_test_id("approve").click()
    await expect(queue_item(one.page, first["id"])).to_have_count(0)
    await expect(queue_item(two.page, first["id"])).to_have_count(0)  # live, on the other console
    await expect(two.page.get_by_test_id("queue-count")).to_have_text("1")

    # The late console still shows it; acting on it says who handled it, and the row goes.
    stale = queue_item(late.page, first["id"])
    await expect(stale).to_be_visible()
    await stale.get_by_test_id("approve").click()
    handled = stale.get_by_test_id("handled-by")
    await expect(handled).to_contain_text("Already approved by Erin")
    await expect(stale.get_by_test_id("approve")).to_be_disabled()
    await expect(late.page.get_by_test_id("error")).to_be_hidden()
    await expect(late.page.get_by_test_id("queue-count")).to_have_text("1")
    await expect(stale).to_have_count(0)

    # Rejecting from the second console empties the first's queue too.
    await two.page.get_by_test_id("reason").fill("advertising")
    await queue_item(two.page, second["id"]).get_by_test_id("reject").click()
    for tab in (one, two):
        await expect(queue_items(tab.page)).to_have_count(0)
    await expect(part(two.page.get_by_test_id("stream"), first["id"], "body")).to_be_visible()


# --- The rules editor ----------------------------------------------------------------------------


async def test_the_rules_editor_saves_a_suspect_word_that_then_holds_a_post(
    board: Board, tabs: Tabs
) -> None:
    maya = Person(board, **MAYA)
    moderator = Person(board, "moderator", **ERIN)
    await set_rules(board, banned_words=["miracle cure"])
    console = await moderator.open(tabs, "moderator", "moderator")
    page = console.page
    editor = page.get_by_test_id("rules-editor")
    toggle = page.get_by_test_id("show-rules")
    await expect(editor).to_be_hidden()
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(editor).to_be_visible()
    await expect(page.get_by_test_id("banned-words")).to_have_value("miracle cure")
    await page.get_by_test_id("suspect-words").fill("webinar\n\n  discount code  \nWebinar\n")
    await page.get_by_test_id("support-message-input").fill(SUPPORT)
    await page.get_by_test_id("save-rules").click()
    await expect(page.get_by_test_id("rules-saved")).to_contain_text("Saved")
    await expect(page.get_by_test_id("suspect-words")).to_have_value("webinar\ndiscount code")
    assert not (found := await axe_violations(page)), f"console with the rules editor:\n{found}"
    async with moderator.api() as api:
        rules = await api.request("GET", f"/v1/events/{board.event}/rules")
    assert rules["suspect_words"] == ["webinar", "discount code"]
    assert rules["banned_words"] == ["miracle cure"]
    assert rules["support_message"] == SUPPORT

    a = await maya.open(tabs, "board", "author")
    body = "Join my WEBINAR next week for more on this"
    await post_from_form(a.page, body)
    cid = await held_id(a.page, body)
    row = queue_item(page, cid)
    await expect(row).to_have_attribute("data-reason", "suspect")
    await expect(row.get_by_test_id("match")).to_contain_text("webinar")

    await toggle.click()
    await expect(editor).to_be_hidden()
    await expect(toggle).to_have_attribute("aria-expanded", "false")


# --- After a reload ------------------------------------------------------------------------------


async def test_held_posts_are_still_shown_to_their_author_after_a_reload(
    board: Board, tabs: Tabs
) -> None:
    maya = Person(board, **MAYA)
    async with maya.api() as api:
        held = (await api.post(board.session, "See www.example.com/slides"))["comment"]
        rejected = (await api.post(board.session, "Text me on 555-987-6543"))["comment"]
    why = "No phone numbers, please."
    async with board.api("moderator") as moderator:
        await moderator.request(
            "POST", f"/v1/comments/{rejected['id']}/reject", json={"reason": why}
        )
    a = await maya.open(tabs, "board", "author")
    await expect(by_id(a.page, held["id"])).to_have_attribute("data-status", "held")
    await expect(part(a.page, held["id"], "held")).to_contain_text("Awaiting review")
    await expect(part(a.page, rejected["id"], "rejected")).to_have_text(f"Not published: {why}")
    await part(a.page, rejected["id"], "dismiss").click()
    await expect(by_id(a.page, rejected["id"])).to_have_count(0)
    await a.page.reload()
    await wait_live(a.page)
    await expect(part(a.page, held["id"], "held")).to_contain_text("Awaiting review")
    await expect(by_id(a.page, rejected["id"])).to_have_count(0)  # dismissed stays dismissed
    # Another attendee sees none of it.
    chidi = Person(board, **CHIDI)
    b = await chidi.open(tabs, "board", "other attendee")
    async with chidi.api() as api:
        await published_and_seen(api, board.session, [a, b], "A later comment")
    await expect(by_id(b.page, held["id"])).to_have_count(0)


# --- Screenshot ----------------------------------------------------------------------------------


async def test_review_queue_screenshot(board: Board, tabs: Tabs, tmp_path: Any) -> None:
    """``docs/screenshots/moderator-queue.png`` (with ``UPDATE_SCREENSHOTS=1``; otherwise a
    temporary folder): the console with a crisis, a link and a contact detail waiting."""
    folder = ROOT / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    await set_rules(board, support_message=SUPPORT)
    people = [
        ({"name": "Lin", "profession": "Coaching", "country": "CA"},
         "My full slides and notes are at www.example.com/sleep-notes if anyone wants them"),
        ({"name": "Tom", "profession": "Nursing", "city": "Leeds", "region": "England",
          "country": "GB"},
         "Happy to share my night-shift routine, just email me at tom.nights@example.co.uk"),
        ({"name": "Sam", "profession": "Social Work", "city": "Denver", "region": "CO",
          "country": "US"},
         "Honestly I don't want to be alive anymore. I can't keep doing this."),
    ]  # fmt: skip
    for claims, body in people:
        async with Person(board, **claims).api() as api:
            await api.post(board.session, body)
    async with Person(board, **CHIDI).api() as api:
        await api.post(
            board.session,
            "The part about the body keeping watch at night changed how I think about my "
            "patients on the ward.",
        )
    console = await Person(board, "moderator", **ERIN).open(tabs, "moderator", "moderator")
    page = console.page
    await page.set_viewport_size({"width": 1280, "height": 1000})
    await expect(queue_items(page)).to_have_count(3)
    await expect(queue_items(page).first).to_have_attribute("data-reason", "crisis")
    await page.evaluate("() => document.fonts.ready.then(() => true)")
    path = folder / "moderator-queue.png"
    await page.screenshot(path=str(path), animations="disabled", caret="hide")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
