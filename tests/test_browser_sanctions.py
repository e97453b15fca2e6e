"""Reports, sanctions and slow mode on the screens, in a real Chromium against a real server
(``docs/screens.md``): an attendee reports a comment from the board and the moderators' queue
shows it with its count; a moderator bans an author from the console's author menu (their open
board says so at once, a tab that missed the news is refused by the server, and "remove all"
takes their comments off every screen live); a timeout says until when and lifts on
reinstatement (from the sanctions panel) or when its time is up; slow mode set from the console
shows on the board, counts down after a post and after a refusal, and leaves presenters alone;
and a reply restored beneath comments a moderator removed brings them back as placeholders.

Each person is a browser context of their own, holding a token in the page's URL fragment; an
author's page and API client share the token's ``sub``."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Page, WebSocketRoute, expect

from .browser import (
    ROOT,
    Tab,
    Tabs,
    axe_violations,
    browser_fixture,  # noqa: F401 (the fixture "browser")
    by_id,
    comment_id_of,
    part,
    post_from_form,
    tabs_fixture,  # noqa: F401 (the fixture "tabs")
    wait_live,
)
from .conftest import Board
from .test_browser_authors import CHIDI, ERIN, MAYA, Person
from .test_browser_review import queue_item

KEV = {
    "name": "Kev",
    "profession": "Life coach",
    "city": "Phoenix",
    "region": "AZ",
    "country": "US",
}
RENATA = {"name": "Renata Holloway-Asante", "profession": "Psychology"}


def drop_notices(ws: WebSocketRoute) -> None:
    """A board that misses the `author.sanctioned` notice, as if it came while it was away."""
    server = ws.connect_to_server()
    server.on_message(
        lambda message: (
            None
            if isinstance(message, str) and '"author.sanctioned"' in message
            else ws.send(message)
        )
    )


async def open_missing_notices(tabs: Tabs, person: Person, name: str) -> Tab:
    tab = await tabs.open(None, name)
    await tab.page.route_web_socket(re.compile(r"/live"), drop_notices)
    await tab.page.goto(person.url("board"))
    await wait_live(tab.page)
    return tab


async def short_time(page: Page, value: str) -> str:
    """``value`` as the page writes a time of day (the viewer's zone and locale)."""
    return str(
        await page.evaluate(
            "v => new Intl.DateTimeFormat(undefined, {timeStyle: 'short'}).format(new Date(v))",
            value,
        )
    )


async def open_author_menu(page: Page, comment_id: int) -> None:
    stream = page.get_by_test_id("stream")
    toggle = part(stream, comment_id, "author-actions")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(part(stream, comment_id, "flag")).to_be_focused()


# --- Reports -------------------------------------------------------------------------------------


async def test_an_attendee_reports_a_comment_and_the_moderators_queue_shows_it(
    board: Board, tabs: Tabs
) -> None:
    kev, maya, chidi = Person(board, **KEV), Person(board, **MAYA), Person(board, **CHIDI)
    moderator = Person(board, "moderator", **ERIN)
    async with kev.api() as api:
        ad = await api.post(board.session, "My Reset programme is 50% off this week, DM me")
    cid = ad["comment"]["id"]
    a = await maya.open(tabs, "board", "reporter")
    console = await moderator.open(tabs, "moderator", "moderator")
    await post_from_form(a.page, "The night watchman image stayed with me")
    own = await comment_id_of(a.page, "The night watchman image stayed with me")
    await expect(part(a.page, own, "report")).to_have_count(0)  # not one's own comment
    await expect(part(a.page, own, "delete")).to_be_visible()

    # Open, cancel (focus goes back), open again.
    report = part(a.page, cid, "report")
    await report.click()
    form = part(a.page, cid, "report-form")
    await expect(form).to_be_visible()
    await expect(report).to_have_attribute("aria-expanded", "true")
    await expect(form.locator("select[name=reason]")).to_be_focused()
    await form.get_by_test_id("cancel-report").click()
    await expect(form).to_have_count(0)
    await expect(report).to_be_focused()
    await report.click()
    labels = await form.locator("select[name=reason] option").all_inner_texts()
    assert "Advertising or self-promotion" in labels and "Off topic" in labels
    assert not (found := await axe_violations(a.page)), f"board with a report form:\n{found}"

    # Sending without a reason says what is missing; then it goes.
    await form.get_by_test_id("send-report").click()
    await expect(form.get_by_test_id("error")).to_contain_text("Choose what is wrong")
    await form.locator("select[name=reason]").select_option("advertising")
    await form.locator("textarea[name=detail]").fill("Third post tonight selling his programme")
    await form.get_by_test_id("send-report").click()
    thanks = part(a.page, cid, "reported")
    await expect(thanks).to_have_text("Reported — thank you, a moderator will look at it")
    await expect(form).to_have_count(0)
    await expect(part(a.page, cid, "report")).to_have_count(0)
    await expect(a.page.get_by_test_id("error")).to_be_hidden()

    row = queue_item(console.page, cid)
    await expect(row).to_have_attribute("data-reason", "reported")
    await expect(row.get_by_test_id("reports")).to_have_text("Reported once: advertising")

    # A second attendee reports it: the count goes up, live.
    b = await chidi.open(tabs, "board", "second reporter")
    await part(b.page, cid, "report").click()
    other = part(b.page, cid, "report-form")
    await other.locator("select[name=reason]").select_option("off_topic")
    await other.get_by_test_id("send-report").click()
    await expect(part(b.page, cid, "reported")).to_be_visible()
    await expect(row.get_by_test_id("reports")).to_have_text(
        "Reported 2 times: advertising, off topic"
    )
    await expect(console.page.get_by_test_id("queue-count")).to_have_text("1")

    # This browser remembers; another browser of the same person is told the same by the
    # server (reported: false), and the count does not move.
    await a.page.reload()
    await wait_live(a.page)
    await expect(part(a.page, cid, "reported")).to_be_visible()
    again = await maya.open(tabs, "board", "reporter's phone")
    await part(again.page, cid, "report").click()
    await part(again.page, cid, "report-form").locator("select[name=reason]").select_option("other")
    await part(again.page, cid, "send-report").click()
    await expect(part(again.page, cid, "reported")).to_have_text(
        "Reported — thank you, a moderator will look at it"
    )
    await expect(row.get_by_test_id("reports")).to_have_text(
        "Reported 2 times: advertising, off topic"
    )


# --- Sanctions -----------------------------------------------------------------------------------


async def test_a_ban_shows_at_once_refuses_the_next_post_and_removes_everything_live(
    board: Board, tabs: Tabs
) -> None:
    kev, chidi = Person(board, **KEV), Person(board, **CHIDI)
    moderator = Person(board, "moderator", **ERIN)
    presenter = Person(board, "presenter", **RENATA)
    k = await kev.open(tabs, "board", "banned author")
    advert = "Burnt out from night shifts? My Reset programme is 50% off this week"
    await post_from_form(k.page, advert)
    first = await comment_id_of(k.page, advert)
    async with kev.api() as api:
        reply = (await api.post(board.session, "DM me for the code", parent_id=first))["comment"]
    async with chidi.api() as api:
        kept = (await api.post(board.session, "The breathing exercise helped me"))["comment"]
    b = await chidi.open(tabs, "board", "other attendee")
    feed = await presenter.open(tabs, "presenter", "presenter feed")
    console = await moderator.open(tabs, "moderator", "moderator")
    unaware = await open_missing_notices(tabs, kev, "banned author's other tab")
    for page in (b.page, feed.page, unaware.page):
        await expect(part(page, reply["id"], "body")).to_have_text("DM me for the code")

    # Ban from the author menu of the comment in the stream, removing all, confirmed in the page.
    page = console.page
    stream = page.get_by_test_id("stream")
    await page.get_by_test_id("reason").fill("Selling his coaching programme")
    await open_author_menu(page, first)
    await part(stream, first, "remove-all").check()
    await part(stream, first, "ban").click()
    confirm = part(stream, first, "sanction-confirm")
    await expect(confirm).to_be_visible()
    await expect(part(stream, first, "sanction-cancel")).to_be_focused()
    await expect(by_id(stream, first).locator(".am-question")).to_have_text(
        "Ban Kev from posting in this event and remove all their comments in this event?"
    )
    await confirm.click()

    # The author's open board says so at once, calmly, instead of the form; reading goes on.
    sanctioned = k.page.get_by_test_id("sanctioned")
    await expect(sanctioned).to_have_attribute("data-kind", "ban")
    await expect(sanctioned).to_contain_text(
        "A moderator has removed your ability to post in this event."
    )
    await expect(sanctioned).to_contain_text("Selling his coaching programme")
    await expect(k.page.get_by_test_id("comment-form")).to_be_hidden()
    await expect(part(k.page, kept["id"], "body")).to_be_visible()
    await expect(part(k.page, kept["id"], "reply-link")).to_be_hidden()
    await expect(part(k.page, kept["id"], "report")).to_have_count(0)
    await expect(part(k.page, kept["id"], "helpful")).to_be_visible()
    assert not (found := await axe_violations(k.page)), f"board of a banned author:\n{found}"

    # Their comments leave every screen live; the others stay.
    for screen in (b.page, feed.page, k.page):
        await expect(by_id(screen, first)).to_have_count(0)
        await expect(by_id(screen, reply["id"])).to_have_count(0)
        await expect(part(screen, kept["id"], "body")).to_be_visible()
    await expect(part(stream, first, "removed-by")).to_be_visible()
    await expect(part(stream, reply["id"], "removed-by")).to_be_visible()
    await expect(part(stream, kept["id"], "author-actions")).to_be_visible()

    # A tab that missed the notice still offers the form: the server refuses the post, and the
    # tab then shows the same state; the text stays.
    await post_from_form(unaware.page, "Am I still here?")
    error = unaware.page.get_by_test_id("error")
    await expect(error).to_contain_text(
        "Not posted: a moderator has removed your ability to post in this event."
    )
    await expect(unaware.page.get_by_test_id("sanctioned")).to_have_attribute("data-kind", "ban")
    await expect(unaware.page.get_by_test_id("comment-form")).to_be_hidden()
    textarea = unaware.page.get_by_test_id("comment-form").locator("textarea[name=body]")
    await expect(textarea).to_have_value("Am I still here?")
    async with board.anonymous() as api:
        threads = (await api.page(board.session))["threads"]
    assert [t["comment"]["id"] for t in threads] == [kept["id"]]

    # A reload still knows (auth.ok carries the sanction).
    await k.page.reload()
    await wait_live(k.page)
    await expect(k.page.get_by_test_id("sanctioned")).to_have_attribute("data-kind", "ban")
    await expect(k.page.get_by_test_id("comment-form")).to_be_hidden()


async def test_a_timeout_says_until_when_and_lifts_from_the_sanctions_panel(
    board: Board, tabs: Tabs
) -> None:
    maya = Person(board, **MAYA)
    moderator = Person(board, "moderator", **ERIN)
    a = await maya.open(tabs, "board", "paused author", clock=True)
    body = "Shift work has wrecked my sleep for years"
    await post_from_form(a.page, body)
    cid = await comment_id_of(a.page, body)
    console = await moderator.open(tabs, "moderator", "moderator")
    page = console.page
    stream = page.get_by_test_id("stream")

    await open_author_menu(page, cid)
    await part(stream, cid, "timeout-10").click()  # no confirmation for a plain timeout
    await expect(part(stream, cid, "author-actions")).to_have_attribute("aria-expanded", "false")
    await expect(part(stream, cid, "author-actions")).to_be_focused()
    sanctioned = a.page.get_by_test_id("sanctioned")
    await expect(sanctioned).to_have_attribute("data-kind", "timeout")
    async with moderator.api() as api:
        [item] = (await api.request("GET", f"/v1/events/{board.event}/sanctions"))["items"]
    until = await short_time(a.page, item["until"])
    await expect(sanctioned).to_contain_text("A moderator has paused your posting until")
    await expect(sanctioned).to_contain_text(until)
    await expect(a.page.get_by_test_id("comment-form")).to_be_hidden()
    await expect(part(a.page, cid, "edit")).to_have_count(0)
    await expect(part(a.page, cid, "delete")).to_be_visible()  # deleting one's own still works

    # The sanctions panel lists it, with the author menu of another comment open too.
    await page.get_by_test_id("show-sanctions").click()
    await expect(page.get_by_test_id("show-sanctions")).to_have_attribute("aria-expanded", "true")
    row = page.get_by_test_id("sanctions").get_by_test_id("sanction-row")
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-kind", "timeout")
    await expect(row.get_by_test_id("author")).to_contain_text("Maya, Nursing, Albany, NY, US")
    await expect(row.get_by_test_id("until")).to_contain_text(until)
    await expect(row.get_by_test_id("sanction-by")).to_contain_text("By Erin")
    await open_author_menu(page, cid)
    assert not (found := await axe_violations(page)), f"console with sanctions:\n{found}"
    await page.keyboard.press("Escape")
    await expect(part(stream, cid, "author-actions")).to_be_focused()

    # Lift: the author's board shows the form again, live.
    await row.get_by_test_id("lift").click()
    await expect(row).to_have_count(0)
    await expect(page.get_by_test_id("sanctions").locator(".sanctions-empty")).to_be_visible()
    await expect(sanctioned).to_be_hidden()
    await expect(a.page.get_by_test_id("comment-form")).to_be_visible()

    # A timeout for the rest of the event says so; one of 10 minutes ends by itself when its
    # time is up (the board's clock moves on; no message comes then).
    await open_author_menu(page, cid)
    await part(stream, cid, "timeout-event").click()
    await expect(sanctioned).to_contain_text(
        "A moderator has paused your posting for the rest of this event."
    )
    await open_author_menu(page, cid)
    await part(stream, cid, "timeout-10").click()
    await expect(sanctioned).to_contain_text("A moderator has paused your posting until")
    await a.page.clock.fast_forward("11:00")
    await expect(sanctioned).to_be_hidden()
    await expect(a.page.get_by_test_id("comment-form")).to_be_visible()


# --- Slow mode -----------------------------------------------------------------------------------


async def test_slow_mode_from_the_console_slows_attendees_and_not_presenters(
    board: Board, tabs: Tabs
) -> None:
    maya = Person(board, **MAYA)
    renata = Person(board, "presenter", **RENATA)
    moderator = Person(board, "moderator", **ERIN)
    laptop = await maya.open(tabs, "board", "attendee's laptop")
    phone = await maya.open(tabs, "board", "attendee's phone", clock=True)
    speaker = await renata.open(tabs, "board", "presenter on the board")
    feed = await renata.open(tabs, "presenter", "presenter feed")
    console = await moderator.open(tabs, "moderator", "moderator")
    page = console.page
    await expect(laptop.page.get_by_test_id("slow-mode")).to_be_hidden()
    await expect(page.get_by_test_id("slow-mode")).to_have_text("Slow mode off")

    await page.get_by_test_id("slow-mode-seconds").select_option("30")
    await page.get_by_test_id("reason").fill("Q&A rush after the talk")
    await page.get_by_test_id("save-slow-mode").click()
    await expect(page.get_by_test_id("slow-mode")).to_have_text("Slow mode on: 30 s")
    for tab in (laptop, phone, speaker):
        await expect(tab.page.get_by_test_id("slow-mode")).to_have_text(
            "Slow mode: one comment per 30 s"
        )
    await expect(feed.page.get_by_test_id("slow-mode")).to_contain_text("one comment per 30 s")
    async with moderator.api() as api:
        audit = await api.audit(board.event)
    assert [(e["action"], e["reason"]) for e in audit["entries"]] == [
        ("slow_mode", "Q&A rush after the talk")
    ]

    # A post from the laptop: then its button waits, counting down.
    await post_from_form(laptop.page, "First thought after the talk")
    await comment_id_of(laptop.page, "First thought after the talk")
    form = laptop.page.get_by_test_id("comment-form")
    wait = form.get_by_test_id("slow-wait")
    await expect(wait).to_have_text(re.compile(r"^You can post again in (30|29|28|27) s$"))
    await expect(form.get_by_test_id("post")).to_be_disabled()
    shown = await wait.inner_text()
    await expect(wait).not_to_have_text(shown, timeout=3000)  # it counts down

    # The phone did not know: the server refuses, with the time left, and the count starts.
    second = "Second thought, too soon"
    await post_from_form(phone.page, second)
    error = phone.page.get_by_test_id("error")
    await expect(error).to_contain_text("Slow mode: one comment per 30 s; you can post again in")
    phone_form = phone.page.get_by_test_id("comment-form")
    await expect(phone_form.get_by_test_id("slow-wait")).to_have_text(
        re.compile(r"^You can post again in \d+ s$")
    )
    await expect(phone_form.get_by_test_id("post")).to_be_disabled()
    await expect(phone_form.locator("textarea[name=body]")).to_have_value(second)
    await expect(phone.page.get_by_test_id("body").filter(has_text=second)).to_have_count(0)

    # The presenter is not slowed: two posts in a row, no countdown.
    for text in ("Thank you all for the questions", "One more thing about naps"):
        await post_from_form(speaker.page, text)
        await expect(speaker.page.get_by_test_id("body").filter(has_text=text)).to_be_visible()
    speaker_form = speaker.page.get_by_test_id("comment-form")
    await expect(speaker_form.get_by_test_id("slow-wait")).to_be_hidden()
    await expect(speaker_form.get_by_test_id("post")).to_be_enabled()
    await expect(speaker.page.get_by_test_id("error")).to_be_hidden()

    # When the time is up, the phone may post again: the count and the message go, the text
    # stays.
    await phone.page.clock.fast_forward("00:31")
    await expect(phone_form.get_by_test_id("slow-wait")).to_be_hidden()
    await expect(phone_form.get_by_test_id("post")).to_be_enabled()
    await expect(error).to_be_hidden()
    await expect(phone_form.locator("textarea[name=body]")).to_have_value(second)

    # Off again: the banner goes, live.
    await page.get_by_test_id("slow-mode-seconds").select_option("0")
    await page.get_by_test_id("save-slow-mode").click()
    await expect(page.get_by_test_id("slow-mode")).to_have_text("Slow mode off")
    await expect(laptop.page.get_by_test_id("slow-mode")).to_be_hidden()
    await expect(feed.page.get_by_test_id("slow-mode")).to_be_hidden()
    await expect(form.get_by_test_id("slow-wait")).to_be_hidden()
    await expect(form.get_by_test_id("post")).to_be_enabled()


async def test_automatic_slow_mode_shows_as_a_busy_session(board: Board, tabs: Tabs) -> None:
    maya = Person(board, **MAYA)
    moderator = Person(board, "moderator", **ERIN)
    a = await maya.open(tabs, "board", "attendee")
    console = await moderator.open(tabs, "moderator", "moderator")
    page = console.page
    await page.get_by_test_id("auto-slow-threshold").fill("-3")
    await page.get_by_test_id("save-slow-mode").click()
    await expect(page.get_by_test_id("slow-mode-controls").get_by_role("alert")).to_contain_text(
        "whole number"
    )
    await page.get_by_test_id("auto-slow-threshold").fill("1")
    await page.get_by_test_id("save-slow-mode").click()
    await expect(page.get_by_test_id("slow-mode-saved")).to_contain_text("Saved at")
    await expect(page.get_by_test_id("auto-slow-threshold")).to_have_value("1")
    async with moderator.api() as api:
        session = await api.session(board.session)
    assert session["auto_slow_threshold"] == 1
    # Posts from several people at once: above 1 a minute, it switches itself on.
    for n in range(3):
        async with board.api(name=f"Burst {n}") as api:
            await api.post(board.session, f"So many thoughts {n}")
    banner = a.page.get_by_test_id("slow-mode")
    await expect(banner).to_have_text(
        re.compile(r"^Slow mode: one comment per .+ \(busy session\)$"), timeout=20_000
    )
    await expect(page.get_by_test_id("slow-mode")).to_contain_text("(automatic)")


# --- Screenshot ----------------------------------------------------------------------------------


async def test_sanctions_screenshot(board: Board, tabs: Tabs, tmp_path: Path) -> None:
    """``docs/screenshots/moderator-sanctions.png`` (with ``UPDATE_SCREENSHOTS=1``; otherwise a
    temporary folder): slow mode on, the sanctions panel and an author menu open."""
    folder = ROOT / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    people: list[tuple[dict[str, Any], str]] = [
        (KEV, "Burnt out from night shifts? My Reset programme is 50% off for attendees, DM me!"),
        ({"name": "Sam", "profession": "Peer support", "city": "Cork", "country": "IE"},
         "Free sleep webinar tonight, link in my profile"),
        (CHIDI, "The part about the body keeping watch at night changed how I think about my "
         "patients on the ward."),
    ]  # fmt: skip
    ids = []
    for claims, body in people:
        async with Person(board, **claims).api() as api:
            ids.append((await api.post(board.session, body))["comment"])
    async with board.api("moderator", name="Dana Ortiz") as api:
        await api.update_session(board.session, slow_mode_seconds=30, reason="Q&A rush")
        await api.sanction(board.event, ids[0]["author"]["id"], "timeout", minutes=30,
                           reason="Third post tonight selling his coaching programme")  # fmt: skip
        await api.sanction(board.event, ids[1]["author"]["id"], "flag",
                           reason="New account, posting links; watch for a while")  # fmt: skip
    console = await Person(board, "moderator", **ERIN).open(tabs, "moderator", "moderator")
    page = console.page
    await page.set_viewport_size({"width": 1280, "height": 1100})
    await page.get_by_test_id("show-sanctions").click()
    await expect(page.get_by_test_id("sanction-row")).to_have_count(2)
    await open_author_menu(page, ids[2]["id"])
    await page.evaluate("() => document.fonts.ready.then(() => true)")
    path = folder / "moderator-sanctions.png"
    await page.screenshot(path=str(path), animations="disabled", caret="hide", full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- A restored reply beneath hidden comments ----------------------------------------------------


async def test_a_restored_reply_brings_its_hidden_parent_as_a_placeholder(
    board: Board, tabs: Tabs
) -> None:
    """A moderator who cleans up removes a reply and then its parent: pages leave both out. When
    the reply is restored, its event brings the parent (``parents``): boards show it as the
    placeholder a page would show, with the reply beneath it, live."""
    chidi, maya = Person(board, **CHIDI), Person(board, **MAYA)
    async with chidi.api() as api:
        parent = await api.post(board.session, "What helps you wind down after a night shift?")
    async with maya.api() as api:
        reply = await api.post(
            board.session, "Sleep hygiene helped me more", parent_id=parent["comment"]["id"]
        )
    pid, rid = parent["comment"]["id"], reply["comment"]["id"]
    async with board.api("moderator") as moderator:
        await moderator.remove(rid)
        await moderator.remove(pid)
    b = await maya.open(tabs, "board", "attendee")
    console = await Person(board, "moderator", **ERIN).open(tabs, "moderator", "moderator")
    await expect(by_id(b.page, pid)).to_have_count(0)
    async with board.api("moderator") as moderator:
        await moderator.restore(rid)
    await expect(by_id(b.page, pid)).to_have_attribute("data-status", "removed")
    await expect(part(b.page, pid, "placeholder")).to_have_text("Removed by a moderator")
    await expect(part(b.page, pid, "number")).to_have_text("1.")
    await expect(part(b.page, rid, "body")).to_have_text("Sleep hygiene helped me more")
    await expect(b.page.get_by_test_id("total")).to_contain_text("1 Comment")
    stream = console.page.get_by_test_id("stream")
    await expect(part(stream, rid, "body")).to_have_text("Sleep hygiene helped me more")


async def test_board_screenshots(board: Board, tabs: Tabs, tmp_path: Path) -> None:
    """``docs/screenshots/board-moderation.png`` (slow mode counting down, a report form open and
    a comment reported) and ``board-sanctioned.png`` (a paused author's form), with
    ``UPDATE_SCREENSHOTS=1``; otherwise a temporary folder."""
    folder = ROOT / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    kev, chidi, maya = Person(board, **KEV), Person(board, **CHIDI), Person(board, **MAYA)
    async with chidi.api() as api:
        await api.post(board.session, "The night watchman image is going to stay with me.")
    async with kev.api() as api:
        ad = await api.post(board.session, "My Reset programme is 50% off this week, DM me!")
    async with board.api("moderator") as api:
        await api.update_session(board.session, slow_mode_seconds=30)
    a = await tabs.open(None, "attendee", width=900, height=1100)
    await a.page.goto(maya.url("board"))
    await wait_live(a.page)
    mine = "Asking what would help them feel safe enough to let go: yes."
    await post_from_form(a.page, mine)
    await expect(a.page.get_by_test_id("slow-wait")).to_be_visible()
    cid = ad["comment"]["id"]
    await part(a.page, cid, "report").click()
    form = part(a.page, cid, "report-form")
    await form.locator("select[name=reason]").select_option("advertising")
    await (
        a.page.get_by_test_id("comment-form")
        .locator("textarea[name=body]")
        .fill("And a second thought, waiting for slow mode")
    )
    await a.page.evaluate("() => document.fonts.ready.then(() => true)")
    await a.page.screenshot(
        path=str(folder / "board-moderation.png"), animations="disabled", caret="hide"
    )
    async with board.api("moderator") as api:
        threads = (await api.page(board.session))["threads"]
        [author] = [t["comment"]["author"]["id"] for t in threads if t["comment"]["body"] == mine]
        await api.sanction(board.event, author, "timeout", minutes=30, reason="Please slow down")
    compose = a.page.locator(".compose")
    await expect(a.page.get_by_test_id("sanctioned")).to_be_visible()
    await compose.screenshot(
        path=str(folder / "board-sanctioned.png"), animations="disabled", caret="hide"
    )
