"""All SQL of Backchannel: the only package that talks to PostgreSQL.

Every change a watcher can see is written together with its entry in ``session_events`` in one
transaction. Each such transaction starts by taking the next ``seq`` from the session's row
(``UPDATE sessions SET last_seq = last_seq + 1``), which also locks that row: seqs of a session
increase by exactly 1, commit order equals seq order, and because every writer locks the session
first, writers of one session cannot deadlock. A change that turns out to be a no-op (a retried
post, removing what is already removed) rolls back, seq included.

Posts are the exception to one change per transaction: a session's posts that arrive together
are written in one transaction, each with its own seq and event (``posting.py``).

Methods return the change's event already encoded (``bytes``) for the hub to publish.
"""

from __future__ import annotations

from .base import Hold, SessionRecord, Standing, comment_view
from .reads import ExportStore, ReadStore
from .sanctions import SanctionOutcome, SanctionStore
from .sessions import SessionStore
from .transfer import TransferStore


class Store(SessionStore, SanctionStore, ReadStore, ExportStore, TransferStore):
    """The whole store: sessions, comments and reads share one pool."""


__all__ = ["Hold", "SanctionOutcome", "SessionRecord", "Standing", "Store", "comment_view"]
