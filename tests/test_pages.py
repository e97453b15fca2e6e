"""Pages kept in memory until their session's next event (``server/pages.py``): served again
while nothing changed, never stale after a change a reader can see, in this process or another
one sharing the database; concurrent misses share one read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from server.config import Settings
from server.pages import PageCache, PageStats
from server.services import Services

from .conftest import Board, new_board, nonce
from .servers import InProcessServer


def stats_of(server: InProcessServer) -> PageStats:
    services: Services = server.app.state.services
    return services.pages.stats


def bodies(page: dict) -> list[str]:  # type: ignore[type-arg]
    return [t["comment"]["body"] for t in page["threads"]]


@pytest.fixture(scope="module")
async def other(make_settings: Callable[..., Settings]) -> AsyncIterator[InProcessServer]:
    """A second process on the same database (its own bus: it hears nothing of the first)."""
    srv = await InProcessServer(make_settings()).start()
    yield srv
    await srv.stop()


async def test_a_page_is_served_again_until_its_session_changes(
    server: InProcessServer, board: Board
) -> None:
    first, second = f"first {nonce()}", f"second {nonce()}"
    async with board.api() as attendee, board.api("moderator") as moderator:
        posted = await attendee.post(board.session, first)
        page = await attendee.page(board.session)
        before = stats_of(server).hits
        assert await attendee.page(board.session) == page
        assert stats_of(server).hits == before + 1

        await attendee.post(board.session, second)
        page = await attendee.page(board.session)
        assert bodies(page) == [second, first] and page["total"] == 2

        reply = await attendee.post(board.session, "a reply", parent_id=posted["comment"]["id"])
        page = await attendee.page(board.session)
        assert [r["body"] for r in page["threads"][1]["replies"]] == ["a reply"]
        replies = await attendee.replies(posted["comment"]["id"])
        assert [r["body"] for r in replies["replies"]] == ["a reply"]

        await attendee.edit(reply["comment"]["id"], "a reply, edited")
        replies = await attendee.replies(posted["comment"]["id"])
        assert [r["body"] for r in replies["replies"]] == ["a reply, edited"]

        await moderator.remove(posted["comment"]["id"])
        page = await attendee.page(board.session)
        assert page["threads"][1]["comment"]["body"] is None
        assert page["threads"][1]["comment"]["status"] == "removed"


async def test_a_page_kept_by_one_process_follows_a_post_through_another(
    server: InProcessServer, other: InProcessServer
) -> None:
    board = await new_board(server.url)
    elsewhere = Board(other.url, board.event, board.session)
    async with board.api() as here, elsewhere.api() as there:
        await here.post(board.session, "before")
        kept = await there.page(board.session)
        assert await there.page(board.session) == kept  # now kept by the other process
        await here.post(board.session, "after")
        page = await there.page(board.session)
        assert bodies(page) == ["after", "before"] and page["head"] > kept["head"]


async def test_concurrent_misses_share_one_read_that_survives_a_reader_leaving() -> None:
    cache = PageCache()
    reads = 0
    release = asyncio.Event()

    async def read() -> tuple[int, bytes]:
        nonlocal reads
        reads += 1
        await release.wait()
        return 7, b'{"page":1}'

    readers = [asyncio.create_task(cache.get("k", 7, read)) for _ in range(8)]
    await asyncio.sleep(0)  # every reader has asked (no timing: one loop turn to start them)
    readers[0].cancel()
    release.set()
    results = await asyncio.gather(*readers[1:])
    assert results == [b'{"page":1}'] * 7 and reads == 1
    assert cache.stats.shared == 7
    # Kept at head 7: served at 7 (and to a request that saw an older head), not at 8.
    assert await cache.get("k", 7, read) == b'{"page":1}' and reads == 1
    assert await cache.get("k", 6, read) == b'{"page":1}' and reads == 1
    await cache.get("k", 8, read)
    assert reads == 2


async def test_a_failed_read_is_not_kept_and_reaches_every_waiter() -> None:
    cache = PageCache()

    async def fail() -> tuple[int, bytes]:
        await asyncio.sleep(0)
        raise RuntimeError("database gone")

    results = await asyncio.gather(
        *(cache.get("k", 1, fail) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results) and len(cache) == 0


async def test_the_cache_keeps_its_byte_bound_least_recently_used_first() -> None:
    cache = PageCache(max_bytes=2500)

    def page(n: int) -> Callable[[], asyncio.Future[tuple[int, bytes]]]:
        async def read() -> tuple[int, bytes]:
            return 1, bytes([48 + n]) * 1000

        return read  # type: ignore[return-value]

    for key in ("a", "b"):
        await cache.get(key, 1, page(1))
    await cache.get("a", 1, page(1))  # "a" is now the most recent
    await cache.get("c", 1, page(2))
    assert cache.bytes <= 2500 and len(cache) == 2
    hits = cache.stats.hits
    await cache.get("a", 1, page(1))
    assert cache.stats.hits == hits + 1  # "b" went, not "a"
