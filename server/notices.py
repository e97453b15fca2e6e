"""Private messages: ``notice`` to one author (on their own topic) and ``queue`` to an event's
moderators (on theirs). What every watcher may see goes through the session's log instead; these
carry what only one person, or only moderators, may see (``docs/protocol.md``)."""

from __future__ import annotations

import msgspec

from .bus import moderators_topic, user_topic
from .hub import Hub
from .protocol import CommentView, QueueItem, SanctionView, encode
from .storage import SessionRecord


class Notices:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def to_author(
        self, author: str, kind: str, session: str | None, **fields: object
    ) -> None:
        notice = {"type": "notice", "kind": kind, "session": session, **fields}
        await self.hub.publish_private(user_topic(author), encode(notice))

    async def to_moderators(self, event: str, kind: str, session: str, **fields: object) -> None:
        item = {"type": "queue", "kind": kind, "session": session, **fields}
        await self.hub.publish_private(moderators_topic(event), encode(item))

    async def held(
        self,
        session: SessionRecord,
        author: str,
        comment: CommentView,
        item: QueueItem,
        support_message: str | None,
    ) -> None:
        """A held post is seen only by its author ("awaiting review", with the support message
        for a crisis) and by the event's moderators (a queue item)."""
        await self.to_author(
            author, "comment.held", session.slug, comment=comment, support_message=support_message
        )
        await self.to_moderators(session.event_slug, "held", session.slug, item=item)

    async def reviewed(
        self,
        event: str,
        session: str,
        comment_id: int,
        status: str,
        reviewed_by: str | None,
    ) -> None:
        """An item left the queue: every moderator's console drops it."""
        await self.to_moderators(
            event, "reviewed", session, comment_id=comment_id, status=status,
            reviewed_by=reviewed_by,
        )  # fmt: skip

    async def sanctioned(self, author: str, sanction: SanctionView) -> None:
        """The author's open boards show the timeout or ban at once."""
        await self.to_author(author, "author.sanctioned", None, event=sanction.event,
                             sanction=for_author(sanction))  # fmt: skip

    async def reinstated(self, author: str, event: str) -> None:
        await self.to_author(author, "author.reinstated", None, event=event)


def for_author(sanction: SanctionView) -> SanctionView:
    """A sanction as its author sees it: what, until when and why, not which moderator."""
    return msgspec.structs.replace(sanction, created_by="a moderator")
