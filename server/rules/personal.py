"""Personal requests: asking for a referral, or for advice on one's own problem
(docs/moderation.md, "personal")."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .lists import Language
from .phrases import Phrase
from .post import Post
from .verdict import Hit


def find_personal(text: Post, languages: Sequence[Language], window: int) -> Hit | None:
    """A referral or personal request; else a ``problem`` and an ``ask`` at most ``window``
    characters apart, the ask not about work."""
    for language in languages:
        for phrase in text.live.get((language.code, "referral"), []) + text.live.get(
            (language.code, "personal"), []
        ):
            for match in phrase.finditer(text):
                return Hit("personal", f"{phrase.where}: {phrase.source}", match.group())
    problems = [
        (m, p)
        for lang in languages
        for p in text.live.get((lang.code, "problem"), ())
        for m in p.finditer(text)
    ]
    if not problems:
        return None
    professional = [p for lang in languages for p in lang.professional]
    # an ask far from every problem cannot count: only the others are checked for work talk
    asks = [
        (m, p)
        for lang in languages
        for p in text.live.get((lang.code, "ask"), ())
        for m in p.finditer(text)
        if _near(m, problems, window) and not _about_work(text, m, professional)
    ]
    for problem, problem_rule in problems:
        for ask, ask_rule in asks:
            if ask.string is not problem.string:
                continue
            gap = max(ask.start() - problem.end(), problem.start() - ask.end())
            if gap <= window:
                rule = f"{problem_rule.where}: {problem_rule.source} + {ask_rule.source}"
                start = min(problem.start(), ask.start())
                end = max(problem.end(), ask.end())
                return Hit("personal", rule, ask.string[start:end])
    return None


def _near(
    ask: re.Match[str], problems: Sequence[tuple[re.Match[str], Phrase]], window: int
) -> bool:
    return any(
        problem.string is ask.string
        and max(ask.start() - problem.end(), problem.start() - ask.end()) <= window
        for problem, _ in problems
    )


def _about_work(text: Post, ask: re.Match[str], professional: Sequence[Phrase]) -> bool:
    """The sentence of the request is about clients, sessions, one's practice: a
    clinical question, not a personal one."""
    start, end = text.sentence(ask.string, ask.start())
    return any(next(p.search(ask.string, start, end), None) for p in professional)
