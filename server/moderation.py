"""The community rules applied to what people post: publish, hold for review with a reason, or
refuse. The rules themselves (per-language lists, normalisation) live in ``rules.py``; this is
where they meet an event's own word lists and a session's pre-moderation."""

from __future__ import annotations

import math

from .auth import Identity
from .errors import BadRequest, Forbidden, TooManyRequests
from .rules import judge
from .storage import Hold, SessionRecord, Standing


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


def admit(
    standing: Standing,
    session: SessionRecord,
    who: Identity,
    hold: Hold | None,
    per_minute: int = 0,
) -> Hold | None:
    """Whether ``who`` may post now, given their standing in the event: a ban or a timeout
    refuses (403 ``banned`` / ``timed_out``), slow mode refuses a post too soon after their last
    one (429 ``slow_mode`` with the seconds left), more than ``per_minute`` posts in a minute
    are refused (429 ``rate_limited``), a flag holds it for review. Presenters and moderators
    are exempt from slow mode and from ``per_minute``."""
    check_sanctions(standing)
    staff = who.has_role("presenter", session.event_slug)
    if per_minute and not staff and standing.posts_last_minute >= per_minute:
        oldest = standing.first_in_minute or standing.now
        left = max(1, math.ceil(60 - (standing.now - oldest).total_seconds()))
        raise TooManyRequests(
            "rate_limited",
            f"at most {per_minute} comments a minute; you can post again in {left} s",
            retry_after=left,
        )
    interval = session.slow_mode
    if interval and standing.last_post_at and not staff:
        waited = (standing.now - standing.last_post_at).total_seconds()
        if waited < interval:
            left = max(1, math.ceil(interval - waited))
            raise TooManyRequests(
                "slow_mode",
                f"slow mode: one comment per {interval} s; you can post again in {left} s",
                retry_after=left,
                slow_mode=interval,
            )
    if standing.flagged and hold is None:
        return Hold("flagged")
    return hold


def check_sanctions(standing: Standing | None) -> None:
    """Refuse what a banned or timed-out author tries to do (post, edit, report)."""
    if standing is None:
        return
    if standing.banned:
        raise Forbidden("banned", "a moderator has banned you from posting in this event")
    if standing.timed_out:
        until = standing.timed_out_until
        when = f"until {until.isoformat(timespec='seconds')}" if until else "for this event"
        raise Forbidden(
            "timed_out",
            f"a moderator has paused your posting {when}",
            until=until,
        )
