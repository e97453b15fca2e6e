"""An event's own word lists: ``banned`` (refused) and ``suspect`` (held)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .folding import normalise
from .phrases import SEP
from .post import Post
from .verdict import Hit, Reason


@dataclass(frozen=True, slots=True)
class _Listed:
    entry: str  # as the event gave it
    word: str | None  # a single word: looked up in the post's set of words
    anchor: str  # otherwise: a word (or "prefix*") that must be there ...
    regex: re.Pattern[str] | None  # ... before this runs


@functools.lru_cache(maxsize=512)
def _word_list(entries: tuple[str, ...]) -> tuple[_Listed, ...]:
    """An event's banned or suspect words, each matched whole on normalised text; a ``*`` at
    the end of an entry matches any ending ("scam*": scam, scammer, scams)."""
    compiled = []
    for entry in entries:
        prefix = entry.rstrip().endswith("*")
        words = normalise(entry.strip().rstrip("*")).split()
        if not words:
            continue
        if len(words) == 1 and not prefix and words[0].isalnum():
            compiled.append(_Listed(entry, words[0], words[0], None))
            continue
        body = SEP.join(re.escape(w) for w in words) + (r"\w*" if prefix else "")
        longest = max(words, key=len)
        anchor = longest + "*" if prefix and longest == words[-1] else longest
        if not anchor.rstrip("*").isalnum():
            anchor = ""
        compiled.append(_Listed(entry, None, anchor, re.compile(rf"(?<!\w){body}(?!\w)")))
    return tuple(compiled)


def find_listed(reason: Reason, entries: Iterable[str], text: Post) -> Hit | None:
    """The first entry of ``entries`` in the post, as a hit of class ``reason``."""
    if isinstance(entries, str):
        entries = (entries,)
    for listed in _word_list(tuple(entries)):
        if listed.word is not None:
            if listed.word in text.words:
                return Hit(reason, f"{reason} list: {listed.entry}", listed.word)
            continue
        if listed.regex is None or (listed.anchor and not text.has(listed.anchor)):
            continue
        for norm in text.norms:
            match = listed.regex.search(norm)
            if match:
                return Hit(reason, f"{reason} list: {listed.entry}", match.group())
    return None
