"""Moving boards out: the moderation export's JSON and CSV, shared by
``GET /v1/sessions/{slug}/export`` (and, next, by the command line)."""

from __future__ import annotations

import csv
import io

import msgspec

from .protocol import AuditEntry, CommentView, SessionView

# --- The moderation export (JSON and CSV) -------------------------------------------------------


def export_body(session: SessionView, comments: list[CommentView]) -> dict[str, object]:
    """The moderation export as JSON: ``{"session": SessionView, "comments": [...]}``."""
    return {"session": session, "comments": comments}


def spreadsheet_safe(value: object) -> object:
    """A cell that a spreadsheet will not run as a formula (CSV injection): text starting with
    ``= + - @`` or a tab or carriage return gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_row(comment: CommentView) -> dict[str, object]:
    row = msgspec.structs.asdict(comment)
    author = row.pop("author")
    for name in ("name", "profession", "city", "region", "country"):
        row[f"author_{name}"] = getattr(author, name) if author is not None else ""
    return row


AUDIT_COLUMNS = [f.name for f in msgspec.structs.fields(AuditEntry)]
EXPORT_COLUMNS = [f.name for f in msgspec.structs.fields(CommentView) if f.name != "author"] + [
    f"author_{name}" for name in ("name", "profession", "city", "region", "country")
]


def csv_text(columns: list[str], rows: list[dict[str, object]]) -> str:
    """CSV with a header row (also when there are no rows), every cell spreadsheet-safe."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
    return out.getvalue()
