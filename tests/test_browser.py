"""Acceptance tests of the three screens (``docs/screens.md``) in a real Chromium, against real
servers over HTTP and WebSocket: live updates between people, text that stays text, closing a
session, a server restart under an open board, paging and permalinks, the presenter's marks,
watcher counts across processes, embedding on another origin, accessibility, and the README's
screenshots (``UPDATE_SCREENSHOTS=1`` writes them to ``docs/screenshots``).

Each person is a browser context of their own (their own storage), holding a token in the page's
URL fragment as a standalone page does."""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from client import Api, Feed
from server.demo import load_demo
from server.storage import Store

from .browser import (
    CSP_REFUSAL,
    OPEN_WEBSOCKET,
    ROOT,
    HostSite,
    Tab,
    Tabs,
    axe_violations,
    browser_fixture,  # noqa: F401 (the fixture "browser")
    by_id,
    comment_id_of,
    embed_snippet,
    flagged,
    host_page,
    numbers_text,
    part,
    post_from_form,
    replies_of,
    screen_url,
    tabs_fixture,  # noqa: F401 (the fixture "tabs")
    top_level,
    visible_numbers,
    wait_live,
)
from .conftest import Board, make_token, new_board
from .servers import InProcessServer, ServerProcess

PARAGRAPHS = (
    "Thank you for this session. The part about the body keeping watch at night changed how I "
    "think about the people I see every week.\n\n"
    "I will try the smaller, kinder questions with my clients starting tomorrow."
)


def person(name: str, profession: str, city: str, region: str, country: str) -> dict[str, str]:
    return {
        "name": name,
        "profession": profession,
        "city": city,
        "region": region,
        "country": country,
    }


MAYA = person("Maya", "Nursing", "Albany", "NY", "US")
CHIDI = person("Chidi Okonkwo", "Medicine", "Enugu", "Enugu", "NG")
ERIN = person("Erin", "Moderation", "", "", "")


def token(board: Board, role: str = "attendee", **claims: Any) -> str:
    return make_token(role, board.event, **claims)


async def open_screen(
    tabs: Tabs,
    board: Board,
    screen: str,
    name: str,
    role: str | None = "attendee",
    claims: dict[str, str] | None = None,
    **options: Any,
) -> Tab:
    """A person's tab on one of the three screens, live."""
    jwt = token(board, role, **(claims or {})) if role else None
    tab = await tabs.open(screen_url(board.url, screen, board.session, jwt), name, **options)
    await wait_live(tab.page)
    return tab


async def post_question(api: Api, session: str, body: str) -> int:
    result = await api.request(
        "POST", f"/v1/sessions/{session}/comments", json={"body": body, "question": True}
    )
    return int(result["comment"]["id"])


async def mark(api: Api, comment_id: int, what: str, on: bool = True) -> None:
    await api.request("POST", f"/v1/comments/{comment_id}/marks", json={"mark": what, "on": on})


async def reference_top(page: Page, comment_id: int) -> float:
    return float(await by_id(page, comment_id).evaluate("e => e.getBoundingClientRect().top"))


# --- 1. Live between people ----------------------------------------------------------------------


async def test_post_reply_and_removal_reach_every_screen_live(board: Board, tabs: Tabs) -> None:
    async with board.api(**person("Filler", "Teaching", "Pune", "MH", "IN")) as filler:
        earlier = [
            (await filler.post(board.session, f"Earlier comment {n}.\n\n{PARAGRAPHS}"))["comment"]
            for n in range(1, 21)
        ]
    a = await open_screen(tabs, board, "board", "attendee A", claims=MAYA)
    b = await open_screen(tabs, board, "board", "attendee B", claims=CHIDI)
    moderator = await open_screen(tabs, board, "moderator", "moderator", "moderator", ERIN)

    # B reads further down the board.
    reference = earlier[9]["id"]  # number 10
    at_top = await reference_top(b.page, reference)
    await by_id(b.page, reference).evaluate("e => e.scrollIntoView({block: 'center'})")
    before = await reference_top(b.page, reference)
    assert abs(before - at_top) > 50, "B's board did not scroll: too little content to test"

    body_a = f"Maya's insight {uuid.uuid4().hex[:6]}: ask what would make the room feel safer."
    await post_from_form(a.page, body_a)
    id_a = await comment_id_of(a.page, body_a)

    await expect(b.page.get_by_test_id("new-bar")).to_be_visible()
    await expect(b.page.get_by_test_id("new-bar")).to_be_in_viewport()  # B sees it where B reads
    await expect(b.page.get_by_test_id("new-bar")).to_contain_text(re.compile(r"\b1 new comment\b"))
    await expect(by_id(b.page, id_a)).to_be_hidden()  # waits behind the bar
    await expect(b.page.get_by_test_id("total")).to_contain_text(re.compile(r"\b21 Comments"))
    after = await reference_top(b.page, reference)
    assert abs(after - before) <= 1, f"B's page moved while B read: {before} -> {after}"

    await b.page.get_by_test_id("new-bar").click()
    await expect(part(b.page, id_a, "body")).to_have_text(body_a)

    reply = f"Chidi's reply {uuid.uuid4().hex[:6]}: same here, greetings from Enugu."
    await part(b.page, id_a, "reply-link").click()
    form = b.page.get_by_test_id("reply-form")
    await form.locator("textarea[name=body]").fill(reply)
    await form.get_by_test_id("post-reply").click()
    reply_id = await comment_id_of(b.page, reply)
    # A sees the reply in place, beneath A's comment.
    await expect(replies_of(a.page, id_a)).to_have_count(1)
    await expect(replies_of(a.page, id_a)).to_have_attribute("data-id", str(reply_id))
    await expect(part(a.page, reply_id, "body")).to_have_text(reply)
    await expect(part(a.page, id_a, "reply-link")).to_be_visible()

    # The moderator removes A's comment from the console.
    stream = moderator.page.get_by_test_id("stream")
    await expect(part(stream, id_a, "body")).to_have_text(body_a)
    await part(stream, id_a, "remove").click()
    await expect(part(stream, id_a, "removed-by")).to_contain_text("Removed by Erin")
    await expect(part(stream, id_a, "restore")).to_be_visible()

    for tab in (a, b):
        page = tab.page
        await expect(by_id(page, id_a)).to_have_attribute("data-status", "removed")
        placeholder = part(page, id_a, "placeholder")
        await expect(placeholder).to_have_text(re.compile("Removed by a moderator"))
        await expect(page.locator("body")).not_to_contain_text(body_a)
        await expect(part(page, reply_id, "body")).to_have_text(reply)
        above, below = await placeholder.bounding_box(), await by_id(page, reply_id).bounding_box()
        assert above and below and above["y"] < below["y"], f"{tab.name}: placeholder not above"
        await expect(page.get_by_test_id("total")).to_contain_text(re.compile(r"\b21 Comments"))


# --- 2. Text stays text --------------------------------------------------------------------------


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for item in header.split(";"):
        words = item.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


async def test_markup_in_names_and_bodies_shows_as_text_and_csp_forbids_inline_script(
    board: Board, tabs: Tabs
) -> None:
    payload = "<img src=x onerror=alert(1)>"
    evil = person("<script>", "<b>Nursing</b>", "Albany", "NY", "US")
    poster = await open_screen(tabs, board, "board", "poster", claims=evil)
    reader = await open_screen(tabs, board, "board", "reader", claims=MAYA)
    presenter = await open_screen(tabs, board, "presenter", "presenter", "presenter", CHIDI)
    moderator = await open_screen(tabs, board, "moderator", "moderator", "moderator", ERIN)

    await post_from_form(poster.page, payload)
    cid = await comment_id_of(poster.page, payload)
    for tab in (poster, reader, presenter, moderator):
        await expect(part(tab.page, cid, "body")).to_have_text(payload)
        await expect(part(tab.page, cid, "author")).to_contain_text("<script>")
        await expect(part(tab.page, cid, "author")).to_contain_text("<b>Nursing</b>")
        await expect(by_id(tab.page, cid).locator("img, script")).to_have_count(0)
        await expect(tab.page.locator("img[src=x]")).to_have_count(0)
    # A script that ran would have opened its alert by now.
    for tab in (poster, reader, presenter, moderator):
        assert tab.dialogs == [], f"{tab.name}: dialogs opened: {tab.dialogs}"

    for screen in ("board", "presenter", "moderator"):
        response = await reader.page.goto(screen_url(board.url, screen, board.session))
        assert response is not None
        header = response.headers.get("content-security-policy", "")
        directives = csp_directives(header)
        script_src = directives.get("script-src", directives.get("default-src"))
        assert script_src is not None, f"{screen}: no script-src in {header!r}"
        assert "'unsafe-inline'" not in script_src, f"{screen}: {header!r}"
        assert "*" not in script_src, f"{screen}: {header!r}"
    # The browser enforces it: an inline script added to the page does not run.
    async with reader.page.expect_console_message(lambda m: CSP_REFUSAL in m.text):
        ran = await reader.page.evaluate(
            """() => {
                const script = document.createElement('script');
                script.textContent = 'window.inlineRan = true';
                document.head.append(script);
                return window.inlineRan === true;
            }"""
        )
    assert ran is False
    reader.console.clear()  # that refusal was this test's doing


# --- 3. Closing and reopening --------------------------------------------------------------------


async def test_closing_and_reopening_switch_the_forms_without_reload(
    board: Board, tabs: Tabs
) -> None:
    a = await open_screen(tabs, board, "board", "attendee A", claims=MAYA)
    b = await open_screen(tabs, board, "board", "attendee B", claims=CHIDI)
    moderator = await open_screen(tabs, board, "moderator", "moderator", "moderator", ERIN)
    attendees = (a, b)
    for tab in attendees:
        await expect(tab.page.get_by_test_id("comment-form")).to_be_visible()
        await expect(tab.page.get_by_test_id("closed")).to_be_hidden()
        await tab.page.evaluate("() => { window.notReloaded = true; }")

    state = moderator.page.get_by_test_id("session-state")
    await expect(state).to_contain_text("Open")
    await moderator.page.get_by_test_id("close-session").click()
    await expect(state).to_contain_text("Closed")
    for tab in attendees:
        await expect(tab.page.get_by_test_id("closed")).to_be_visible()
        await expect(tab.page.get_by_test_id("closed")).to_contain_text("closed")
        await expect(tab.page.get_by_test_id("comment-form")).to_be_hidden()

    async with board.api("moderator") as api:
        assert (await api.session(board.session))["state"] == "closed"
    await moderator.page.get_by_test_id("open-session").click()
    await expect(state).to_contain_text("Open")
    for tab in attendees:
        await expect(tab.page.get_by_test_id("comment-form")).to_be_visible()
        await expect(tab.page.get_by_test_id("closed")).to_be_hidden()
        assert await tab.page.evaluate("() => window.notReloaded === true"), "page reloaded"
    await post_from_form(a.page, "Open again, thank you")
    await expect(b.page.get_by_test_id("body").filter(has_text="Open again")).to_be_visible()


# --- 3b. The moderator console: keyboard, and a removal another moderator made first --------------


FOCUSED = "() => document.activeElement?.closest('[data-testid=comment]')?.dataset.id ?? null"


async def test_moderator_console_keyboard(board: Board, tabs: Tabs) -> None:
    async with board.api(**CHIDI) as api:
        for n in range(3):
            await api.post(board.session, f"Keyboard comment {n}")
    console = await open_screen(tabs, board, "moderator", "moderator", "moderator", ERIN)
    page = console.page
    stream = page.get_by_test_id("stream")
    await expect(stream.locator("[data-testid=comment]")).to_have_count(3)

    await page.keyboard.press("j")
    first = await page.evaluate(FOCUSED)
    await page.keyboard.press("j")
    second = await page.evaluate(FOCUSED)
    await page.keyboard.press("k")
    assert first is not None and second not in (None, first), (first, second)
    assert await page.evaluate(FOCUSED) == first, "k did not move back"

    await page.keyboard.press("x")
    await expect(part(stream, first, "removed-by")).to_contain_text("Removed by Erin")
    await expect(part(stream, first, "restore")).to_be_visible()
    await page.keyboard.press("u")
    await expect(part(stream, first, "remove")).to_be_visible()
    await expect(part(stream, first, "removed-by")).to_be_hidden()
    await page.keyboard.press("j")
    await page.keyboard.press("Delete")
    await expect(part(stream, second, "removed-by")).to_contain_text("Removed by Erin")
    async with board.anonymous() as api:
        shown = {t["comment"]["id"] for t in (await api.page(board.session))["threads"]}
    assert int(first) in shown and int(second) not in shown


async def test_a_removal_by_another_moderator_shows_as_removed_not_as_an_error(
    board: Board, tabs: Tabs
) -> None:
    async with board.api(**CHIDI) as api:
        cid = (await api.post(board.session, "Removed twice"))["comment"]["id"]
    jwt = token(board, "moderator", **ERIN)
    tab = await tabs.open(None, "moderator")
    page = tab.page

    def hold_the_removal(ws: Any) -> None:
        # This console misses the removal's event, as if it came a moment late.
        server = ws.connect_to_server()
        server.on_message(
            lambda message: (
                None
                if isinstance(message, str) and '"comment.removed"' in message
                else ws.send(message)
            )
        )

    await page.route_web_socket(re.compile(r"/live"), hold_the_removal)
    await page.goto(screen_url(board.url, "moderator", board.session, jwt))
    await wait_live(page)
    stream = page.get_by_test_id("stream")
    await expect(part(stream, cid, "remove")).to_be_visible()
    async with board.api("moderator", name="Dana") as other:
        assert (await other.remove(cid))["changed"] is True
    await part(stream, cid, "remove").click()
    await expect(part(stream, cid, "removed-by")).to_contain_text("Removed by Dana")
    await expect(part(stream, cid, "restore")).to_be_visible()
    await expect(page.get_by_test_id("error")).to_be_hidden()


# --- 4. A server restart under an open board -----------------------------------------------------


async def test_board_survives_a_server_restart(
    env: dict[str, str], workdir: Path, tabs: Tabs
) -> None:
    single = {**env, "REDIS_URL": ""}  # one process, its in-process bus
    first = ServerProcess({**single, "SERVER_NAME": "restart-1"}, workdir / "restart-1.log")
    await first.start()
    second: ServerProcess | None = None
    try:
        board = await new_board(first.url)
        async with board.api(**CHIDI) as api:
            await api.post(board.session, "Posted before the restart")
        tab = await open_screen(tabs, board, "board", "attendee", claims=MAYA)
        page = tab.page
        await expect(
            page.get_by_test_id("body").filter(has_text="before the restart")
        ).to_be_visible()

        first.stop()
        await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "reconnecting")
        await expect(page.get_by_test_id("status")).to_contain_text("Reconnecting")
        typed = "Typed and posted while the server was down"
        await post_from_form(page, typed)

        second = ServerProcess({**single, "SERVER_NAME": "restart-2"}, workdir / "restart-2.log")
        second.port = first.port
        second.env["PORT"] = str(first.port)
        await second.start()
        meanwhile = [f"Posted through the new process, {n}" for n in (1, 2, 3)]
        async with board.api(**CHIDI) as api:
            for body in meanwhile:
                await api.post(board.session, body)

        await wait_live(page, timeout=30_000)
        for body in [*meanwhile, typed]:
            await expect(page.get_by_test_id("body").filter(has_text=body)).to_have_count(
                1, timeout=30_000
            )
        await expect(page.get_by_test_id("total")).to_contain_text(
            re.compile(r"\b5 Comments"), timeout=30_000
        )
        await expect(top_level(page)).to_have_count(5)
        async with board.anonymous() as api:
            stored = [t["comment"]["body"] for t in (await api.page(board.session))["threads"]]
        assert sorted(stored) == sorted(["Posted before the restart", *meanwhile, typed])

        # A draft survives a reload.
        draft = "A draft I have not posted yet 🌙"
        textarea = page.get_by_test_id("comment-form").locator("textarea[name=body]")
        await textarea.fill(draft)
        await page.wait_for_function(
            "draft => Object.values(localStorage).some(v => String(v).includes(draft))", arg=draft
        )
        await page.reload()
        await wait_live(page)
        await expect(
            page.get_by_test_id("comment-form").locator("textarea[name=body]")
        ).to_have_value(draft)
    finally:
        first.stop()
        if second is not None:
            second.stop()


# --- 5. Paging and permalinks --------------------------------------------------------------------


async def test_paging_and_a_permalink_to_an_older_page(board: Board, tabs: Tabs) -> None:
    ids: dict[int, int] = {}
    async with board.api(**MAYA) as api:
        for chunk in range(6):
            results = await asyncio.gather(
                *(api.post(board.session, f"Comment {chunk}-{n}") for n in range(20))
            )
            ids.update({r["comment"]["number"]: r["comment"]["id"] for r in results})
    assert sorted(ids) == list(range(1, 121))

    tab = await open_screen(tabs, board, "board", "reader", claims=CHIDI)
    page = tab.page
    await expect(page.get_by_test_id("total")).to_contain_text(re.compile(r"\b120 Comments"))
    await expect(visible_numbers(page)).to_have_text(numbers_text(range(120, 70, -1)))
    await page.get_by_test_id("older").click()
    await expect(visible_numbers(page)).to_have_text(numbers_text(range(70, 20, -1)))
    await expect(page.get_by_test_id("newer")).to_be_visible()
    await page.get_by_test_id("older").click()
    await expect(visible_numbers(page)).to_have_text(numbers_text(range(20, 0, -1)))
    older = page.get_by_test_id("older")
    assert not await older.is_visible() or await older.is_disabled(), "older past the end"
    await page.get_by_test_id("newer").click()
    await expect(visible_numbers(page)).to_have_text(numbers_text(range(70, 20, -1)))

    seventh = ids[7]
    url = screen_url(board.url, "board", board.session, token(board, **CHIDI), comment=seventh)
    link = (await tabs.open(url, "permalink")).page
    target = by_id(link, seventh)
    await expect(target).to_have_attribute("data-target", "true")
    await expect(target).to_be_in_viewport()
    await expect(part(link, seventh, "body")).to_have_text(re.compile(r"^Comment \d-\d+$"))
    await expect(visible_numbers(link)).to_have_text(numbers_text(range(20, 0, -1)))
    await expect(link.locator(flagged("data-target"))).to_have_count(1)
    # Each comment's permalink leads to the same kind of address.
    href = await part(page, ids[30], "permalink").get_attribute("href")
    assert href is not None and f"comment={ids[30]}" in href and "session=" in href


# --- 6. The presenter ----------------------------------------------------------------------------


async def test_presenter_marks_reach_attendees_and_the_questions_filter(
    board: Board, tabs: Tabs
) -> None:
    async with board.api(**CHIDI) as api:
        plain_1 = (await api.post(board.session, "A thought, not a question"))["comment"]["id"]
        question_1 = await post_question(api, board.session, "How long should a nap be?")
        plain_2 = (await api.post(board.session, "Greetings from Enugu"))["comment"]["id"]
        question_2 = await post_question(api, board.session, "Does this apply to teenagers?")
    presenter = await open_screen(tabs, board, "presenter", "presenter", "presenter", ERIN)
    attendee = await open_screen(tabs, board, "board", "attendee", claims=MAYA)

    asked = "Is the watchman the same as hypervigilance?"
    await post_from_form(attendee.page, asked, question=True)
    question_3 = await comment_id_of(attendee.page, asked)
    await expect(part(attendee.page, question_3, "question")).to_be_visible()

    feed = presenter.page.get_by_test_id("feed")
    everything = [plain_1, question_1, plain_2, question_2, question_3]
    articles = feed.locator("[data-testid=comment]").filter(visible=True)
    await expect(articles).to_have_count(5)
    order = [int(i) for i in await articles.evaluate_all("es => es.map(e => e.dataset.id)")]
    assert order == everything, "the presenter feed is not in arrival order, newest last"

    await part(feed, plain_1, "highlight").click()
    await expect(part(feed, plain_1, "highlight")).to_have_attribute("aria-pressed", "true")
    await part(feed, question_1, "mark-answered").click()

    page = attendee.page
    await expect(
        page.locator(f'[data-id="{plain_1}"]{flagged("data-highlighted")}')
    ).to_be_visible()
    await expect(part(page, plain_1, "highlighted")).to_be_visible()
    await expect(
        page.locator(f'[data-id="{question_1}"]{flagged("data-answered")}')
    ).to_be_visible()
    await expect(part(page, question_1, "answered")).to_contain_text(
        re.compile(r"Answered live at \d")
    )
    await expect(part(page, plain_2, "answered")).to_be_hidden()
    await expect(part(page, plain_2, "highlighted")).to_be_hidden()

    await presenter.page.get_by_test_id("filter-questions").check()
    questions = {question_1, question_2, question_3}
    await expect(articles).to_have_count(3)
    shown = {int(i) for i in await articles.evaluate_all("es => es.map(e => e.dataset.id)")}
    assert shown == questions
    await presenter.page.get_by_test_id("filter-all").check()
    await expect(articles).to_have_count(5)

    # Unhighlighting reaches the attendee too.
    await part(feed, plain_1, "highlight").click()
    await expect(part(feed, plain_1, "highlight")).to_have_attribute("aria-pressed", "false")
    await expect(part(page, plain_1, "highlighted")).to_be_hidden()


# --- 7. Watcher counts across processes ----------------------------------------------------------


@pytest.fixture
async def pair(env: dict[str, str], workdir: Path) -> AsyncIterator[list[ServerProcess]]:
    servers = [
        ServerProcess({**env, "SERVER_NAME": f"watch-{n}"}, workdir / f"watch-{n}.log")
        for n in ("a", "b")
    ]
    await asyncio.gather(*(s.start() for s in servers))
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


async def test_watcher_counts_follow_across_two_processes(
    pair: list[ServerProcess], tabs: Tabs
) -> None:
    a, b = pair
    board = await new_board(a.url)
    on_a = Board(a.url, board.event, board.session)
    on_b = Board(b.url, board.event, board.session)
    page_a = (await open_screen(tabs, on_a, "board", "watcher on A", claims=MAYA)).page
    page_b = (await open_screen(tabs, on_b, "board", "watcher on B", claims=CHIDI)).page
    watching = [page_a.get_by_test_id("watching"), page_b.get_by_test_id("watching")]
    async with AsyncExitStack() as stack:
        feeds_a = [await stack.enter_async_context(Feed(a.url, board.session)) for _ in range(14)]
        for _ in range(14):
            await stack.enter_async_context(Feed(b.url, board.session))
        for count in watching:
            await expect(count).to_contain_text(re.compile(r"\b30 watching"), timeout=30_000)

        started = time.monotonic()
        for feed in feeds_a[:10]:
            await feed.__aexit__(None, None, None)
        for count in watching:
            await expect(count).to_contain_text(re.compile(r"\b20 watching"), timeout=30_000)
        print(f"20 watching shown {time.monotonic() - started:.1f}s after 10 left")

        started = time.monotonic()
        assert b.process is not None
        b.process.kill()
        b.process.wait()
        # A still has its page and 4 feeds; B's 15 watchers expire with B's presence.
        await expect(watching[0]).to_contain_text(re.compile(r"\b5 watching"), timeout=30_000)
        print(f"5 watching shown {time.monotonic() - started:.1f}s after B was killed")
        await expect(page_b.get_by_test_id("status")).to_have_attribute(
            "data-state", "reconnecting"
        )


# --- 8. Embedding on another origin --------------------------------------------------------------


class Embedding:
    def __init__(self, host: HostSite, other: HostSite, server: InProcessServer) -> None:
        self.host = host
        self.other = other
        self.server = server


@pytest.fixture(scope="module")
async def embedding(make_settings: Any) -> AsyncIterator[Embedding]:
    with HostSite("127.0.0.2") as host, HostSite("127.0.0.3") as other:
        settings = make_settings(allowed_origins=host.origin, jwt_leeway=0)
        server = await InProcessServer(settings).start()
        try:
            yield Embedding(host, other, server)
        finally:
            await server.stop()


async def test_embedded_board_posts_and_only_allowed_origins_open_the_feed(
    embedding: Embedding, tabs: Tabs
) -> None:
    board = await new_board(embedding.server.url)
    host = embedding.host
    host.page(
        "/talk.html",
        host_page(
            "Day 3: Cultivating Compassion",
            embed_snippet(board.url, board.session, token(board, **MAYA)),
        ),
    )
    tab = await tabs.open(f"{host.origin}/talk.html", "host page")
    frame = tab.page.frame_locator("#comments iframe").locator(":root")
    await wait_live(frame)
    iframe_src = await tab.page.locator("#comments iframe").get_attribute("src")
    assert iframe_src is not None and "embed=1" in iframe_src and "token" not in iframe_src
    body = "Posted from inside the host site's page"
    await post_from_form(frame, body)
    await expect(frame.get_by_test_id("body").filter(has_text=body)).to_be_visible()
    await expect(frame.get_by_test_id("author").first).to_contain_text("Maya")
    async with board.anonymous() as api:
        threads = (await api.page(board.session))["threads"]
    assert [(t["comment"]["body"], t["comment"]["author"]["name"]) for t in threads] == [
        (body, "Maya")
    ]
    height = await tab.page.locator("#comments iframe").evaluate("e => e.offsetHeight")
    assert height > 200, f"the iframe was not sized to the board ({height}px)"

    feed_url = board.url.replace("http://", "ws://") + f"/v1/sessions/{board.session}/live"
    allowed = await tab.page.evaluate(OPEN_WEBSOCKET, feed_url)
    assert allowed["opened"] and '"hello"' in (allowed["first"] or ""), allowed

    other = embedding.other
    other.page("/", host_page("Another site", "<p>Not configured in ALLOWED_ORIGINS.</p>"))
    stranger = await tabs.open(f"{other.origin}/", "page of another origin")
    refused = await stranger.page.evaluate(OPEN_WEBSOCKET, feed_url)
    assert not refused["opened"] and refused["first"] is None, refused
    assert refused["code"] == 1006, refused


async def test_embedded_board_refreshes_an_expiring_token_and_keeps_the_draft(
    embedding: Embedding, tabs: Tabs
) -> None:
    board = await new_board(embedding.server.url)
    host = embedding.host
    sub = f"host-{uuid.uuid4().hex[:8]}"
    ttl = 4
    expires = time.time() + ttl
    first = token(board, sub=sub, ttl=ttl, **{**MAYA, "name": "Maya Early"})
    host.routes["/backchannel-token"] = lambda: (
        "text/plain",
        token(board, sub=sub, **{**MAYA, "name": "Maya Refreshed"}).encode(),
    )
    host.page(
        "/expiring.html", host_page("Expiring", embed_snippet(board.url, board.session, first))
    )
    calls = host.calls.get("/backchannel-token", 0)

    tab = await tabs.open(f"{host.origin}/expiring.html", "host page")
    frame = tab.page.frame_locator("#comments iframe").locator(":root")
    textarea = frame.get_by_test_id("comment-form").locator("textarea[name=body]")
    draft = "Typed while the token was being refreshed"
    await textarea.fill(draft)
    refreshed = await asyncio.to_thread(host.wait_for_call, "/backchannel-token", calls + 1, 20)
    assert refreshed, "the board never asked the host page for a fresh token (getToken)"
    # Whatever the board did meanwhile, post only once the first token has expired for sure.
    await asyncio.sleep(max(0.0, expires - time.time() + 1))
    await expect(textarea).to_have_value(draft)
    await frame.get_by_test_id("comment-form").get_by_test_id("post").click()
    await expect(frame.get_by_test_id("body").filter(has_text=draft)).to_be_visible()
    await expect(frame.get_by_test_id("error")).to_be_hidden()
    async with board.anonymous() as api:
        threads = (await api.page(board.session))["threads"]
    assert [(t["comment"]["body"], t["comment"]["author"]["name"]) for t in threads] == [
        (draft, "Maya Refreshed")
    ]


# --- 9 and 10. Realistic content: accessibility and screenshots ----------------------------------


@pytest.fixture(scope="module")
async def demo(server: InProcessServer, database_url: str) -> Board:
    """The demo board (``server/demo/board.json``, as ``./dev serve`` shows it), with a
    highlighted comment, one answered live, and a question."""
    store = await Store.connect(database_url, 2)
    try:
        slug = await load_demo(store)
    finally:
        await store.close()
    async with Api(server.url) as anonymous:
        session = await anonymous.session(slug)
        threads = (await anonymous.page(slug))["threads"]
    board = Board(server.url, session["event"], slug)
    async with board.api("presenter", name="Renata Holloway-Asante") as presenter:
        await mark(presenter, threads[1]["comment"]["id"], "highlighted")
        await mark(presenter, threads[4]["comment"]["id"], "answered")
    return board


async def test_screens_have_no_serious_accessibility_violations(demo: Board, tabs: Tabs) -> None:
    found = []
    for screen, role, claims in (
        ("board", "attendee", MAYA),
        ("presenter", "presenter", CHIDI),
        ("moderator", "moderator", ERIN),
    ):
        tab = await open_screen(tabs, demo, screen, screen, role, claims)
        await expect(tab.page.get_by_test_id("comment").first).to_be_visible()
        if screen == "board":
            first = await tab.page.get_by_test_id("comment").first.get_attribute("data-id")
            assert first is not None
            await part(tab.page, first, "reply-link").click()
            await expect(tab.page.get_by_test_id("reply-form")).to_be_visible()
        violations = await axe_violations(tab.page)
        if violations:
            found.append(f"{screen}.html:\n{violations}")
        await tab.context.close()
    assert not found, "axe-core found serious or critical violations:\n" + "\n".join(found)


async def test_board_fits_a_375_pixel_wide_phone(demo: Board, board: Board, tabs: Tabs) -> None:
    async with board.api(**MAYA) as api:
        long = "Pneumonoultramicroscopicsilicovolcanoconiosis-" * 8  # no space to wrap at
        posted = await api.post(board.session, f"Look at {long} please")
        await api.post(board.session, "A reply 🙏" * 30, parent_id=posted["comment"]["id"])
    for shown in (demo, board):
        tab = await open_screen(tabs, shown, "board", "phone", claims=MAYA, width=375, height=812)
        await expect(tab.page.get_by_test_id("comment").first).to_be_visible()
        width = await tab.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375, f"{shown.session}: the board scrolls sideways ({width}px wide)"
        await tab.context.close()


async def test_screenshots(demo: Board, tabs: Tabs, tmp_path: Path) -> None:
    """The README's screenshots. ``UPDATE_SCREENSHOTS=1`` writes them to ``docs/screenshots``;
    otherwise they go to a temporary folder (so a test run leaves the tree clean)."""
    folder = ROOT / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    shots = [
        ("board", "attendee", MAYA, 1100, 1700),
        ("presenter", "presenter", person("Renata Holloway-Asante", "", "", "", ""), 1280, 800),
        ("moderator", "moderator", ERIN, 1280, 800),
    ]
    opened = []
    for screen, role, claims, width, height in shots:
        tab = await open_screen(
            tabs, demo, screen, screen, role, claims, width=width, height=height
        )
        opened.append(tab)
    for tab, (screen, *_) in zip(opened, shots, strict=True):
        page = tab.page
        await expect(page.get_by_test_id("comment").first).to_be_visible()
        await expect(page.get_by_test_id("watching")).to_contain_text(
            re.compile(rf"\b{len(shots)} watching")
        )
        await page.evaluate("() => document.fonts.ready.then(() => true)")
        path = folder / f"{screen}.png"
        await page.screenshot(path=str(path), animations="disabled", caret="hide")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
