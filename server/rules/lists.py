"""The rule lists: reading ``*.toml`` from a directory, checking their shape, and compiling
one language's file into a :class:`Language`. Every error names the file, the list and the
entry (:class:`RulesError`)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from .folding import fold_rule
from .phrases import COMMON, SEP, Phrase, compile_phrase, gap_pattern
from .verdict import RulesError

RULES_DIR: Final = Path(__file__).resolve().parent


def read_strings(
    table: Mapping[str, Any], key: str, where: str, required: bool = True
) -> list[str]:
    value = table.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RulesError(f"{where}.{key}: expected a list of strings")
    return cast(list[str], value)


def read_table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise RulesError(f"{where}: missing the [{key}] table")
    return value


def read_integer(table: Mapping[str, Any], key: str, where: str) -> int:
    value = table.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RulesError(f"{where}.{key}: expected a whole number")
    return value


def alternation(words: Iterable[str]) -> str:
    ordered = sorted({w for w in words if w}, key=len, reverse=True)
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in ordered) or "(?!)"


@dataclass(frozen=True, slots=True)
class Language:
    code: str
    crisis: tuple[Phrase, ...]
    crisis_exceptions: tuple[Phrase, ...]
    speaker: re.Pattern[str]  # "a client said", anywhere (before an opening quote)
    speaker_end: re.Pattern[str]  # ... right before the phrase (or the colon)
    mention_end: re.Pattern[str]  # "the phrase", right before the phrase
    referral: tuple[Phrase, ...]
    personal: tuple[Phrase, ...]
    problem: tuple[Phrase, ...]
    ask: tuple[Phrase, ...]
    professional: tuple[Phrase, ...]
    dot_words: tuple[str, ...]
    dot_word_tlds: tuple[str, ...]
    at_words: tuple[str, ...]
    at_ambiguous: tuple[str, ...]


_LIST_NAME: Final = re.compile(r"\{(\w+)\}")


def load_language(code: str, data: Mapping[str, Any]) -> Language:
    words = read_table(data, "words", code)
    named = data.get("lists", {})
    if not isinstance(named, dict):
        raise RulesError(f"{code}: [lists] must be a table of lists")
    lists = {name: read_strings(named, name, f"{code}.lists") for name in named}

    def expand(phrase: str, where: str) -> str:
        def one(match: re.Match[str]) -> str:
            if match.group(1) not in lists:
                raise RulesError(f"{where}: {phrase!r}: no list named {match.group()} in [lists]")
            return "(" + "|".join(lists[match.group(1)]) + ")"

        return _LIST_NAME.sub(one, phrase)

    def phrases(
        table: str, key: str, gap: str | None = None, required: bool = True
    ) -> tuple[Phrase, ...]:
        section = read_table(data, table, code)
        where = f"{code}.{table}.{key}"
        if gap is None:
            gap = gap_pattern(
                read_strings(section, "gap_breakers", f"{code}.{table}", required=False)
            )
        return tuple(
            compile_phrase(
                expand(p, where), where, gap, source=p, common=COMMON.get(code, frozenset())
            )
            for p in read_strings(section, key, f"{code}.{table}", required)
        )

    def folded(key: str, required: bool = True) -> tuple[str, ...]:
        return tuple(fold_rule(w) for w in read_strings(words, key, f"{code}.words", required))

    def cues(key: str) -> str:
        found = [
            rf"(?<!\w){p.regex.pattern}" for p in phrases("crisis", key, gap_pattern(()), False)
        ]
        return "|".join(found) or r"(?!)"

    speaker, mention = cues("reported_speech"), cues("mentions")
    # the cue, then at most two more words ("tells me", "said that"), then the phrase
    near = rf"(?:{SEP}\w+){{0,2}}[^\w.!?\n]*$"
    return Language(
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


def read_directory(directory: Path) -> tuple[Mapping[str, Any], dict[str, Mapping[str, Any]]]:
    """``common.toml`` and every other ``*.toml`` (one per language, named by its code) in
    ``directory``, parsed."""
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
    return common, languages
