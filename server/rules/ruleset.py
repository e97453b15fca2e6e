"""The ruleset: every list of one directory, compiled, and the anchor index that says which
phrases can match a post. :meth:`Ruleset.judge` is the entry point.

Speed (docs/moderation.md, "Speed"): Python's regular expressions cost tens of nanoseconds
per character for a pattern that can start anywhere, so no phrase runs over a whole post:
the index keeps the phrases whose anchor word the post holds, and each runs only in the
sentences that hold its rarest required words (:meth:`Phrase.finditer`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from .crisis import find_crisis
from .event_lists import find_listed
from .links import load_links
from .lists import RULES_DIR, Language, load_language, read_directory, read_integer, read_table
from .personal import find_personal
from .phrases import Phrase, trie
from .post import Post
from .verdict import PUBLISH, Action, RulesError, Verdict

# The phrase lists found through the anchor index (Ruleset._index).
_INDEXED: Final = ("crisis", "crisis_exceptions", "referral", "personal", "problem", "ask")


class Ruleset:
    """The rule lists of one directory, compiled. ``judge`` is the entry point."""

    def __init__(self, common: Mapping[str, Any], languages: Mapping[str, Mapping[str, Any]]):
        if not languages:
            raise RulesError("no language rule files")
        self.languages: dict[str, Language] = {
            code: load_language(code, data) for code, data in sorted(languages.items())
        }
        self._all = tuple(self.languages.values())
        self._links = load_links(common, self._all)
        # Every phrase of the indexed lists, numbered in the order the lists are applied (by
        # language, list, then position), and the numbers of those each anchor word (or
        # prefix) anchors. Sorting the numbers of a post's candidates puts them in that order.
        self._phrases: list[tuple[tuple[str, str], Phrase]] = []
        by_word: dict[str, list[int]] = {}
        by_prefix: dict[str, list[int]] = {}
        unanchored: list[int] = []
        for language in self._all:
            for kind in _INDEXED:
                for phrase in getattr(language, kind):
                    number = len(self._phrases)
                    self._phrases.append(((language.code, kind), phrase))
                    if phrase.anchors is None:
                        unanchored.append(number)
                    for anchor in phrase.anchor_words:
                        by_word.setdefault(anchor, []).append(number)
                    for anchor in phrase.anchor_prefixes:
                        by_prefix.setdefault(anchor, []).append(number)
        self._by_word = {word: tuple(numbers) for word, numbers in by_word.items()}
        self._by_prefix = {prefix: tuple(numbers) for prefix, numbers in by_prefix.items()}
        self._unanchored = tuple(unanchored)
        self._vocabulary = frozenset(self._by_word)
        # every prefix of every requirement; a word found by the trie regex starts with the
        # prefixes listed for it
        prefixes = {
            prefix
            for language in self._all
            for kind in _INDEXED
            for phrase in getattr(language, kind)
            for _, starts in phrase.requires
            for prefix in starts
        }
        self._prefix_regex = re.compile(f" ({trie(prefixes)})")
        self._prefix_of = {p: [q for q in prefixes if p.startswith(q)] for p in prefixes}
        personal = read_table(common, "personal", "common")
        self._window = read_integer(personal, "window", "common.personal")

    @classmethod
    def load(cls, directory: Path | str = RULES_DIR) -> Ruleset:
        """Reads ``common.toml`` and every other ``*.toml`` (one per language, named by its
        code) in ``directory``."""
        common, languages = read_directory(Path(directory))
        return cls(common, languages)

    def _active(self, language: str | None) -> tuple[Language, ...]:
        if language:
            code = language.strip().lower().replace("_", "-").split("-")[0]
            if code in self.languages:
                return (self.languages[code],)
        return self._all

    def judge(
        self,
        text: str,
        *,
        banned: Iterable[str] = (),
        suspect: Iterable[str] = (),
        language: str | None = None,
    ) -> Verdict:
        """The verdict on one post. ``banned``/``suspect``: the event's word lists.
        ``language``: a code ("es", "pt-BR"); ``None`` or an unknown code runs every
        language's lists."""
        prepared = Post(text)
        self._index(prepared)
        languages = self._active(language)
        link, contact = self._links.find(prepared)
        found = (
            find_listed("banned", banned, prepared),
            find_crisis(prepared, languages),
            link,
            contact,
            find_personal(prepared, languages, self._window),
            find_listed("suspect", suspect, prepared),
        )
        hits = tuple(hit for hit in found if hit is not None)
        if not hits:
            return PUBLISH
        first = hits[0]
        action: Action = "refuse" if first.reason == "banned" else "hold"
        return Verdict(action, first.reason, first.rule, first.excerpt, hits)

    def _index(self, text: Post) -> None:
        """Fills ``text.prefixes`` and ``text.live`` from the anchor index."""
        candidates = set(self._unanchored)
        by_word = self._by_word
        for word in text.words & self._vocabulary:
            candidates.update(by_word[word])
        for found in set(self._prefix_regex.findall(text.word_line())):
            text.prefixes.update(self._prefix_of[found])
        by_prefix = self._by_prefix
        for prefix in text.prefixes:
            candidates.update(by_prefix.get(prefix, ()))
        live: dict[tuple[str, str], list[Phrase]] = {}
        phrases = self._phrases
        for number in sorted(candidates):
            key, phrase = phrases[number]
            if phrase.possible(text):
                if key in live:
                    live[key].append(phrase)
                else:
                    live[key] = [phrase]
        text.live = live
