"""Links, e-mail addresses, phone numbers and messaging handles.

Built from ``common.toml`` and every language's spelled-out "dot" and "at" words (an
obfuscation is one in any language). Each is looked for only where it can start: a dot
before a TLD, an "@", a spelled-out dot or "at" before a TLD, a run of digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .folding import fold_rule
from .lists import Language, alternation, read_integer, read_strings, read_table
from .phrases import trie
from .verdict import Hit

if TYPE_CHECKING:
    from .post import Post

_LABEL: Final = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
_LABEL_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
_PHONE_RUN: Final = re.compile(r"\d[\d ().\-/]{6,}\d")
# ... and the same on ASCII text written as digits (d), other characters of a phone number
# (r) and the rest (x): a run starts with the letter "d", which the regex engine skips to
_PHONE_SHAPE: Final = bytes.maketrans(
    bytes(range(256)),
    bytes(
        100 if chr(c).isdigit() and c < 128 else 114 if chr(c) in " ().-/" else 120
        for c in range(256)
    ),
)
_PHONE_SHAPE_RUN: Final = re.compile(rb"d[dr]{6,}d")
_DIGITS: Final = re.compile(r"\d+")


def _find_all(string: str, needle: str) -> Iterator[int]:
    at = string.find(needle)
    while at >= 0:
        yield at
        at = string.find(needle, at + 1)


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


@dataclass(frozen=True, slots=True)
class Links:
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

    def find(self, text: Post) -> tuple[Hit | None, Hit | None]:
        """Searched in ``low`` (case kept aside in ``cased`` for the capital-letter test),
        then in ``norm`` when leetspeak or spelled-out letters changed something. E-mail
        addresses are blanked out before looking for links: their domain is not a link."""
        link: Hit | None = None
        contact: Hit | None = None
        rejected: set[str] = set()
        variants: list[tuple[str, str | None]] = [(text.low, text.cased)]
        if text.norm != text.low:
            variants.append((text.norm, None))
        for low, cased in variants:
            if link is not None and contact is not None:
                break
            dots, ats = self._obfuscation_points(low, text)
            emails = self._emails(low, ats)
            if emails and contact is None:
                start, end = emails[0]
                contact = Hit("contact", "contact: e-mail address", low[start:end].strip())
            if contact is None and "@" in low:
                for at in _find_all(low, "@"):
                    handle = self.handle.search(low, max(0, at - 30), at + 50)
                    if handle:
                        contact = Hit("contact", "contact: messaging handle", handle.group())
                        break
            if link is None:
                link = self._link(_mask(low, emails) if emails else low, cased, dots, rejected)
        if contact is None:
            contact = self._phone(text.low)
        return link, contact

    def _obfuscation_points(self, low: str, text: Post) -> tuple[list[int], list[int]]:
        """Where a spelled-out dot ("dot", "punto", " .", "(.)") is followed by a TLD, and
        where a spelled-out "at" ("(at)", "arroba") may be."""
        brackets = [at for needle in "[({<" if needle in low for at in _find_all(low, needle)]
        candidates = [
            at for word in self.dot_words if word in text.words for at in _word_positions(low, word)
        ]
        if " ." in low:
            candidates.extend(at + 1 for at in _find_all(low, " ."))
        dots = [at for at in candidates + brackets if self.spelled_tail.match(low, at)]
        ats = brackets + [
            at for word in self.at_words if word in text.words for at in _word_positions(low, word)
        ]
        if dots:  # "ana at gmail dot com": "at" is an ordinary word, the dot word decides
            ats.extend(
                at
                for word in self.at_ambiguous
                if word in text.words
                for at in _word_positions(low, word)
            )
        return dots, ats

    def _emails(self, low: str, ats: Sequence[int]) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        for at in _find_all(low, "@"):
            start = _local_part(low, at)
            domain = self.email_domain.match(low, at + 1) if start < at else None
            if domain is None and (low[at - 1 : at] == " " or low[at + 1 : at + 2] == " "):
                start = _local_part(low, at - 1) if low[at - 1 : at] == " " else start
                if start < at - 1:
                    domain = self.spaced_email_domain.match(low, at + 1)
            if domain:
                found.append((start, domain.end()))
        for at in ats:
            spelled = self.spelled_at.match(low, at)
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
        for needle in ("ttp", "xxp"):
            for at in _find_all(low, needle):
                match = self.scheme.search(low, max(0, at - 1), at + 12)
                if match:
                    return Hit("link", "link: web address (http)", match.group().strip())
        for at in _find_all(low, "www"):
            match = self.www.search(low, at, at + 80)
            if match:
                return Hit("link", "link: web address (www)", match.group())
        for match in self.tld.finditer(low):
            hit = self._domain(low, cased, match, rejected)
            if hit:
                return hit
        for at in dots:
            tail = self.spelled_tail.match(low, at)
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
        if domain in self.shorteners:
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
        if tld in self.strong or evidence or len(labels) >= 2:
            return Hit("link", "link: bare domain", match.string[start : match.end()])
        return None

    def _phone(self, low: str) -> Hit | None:
        if low.isascii():
            shape = low.encode("ascii").translate(_PHONE_SHAPE)
            runs = [run.span() for run in _PHONE_SHAPE_RUN.finditer(shape)]
        else:
            runs = [run.span() for run in _PHONE_RUN.finditer(low)]
        for start, end in runs:
            for match in self.phone.finditer(low, max(0, start - 4), end):
                if self._is_phone(low, match):
                    return Hit("contact", "contact: phone number", match.group().strip())
        return None

    def _is_phone(self, text: str, match: re.Match[str]) -> bool:
        number = match.group().strip()
        groups = _DIGITS.findall(number)
        digits = sum(map(len, groups))
        international = number.startswith(("+", "00"))
        least = self.phone_min_international if international else self.phone_min
        if not least <= digits <= self.phone_max:
            return False
        if not international and all(len(g) == 4 and self.year.fullmatch(g) for g in groups):
            return False  # "2019 2020 2021"
        if self.date.search(number):
            return False  # "12.03.2024"
        if self.not_phone.search(text, max(0, match.start() - 12), match.start()):
            return False  # "ISBN 978-..."
        return not self.currency.match(text, match.end())


def load_links(common: Mapping[str, Any], languages: Sequence[Language]) -> Links:
    link = read_table(common, "link", "common")
    contact = read_table(common, "contact", "common")

    def folded(table: Mapping[str, Any], key: str) -> list[str]:
        return [fold_rule(w) for w in read_strings(table, key, f"common.{key}")]

    strong, weak = folded(link, "strong_tlds"), folded(link, "weak_tlds")
    platforms = folded(contact, "handle_platforms")
    dot_words = tuple(sorted({w for lang in languages for w in lang.dot_words}))
    at_words = tuple(sorted({w for lang in languages for w in lang.at_words}))
    dots = alternation(dot_words)
    ats = alternation(at_words)
    ats_ambiguous = alternation(w for lang in languages for w in lang.at_ambiguous)
    any_tld = alternation(strong + weak)
    strong_tld = alternation(strong)
    label = _LABEL
    # "example (dot) com", "example dot com", "example . com", "example .com"
    spelled_dot = rf"(?:\s*[\[({{<]\s*(?:\.|{dots})\s*[\])}}>]\s*|\s+(?:{dots})\s+|\s+\.\s*)"
    # at the spelled-out dot of a domain, the dot and the TLD: a strong TLD after any spelled
    # dot, or a TLD that a language allows after its own dot word ("punkt de", where "punto
    # de" is Spanish)
    tails = [rf"(?:[\[({{<]\s*(?:\.|{dots})\s*[\])}}>]|(?:{dots})(?=\s)|\.)\s*(?:{strong_tld})"] + [
        rf"(?:{alternation(lang.dot_words)})\s+(?:{alternation(lang.dot_word_tlds)})"
        for lang in languages
        if lang.dot_word_tlds
    ]
    return Links(
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
        # as a trie: at each dot the engine rules out most TLDs at their first letter
        tld=re.compile(rf"\.(?P<tld>{trie(set(strong + weak))})(?![\w-])(?P<path>/)?"),
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
            rf"(?<!\w)(?:{alternation(platforms)})\W{{0,3}}(?:\w+\W{{1,3}}){{0,2}}"
            rf"@[a-z0-9_][\w.]{{2,}}|(?<![\w@])@[a-z0-9_][\w.]{{2,}}\s+(?:on|en|sur|auf|no|em)"
            rf"\s+(?:{alternation(platforms)})(?!\w)"
        ),
        phone=re.compile(r"(?<![\w+/.,:#@-])(?:\+|00)?\s?\(?\d(?:[ ().\-/]{0,3}\d)+"),
        phone_min=read_integer(contact, "phone_min_digits", "common.contact"),
        phone_min_international=read_integer(
            contact, "phone_min_digits_international", "common.contact"
        ),
        phone_max=read_integer(contact, "phone_max_digits", "common.contact"),
        not_phone=re.compile(rf"(?<!\w)(?:{alternation(folded(contact, 'not_phone_after'))})\W*$"),
        # a day, a month and a year: "12.03.2024", "1/4/25" (not "07.81.23", a phone number)
        date=re.compile(
            r"(?<!\d)(?:0?[1-9]|[12]\d|3[01])[./-](?:0?[1-9]|1[0-2])[./-](?:19|20)?\d\d(?![\d.])"
        ),
        year=re.compile(r"(?:19|20)\d\d"),
        currency=re.compile(rf"\s?(?:{alternation(read_strings(contact, 'currency', 'common'))})"),
    )
