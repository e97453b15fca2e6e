"""An XSS corpus in comment bodies and in every author field renders as literal text on the three
screens (and in the moderators' review queue), in a real Chromium: no element is injected, no
script runs, no link to ``javascript:`` appears, and bidi overrides stay inside their own text.
The pages' Content-Security-Policy is checked in ``test_browser.py``."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from client import Api

from .browser import (
    Tab,
    Tabs,
    browser_fixture,  # noqa: F401 (the fixture "browser")
    by_id,
    part,
    screen_url,
    tabs_fixture,  # noqa: F401 (the fixture "tabs")
    wait_live,
)
from .conftest import Board, make_token

# Bodies: each must show exactly as written. (Links are held for review by the community
# rules, so the ones with a URL go to the queue; the rest are published.)
PUBLISHED = [
    "<script>alert('body')</script>",
    "<img src=x onerror=alert('img')>",
    '<svg onload=alert("svg")><circle r=5 /></svg>',
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
    '"><b onmouseover=alert(1)>bold?</b>',
    "<style>body{display:none}</style> still visible",
    "\u202eevil\u202c reversed \u2066isolated\u2069 text",
    "{{constructor.constructor('alert(1)')()}} ${alert(1)}",
    "<a href=\"javascript:alert('link')\">click me</a>",
]
HELD = ["javascript:alert(document.cookie)//http://example.com"]
AUTHORS = [
    {"name": "<script>alert('name')</script>", "profession": "Nursing", "city": "Albany",
     "region": "NY", "country": "US"},
    {"name": "Eve", "profession": "<img src=x onerror=alert('job')>",
     "city": "<svg/onload=alert('city')>", "region": "<b>ST</b>", "country": "CA"},
    {"name": "\u202eMallory\u202c", "profession": "Coach", "city": "javascript:alert(1)",
     "region": "", "country": ""},
]  # fmt: skip
INJECTED = "script, img, svg, iframe, style:not([data-app]), b, a[href^='javascript']"


async def assert_nothing_ran(tab: Tab) -> None:
    assert tab.dialogs == [], f"{tab.name}: dialogs opened: {tab.dialogs}"
    assert tab.errors == [], f"{tab.name}: page errors: {tab.errors}"


async def assert_literal(page: Page, cid: int, body: str, author: dict[str, str]) -> None:
    comment = by_id(page, cid)
    await expect(part(page, cid, "body")).to_have_text(body)
    author_line = part(page, cid, "author")
    for field in ("name", "profession", "city"):
        if author[field]:
            await expect(author_line).to_contain_text(author[field])
    await expect(comment.locator(INJECTED)).to_have_count(0)


@pytest.fixture
async def corpus(board: Board) -> tuple[list[tuple[int, str, dict[str, str]]], list[int]]:
    """The corpus posted by three hostile authors: (id, body, author) published, ids held."""
    published: list[tuple[int, str, dict[str, str]]] = []
    held: list[int] = []
    for index, body in enumerate(PUBLISHED + HELD):
        author = AUTHORS[index % len(AUTHORS)]
        token = make_token("attendee", board.event, sub=f"xss-{index % 3}", **author)
        async with Api(board.url, token) as api:
            result = (await api.post(board.session, body))["comment"]
        if result["status"] == "held":
            held.append(result["id"])
        else:
            published.append((result["id"], body, author))
    assert len(held) == len(HELD), "the links should wait for review"
    return published, held


async def test_an_xss_corpus_is_literal_text_on_every_screen(
    board: Board, tabs: Tabs, corpus: tuple[list[tuple[int, str, dict[str, str]]], list[int]]
) -> None:
    published, held = corpus
    screens = []
    for screen, role in (
        ("board", "attendee"),
        ("presenter", "presenter"),
        ("moderator", "moderator"),
    ):
        token = make_token(role, board.event, name=f"{role} reader")
        tab = await tabs.open(screen_url(board.url, screen, board.session, token), screen)
        await wait_live(tab.page)
        screens.append(tab)
    for tab in screens:
        for cid, body, author in published:
            await assert_literal(tab.page, cid, body, author)
    # The moderators' review queue shows the held ones in full: as text too.
    console = screens[2].page
    for cid in held:
        row = console.locator(f"[data-testid=queue-item][data-id='{cid}']")
        await expect(row).to_have_count(1)
        await expect(row.locator(INJECTED)).to_have_count(0)
    await expect(console.get_by_test_id("queue")).to_contain_text("javascript:alert")
    for tab in screens:  # a script that ran would have opened its alert by now
        await assert_nothing_ran(tab)
