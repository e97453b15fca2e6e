"""Community rules: decides whether a comment is published, held for a moderator, or refused.

Pure: no I/O beyond reading the rule lists in ``server/rules/*.toml`` once, at import. The
lists are the rules; this module only normalises text and applies them. See
``docs/moderation.md`` for the classes, the severity order and the list syntax.

    >>> judge("I refer clients to DBT groups").action
    'publish'
    >>> v = judge("slides at bit.ly/x")
    >>> (v.action, v.reason)
    ('hold', 'link')

Every rule sees normalised text (:func:`normalise`): NFKC, case-folded, accents dropped,
zero-width and bidi controls removed, Cyrillic/Greek look-alikes and full-width letters
folded to Latin, leetspeak digits folded inside words, letters spelled out one by one
("h t t p s", "S.U.I.C.I.D.E") joined, repeated separators collapsed.

Speed (docs/moderation.md, "Speed"): tens of microseconds for a typical comment, under a
millisecond for 5,000 characters. Python's regular expressions cost tens of nanoseconds per
character for a pattern that can start anywhere, so no phrase runs over a whole post: each
phrase has anchor words and runs only near them, inside their sentence; links and contact
details are searched only where they can start (a dot before a TLD, an "@", a run of digits).
"""

from __future__ import annotations

import bisect
import functools
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast

__all__ = [
    "REASONS",
    "RULES_DIR",
    "Hit",
    "RulesError",
    "Ruleset",
    "Verdict",
    "judge",
    "load",
    "normalise",
]

Action = Literal["publish", "hold", "refuse"]
Reason = Literal["banned", "crisis", "link", "contact", "personal", "suspect"]

#: Most severe first: when several rules match, the first of these names the verdict.
REASONS: Final[tuple[Reason, ...]] = ("banned", "crisis", "link", "contact", "personal", "suspect")

RULES_DIR: Final = Path(__file__).resolve().parent / "rules"


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


# --- Normalisation -------------------------------------------------------------------------------

# Removed outright: zero-width characters, bidi controls, soft hyphen, joiners, variation
# selectors, tag characters, invisible fillers.
_INVISIBLE_RANGES: Final = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE007F),
    (0xE0100, 0xE01EF),
)
# Combining marks left after NFKD decomposition: accents, and "Zalgo" stacks.
_MARKS: Final = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+"
)
# Letters that look like Latin ones (Cyrillic, Greek, small capitals, regional indicators),
# and punctuation variants, folded to their ASCII form.
_LOOKALIKES: Final = {
    # Cyrillic
    "а": "a", "в": "b", "г": "r", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "п": "n",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ь": "b", "ѕ": "s", "і": "i", "ј": "j",
    "ԁ": "d", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ү": "y", "ɡ": "g",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ԁ": "D", "Һ": "H", "Ӏ": "I",
    "Ь": "b", "Ԛ": "Q", "Ԝ": "W", "Ү": "Y",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "c",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Latin look-alikes: small capitals and friends
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ғ": "f", "ɢ": "g", "ʜ": "h", "ɪ": "i",
    "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s",
    "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z", "ı": "i", "ɑ": "a", "ǀ": "l",
    "օ": "o", "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe",
    "Œ": "OE", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "þ": "th",
    # punctuation
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "´": "'", "ʼ": "'",
    "‹": '"', "›": '"', "“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"', "″": '"',
    "〝": '"', "〞": '"', "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-",
    "。": ".", "｡": ".", "∙": ".", "⸱": ".", "·": ".", "‧": ".", "・": ".", "∕": "/", "⁄": "/",
    "⧸": "/", "\u2028": "\n", "\u2029": "\n", "\u0085": "\n",
}  # fmt: skip
_LOOKALIKES.update({chr(0x1F1E6 + i): chr(ord("a") + i) for i in range(26)})  # 🇦 .. 🇿
# "&#8217;" for "’", but not the accents U+0300..U+036F (768..879): those are only dropped
_CHAR_REFERENCE: Final = re.compile(rb"&#(?!(?:7[6-9]\d|8[0-7]\d);)(\d+);")
_REPEATED: Final = re.compile(r"([.,;:!?\-_~*=#+|])\1+")
_SPACES: Final = re.compile(r"  +")
# Leetspeak: in a token that mixes letters with 0 1 3 4 5 7 or @, those are letters.
_LEET_HINT: Final = re.compile(r"[013457@](?:(?<=[a-z].)|(?=[a-z]))")
_LEET: Final = str.maketrans("013457@", "oieasta")
_LEET_L: Final = str.maketrans("013457@", "oleasta")  # "ki11": 1 is also an l
_LEET_DIGITS: Final = str.maketrans("013457", "oieast")
_EMAIL_TAIL: Final = re.compile(r"[\w-]*(?:\.[\w-]+)+")
# Letters spelled out one by one: "h t t p s", "S.U.I.C.I.D.E", "w w w . x . c o m". One case
# per run, so that "I w a n t" is "I want", not "Iwant".
_SPELLED: Final = re.compile(
    r"(?<![\w'])(?:[a-z](?:[ ._\-*|/+~]{1,3}[a-z](?![\w'])){2,}"
    r"|[A-Z](?:[ ._\-*|/+~]{1,3}[A-Z](?![\w'])){2,})"
)
_SPELLED_HINT: Final = re.compile(r"[ ._\-*|/+~][a-zA-Z][ ._\-*|/+~]{1,3}[a-zA-Z](?![\w'])")
_SPELLED_SEP: Final = re.compile(r"[ ._\-*|/+~]{1,3}")
_SENTENCE_END: Final = re.compile(r"[.!?\n]")
# ASCII punctuation to spaces, for the set of words of a post (bytes.translate is fast).
_PUNCTUATION: Final = bytes.maketrans(
    bytes(c for c in range(128) if not (chr(c).isalnum() or c == ord("_"))),
    b" " * sum(1 for c in range(128) if not (chr(c).isalnum() or c == ord("_"))),
)
_WORD: Final = re.compile(r"\w+")
_WORD_SPACES: Final = re.compile(r"[\W_]+")


@functools.lru_cache(maxsize=4096)
def _replacement(char: str) -> str:
    """What a character that is neither ASCII nor an accent becomes."""
    if char in _LOOKALIKES:
        return _LOOKALIKES[char]
    code = ord(char)
    if any(lo <= code <= hi for lo, hi in _INVISIBLE_RANGES):
        return ""
    category = unicodedata.category(char)
    if category[0] in "LNM" or category == "Sc":
        return char  # a letter of another script, a currency sign: kept
    return "" if category == "Cf" else " "  # emoji, symbols, other punctuation: a space


def _fold(text: str) -> str:
    """Everything but case-folding, leetspeak and spelled-out letters: compatibility forms
    (full-width, ligatures), accents, invisible characters, look-alikes, punctuation
    variants, repeated separators, blanks."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        # the characters that are not ASCII, listed cheaply: "&#8217;" for "’"
        codes = {int(c) for c in _CHAR_REFERENCE.findall(text.encode("ascii", "xmlcharrefreplace"))}
        kept = False
        for code in codes:
            char = chr(code)
            replacement = _replacement(char)
            text = text.replace(char, replacement)
            kept = kept or replacement == char
        if kept:  # letters of other scripts: keep them
            text = unicodedata.normalize("NFKC", _MARKS.sub("", text))
        else:  # only accents are left: drop them
            text = text.encode("ascii", "ignore").decode("ascii")
    text = _REPEATED.sub(r"\1", text)
    for blank in "\t\x0b\x0c":
        if blank in text:
            text = text.replace(blank, " ")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "  " in text:
        text = _SPACES.sub(" ", text)
    if "\n" in text:
        text = "\n".join(line.strip() for line in text.split("\n") if line.strip())
    return text.strip()


def _join_spelled(match: re.Match[str]) -> str:
    run = match.group()
    seps = _SPELLED_SEP.findall(run)
    usual = max(set(seps), key=seps.count)
    # the usual separator is spacing; a different one with a dot in it is a real dot
    return _SPELLED_SEP.sub(lambda m: "." if m.group() != usual and "." in m.group() else "", run)


def _lower(cased: str, low: str | None = None) -> str:
    """Spelled-out letters joined, then case-folded. ``low``: ``cased.lower()``, if known."""
    if _SPELLED_HINT.search(cased) or _SPELLED.match(cased):
        cased = _SPELLED.sub(_join_spelled, cased)
    elif low is not None and low.isascii():
        return low
    if cased.isascii():
        return cased.lower()
    text = cased.casefold()
    if not text.isascii():  # casefold can make new accented letters
        text = _MARKS.sub("", unicodedata.normalize("NFKD", text))
    return text


def _is_token_char(char: str) -> bool:
    return char.isalnum() or char == "@"


def _unleet(lower: str, table: dict[int, int]) -> str:
    """Leetspeak folded with ``table`` in the tokens that mix letters with its digits."""
    pieces: list[str] = []
    done = 0
    for hint in _LEET_HINT.finditer(lower):
        if hint.start() < done:
            continue
        start, end = hint.start(), hint.end()
        while start > done and _is_token_char(lower[start - 1]):
            start -= 1
        while end < len(lower) and _is_token_char(lower[end]):
            end += 1
        token = lower[start:end]
        if "@" in token and _EMAIL_TAIL.match(lower, end):
            folded = token.translate(_LEET_DIGITS)  # an e-mail address: keep its "@"
        else:
            folded = token.translate(table)
        pieces += (lower[done:start], folded)
        done = end
    if not pieces:
        return lower
    pieces.append(lower[done:])
    return "".join(pieces)


def normalise(text: str) -> str:
    """The text every rule is matched against (see the module docstring)."""
    return _unleet(_lower(_fold(text)), _LEET)


def _spaced(text: str) -> str | None:
    """``text`` with ASCII punctuation blanked, between two spaces: a word is then found,
    whole, by ``find(" word ")``, at the same index as in ``text``. ``None`` unless ASCII."""
    if not text.isascii():
        return None
    return f" {text.encode('ascii').translate(_PUNCTUATION).decode('ascii')} "


class _Text:
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
        self.cased = _fold(text)
        #: ``cased`` in lower case, character for character (links, e-mails, phones)
        self.low = self.cased.lower()
        if len(self.low) != len(self.cased):  # cannot happen after _fold; keep indices safe
            self.cased = self.low
        lower = _lower(self.cased, self.low)
        #: :func:`normalise`, what phrases are matched against ...
        self.norm = _unleet(lower, _LEET)
        #: ... and, when a "1" inside a word could also be an "l", that reading too
        self.norms: tuple[str, ...] = (self.norm,)
        if self.norm is not lower and "1" in lower and self.norm.count("i") > lower.count("i"):
            other = _unleet(lower, _LEET_L)
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
        self.live: dict[tuple[str, str], list[_Phrase]] = {}

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


def _trie(words: Iterable[str]) -> str:
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


def _find_all(string: str, needle: str) -> Iterator[int]:
    at = string.find(needle)
    while at >= 0:
        yield at
        at = string.find(needle, at + 1)


# --- Phrases -------------------------------------------------------------------------------------
#
# A phrase is a readable pattern (docs/moderation.md, "Writing phrases"):
#   words          matched whole; a space matches any spaces/punctuation inside one sentence
#   (a|b c)        one of;  (a|b)?  optional
#   word*          any ending
#   don't, dois-je an apostrophe or hyphen inside a word is optional ("dont", "dois je")
#   ~              up to three other words (but never a "gap breaker" word such as "for")
#   {name}         one of the words of the list ``name`` in the file's [lists]

_SEP: Final = r"[^\w.!?\n]+"
_SEP_OPTIONAL: Final = r"[^\w.!?\n]*"  # before "'m", "'ve": "i'm", "i m", "im"
_PHRASE_TOKEN: Final = re.compile(r"\s+|\(|\)\??|\||~|[^\s()|~]+")
# Words too common to be useful anchors (when the phrase has a better one), by language:
# "die" is a poor anchor in German and a fine one in English.
_COMMON: Final = {
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
_COMMON_ANYWHERE: Final = frozenset().union(*_COMMON.values())


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
                out.append(_SEP_OPTIONAL if apostrophe else _SEP)
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
            preceding = bool(out) and out[-1] in (_SEP, _SEP_OPTIONAL)
            if following:  # "(really)? want": the space goes with the optional word
                out.append(f"(?:(?:{body}){_SEP})?")
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
    if word.endswith("*"):
        stem = word[:-1]
        return frozenset({word}) if stem.isalnum() and len(stem) >= 3 else None
    parts = re.split(r"[\W_]+", word)
    if not all(parts) or not all(p.isalnum() for p in parts):
        return None
    return frozenset({"".join(parts), max(parts, key=len)})


def _anchor_cost(anchors: frozenset[str], common: frozenset[str]) -> float:
    """How often the anchors can be expected in a post: common words are poor anchors, and
    a prefix ("therapist*") is slower to look up than a word."""
    cost = 0.0
    for anchor in anchors:
        word = anchor.rstrip("*")
        cost += 100 if word in common else 10 if len(word) <= 2 else 1
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


def _requirements(nodes: list[_Node], common: frozenset[str]) -> list[frozenset[str]]:
    """Sets of words such that every text the phrase matches holds a word of each set
    (``"pre*"``: a word starting with ``pre``): one set per required word or group."""
    found: list[frozenset[str]] = []
    for node in nodes:
        if node.kind == "word":
            anchors = _word_anchors(node.text)
            if anchors:
                found.append(anchors)
        elif node.kind == "group" and not node.optional:
            union: set[str] = set()
            for alternative in node.alternatives:
                inner = _requirements(alternative, common)
                if not inner:
                    break
                union.update(_cheapest(inner, common))
            else:
                found.append(frozenset(union))
    return found


def _fold_rule(text: str) -> str:
    return _fold(text).casefold()


@dataclass(frozen=True, slots=True)
class _Phrase:
    source: str  # as written in the list, for moderators
    where: str  # "en.crisis.phrases"
    regex: re.Pattern[str]
    anchors: frozenset[str] | None  # the rarest of ``requires``: the phrase is indexed by it
    # the post must hold a word of each: (whole words, prefixes without their "*")
    requires: tuple[tuple[frozenset[str], frozenset[str]], ...] = ()
    reach: int = 1 << 30  # no match is longer than this

    def possible(self, text: _Text) -> bool:
        """Does the post hold a word of each of ``requires``?"""
        words, prefixes = text.words, text.prefixes
        for exact, starts in self.requires:
            if exact.isdisjoint(words) and starts.isdisjoint(prefixes):
                return False
        return True

    def finditer(self, text: _Text) -> Iterator[re.Match[str]]:
        """Matches in each of ``text.norms``, near the anchors (a match holds one of them,
        within ``reach`` characters), inside their sentence."""
        if self.anchors is None:
            for norm in text.norms:
                yield from self.search(norm, 0, len(norm))
            return
        present = text.anchors.get(id(self))
        if not present:
            return
        reach = self.reach
        for norm in text.norms:
            windows: list[tuple[int, int]] = []
            for at in sorted({at for a in present for at in text.positions(norm, a)}):
                first, last = text.sentence(norm, at)
                start, end = max(first, at - reach), min(last, at + reach)
                if windows and start <= windows[-1][1]:
                    windows[-1] = (windows[-1][0], max(end, windows[-1][1]))
                else:
                    windows.append((start, end))
            for start, end in windows:
                yield from self.search(norm, start, end)

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


def _gap(breakers: Iterable[str]) -> str:
    words = sorted({_fold_rule(w) for w in breakers}, key=len, reverse=True)
    alternatives = "|".join(
        re.escape(w.rstrip("*")) + (r"\w*" if w.endswith("*") else "") for w in words
    )
    guard = f"(?!(?:{alternatives})(?!\\w))" if words else ""
    return f"(?:{guard}\\w+{_SEP}){{0,3}}"


def _compile_phrase(
    phrase: str,
    where: str,
    gap: str,
    source: str | None = None,
    common: frozenset[str] = frozenset(),
) -> _Phrase:
    source = phrase if source is None else source
    folded = _fold_rule(phrase)
    try:
        alternatives, _, _ = _parse(_PHRASE_TOKEN.findall(folded), 0, 0)
        body = "|".join(_sequence_regex(alt, gap) for alt in alternatives)
        regex = re.compile(rf"(?:{body})(?!\w)")  # "(?<!\w)" first: see _Phrase.search
    except (ValueError, re.error) as exc:
        raise RulesError(f"{where}: {source!r}: {exc}") from None
    common = common or _COMMON_ANYWHERE
    if len(alternatives) == 1:
        requires = _requirements(alternatives[0], common)
    else:
        requires = _requirements([_Node("group", alternatives=alternatives)], common)
    anchors = _cheapest(requires, common) if requires else None
    split = tuple(
        (
            frozenset(a for a in required if not a.endswith("*")),
            frozenset(a[:-1] for a in required if a.endswith("*")),
        )
        for required in requires
    )
    reach = max(_length(alternative) for alternative in alternatives) + 16
    return _Phrase(source, where, regex, anchors, split, reach)


# --- Loading the lists ---------------------------------------------------------------------------


def _strings(table: Mapping[str, Any], key: str, where: str, required: bool = True) -> list[str]:
    value = table.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RulesError(f"{where}.{key}: expected a list of strings")
    return cast(list[str], value)


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise RulesError(f"{where}: missing the [{key}] table")
    return value


def _integer(table: Mapping[str, Any], key: str, where: str) -> int:
    value = table.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RulesError(f"{where}.{key}: expected a whole number")
    return value


def _alternation(words: Iterable[str]) -> str:
    ordered = sorted({w for w in words if w}, key=len, reverse=True)
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in ordered) or "(?!)"


@dataclass(frozen=True, slots=True)
class _Language:
    code: str
    crisis: tuple[_Phrase, ...]
    crisis_exceptions: tuple[_Phrase, ...]
    speaker: re.Pattern[str]  # "a client said", anywhere (before an opening quote)
    speaker_end: re.Pattern[str]  # ... right before the phrase (or the colon)
    mention_end: re.Pattern[str]  # "the phrase", right before the phrase
    referral: tuple[_Phrase, ...]
    personal: tuple[_Phrase, ...]
    problem: tuple[_Phrase, ...]
    ask: tuple[_Phrase, ...]
    professional: tuple[_Phrase, ...]
    dot_words: tuple[str, ...]
    dot_word_tlds: tuple[str, ...]
    at_words: tuple[str, ...]
    at_ambiguous: tuple[str, ...]


_LIST_NAME: Final = re.compile(r"\{(\w+)\}")
_OPENING_QUOTE: Final = re.compile(r"(?:^|(?<=[\s(]))'(?=\w)")
_CLOSING_QUOTE: Final = re.compile(r"(?<=[\w.!?,])'(?!\w)")
# The phrase lists found through the anchor index (Ruleset._index).
_INDEXED: Final = ("crisis", "crisis_exceptions", "referral", "personal", "problem", "ask")


def _load_language(code: str, data: Mapping[str, Any]) -> _Language:
    words = _table(data, "words", code)
    named = data.get("lists", {})
    if not isinstance(named, dict):
        raise RulesError(f"{code}: [lists] must be a table of lists")
    lists = {name: _strings(named, name, f"{code}.lists") for name in named}

    def expand(phrase: str, where: str) -> str:
        def one(match: re.Match[str]) -> str:
            if match.group(1) not in lists:
                raise RulesError(f"{where}: {phrase!r}: no list named {match.group()} in [lists]")
            return "(" + "|".join(lists[match.group(1)]) + ")"

        return _LIST_NAME.sub(one, phrase)

    def phrases(
        table: str, key: str, gap: str | None = None, required: bool = True
    ) -> tuple[_Phrase, ...]:
        section = _table(data, table, code)
        where = f"{code}.{table}.{key}"
        if gap is None:
            gap = _gap(_strings(section, "gap_breakers", f"{code}.{table}", required=False))
        return tuple(
            _compile_phrase(
                expand(p, where), where, gap, source=p, common=_COMMON.get(code, frozenset())
            )
            for p in _strings(section, key, f"{code}.{table}", required)
        )

    def folded(key: str, required: bool = True) -> tuple[str, ...]:
        return tuple(_fold_rule(w) for w in _strings(words, key, f"{code}.words", required))

    def cues(key: str) -> str:
        found = [rf"(?<!\w){p.regex.pattern}" for p in phrases("crisis", key, _gap(()), False)]
        return "|".join(found) or r"(?!)"

    speaker, mention = cues("reported_speech"), cues("mentions")
    # the cue, then at most two more words ("tells me", "said that"), then the phrase
    near = rf"(?:{_SEP}\w+){{0,2}}[^\w.!?\n]*$"
    return _Language(
        code=code,
        crisis=phrases("crisis", "phrases"),
        crisis_exceptions=phrases("crisis", "not_when", required=False),
        speaker=re.compile(speaker),
        speaker_end=re.compile(rf"(?:{speaker}){near}"),
        mention_end=re.compile(rf"(?:{mention}){near}"),
        referral=phrases("personal", "referral"),
        personal=phrases("personal", "phrases"),
        problem=phrases("personal", "problem"),
        ask=phrases("personal", "ask"),
        professional=phrases("personal", "professional", required=False),
        dot_words=folded("dot"),
        dot_word_tlds=folded("dot_tlds", required=False),
        at_words=folded("at"),
        at_ambiguous=folded("at_ambiguous", required=False),
    )


# --- Links and contact details -------------------------------------------------------------------

_LABEL: Final = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
_LABEL_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
_PHONE_RUN: Final = re.compile(r"\d[\d ().\-/]{6,}\d")
_DIGITS: Final = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class _Structural:
    """Links, e-mail addresses, phone numbers: built from common.toml and every language's
    spelled-out "dot"/"at" words (an obfuscation is one in any language)."""

    strong: frozenset[str]
    weak: frozenset[str]
    shorteners: frozenset[str]
    dot_words: tuple[str, ...]
    at_words: tuple[str, ...]
    at_ambiguous: tuple[str, ...]
    scheme: re.Pattern[str]
    www: re.Pattern[str]
    tld: re.Pattern[str]
    spelled_tail: re.Pattern[str]  # at a spelled-out dot: the dot and a TLD
    email_domain: re.Pattern[str]  # after an "@"
    spaced_email_domain: re.Pattern[str]  # after " @ ": "ana @ gmail . com"
    spelled_at: re.Pattern[str]  # at a spelled-out "at": the "at" and a domain
    handle: re.Pattern[str]
    phone: re.Pattern[str]
    phone_min: int
    phone_min_international: int
    phone_max: int
    not_phone: re.Pattern[str]
    date: re.Pattern[str]
    year: re.Pattern[str]
    currency: re.Pattern[str]


def _load_structural(common: Mapping[str, Any], languages: Sequence[_Language]) -> _Structural:
    link = _table(common, "link", "common")
    contact = _table(common, "contact", "common")

    def folded(table: Mapping[str, Any], key: str) -> list[str]:
        return [_fold_rule(w) for w in _strings(table, key, f"common.{key}")]

    strong, weak = folded(link, "strong_tlds"), folded(link, "weak_tlds")
    platforms = folded(contact, "handle_platforms")
    dot_words = tuple(sorted({w for lang in languages for w in lang.dot_words}))
    at_words = tuple(sorted({w for lang in languages for w in lang.at_words}))
    dots = _alternation(dot_words)
    ats = _alternation(at_words)
    ats_ambiguous = _alternation(w for lang in languages for w in lang.at_ambiguous)
    any_tld = _alternation(strong + weak)
    strong_tld = _alternation(strong)
    label = _LABEL
    # "example (dot) com", "example dot com", "example . com", "example .com"
    spelled_dot = rf"(?:\s*[\[({{<]\s*(?:\.|{dots})\s*[\])}}>]\s*|\s+(?:{dots})\s+|\s+\.\s*)"
    # the end of a spelled-out domain: a strong TLD after any spelled dot, or a TLD that a
    # language allows after its own dot word ("punkt de", where "punto de" is Spanish)
    # at the spelled-out dot of a domain, the dot and the TLD: a strong TLD after any spelled
    # dot, or a TLD that a language allows after its own dot word ("punkt de", where "punto
    # de" is Spanish)
    tails = [rf"(?:[\[({{<]\s*(?:\.|{dots})\s*[\])}}>]|(?:{dots})(?=\s)|\.)\s*(?:{strong_tld})"] + [
        rf"(?:{_alternation(lang.dot_words)})\s+(?:{_alternation(lang.dot_word_tlds)})"
        for lang in languages
        if lang.dot_word_tlds
    ]
    return _Structural(
        strong=frozenset(strong),
        weak=frozenset(weak),
        shorteners=frozenset(folded(link, "shorteners")),
        dot_words=dot_words,
        at_words=at_words,
        at_ambiguous=tuple(sorted({w for lang in languages for w in lang.at_ambiguous})),
        scheme=re.compile(r"(?<![a-z0-9])h(?:tt|xx)ps?(?:\s?:\s?/\s?/?|\s?/\s?/)"),
        www=re.compile(
            rf"(?<![a-z0-9])www\d?(?:\s?\.|\s*[\[({{]\s*(?:\.|{dots})\s*[\])}}]|\s+(?:{dots}))"
            rf"\s*{label}"
        ),
        tld=re.compile(rf"\.(?P<tld>{any_tld})(?![\w-])(?P<path>/)?"),
        spelled_tail=re.compile(rf"(?:{'|'.join(tails)})(?![\w-])"),
        email_domain=re.compile(rf"(?:{label}\.)+[a-z]{{2,}}(?![\w-])"),
        spaced_email_domain=re.compile(rf"\s?(?:{label}(?:\.|\s\.\s))+(?:{any_tld})(?![\w-])"),
        spelled_at=re.compile(
            # a bracketed "at" or a spelled-out one ("arroba"), then a domain with any dots; a
            # bare word that is also an ordinary one ("at") only with a spelled-out dot after
            rf"(?:[\[({{<]\s*(?:@|{ats}|{ats_ambiguous})\s*[\])}}>]|(?:{ats})(?=\s))\s*"
            rf"(?:{label}(?:\.|{spelled_dot}))+(?:{any_tld})(?![\w-])"
            rf"|(?:{ats_ambiguous})\s+{label}(?:{spelled_dot}{label})*?{spelled_dot}"
            rf"(?:{strong_tld})(?![\w-])(?!\s*(?:/|slash|barra|schragstrich)\b)"
        ),
        handle=re.compile(
            rf"(?<!\w)(?:{_alternation(platforms)})\W{{0,3}}(?:\w+\W{{1,3}}){{0,2}}"
            rf"@[a-z0-9_][\w.]{{2,}}|(?<![\w@])@[a-z0-9_][\w.]{{2,}}\s+(?:on|en|sur|auf|no|em)"
            rf"\s+(?:{_alternation(platforms)})(?!\w)"
        ),
        phone=re.compile(r"(?<![\w+/.,:#@-])(?:\+|00)?\s?\(?\d(?:[ ().\-/]{0,3}\d)+"),
        phone_min=_integer(contact, "phone_min_digits", "common.contact"),
        phone_min_international=_integer(
            contact, "phone_min_digits_international", "common.contact"
        ),
        phone_max=_integer(contact, "phone_max_digits", "common.contact"),
        not_phone=re.compile(rf"(?<!\w)(?:{_alternation(folded(contact, 'not_phone_after'))})\W*$"),
        # a day, a month and a year: "12.03.2024", "1/4/25" (not "07.81.23", a phone number)
        date=re.compile(
            r"(?<!\d)(?:0?[1-9]|[12]\d|3[01])[./-](?:0?[1-9]|1[0-2])[./-](?:19|20)?\d\d(?![\d.])"
        ),
        year=re.compile(r"(?:19|20)\d\d"),
        currency=re.compile(rf"\s?(?:{_alternation(_strings(contact, 'currency', 'common'))})"),
    )


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    for start, end in spans:
        text = f"{text[:start]}{' ' * (end - start)}{text[end:]}"
    return text


_LOCAL_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._%+-")


def _local_part(text: str, end: int) -> int:
    """Where the local part of an e-mail address ending at ``end`` starts (``end``: none)."""
    start = end
    while start > 0 and text[start - 1] in _LOCAL_CHARS:
        start -= 1
    while start < end and not text[start].isalnum():
        start += 1
    return start


def _word_positions(text: str, word: str) -> Iterator[int]:
    """Where ``word`` stands as a whole word in ``text``."""
    for at in _find_all(text, word):
        end = at + len(word)
        if (at == 0 or not text[at - 1].isalnum()) and (
            end == len(text) or not text[end].isalnum()
        ):
            yield at


# --- Event word lists ----------------------------------------------------------------------------


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
        body = _SEP.join(re.escape(w) for w in words) + (r"\w*" if prefix else "")
        longest = max(words, key=len)
        anchor = longest + "*" if prefix and longest == words[-1] else longest
        if not anchor.rstrip("*").isalnum():
            anchor = ""
        compiled.append(_Listed(entry, None, anchor, re.compile(rf"(?<!\w){body}(?!\w)")))
    return tuple(compiled)


# --- The ruleset ---------------------------------------------------------------------------------


class Ruleset:
    """The rule lists of one directory, compiled. ``judge`` is the entry point."""

    def __init__(self, common: Mapping[str, Any], languages: Mapping[str, Mapping[str, Any]]):
        if not languages:
            raise RulesError("no language rule files")
        self.languages: dict[str, _Language] = {
            code: _load_language(code, data) for code, data in sorted(languages.items())
        }
        self._all = tuple(self.languages.values())
        self._structural = _load_structural(common, self._all)
        # anchor word -> the phrases it anchors (by id), for every list of every language
        self._by_word: dict[str, list[int]] = {}
        self._by_prefix: dict[str, list[int]] = {}
        self._where: dict[int, tuple[tuple[str, str], int, _Phrase]] = {}
        self._unanchored: dict[tuple[str, str], list[tuple[int, _Phrase]]] = {}
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
        self._prefix_regex = re.compile(f" ({_trie(prefixes)})")
        self._prefix_of = {p: [q for q in prefixes if p.startswith(q)] for p in prefixes}
        personal = _table(common, "personal", "common")
        self._window = _integer(personal, "window", "common.personal")

    @classmethod
    def load(cls, directory: Path | str = RULES_DIR) -> Ruleset:
        """Reads ``common.toml`` and every other ``*.toml`` (one per language, named by its
        code) in ``directory``."""
        directory = Path(directory)
        common: Mapping[str, Any] = {}
        languages: dict[str, Mapping[str, Any]] = {}
        for path in sorted(directory.glob("*.toml")):
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise RulesError(f"{path.name}: {exc}") from None
            if path.stem == "common":
                common = data
            else:
                languages[path.stem] = data
        return cls(common, languages)

    def _active(self, language: str | None) -> tuple[_Language, ...]:
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
        prepared = _Text(text)
        self._index(prepared)
        languages = self._active(language)
        link, contact = self._links_and_contacts(prepared)
        found = (
            self._listed("banned", banned, prepared),
            self._crisis(prepared, languages),
            link,
            contact,
            self._personal(prepared, languages),
            self._listed("suspect", suspect, prepared),
        )
        hits = tuple(hit for hit in found if hit is not None)
        if not hits:
            return PUBLISH
        first = hits[0]
        action: Action = "refuse" if first.reason == "banned" else "hold"
        return Verdict(action, first.reason, first.rule, first.excerpt, hits)

    def _index(self, text: _Text) -> None:
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
        ordered: dict[tuple[str, str], list[tuple[int, _Phrase]]] = {}
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

    # -- event lists --

    @staticmethod
    def _listed(reason: Reason, entries: Iterable[str], text: _Text) -> Hit | None:
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

    # -- crisis --

    def _crisis(self, text: _Text, languages: Sequence[_Language]) -> Hit | None:
        for language in languages:
            for phrase in text.live.get((language.code, "crisis"), ()):
                for match in phrase.finditer(text):
                    if self._reported(match.string, match.start(), languages):
                        continue
                    if self._idiom(text, match, languages):
                        continue
                    return Hit("crisis", f"{phrase.where}: {phrase.source}", match.group())
        return None

    @staticmethod
    def _idiom(text: _Text, match: re.Match[str], languages: Sequence[_Language]) -> bool:
        """An exception (``not_when``: "mourir de rire") overlapping the phrase."""
        return any(
            other.string is match.string
            and other.start() < match.end()
            and match.start() < other.end()
            for language in languages
            for exception in text.live.get((language.code, "crisis_exceptions"), ())
            for other in exception.finditer(text)
        )

    @staticmethod
    def _reported(norm: str, start: int, languages: Sequence[_Language]) -> bool:
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

    # -- links and contact details --

    def _links_and_contacts(self, text: _Text) -> tuple[Hit | None, Hit | None]:
        """Searched in ``low`` (case kept aside in ``cased`` for the capital-letter test),
        then in ``norm`` when leetspeak or spelled-out letters changed something. E-mail
        addresses are blanked out before looking for links: their domain is not a link."""
        s = self._structural
        link: Hit | None = None
        contact: Hit | None = None
        rejected: set[str] = set()
        variants: list[tuple[str, str | None]] = [(text.low, text.cased)]
        if text.norm != text.low:
            variants.append((text.norm, None))
        for low, cased in variants:
            dots, ats = self._obfuscation_points(low, text)
            emails = self._emails(low, ats)
            if emails and contact is None:
                start, end = emails[0]
                contact = Hit("contact", "contact: e-mail address", low[start:end].strip())
            if contact is None and "@" in low:
                for at in _find_all(low, "@"):
                    handle = s.handle.search(low, max(0, at - 30), at + 50)
                    if handle:
                        contact = Hit("contact", "contact: messaging handle", handle.group())
                        break
            if link is None:
                link = self._link(_mask(low, emails) if emails else low, cased, dots, rejected)
        if contact is None:
            contact = self._phone(text.low)
        return link, contact

    def _obfuscation_points(self, low: str, text: _Text) -> tuple[list[int], list[int]]:
        """Where a spelled-out dot ("dot", "punto", " .", "(.)") is followed by a TLD, and
        where a spelled-out "at" ("(at)", "arroba") may be."""
        s = self._structural
        brackets = [at for needle in "[({<" if needle in low for at in _find_all(low, needle)]
        candidates = [
            at for word in s.dot_words if word in text.words for at in _word_positions(low, word)
        ]
        if " ." in low:
            candidates.extend(at + 1 for at in _find_all(low, " ."))
        dots = [at for at in candidates + brackets if s.spelled_tail.match(low, at)]
        ats = brackets + [
            at for word in s.at_words if word in text.words for at in _word_positions(low, word)
        ]
        if dots:  # "ana at gmail dot com": "at" is an ordinary word, the dot word decides
            ats.extend(
                at
                for word in s.at_ambiguous
                if word in text.words
                for at in _word_positions(low, word)
            )
        return dots, ats

    def _emails(self, low: str, ats: Sequence[int]) -> list[tuple[int, int]]:
        s = self._structural
        found: list[tuple[int, int]] = []
        for at in _find_all(low, "@"):
            start = _local_part(low, at)
            domain = s.email_domain.match(low, at + 1) if start < at else None
            if domain is None and (low[at - 1 : at] == " " or low[at + 1 : at + 2] == " "):
                start = _local_part(low, at - 1) if low[at - 1 : at] == " " else start
                if start < at - 1:
                    domain = s.spaced_email_domain.match(low, at + 1)
            if domain:
                found.append((start, domain.end()))
        for at in ats:
            spelled = s.spelled_at.match(low, at)
            if spelled:
                end = at
                while end > 0 and low[end - 1] == " ":
                    end -= 1
                start = _local_part(low, end)
                if start < end:
                    found.append((start, spelled.end()))
        return sorted(set(found))

    def _link(
        self, low: str, cased: str | None, dots: Sequence[int], rejected: set[str]
    ) -> Hit | None:
        s = self._structural
        for needle in ("ttp", "xxp"):
            for at in _find_all(low, needle):
                match = s.scheme.search(low, max(0, at - 1), at + 12)
                if match:
                    return Hit("link", "link: web address (http)", match.group().strip())
        for at in _find_all(low, "www"):
            match = s.www.search(low, at, at + 80)
            if match:
                return Hit("link", "link: web address (www)", match.group())
        for match in s.tld.finditer(low):
            hit = self._domain(low, cased, match, rejected)
            if hit:
                return hit
        for at in dots:
            tail = s.spelled_tail.match(low, at)
            if tail is None:
                continue  # blanked out: part of an e-mail address
            end = at
            while end > 0 and low[end - 1] == " ":
                end -= 1
            start = end
            while start > 0 and low[start - 1] in _LABEL_CHARS:
                start -= 1
            name = low[start:end].strip(".-")
            if name and (start == 0 or low[start - 1] not in "@_"):
                excerpt = low[start : tail.end()]
                return Hit("link", "link: spelled-out domain", excerpt.strip())
        return None

    def _domain(
        self, low: str, cased: str | None, match: re.Match[str], rejected: set[str]
    ) -> Hit | None:
        """``match``: a dot and a TLD. The name before it decides."""
        s = self._structural
        dot = match.start()
        start = dot
        while start > 0 and low[start - 1] in _LABEL_CHARS:
            start -= 1
        if start > 0 and low[start - 1] in "@_":
            return None  # part of an e-mail address or a handle
        name = low[start:dot].lstrip(".-")
        labels = name.split(".")
        if not name or not all(re.fullmatch(_LABEL, label) for label in labels):
            return None
        tld, path = match.group("tld"), match.group("path") is not None
        domain = f"{name}.{tld}"
        if domain in s.shorteners:
            return Hit("link", "link: link shortener", domain)
        if len(labels[-1]) < 2:  # "e.g.", "i.e.", "u.s."
            return None
        evidence = path or any(c.isdigit() or c == "-" for c in labels[-1])
        if cased is not None and not evidence:
            written = cased[match.start("tld") : match.end("tld")]
            if written[0].isupper() and not written.isupper():
                rejected.add(domain)  # "session.Es": a missing space after a full stop
                return None
        if domain in rejected:
            return None
        if tld in s.strong or evidence or len(labels) >= 2:
            return Hit("link", "link: bare domain", match.string[start : match.end()])
        return None

    def _phone(self, low: str) -> Hit | None:
        s = self._structural
        for run in _PHONE_RUN.finditer(low):
            for match in s.phone.finditer(low, max(0, run.start() - 4), run.end()):
                if self._is_phone(low, match):
                    return Hit("contact", "contact: phone number", match.group().strip())
        return None

    def _is_phone(self, text: str, match: re.Match[str]) -> bool:
        s = self._structural
        number = match.group().strip()
        groups = _DIGITS.findall(number)
        digits = sum(map(len, groups))
        international = number.startswith(("+", "00"))
        least = s.phone_min_international if international else s.phone_min
        if not least <= digits <= s.phone_max:
            return False
        if not international and all(len(g) == 4 and s.year.fullmatch(g) for g in groups):
            return False  # "2019 2020 2021"
        if s.date.search(number):
            return False  # "12.03.2024"
        if s.not_phone.search(text, max(0, match.start() - 12), match.start()):
            return False  # "ISBN 978-..."
        return not s.currency.match(text, match.end())

    # -- personal requests --

    def _personal(self, text: _Text, languages: Sequence[_Language]) -> Hit | None:
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
        asks = [
            (m, p)
            for lang in languages
            for p in text.live.get((lang.code, "ask"), ())
            for m in p.finditer(text)
            if not self._about_work(text, m, professional)
        ]
        for problem, problem_rule in problems:
            for ask, ask_rule in asks:
                if ask.string is not problem.string:
                    continue
                gap = max(ask.start() - problem.end(), problem.start() - ask.end())
                if gap <= self._window:
                    rule = f"{problem_rule.where}: {problem_rule.source} + {ask_rule.source}"
                    start = min(problem.start(), ask.start())
                    end = max(problem.end(), ask.end())
                    return Hit("personal", rule, ask.string[start:end])
        return None

    @staticmethod
    def _about_work(text: _Text, ask: re.Match[str], professional: Sequence[_Phrase]) -> bool:
        """The sentence of the request is about clients, sessions, one's practice: a
        clinical question, not a personal one."""
        start, end = text.sentence(ask.string, ask.start())
        return any(next(p.search(ask.string, start, end), None) for p in professional)


def load(directory: Path | str = RULES_DIR) -> Ruleset:
    """Compiles the rule lists of ``directory`` (default: ``server/rules``). Raises
    :class:`RulesError` when a file is unusable, naming the file, list and entry."""
    return Ruleset.load(directory)


DEFAULT: Final = load()


def judge(
    text: str,
    *,
    banned: Iterable[str] = (),
    suspect: Iterable[str] = (),
    language: str | None = None,
) -> Verdict:
    """The verdict on one post under the default lists (``server/rules``)."""
    return DEFAULT.judge(text, banned=banned, suspect=suspect, language=language)
