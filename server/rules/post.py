"""A post, prepared once for every rule: its folded and normalised forms, its words, and,
filled in by the ruleset's anchor index, the phrases that can match it."""

from __future__ import annotations

import bisect
import re
from typing import TYPE_CHECKING, Final

from .folding import LEET, LEET_L, fold, lower, unleet

if TYPE_CHECKING:
    from .phrases import Phrase

_SENTENCE_ENDS: Final = ".!?\n"
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
        "_bits",
        "_bounds",
        "_positions",
        "_spaced",
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
        self._bits: dict[tuple[int, str] | tuple[int, frozenset[str], frozenset[str]], int] = {}
        self._positions: dict[tuple[int, str], list[int]] = {}
        #: by language and list ("en", "crisis"): the phrases that can match, in list order
        self.live: dict[tuple[str, str], list[Phrase]] = {}

    def ends(self, string: str) -> list[int]:
        """Where the sentences of ``string`` (one of ``norms``) end: sentence ``k`` runs from
        ``ends[k - 1] + 1`` (0 for the first) to ``ends[k]`` (the length for the last)."""
        key = id(string)
        ends = self._bounds.get(key)
        if ends is None:
            ends = []
            for char in _SENTENCE_ENDS:  # str.find is faster than a regex here
                at = string.find(char)
                while at >= 0:
                    ends.append(at)
                    at = string.find(char, at + 1)
            ends.sort()
            self._bounds[key] = ends
        return ends

    def sentence(self, string: str, position: int) -> tuple[int, int]:
        """The sentence of ``string`` (one of ``norms``) around ``position``."""
        ends = self.ends(string)
        index = bisect.bisect_left(ends, position)
        start = ends[index - 1] + 1 if index else 0
        end = ends[index] if index < len(ends) else len(string)
        return start, end

    def bits(self, string: str, words: frozenset[str], prefixes: frozenset[str]) -> int:
        """The sentences of ``string`` (one of ``norms``) that hold one of ``words`` (whole
        words) or a word starting with one of ``prefixes``, as bits: sentence ``k`` is
        ``1 << k``. Phrases share many of these sets ("myself", "life", "i"), so each is
        worked out once per post."""
        key = (id(string), words, prefixes)
        found = self._bits.get(key)
        if found is None:
            found = 0
            for word in words & self.words:
                found |= self._word_bits(string, word)
            for prefix in prefixes & self.prefixes:
                found |= self._word_bits(string, f"{prefix}*")
            self._bits[key] = found
        return found

    def _word_bits(self, string: str, anchor: str) -> int:
        key = (id(string), anchor)
        found = self._bits.get(key)
        if found is None:
            ends, found = self.ends(string), 0
            for at in self.positions(string, anchor):
                found |= 1 << bisect.bisect_left(ends, at)
            self._bits[key] = found
        return found

    def holds(
        self, string: str, words: frozenset[str], prefixes: frozenset[str], first: int, last: int
    ) -> bool:
        """Does ``string[first:last]`` (a sentence of one of ``norms``) hold one of ``words``
        or a word starting with one of ``prefixes``?"""
        spaced = self._spaced[id(string)]
        if spaced is None:
            return any(
                self._word_bits(string, anchor)
                & (1 << bisect.bisect_left(self.ends(string), first))
                for anchor in (*(words & self.words), *(f"{p}*" for p in prefixes & self.prefixes))
            )
        # " word " at spaced[p] is the word at string[p]; it ends by last if p + len <= last
        find, end = spaced.find, last + 2
        for word in words & self.words:
            if find(f" {word} ", first, end) >= 0:
                return True
        return any(find(f" {prefix}", first, end) >= 0 for prefix in prefixes & self.prefixes)

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

    def word_line(self) -> str:
        """The words of the post, each between spaces, where a word starting with ``pre`` is
        found as ``" pre"``: :meth:`spaced`, or, for a long post, each distinct word once."""
        if len(self.norm) < 400 and len(self.norms) == 1:  # short: the post itself will do
            return self.spaced(self.norm)
        if all(self._spaced[id(norm)] is not None for norm in self.norms):
            return f" {' '.join(self.words)} "
        words = {word for norm in self.norms for word in self.spaced(norm).split()}
        return f" {' '.join(words)} "

    def has(self, anchor: str) -> bool:
        """Is the word (``"pre*"``: a word starting with ``pre``) in the post?"""
        if not anchor.endswith("*"):
            return anchor in self.words
        prefix = anchor[:-1]  # the rule lists' prefixes are found by Ruleset._index
        return prefix in self.prefixes or any(f" {prefix}" in self.spaced(n) for n in self.norms)
