"""Community rules: decides whether a comment is published, held for a moderator, or refused.

Pure: no I/O beyond reading the rule lists in ``server/rules/*.toml`` once, at import. The
lists are the rules; this package only normalises text and applies them. See
``docs/moderation.md`` for the classes, the severity order and the list syntax.

    >>> judge("I refer clients to DBT groups").action
    'publish'
    >>> v = judge("slides at bit.ly/x")
    >>> (v.action, v.reason)
    ('hold', 'link')

One module per concept:

- ``verdict``: what the rules say (:class:`Verdict`, :class:`Hit`) and :class:`RulesError`;
- ``folding``: :func:`normalise`, the text every rule sees;
- ``post``: a post prepared once for every rule;
- ``phrases``: the list syntax, compiled to regular expressions with anchor words;
- ``lists``: reading and checking the TOML files, one :class:`~.lists.Language` per file;
- ``crisis``, ``personal``, ``links``, ``event_lists``: one class of rule each;
- ``ruleset``: :class:`Ruleset`, the anchor index and ``judge``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

from .folding import normalise
from .lists import RULES_DIR
from .ruleset import Ruleset
from .verdict import REASONS, Action, Hit, Reason, RulesError, Verdict

__all__ = [
    "DEFAULT",
    "REASONS",
    "RULES_DIR",
    "Action",
    "Hit",
    "Reason",
    "RulesError",
    "Ruleset",
    "Verdict",
    "judge",
    "load",
    "normalise",
]


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
