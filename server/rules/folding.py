"""Normalisation: the text every rule is matched against.

NFKC, case-folded, accents dropped, zero-width and bidi controls removed, Cyrillic/Greek
look-alikes and full-width letters folded to Latin, leetspeak digits folded inside words,
letters spelled out one by one ("h t t p s", "S.U.I.C.I.D.E") joined, repeated separators
collapsed. docs/moderation.md, "Normalisation", lists the steps.

The steps are separate functions because links and contact details are searched before
case-folding and leetspeak (:func:`fold` only), and phrases after all of them.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from typing import Final

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
# the characters _REPEATED collapses as "!", the others as " ": no "!!", nothing to collapse
_REPEATABLE: Final = bytes.maketrans(
    bytes(range(256)), bytes(33 if chr(c) in ".,;:!?-_~*=#+|" else 32 for c in range(256))
)
_SPACES: Final = re.compile(r"  +")
# Below this length a regex over the whole text costs less than setting up a shortcut.
_LONG: Final = 200
# Leetspeak: in a token that mixes letters with 0 1 3 4 5 7 or @, those are letters.
LEET: Final = str.maketrans("013457@", "oieasta")
LEET_L: Final = str.maketrans("013457@", "oleasta")  # "ki11": 1 is also an l
_LEET_DIGITS: Final = str.maketrans("013457", "oieast")
_LEET_HINT: Final = re.compile(r"[013457@](?:(?<=[a-z].)|(?=[a-z]))")  # one touching a letter
_LEET_CHARS: Final = "013457@"
_EMAIL_TAIL: Final = re.compile(r"[\w-]*(?:\.[\w-]+)+")
# Letters spelled out one by one: "h t t p s", "S.U.I.C.I.D.E", "w w w . x . c o m". One case
# per run, so that "I w a n t" is "I want", not "Iwant".
_SPELLED: Final = re.compile(
    r"(?<![\w'])(?:[a-z](?:[ ._\-*|/+~]{1,3}[a-z](?![\w'])){2,}"
    r"|[A-Z](?:[ ._\-*|/+~]{1,3}[A-Z](?![\w'])){2,})"
)
_SPELLED_HINT: Final = re.compile(r"[ ._\-*|/+~][a-zA-Z][ ._\-*|/+~]{1,3}[a-zA-Z](?![\w'])")
_SPELLED_SEP: Final = re.compile(r"[ ._\-*|/+~]{1,3}")


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


def _non_ascii(text: str) -> set[int]:
    """The characters of ``text`` that are not ASCII, listed cheaply: "&#8217;" for "’"."""
    return {int(c) for c in _CHAR_REFERENCE.findall(text.encode("ascii", "xmlcharrefreplace"))}


def fold(text: str) -> str:
    """Everything but case-folding, leetspeak and spelled-out letters: compatibility forms
    (full-width, ligatures), accents, invisible characters, look-alikes, punctuation
    variants, repeated separators, blanks."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        codes = _non_ascii(text)
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
    if len(text) < _LONG or not text.isascii() or b"!!" in text.encode().translate(_REPEATABLE):
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


_RUN_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ._-*|/+~")


def _ends_run(char: str) -> bool:
    """Is a letter followed by ``char`` outside every run? A run's letters are followed by
    a separator (which "_" is) or by no word character at all."""
    return char.isalnum() or char == "'"


def _run_floor(text: str, at: int, limit: int) -> int:
    """A position at or before ``at`` (not before ``limit``) that no spelled-out run spans:
    right after a character that cannot be in a run, or between a letter and a character
    that puts it outside every run (:func:`_ends_run`)."""
    while at > limit:
        char = text[at - 1]
        if char not in _RUN_CHARS or (char.isalpha() and _ends_run(text[at])):
            return at
        at -= 1
    return limit


def _run_ceiling(text: str, at: int) -> int:
    """The end of the stretch from ``at`` that a spelled-out run could still be part of,
    such that matching up to there (not beyond) reads the same as on the whole text."""
    end = len(text)
    while at < end:
        char = text[at]
        if char not in _RUN_CHARS:
            return at + 1
        if char.isalpha() and at + 1 < end and _ends_run(text[at + 1]):
            return at + 2
        at += 1
    return end


def _shape_table() -> bytes:
    table = bytearray(b"x" * 256)
    for code in range(128):
        char = chr(code)
        if char.isalpha():
            table[code] = ord("a")
        elif char in " .-*|/+~":
            table[code] = ord("s")
        elif char in "_":
            table[code] = ord("u")  # a separator, and a word character
        elif char.isdigit():
            table[code] = ord("w")
        elif char == "'":
            table[code] = ord("q")
    return bytes(table)


# ASCII text as letters (a), separators of spelled-out letters (s, u for "_"), digits (w),
# apostrophes (q), anything else (x): _SPELLED_HINT on this is a few str.find calls
_SHAPE: Final = _shape_table()


def _hints(cased: str) -> list[tuple[int, int]] | None:
    """Every place (start, end) ``_SPELLED_HINT`` matches ASCII ``cased``, overlapping or
    not, in order; ``None`` if ``cased`` is not ASCII, or short (the regex is as quick)."""
    if len(cased) < _LONG or not cased.isascii():
        return None
    shape = cased.encode("ascii").translate(_SHAPE)
    size = len(shape)
    found = []
    for needle in (b"sas", b"sau", b"uas", b"uau"):  # a separator, a letter, a separator
        at = shape.find(needle)
        while at >= 0:
            # 1 to 3 separators after the letter, another letter, then no word character
            after = at + 2
            while after < size and after - at < 6 and shape[after] in b"su":
                after += 1
            letter = after < size and shape[after] == ord("a") and after - at <= 5
            if letter and (after + 1 == size or shape[after + 1] not in b"awuq"):
                found.append((at, after + 1))
            at = shape.find(needle, at + 1)
    found.sort()
    return found


def _join_runs(cased: str, hints: list[tuple[int, int]] | None) -> str:
    """``_SPELLED.sub(_join_spelled, cased)``, but the run pattern only runs around the
    places ``_SPELLED_HINT`` matches (``hints``, or the regex itself if ``None``), not over
    the whole text: every run holds such a place."""
    pieces: list[str] = []
    done = at = 0
    while True:
        if hints is None:
            match = _SPELLED_HINT.search(cased, at)
            if match is None:
                break
            start, end = match.span()
        else:
            index = bisect.bisect_left(hints, (at, -1))
            if index == len(hints):
                break
            start, end = hints[index]
        floor = _run_floor(cased, start, done)
        ceiling = _run_ceiling(cased, end)
        for run in _SPELLED.finditer(cased, floor, ceiling):
            pieces += (cased[done : run.start()], _join_spelled(run))
            done = run.end()
        at = max(ceiling, start + 1)
    if not pieces:
        return cased
    pieces.append(cased[done:])
    return "".join(pieces)


def lower(cased: str, low: str | None = None) -> str:
    """Spelled-out letters joined, then case-folded. ``low``: ``cased.lower()``, if known."""
    hints = _hints(cased)
    if (hints if hints is not None else _SPELLED_HINT.search(cased)) or _SPELLED.match(cased):
        cased = _join_runs(cased, hints)
    elif low is not None and low.isascii():
        return low
    if cased.isascii():
        return cased.lower()
    text = cased.casefold()
    if not text.isascii():  # casefold can make new accented letters
        text = _MARKS.sub("", unicodedata.normalize("NFKD", text))
    return text


_TOKEN_REST: Final = re.compile(r"(?:[^\W_]|@)*")  # letters, digits, "@"


def _leet_hints(text: str) -> list[int]:
    """Where one of ``_LEET_CHARS`` touches a letter a-z (``_LEET_HINT``). In a long post,
    found with ``str.find``: posts hold few digits, and the regex looks at every character."""
    if len(text) < _LONG:
        return [match.start() for match in _LEET_HINT.finditer(text)]
    found = []
    for char in _LEET_CHARS:
        at = text.find(char)
        while at >= 0:
            if (at and "a" <= text[at - 1] <= "z") or "a" <= text[at + 1 : at + 2] <= "z":
                found.append(at)
            at = text.find(char, at + 1)
    found.sort()
    return found


def unleet(lower: str, table: dict[int, int]) -> str:
    """Leetspeak folded with ``table`` in the tokens that mix letters with its digits."""
    hints = _leet_hints(lower)
    if not hints:
        return lower
    pieces: list[str] = []
    done = 0
    for hint in hints:
        start = hint
        if start < done:
            continue
        while start > done and (lower[start - 1].isalnum() or lower[start - 1] == "@"):
            start -= 1
        rest = _TOKEN_REST.match(lower, hint + 1)
        end = rest.end() if rest else hint + 1
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
    return unleet(lower(fold(text)), LEET)


def fold_rule(text: str) -> str:
    """A list entry as the rules read it: folded and case-folded (no leetspeak: "4" in a
    rule is a digit)."""
    return fold(text).casefold()
