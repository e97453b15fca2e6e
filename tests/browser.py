"""Fixtures and helpers for the browser acceptance tests (``tests/test_browser.py``): a real
Chromium driven by Playwright against real servers, the screens' DOM contract of
``docs/screens.md`` as locators, a host site on another origin for embedding, and axe-core.

Test modules import the fixtures ``browser_fixture`` and ``tabs_fixture`` (named ``browser``
and ``tabs``). The tests skip, with the reason, when no Chromium binary is found (set
``CHROMIUM`` to its path, or install Debian's ``chromium``); CI installs it (``.ci/run``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    async_playwright,
    expect,
)

TIMEOUT_MS = 15_000
"""How long an expectation waits for the page by default: generous, since CI machines are slow."""

expect.set_options(timeout=TIMEOUT_MS)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

CSP_REFUSAL = "violates the following Content Security Policy directive"
"""How Chromium logs what the page's CSP refused (an inline style or script, another origin)."""

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
ROOT = Path(__file__).parent.parent


def find_chromium() -> str | None:
    """``$CHROMIUM``, Debian's ``/usr/bin/chromium``, or one on the ``PATH``."""
    candidates = [
        os.environ.get("CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session", name="browser")
async def browser_fixture() -> AsyncIterator[Browser]:
    path = find_chromium()
    if path is None:
        pytest.skip(
            "browser tests need Chromium: apt-get install chromium, or set CHROMIUM=/path/to/it"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


# --- Tabs: one browser context (its own storage, like another person) per tab --------------------


@dataclass
class Tab:
    """One person's page, with what it showed besides the DOM: dialogs (none may open), uncaught
    errors, and console errors (kept for the failure message; a failed WebSocket logs one)."""

    name: str
    context: BrowserContext
    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"{self.name}: url {self.page.url}\n  dialogs {self.dialogs}\n"
            f"  page errors {self.errors}\n  console errors {self.console[-10:]}"
        )


class Tabs:
    """Opens tabs for one test and closes them at its end; a tab that raised an uncaught error
    in its scripts fails the test (at teardown, with the error)."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.opened: list[Tab] = []

    async def open(
        self,
        url: str | None,
        name: str = "tab",
        *,
        width: int = 1280,
        height: int = 900,
        **options: Any,
    ) -> Tab:
        context = await self.browser.new_context(
            viewport={"width": width, "height": height},
            locale="en-US",
            timezone_id="America/New_York",
            color_scheme="light",
            reduced_motion="reduce",
            **options,
        )
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        tab = Tab(name, context, page)
        self.opened.append(tab)

        async def on_dialog(dialog: Dialog) -> None:
            tab.dialogs.append(f"{dialog.type}: {dialog.message}")
            await dialog.dismiss()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                tab.console.append(message.text)

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: tab.errors.append(f"{error.name}: {error.message}"))
        page.on("console", on_console)
        if url is not None:
            await page.goto(url)
        return tab

    async def close(self) -> None:
        for tab in self.opened:
            await tab.context.close()

    def problems(self) -> list[str]:
        """Tabs that raised an uncaught error, opened a dialog, or broke the page's CSP."""
        return [
            tab.describe()
            for tab in self.opened
            if tab.errors or tab.dialogs or any(CSP_REFUSAL in m for m in tab.console)
        ]


@pytest.fixture(name="tabs")
async def tabs_fixture(browser: Browser) -> AsyncIterator[Tabs]:
    opened = Tabs(browser)
    try:
        yield opened
        problems = opened.problems()
        assert not problems, "a page raised an error, opened a dialog or broke its CSP:\n" + (
            "\n".join(problems)
        )
    finally:
        await opened.close()


# --- URLs and tokens -----------------------------------------------------------------------------


def screen_url(base: str, screen: str, session: str, token: str | None = None, **query: Any) -> str:
    """``/board.html?session=…`` (or presenter, moderator), the token in the fragment."""
    params = urlencode({"session": session, **{k: str(v) for k, v in query.items()}})
    url = f"{base}/{screen}.html?{params}"
    if token is not None:
        url += "#" + urlencode({"token": token})
    return url


# --- The DOM contract ----------------------------------------------------------------------------


def by_id(scope: Page | Locator, comment_id: int | str) -> Locator:
    """The article of one comment (a board nests replies inside their parent's article)."""
    return scope.locator(f'[data-testid="comment"][data-id="{comment_id}"]')


def part(scope: Page | Locator, comment_id: int | str, testid: str) -> Locator:
    """An element of one comment itself, not of the replies nested inside it: the nearest
    enclosing comment of the element is that comment."""
    return scope.locator(
        f"xpath=.//*[@data-testid='{testid}']"
        f"[ancestor::*[@data-testid='comment'][1][@data-id='{comment_id}']]"
    )


def replies_of(scope: Page | Locator, comment_id: int | str) -> Locator:
    """The replies shown directly beneath a comment."""
    return part(scope, comment_id, "comment")


def top_level(scope: Page | Locator) -> Locator:
    """Visible top-level comments (not nested in another comment)."""
    return scope.locator(
        "xpath=.//*[@data-testid='comment'][not(ancestor::*[@data-testid='comment'])]"
    ).filter(visible=True)


def visible_numbers(scope: Page | Locator) -> Locator:
    """The visible "7." numbers of top-level comments, in page order."""
    return scope.locator("[data-testid='number']:visible")


def numbers_text(numbers: range | list[int]) -> list[re.Pattern[str]]:
    """What ``to_have_text`` expects of :func:`visible_numbers` for these numbers."""
    return [re.compile(rf"^\D*{n}\.?\s*$") for n in numbers]


async def comment_id_of(page: Page, body: str) -> int:
    """The id of the comment whose own body reads ``body`` (waits for it to show)."""
    element = page.get_by_test_id("body").filter(has_text=body).first
    await expect(element).to_be_visible()
    return int(await element.evaluate("e => e.closest('[data-testid=comment]').dataset.id"))


async def wait_live(page: Page | Locator, timeout: float = TIMEOUT_MS) -> None:
    await expect(page.get_by_test_id("status")).to_have_attribute(
        "data-state", "live", timeout=timeout
    )


async def post_from_form(page: Page | Locator, body: str, *, question: bool = False) -> None:
    """Type a comment in the board's form and press Post."""
    form = page.get_by_test_id("comment-form")
    await form.locator("textarea[name=body]").fill(body)
    if question:
        await form.locator("input[type=checkbox][name=question]").check()
    await form.get_by_test_id("post").click()


def flagged(attribute: str) -> str:
    """CSS for a boolean data attribute that is set (present and not "false")."""
    return f'[{attribute}]:not([{attribute}="false"])'


# --- A host site on another origin ---------------------------------------------------------------


Route = Callable[[], tuple[str, bytes]]


class HostSite:
    """A tiny web site in a thread, on its own origin (another loopback address): pages and
    routes are functions returning ``(content type, body)``. ``calls`` counts requests."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.routes: dict[str, Route] = {}
        self.calls: dict[str, int] = {}
        self.requested = threading.Condition()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                route = site.routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                content_type, body = route()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)
                with site.requested:
                    site.calls[path] = site.calls.get(path, 0) + 1
                    site.requested.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def page(self, path: str, html: str) -> None:
        self.routes[path] = lambda: ("text/html; charset=utf-8", html.encode())

    def wait_for_call(self, path: str, count: int = 1, timeout: float = 20) -> bool:
        """Blocks (call it in a thread) until ``path`` was served ``count`` times."""
        with self.requested:
            return self.requested.wait_for(lambda: self.calls.get(path, 0) >= count, timeout)

    def __enter__(self) -> HostSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def embed_snippet(server: str, session: str, token: str) -> str:
    """The embed snippet exactly as ``docs/screens.md`` ("Embedding") gives it, with this
    server, session and token in place of the examples."""
    text = (ROOT / "docs" / "screens.md").read_text(encoding="utf-8")
    section = text.split("## Embedding", 1)[1]
    snippet = section.split("```html", 1)[1].split("```", 1)[0]
    replacements = {
        "https://backchannel.example": server,
        "day-3-compassion": session,
        "<the JWT your server signed for this attendee>": token,
    }
    for example, value in replacements.items():
        assert example in snippet, f"docs/screens.md's embed snippet no longer has {example!r}"
        snippet = snippet.replace(example, value)
    return snippet


def host_page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body><h1>{title}</h1>\n{body}\n</body></html>\n"
    )


OPEN_WEBSOCKET = """url => new Promise(resolve => {
    const ws = new WebSocket(url);
    let opened = false;
    const done = (code, first) => { clearTimeout(timer); resolve({opened, code, first}); };
    const timer = setTimeout(() => { ws.close(); done(null, null); }, 10000);
    ws.onopen = () => { opened = true; };
    ws.onmessage = event => { ws.close(); done(null, event.data); };
    ws.onclose = event => done(event.code, null);
})"""
"""Opens a WebSocket from the page; resolves with whether it opened and its first message (or
its close code)."""


# --- axe-core ------------------------------------------------------------------------------------


async def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> str:
    """axe-core's violations of these impacts on the page, described (empty when none). The
    script is evaluated through the DevTools protocol, so the page's CSP stays on."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(AXE.read_text(encoding="utf-8"))
    results = await page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)"
    )
    lines = []
    for violation in results:
        if violation["impact"] not in impacts:
            continue
        lines.append(f"{violation['impact']} {violation['id']}: {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    {json.dumps(node['target'])}: {node['failureSummary']}")
        if len(violation["nodes"]) > 5:
            lines.append(f"    … and {len(violation['nodes']) - 5} more")
    return "\n".join(lines)
