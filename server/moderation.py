"""The community rules applied to what people post: publish, hold for review with a reason, or
refuse. The rules themselves (per-language lists, normalisation) live in ``rules.py``; this is
where they meet an event's own word lists and a session's pre-moderation."""

from __future__ import annotations

from .errors import BadRequest
from .rules import judge
from .storage import Hold, SessionRecord


def screen(session: SessionRecord, body: str, *, edit: bool = False) -> Hold | None:
    """How to store ``body``: None to publish, or why to hold it. A word on the event's banned
    list refuses it (400 ``banned_word``). Pre-moderation holds every new post, not edits of
    an approved one; the rules judge both, so an approved comment edited into a link is held."""
    verdict = judge(body, banned=session.banned_words, suspect=session.suspect_words)
    if verdict.action == "refuse":
        raise BadRequest("banned_word", "the comment contains a word this event does not allow")
    if verdict.action == "hold":
        return Hold(verdict.reason or "rules", verdict.matched or "")
    if session.premoderated and not edit:
        return Hold("premoderation")
    return None
