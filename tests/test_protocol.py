"""The wire protocol with plain values: no sockets, no database."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime

import pytest
from websockets.frames import Frame
from websockets.streams import StreamReader

from server.protocol import (
    Auth,
    CommentView,
    Event,
    ProtocolError,
    chunk_events,
    comment_of,
    decode_client_message,
    encode_event,
    events_message,
    read_event_head,
    replace_comment,
    text_frame,
)
from server.text import MAX_BODY, TextError, clean_body, clean_label


def parse_frame(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 300_000])
def test_text_frame_is_a_valid_unmasked_frame_of_any_length(size: int) -> None:
    payload = b"x" * size
    frame = parse_frame(text_frame(payload))
    assert frame.fin and frame.opcode.name == "TEXT" and frame.data == payload


def comment(status: str = "published", body: str | None = "Thank you 🙏") -> CommentView:
    return CommentView(
        id=7,
        session="s",
        parent_id=None,
        root_id=None,
        depth=0,
        number=3,
        status=status,
        body=body,
        author=None,
        reply_count=0,
        created_at=datetime(2026, 11, 23, tzinfo=UTC),
        edited_at=None,
        question=False,
        highlighted_at=None,
        answered_at=None,
        helpful_count=0,
        hold_reason=None,
    )


def event(seq: int, kind: str = "comment.created", c: CommentView | None = None) -> bytes:
    return encode_event(
        Event(
            seq=seq,
            kind=kind,
            at=datetime(2026, 11, 23, tzinfo=UTC),
            total=1,
            comment=c or comment(),
        )
    )


def test_events_message_is_json_built_without_reencoding() -> None:
    message = json.loads(events_message("day-3", [event(1), event(2)]))
    assert message["type"] == "events" and message["session"] == "day-3"
    assert [e["seq"] for e in message["events"]] == [1, 2]


def test_chunks_respect_the_byte_bound_and_keep_order() -> None:
    events = [event(i) for i in range(1, 30)]
    runs = chunk_events(events, 1000)
    assert [e for run in runs for e in run] == events
    assert all(sum(len(e) + 1 for e in run) <= 1000 + 1 for run in runs if len(run) > 1)
    assert chunk_events([b"x" * 5000], 100) == [[b"x" * 5000]]


def test_event_head_and_comment_replacement() -> None:
    original = event(4)
    head = read_event_head(original)
    assert (head.seq, head.kind, head.comment and head.comment.id) == (4, "comment.created", 7)
    redacted = comment_of(event(5, "comment.removed", comment("removed", None)))
    replaced = json.loads(replace_comment(original, redacted))
    assert replaced["seq"] == 4 and replaced["comment"]["body"] is None
    assert "Thank you" not in replace_comment(original, redacted).decode()


def test_body_is_cleaned_and_bounded() -> None:
    assert clean_body("  Line one\r\nLine two\rthree\x00\x07  ") == "Line one\nLine two\nthree"
    assert clean_body("Para one\n\nPara two\twith tab") == "Para one\n\nPara two\twith tab"
    assert clean_body("😀" * MAX_BODY) == "😀" * MAX_BODY
    for bad, code in [
        ("", "body_empty"),
        (" \n\t ", "body_empty"),
        ("x" * (MAX_BODY + 1), "body_too_long"),
        ("\ud800 lone surrogate", "body_invalid"),
    ]:
        with pytest.raises(TextError) as err:
            clean_body(bad)
        assert err.value.code == code


def test_labels_are_trimmed_single_spaced_and_bounded() -> None:
    assert clean_label("  Albany ,  ") == "Albany ,"
    assert clean_label("São\u00a0Paulo") == "São Paulo"
    assert clean_label(None) == "" and clean_label(42) == ""
    assert len(clean_label("n" * 500)) == 100


def test_client_messages_are_typed_or_refused() -> None:
    assert decode_client_message('{"type": "auth", "token": "abc"}') == Auth(token="abc")
    for bad in [
        '{"type": "auth"}',
        '{"type": "nope"}',
        "[]",
        "not json",
        '{"type": "auth", "token": "t", "extra": 1}',
    ]:
        with pytest.raises(ProtocolError):
            decode_client_message(bad)


def test_frame_header_lengths() -> None:
    assert text_frame(b"a" * 125)[:2] == b"\x81\x7d"
    assert text_frame(b"a" * 126)[:4] == b"\x81\x7e" + struct.pack("!H", 126)
    assert text_frame(b"a" * 65536)[:10] == b"\x81\x7f" + struct.pack("!Q", 65536)
