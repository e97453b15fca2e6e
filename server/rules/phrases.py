"""Phrases: the readable patterns of the lists, compiled to regular expressions, with the
anchor words that say when a phrase is worth running.

A phrase is written (docs/moderation.md, "Writing phrases"):
  words          matched whole; a space matches any spaces/punctuation inside one sentence
  (a|b c)        one of;  (a|b)?  optional
  word*          any ending
  don't, dois-je an apostrophe or hyphen inside a word is optional ("dont", "dois je")
  ~              up to three other words (but never a "gap breaker" word such as "for")
  {name}         one of the words of the list ``name`` in the file's [lists]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from .folding import fold_rule
from .verdict import RulesError

if TYPE_CHECKING:
    from .post import Post

SEP: Final = r"[^\w.!?\n]+"
_SEP_OPTIONAL: Final = r"[^\w.!?\n]*"  # before "'m", "'ve": "i'm", "i m", "im"
_PHRASE_TOKEN: Final = re.compile(r"\s+|\(|\)\??|\||~|[^\s()|~]+")
# Words too common to be useful anchors (when the phrase has a better one), by language:
# "die" is a poor anchor in German and a fine one in English.
COMMON: Final = {
    code: frozenset(words.split())
    for code, words in {
        "en": """i me my a an to the and or of in on at by as if is it its be am are was were
            been being you your we our they them their he she his her this that these those
            there here what who how why when where which for from with about into out up so
            but not no yes just very really more most some any all one can could would should
            will shall do does did have has had get got go going want need like t s m d ve ll
            re don""",
        "es": """yo me mi mis tu te se su sus nos el la los las lo le les un una unos unas y o de
            del al a en por para con sin sobre que como pero mas muy hay es esta este esto ya
            no si fue ser estar tengo tiene hace""",
        "fr": """je j me m moi toi te se s ce c cette qui que qu quoi comment pour avec dans sur
            pas plus tout tous mais comme est sont ai as a vous nous il elle ils elles on du
            des les au aux un une le la l de d en et ou y ne n mon ma mes""",
        "de": """ich mich mir du er sie es wir ihr das der die den dem des ein eine einen einem
            einer und oder mit fur von zu im in ist sind nicht auch wie was kann hat habe mein
            meine meinen meinem meiner so""",
        "pt": """eu me mim meu minha meus minhas voce ele ela isso esse essa tem tenho foi um uma
            uns umas com nao sim o os a as e de do da em no na para por que como mas""",
    }.items()
}
_COMMON_ANYWHERE: Final = frozenset().union(*COMMON.values())
# ... and the most common of them, in nearly every sentence of a post: the worst anchors
_FREQUENT: Final = frozenset(
    word
    for words in (
        "i me my a to the and of it is in you that this for",  # en
        "yo mi de la el en y que no se lo",  # es
        "je j le les et un une il",  # fr
        "ich mich mir der die das und zu nicht",  # de
        "eu o e em um nao",  # pt
    )
    for word in words.split()
)


@dataclass(slots=True)
class _Node:
    kind: Literal["word", "space", "gap", "group"]
    text: str = ""
    alternatives: list[list[_Node]] = field(default_factory=list)
    optional: bool = False


def _parse(tokens: list[str], pos: int, depth: int) -> tuple[list[list[_Node]], int, bool]:
    """Alternatives of a sequence up to the matching ``)`` (or the end at depth 0)."""
    alternatives: list[list[_Node]] = [[]]
    while pos < len(tokens):
        token = tokens[pos]
        pos += 1
        if token.isspace():
            alternatives[-1].append(_Node("space"))
        elif token == "(":
            inner, pos, optional = _parse(tokens, pos, depth + 1)
            alternatives[-1].append(_Node("group", alternatives=inner, optional=optional))
        elif token in (")", ")?"):
            if depth == 0:
                raise ValueError("a ')' without its '('")
            return alternatives, pos, token == ")?"
        elif token == "|":
            alternatives.append([])
        elif token == "~":
            alternatives[-1].append(_Node("gap"))
        else:
            alternatives[-1].append(_Node("word", text=token))
    if depth:
        raise ValueError("a '(' without its ')'")
    return alternatives, pos, False


def _word_regex(word: str) -> str:
    out = []
    for char in word:
        if char.isalnum():
            out.append(re.escape(char))
        elif char == "*":
            out.append(r"\w*")
        elif char == "'":
            out.append(r"(?:'|\s)?")
        else:
            out.append(r"[\W_]?")
    return "".join(out)


def _starts_with_apostrophe(node: _Node) -> bool:
    if node.kind == "word":
        return node.text.startswith("'")
    return node.kind == "group" and any(
        alt and _starts_with_apostrophe(alt[0]) for alt in node.alternatives
    )


def _sequence_regex(nodes: list[_Node], gap: str) -> str:
    out: list[str] = []
    skip_space = False
    for index, node in enumerate(nodes):
        if node.kind == "space":
            if not skip_space:
                upcoming = nodes[index + 1] if index + 1 < len(nodes) else None
                apostrophe = upcoming is not None and _starts_with_apostrophe(upcoming)
                out.append(_SEP_OPTIONAL if apostrophe else SEP)
            skip_space = False
            continue
        skip_space = False
        if node.kind == "word":
            out.append(_word_regex(node.text))
        elif node.kind == "gap":
            out.append(gap)
            skip_space = True  # the gap ends with its own separator
        else:
            body = "|".join(_sequence_regex(alt, gap) for alt in node.alternatives)
            if not node.optional:
                out.append(f"(?:{body})")
                continue
            following = index + 1 < len(nodes) and nodes[index + 1].kind == "space"
            preceding = bool(out) and out[-1] in (SEP, _SEP_OPTIONAL)
            if following:  # "(really)? want": the space goes with the optional word
                out.append(f"(?:(?:{body}){SEP})?")
                skip_space = True
            elif preceding:  # "die (now)?"
                out[-1] = f"(?:{out[-1]}(?:{body}))?"
            else:
                out.append(f"(?:{body})?")
    return "".join(out)


def _word_anchors(word: str) -> frozenset[str] | None:
    """What a post holds when it holds ``word``: the word itself; for "word*", a word that
    starts so; for "dois-je" or "don't" (hyphen, apostrophe optional), the joined form
    ("doisje") or the longest part as a word of its own ("dois")."""
    if word.isalnum():
        return frozenset({word})
    prefix = word.endswith("*")
    parts = re.split(r"[\W_]+", word[:-1] if prefix else word)
    if not all(parts) or not all(p.isalnum() for p in parts):
        return None
    if not prefix:
        return frozenset({"".join(parts), max(parts, key=len)})
    if len(parts) == 1:  # "counsel*"
        return frozenset({word}) if len(word) > 3 else None
    # "co-worker*": "coworkers", or "co" and "workers"
    *whole, last = parts
    other = f"{last}*" if len(last) >= 3 else max(whole, key=len)
    return frozenset({"".join(parts) + "*", other})


def _anchor_cost(anchors: frozenset[str], common: frozenset[str]) -> float:
    """How often the anchors can be expected in a post: common words are poor anchors, and
    a prefix ("therapist*") is slower to look up than a word."""
    cost = 0.0
    for anchor in anchors:
        word = anchor.rstrip("*")
        if word in common:
            cost += 1000 if word in _FREQUENT else 100
        else:
            cost += 10 if len(word) <= 2 else 1
        cost += 2 if anchor.endswith("*") else 0
    return cost


def _length(nodes: list[_Node]) -> int:
    """About the longest text a sequence can match: wildcard endings of up to 16 letters,
    separators of up to 4 characters (normalisation collapses longer runs), gaps of three
    words of up to 20 letters."""
    total = 0
    for node in nodes:
        if node.kind == "word":
            total += len(node.text) + (16 if "*" in node.text else 0) + 2
        elif node.kind == "space":
            total += 4
        elif node.kind == "gap":
            total += 3 * 24
        else:
            total += max(_length(alternative) for alternative in node.alternatives) + 4
    return total


def _cheapest(candidates: list[frozenset[str]], common: frozenset[str]) -> frozenset[str]:
    return min(candidates, key=lambda candidate: _anchor_cost(candidate, common))


def _requirements(
    nodes: list[_Node], common: frozenset[str], joined_start: bool = False
) -> list[frozenset[str]]:
    """Sets of words such that every text the phrase matches holds a word of each set
    (``"pre*"``: a word starting with ``pre``): one set per required word or group.

    A part written next to an apostrophe word ("i ('m|am)") may be joined to it in a post
    ("im", "iam"), so it is not a word of its own there and requires nothing; so is the
    first part of a sequence that starts so (``joined_start``)."""
    found: list[frozenset[str]] = []
    first = next((i for i, node in enumerate(nodes) if node.kind != "space"), -1)
    for index, node in enumerate(nodes):
        joined_end = (
            index + 2 < len(nodes)
            and nodes[index + 1].kind == "space"
            and _starts_with_apostrophe(nodes[index + 2])
        )
        joined = joined_end or (joined_start and index == first)
        if node.kind == "word" and not joined:
            anchors = _word_anchors(node.text)
            if anchors:
                found.append(anchors)
        elif node.kind == "group" and not node.optional and not joined_end:
            union: set[str] = set()
            for alternative in node.alternatives:
                inner = _requirements(alternative, common, joined_start=joined)
                if not inner:
                    break
                union.update(_cheapest(inner, common))
            else:
                found.append(frozenset(union))
    return found


@dataclass(frozen=True, slots=True)
class Phrase:
    """One phrase of a list, compiled."""

    source: str  # as written in the list, for moderators
    where: str  # "en.crisis.phrases"
    regex: re.Pattern[str]
    anchors: frozenset[str] | None  # the rarest of ``requires``: the phrase is indexed by it
    # the post must hold a word of each: (whole words, prefixes without their "*")
    requires: tuple[tuple[frozenset[str], frozenset[str]], ...] = ()
    reach: int = 1 << 30  # no match is longer than this
    # ``anchors`` split: whole words, and prefixes without their "*"
    anchor_words: frozenset[str] = frozenset()
    anchor_prefixes: frozenset[str] = frozenset()
    # of ``requires``, those a sentence is checked for before the regex runs there
    gates: tuple[tuple[frozenset[str], frozenset[str]], ...] = ()

    def possible(self, text: Post) -> bool:
        """Does the post hold a word of each of ``requires``?"""
        words, prefixes = text.words, text.prefixes
        for exact, starts in self.requires:
            if exact.isdisjoint(words) and starts.isdisjoint(prefixes):
                return False
        return True

    def finditer(self, text: Post) -> Iterator[re.Match[str]]:
        """Matches in each of ``text.norms``, in the sentences that hold a word of each of
        ``gates`` (a match never crosses a sentence end): the whole sentence, or, in a long
        one, windows around the anchors (a match holds one, within ``reach`` characters)."""
        if self.anchors is None:
            for norm in text.norms:
                yield from self.search(norm, 0, len(norm))
            return
        reach = self.reach
        for norm in text.norms:
            sentences = self._sentences(text, norm)
            ends = text.ends(norm)
            while sentences:
                bit = sentences & -sentences
                sentences ^= bit
                k = bit.bit_length() - 1
                first = ends[k - 1] + 1 if k else 0
                last = ends[k] if k < len(ends) else len(norm)
                if last - first <= 2 * reach:
                    yield from self.search(norm, first, last)
                else:
                    yield from self._windows(text, norm, first, last)

    def _sentences(self, text: Post, norm: str) -> int:
        """The sentences of ``norm`` that hold a word of each of ``gates`` (the regex checks
        the rest of ``requires``), as bits: sentence ``k`` is ``1 << k``."""
        ends = text.ends(norm)
        if not self.gates:
            return (1 << (len(ends) + 1)) - 1
        (exact, starts), *others = self.gates
        found = text.bits(norm, exact, starts)
        for exact, starts in others:  # checked sentence by sentence: few are left
            left = found
            while left:
                bit = left & -left
                left ^= bit
                k = bit.bit_length() - 1
                first = ends[k - 1] + 1 if k else 0
                last = ends[k] if k < len(ends) else len(norm)
                if not text.holds(norm, exact, starts, first, last):
                    found ^= bit
        return found

    def _windows(self, text: Post, norm: str, first: int, last: int) -> Iterator[re.Match[str]]:
        """Matches in the windows around the anchors inside ``norm[first:last]``, merged
        where they overlap, in order."""
        present = [*(self.anchor_words & text.words)]
        present += [f"{prefix}*" for prefix in self.anchor_prefixes & text.prefixes]
        positions = sorted(
            {at for anchor in present for at in text.positions(norm, anchor) if first <= at < last}
        )
        reach = self.reach
        window: tuple[int, int] | None = None
        for at in positions:
            start, end = max(first, at - reach), min(last, at + reach)
            if window is not None and start <= window[1]:
                window = (window[0], max(end, window[1]))
                continue
            if window is not None:
                yield from self.search(norm, *window)
            window = (start, end)
        if window is not None:
            yield from self.search(norm, *window)

    def search(self, string: str, start: int, end: int) -> Iterator[re.Match[str]]:
        # The regex has no leading "(?<!\w)": so it starts with a letter, and Python's regex
        # engine jumps from one such letter to the next instead of trying every position.
        # The word boundary is checked here.
        regex = self.regex
        match = regex.search(string, start, end)
        while match is not None:
            at = match.start()
            if at and (string[at - 1].isalnum() or string[at - 1] == "_"):
                match = regex.search(string, at + 1, end)
                continue
            yield match
            match = regex.search(string, max(match.end(), at + 1), end)


def gap_pattern(breakers: Iterable[str]) -> str:
    """The regex of ``~``: up to three words, none of them one of ``breakers``."""
    words = sorted({fold_rule(w) for w in breakers}, key=len, reverse=True)
    alternatives = "|".join(
        re.escape(w.rstrip("*")) + (r"\w*" if w.endswith("*") else "") for w in words
    )
    guard = f"(?!(?:{alternatives})(?!\\w))" if words else ""
    return f"(?:{guard}\\w+{SEP}){{0,3}}"


def compile_phrase(
    phrase: str,
    where: str,
    gap: str,
    source: str | None = None,
    common: frozenset[str] = frozenset(),
) -> Phrase:
    source = phrase if source is None else source
    folded = fold_rule(phrase)
    try:
        alternatives, _, _ = _parse(_PHRASE_TOKEN.findall(folded), 0, 0)
        body = "|".join(_sequence_regex(alt, gap) for alt in alternatives)
        regex = re.compile(rf"(?:{body})(?!\w)")  # "(?<!\w)" first: see Phrase.search
    except (ValueError, re.error) as exc:
        raise RulesError(f"{where}: {source!r}: {exc}") from None
    common = common or _COMMON_ANYWHERE
    if len(alternatives) == 1:
        requires = _requirements(alternatives[0], common)
    else:
        requires = _requirements([_Node("group", alternatives=alternatives)], common)
    requires.sort(key=lambda required: _anchor_cost(required, common))  # rarest first
    anchors = _cheapest(requires, common) if requires else None
    # the sets checked sentence by sentence: the rarest, and the next if it is rare too
    gates = requires[:1] + [r for r in requires[1:2] if _anchor_cost(r, common) < 100]
    split = tuple(
        (
            frozenset(a for a in required if not a.endswith("*")),
            frozenset(a[:-1] for a in required if a.endswith("*")),
        )
        for required in requires
    )
    reach = max(_length(alternative) for alternative in alternatives) + 16
    words = frozenset(a for a in anchors or () if not a.endswith("*"))
    prefixes = frozenset(a[:-1] for a in anchors or () if a.endswith("*"))
    gated = tuple(split[requires.index(gate)] for gate in gates)
    return Phrase(source, where, regex, anchors, split, reach, words, prefixes, gated)


def trie(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, shaped as a trie ("ps(?:ych(?:iatr|olog))"): Python's
    engine rejects a position after a letter or two instead of trying every word."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        if "" in node:
            return f"(?:{body})?"
        return body

    return emit(root) or "(?!)"
