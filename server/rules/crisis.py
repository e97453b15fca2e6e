"""Crisis: a first-person statement of suicidal or self-harm intent, unless it is someone
else's words, words talked about, or a figure of speech (docs/moderation.md, "crisis")."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from .lists import Language
from .post import Post
from .verdict import Hit

_OPENING_QUOTE: Final = re.compile(r"(?:^|(?<=[\s(]))'(?=\w)")
_CLOSING_QUOTE: Final = re.compile(r"(?<=[\w.!?,])'(?!\w)")


def find_crisis(text: Post, languages: Sequence[Language]) -> Hit | None:
    """The first crisis phrase of ``languages`` (in list order) that is neither reported
    speech, a mention, nor overlapped by a ``not_when`` exception."""
    for language in languages:
        ordered: Sequence[Language] = ()
        for phrase in text.live.get((language.code, "crisis"), ()):
            for match in phrase.finditer(text):
                if not ordered:  # the phrase's own language first: its cues are likelier
                    ordered = (language, *(other for other in languages if other is not language))
                if _reported(match.string, match.start(), ordered):
                    continue
                if _idiom(text, match, ordered):
                    continue
                return Hit("crisis", f"{phrase.where}: {phrase.source}", match.group())
    return None


def _idiom(text: Post, match: re.Match[str], languages: Sequence[Language]) -> bool:
    """An exception (``not_when``: "mourir de rire") overlapping the phrase."""
    return any(
        other.string is match.string and other.start() < match.end() and match.start() < other.end()
        for language in languages
        for exception in text.live.get((language.code, "crisis_exceptions"), ())
        for other in exception.finditer(text)
    )


def _reported(norm: str, start: int, languages: Sequence[Language]) -> bool:
    """Someone else's words, or words talked about: a speaker cue ("a patient said") or
    a mention cue ("the phrase") right before the phrase; a speaker cue anywhere before
    the opening quote the phrase is in; a speaker cue right before a colon that is right
    before the phrase. Anything looser would also silence "the words keep coming back:
    I want to die"."""
    opening = -1
    if norm.count('"', 0, start) % 2 == 1:
        opening = norm.rfind('"', 0, start)
    limit = opening if opening >= 0 else start
    sentence = max(norm.rfind(c, 0, limit) for c in ".!?\n") + 1
    before = norm[sentence:start]
    if opening < 0:  # inside single quotes? ("tells me 'i want to kill myself'")
        single = [m.start() for m in _OPENING_QUOTE.finditer(before)]
        if single and not _CLOSING_QUOTE.search(before, single[-1] + 1):
            opening = sentence + single[-1]
    head = before.rstrip(" '\"")
    colon = head.endswith(":")
    for language in languages:
        if language.speaker_end.search(before) or language.mention_end.search(before):
            return True
        if opening >= 0 and (
            language.speaker.search(norm, sentence, opening)
            or language.mention_end.search(norm, sentence, opening)
        ):
            return True
        if colon and language.speaker_end.search(head[:-1]):
            return True
    return False
