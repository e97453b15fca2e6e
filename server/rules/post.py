"""A post, prepared once for every rule: its folded and normalised forms, its words, and,
filled in by the ruleset's anchor index, the phrases that can match it."""

from __future__ import annotations

import bisect
import re
from typing import TYPE_CHECKING, Final

from .folding import LEET, LEET_L, fold, lower, unleet

if TYPE_CHECKING:
    from .phrases import Phrase

_SENTENCE_END: Final = re.compile(r"[.!?\n]")
# ASCII punctuation to spaces, for the set of words of a post (bytes.translate is fast).
_PUNCTUATION: Final = bytes.maketrans(
    bytes(c for c in range(128) if not (chr(c).isalnum() or c == ord("_"))),
    b" " * sum(1 for c in range(128) if not (chr(c).isalnum() or c == ord("_"))),
)
_WORD: Final = re.compile(r"\w+")
_WORD_SPACES: Final = re.compile(r"[\W_]+")


def _spaced(text: str) -> str | None:
    """``text`` with ASCII punctuation blanked, between two spaces: a word is then found,
    whole, by ``find(" word ")``, at the same index as in ``text``. ``None`` unless ASCII."""
    if not text.isascii():
        return None
    return f" {text.encode('ascii').translate(_PUNCTUATION).decode('ascii')} "


class Post:
    """A post, prepared once for every rule."""

    __slots__ = (
        "_bounds",
        "_positions",
        "_spaced",
        "anchors",
        "cased",
        "live",
        "low",
        "norm",
        "norms",
        "prefixes",
        "words",
    )

    def __init__(self, text: str) -> None:
        #: folded, case kept ("session.Es" is a sentence, "terapia.es" a web site)
        self.cased = fold(text)
        #: ``cased`` in lower case, character for character (links, e-mails, phones)
        self.low = self.cased.lower()
        if len(self.low) != len(self.cased):  # cannot happen after fold; keep indices safe
            self.cased = self.low
        folded = lower(self.cased, self.low)
        #: :func:`normalise`, what phrases are matched against ...
        self.norm = unleet(folded, LEET)
        #: ... and, when a "1" inside a word could also be an "l", that reading too
        self.norms: tuple[str, ...] = (self.norm,)
        if self.norm is not folded and "1" in folded and self.norm.count("i") > folded.count("i"):
            other = unleet(folded, LEET_L)
            if other != self.norm:
                self.norms = (self.norm, other)
        self._spaced = {id(norm): _spaced(norm) for norm in self.norms}
        words: set[str] = set()
        for norm in self.norms:
            spaced = self._spaced[id(norm)]
            words.update(spaced.split() if spaced is not None else _WORD.findall(norm))
        #: the words of the post
        self.words = frozenset(words)
        #: the prefixes of the rule lists ("therapist" of "therapist*") that start a word here
        self.prefixes: set[str] = set()
        self._bounds: dict[int, list[int]] = {}
        self._positions: dict[tuple[int, str], list[int]] = {}
        #: for each phrase (by ``id``) whose anchors are in the post: those anchors
        self.anchors: dict[int, list[str]] = {}
        #: by language and list ("en", "crisis"): the phrases that can match, in list order
        self.live: dict[tuple[str, str], list[Phrase]] = {}

    def sentence(self, string: str, position: int) -> tuple[int, int]:
        """The sentence of ``string`` (one of ``norms``) around ``position``."""
        key = id(string)
        bounds = self._bounds.get(key)
        if bounds is None:
            bounds = self._bounds[key] = [m.start() for m in _SENTENCE_END.finditer(string)]
        index = bisect.bisect_left(bounds, position)
        start = bounds[index - 1] + 1 if index else 0
        end = bounds[index] if index < len(bounds) else len(string)
        return start, end

    def positions(self, string: str, anchor: str) -> list[int]:
        """Where the word ``anchor`` (``"pre*"``: a word that starts with ``pre``) stands in
        ``string`` (one of ``norms``)."""
        key = (id(string), anchor)
        found = self._positions.get(key)
        if found is not None:
            return found
        found = []
        prefix = anchor.endswith("*")
        word = anchor.rstrip("*")
        spaced = self._spaced.get(id(string))
        if spaced is not None:  # " word " in spaced is the word at the same index in string
            needle = f" {word}" if prefix else f" {word} "
            at = spaced.find(needle)
            while at >= 0:
                found.append(at)
                at = spaced.find(needle, at + len(word))
        else:
            at = string.find(word)
            while at >= 0:
                end = at + len(word)
                if (at == 0 or not string[at - 1].isalnum()) and (
                    prefix or end == len(string) or not string[end].isalnum()
                ):
                    found.append(at)
                at = string.find(word, end)
        self._positions[key] = found
        return found

    def spaced(self, norm: str) -> str:
        """``norm`` (one of ``norms``) punctuation blanked, between spaces (see _spaced)."""
        spaced = self._spaced[id(norm)]
        return spaced if spaced is not None else " " + _WORD_SPACES.sub(" ", norm) + " "

    def has(self, anchor: str) -> bool:
        """Is the word (``"pre*"``: a word starting with ``pre``) in the post?"""
        if not anchor.endswith("*"):
            return anchor in self.words
        prefix = anchor[:-1]  # the rule lists' prefixes are found by Ruleset._index
        return prefix in self.prefixes or any(f" {prefix}" in self.spaced(n) for n in self.norms)
