"""What the generator writes into each comment and reads back out of each frame.

Every comment body ends with a marker, ``bm_<run>_<session>_<k>_<scheduled µs>_<sent µs>``:
the session's index in the run, the post's number in that session (unique per session), the
time the schedule meant it to go, and the time it was sent, both on the machine's monotonic
clock (``CLOCK_MONOTONIC``, the same in every process of one machine). A watcher that finds the
marker in a frame knows which post arrived, whether it saw it before, and how long it took,
without asking anyone. The marker passes the community rules (no link, no phone number: the
rules are on during runs, and a held post would never reach watchers).

Frames are read generically (a regular expression over the text, plus ``"seq":N`` where the
target numbers its events), so a peer may shape its messages as it likes as long as the body
goes through verbatim.
"""

from __future__ import annotations

import re
from typing import NamedTuple

MARK = re.compile(rb"bm_([a-z0-9]+)_(\d+)_(\d+)_(\d+)_(\d+)")
SEQ = re.compile(rb'"seq":\s*(\d+)')

SENTENCES = (
    "The breathing exercise stayed with me; I will try it with my patients on the night shift.",
    "Thank you for naming how tired helpers get. I needed to hear that today.",
    "I work in a hospice and the part about rest as a skill rather than a reward landed hard.",
    "Question for the speaker: how do you adapt this for clients who wake in the small hours?",
    "Greetings from the community clinic team, watching together over lunch.",
    "The idea of the nervous system needing to feel safe before sleep makes so much sense.",
    "I have been saying try to get some rest for years and never asked what would help.",
    "Such a gentle and practical session. The slides were clear and the pace was just right.",
    "Our whole ward is watching. We are going to try the wind-down routine this week.",
    "This reframed insomnia for me as protection, not failure. Grateful for that.",
    "Could you say more about screens in the evening for teenagers? Asking as a school nurse.",
    "Listening from the car between home visits. The reassurance script is going in my notes.",
)


class Mark(NamedTuple):
    session: int
    k: int
    scheduled_us: int
    sent_us: int


def body(run: str, session: int, k: int, scheduled_us: int, sent_us: int, size: int = 0) -> str:
    """A comment of about ``size`` characters (at least one sentence) ending in its marker."""
    text = SENTENCES[k % len(SENTENCES)]
    if size > len(text) + 60:
        parts = [text]
        i = k
        while sum(len(p) + 1 for p in parts) < size - 60:
            i += 1
            parts.append(SENTENCES[i % len(SENTENCES)])
        text = " ".join(parts)
    return f"{text} bm_{run}_{session}_{k}_{scheduled_us}_{sent_us}"


class Parsed(NamedTuple):
    marks: tuple[Mark, ...]
    first_seq: int | None
    last_seq: int | None
    kind: str  # "events", "hello", "ready" (the target's replay-is-done message) or "other"
    server: str | None


HELLO = re.compile(rb'"type":\s*"hello".*?"server":\s*"([^"]*)"')


def parse(payload: bytes, run: bytes, ready: bytes) -> Parsed:
    """What one text frame carries (the generator caches this per distinct frame: every watcher
    of a session gets the same bytes)."""
    marks = tuple(
        Mark(int(m[1]), int(m[2]), int(m[3]), int(m[4]))
        for m in MARK.findall(payload)
        if m[0] == run
    )
    if marks:
        seqs = SEQ.findall(payload)
        first = int(seqs[0]) if seqs else None
        last = int(seqs[-1]) if seqs else None
        return Parsed(marks, first, last, "events", None)
    seqs = SEQ.findall(payload)
    if seqs:  # events that are not ours (none are expected in a run's sessions)
        return Parsed((), int(seqs[0]), int(seqs[-1]), "events", None)
    if ready and ready in payload:
        return Parsed((), None, None, "ready", None)
    hello = HELLO.search(payload)
    if hello:
        return Parsed((), None, None, "hello", hello[1].decode(errors="replace"))
    return Parsed((), None, None, "other", None)
