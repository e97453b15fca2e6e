"""Text from people: comment bodies and the parts of an author line, cleaned and bounded before
they are stored. Pure functions, no I/O."""

from __future__ import annotations

import unicodedata

MAX_BODY = 5000

_DROPPED_CONTROLS = {c: None for c in range(0x20) if c not in (0x09, 0x0A)} | {0x7F: None}


class TextError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def clean_body(body: str) -> str:
    """A comment body as stored: line endings made ``\\n``, control characters other than tab
    and newline dropped, surrounding blank space trimmed. Raises :class:`TextError` when it is
    empty, too long (in characters) or not encodable as UTF-8 (lone surrogates)."""
    text = body.replace("\r\n", "\n").replace("\r", "\n").translate(_DROPPED_CONTROLS).strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise TextError("body_invalid", "the comment is not valid Unicode text") from None
    if not text:
        raise TextError("body_empty", "the comment is empty")
    if len(text) > MAX_BODY:
        raise TextError(
            "body_too_long", f"the comment has {len(text)} characters; at most {MAX_BODY}"
        )
    return text


def clean_label(value: object, limit: int = 100) -> str:
    """A display part (name, city, ...): a string, NFC, single-spaced, trimmed, cut to ``limit``."""
    if not isinstance(value, str):
        return ""
    value = value.encode("utf-8", "ignore").decode("utf-8")  # lone surrogates dropped
    text = " ".join(unicodedata.normalize("NFC", value).translate(_DROPPED_CONTROLS).split())
    return text[:limit]
