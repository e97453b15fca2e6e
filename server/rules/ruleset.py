"""The ruleset: every list of one directory, compiled, and the anchor index that says which
phrases can match a post. :meth:`Ruleset.judge` is the entry point.

Speed (docs/moderation.md, "Speed"): Python's regular expressions cost tens of nanoseconds
per character for a pattern that can start anywhere, so no phrase runs over a whole post:
each phrase has anchor words and runs only near them, inside their sentence.
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
        # anchor word -> the phrases it anchors (by id), for every list of every language
        self._by_word: dict[str, list[int]] = {}
        self._by_prefix: dict[str, list[int]] = {}
        self._where: dict[int, tuple[tuple[str, str], int, Phrase]] = {}
        self._unanchored: dict[tuple[str, str], list[tuple[int, Phrase]]] = {}
        for language in self._all:
            for kind in _INDEXED:
                for order, phrase in enumerate(getattr(language, kind)):
                    key = (language.code, kind)
                    if phrase.anchors is None:
                        self._unanchored.setdefault(key, []).append((order, phrase))
                        continue
                    self._where[id(phrase)] = (key, order, phrase)
                    for anchor in phrase.anchors:
                        if anchor.endswith("*"):
                            self._by_prefix.setdefault(anchor[:-1], []).append(id(phrase))
                        else:
                            self._by_word.setdefault(anchor, []).append(id(phrase))
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
        """Fills ``text.anchors`` and ``text.live`` from the anchor index."""
        anchors = text.anchors
        for word in text.words & self._vocabulary:
            for phrase in self._by_word[word]:
                anchors.setdefault(phrase, []).append(word)
        for norm in text.norms:
            spaced = text.spaced(norm)
            for found in set(self._prefix_regex.findall(spaced)):
                text.prefixes.update(self._prefix_of[found])
        for prefix in text.prefixes:
            for phrase_id in self._by_prefix.get(prefix, ()):
                anchors.setdefault(phrase_id, []).append(prefix + "*")
        ordered: dict[tuple[str, str], list[tuple[int, Phrase]]] = {}
        for phrase_id in anchors:
            key, order, candidate = self._where[phrase_id]
            if candidate.possible(text):
                ordered.setdefault(key, []).append((order, candidate))
        for key, phrases in self._unanchored.items():
            ordered.setdefault(key, []).extend(phrases)
        text.live = {
            key: [phrase for _, phrase in sorted(phrases, key=lambda item: item[0])]
            for key, phrases in ordered.items()
        }
