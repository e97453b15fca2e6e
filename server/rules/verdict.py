"""What the rules say about a post (:class:`Verdict`, :class:`Hit`), and the one error they
raise (:class:`RulesError`, a rule file that cannot be used)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Action = Literal["publish", "hold", "refuse"]
Reason = Literal["banned", "crisis", "link", "contact", "personal", "suspect"]

#: Most severe first: when several rules match, the first of these names the verdict.
REASONS: Final[tuple[Reason, ...]] = ("banned", "crisis", "link", "contact", "personal", "suspect")


class RulesError(ValueError):
    """A rule file that cannot be used (bad TOML, a missing list, a phrase that does not
    compile). The message names the file, the list and the entry."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One rule that matched: its class, the rule as the lists spell it, and the stretch of
    normalised text it matched."""

    reason: Reason
    rule: str
    excerpt: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a post. ``reason``, ``matched`` and ``excerpt`` come from the most
    severe hit; ``hits`` holds one hit per class that matched, most severe first."""

    action: Action
    reason: Reason | None = None
    matched: str | None = None
    excerpt: str | None = None
    hits: tuple[Hit, ...] = ()

    @property
    def urgent(self) -> bool:
        """A crisis post: top of the moderation queue, and the author is shown the event's
        support message."""
        return self.reason == "crisis"


PUBLISH: Final = Verdict("publish")
