from __future__ import annotations

from client import Feed

from .conftest import Board


async def test_post_reaches_watcher(board: Board) -> None:
    async with Feed(board.url, board.session, since=0) as feed, board.api() as api:
        posted = await api.post(board.session, "Hello from the test 👋")
        event = await feed.next_event()
    assert event["kind"] == "comment.created"
    assert event["comment"]["body"] == "Hello from the test 👋"
    assert event["seq"] == posted["seq"] == 1
