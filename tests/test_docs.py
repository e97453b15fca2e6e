"""``docs/protocol.md`` documents the whole wire protocol.

Every list checked here is derived from the code (the event kinds, the message types the server
sends and accepts, the error codes it raises, its routes, its close codes, its wire types), so a
new one fails this test until it is documented. No server, database or network is needed.
"""

from __future__ import annotations

import json
import re
import typing
from functools import cache
from pathlib import Path

import msgspec
from starlette.routing import Mount, Route, WebSocketRoute

from server import errors, protocol
from server.app import routes
from server.openapi import OPERATIONS

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "protocol.md"
SERVER = ROOT / "server"

# ``"type": "<name>"`` also occurs in server/ where it is not a Backchannel message: ASGI
# events (``websocket.disconnect`` in transport.py) and JSON Schema / OpenAPI vocabulary
# (``object``, ``string``, the ``http`` security scheme in openapi.py).
_ASGI_EVENT = re.compile(r"^(websocket|http|lifespan)\.")
_SCHEMA_TYPES = frozenset(
    {"object", "string", "integer", "number", "boolean", "array", "null", "http"}
)
_TYPE_FIELD = re.compile(r'"type"\s*:\s*"([A-Za-z][\w.]*)"')
# Frames built from bytes (protocol.events_message): b'{"type":"events","session":'
_PREBUILT_TYPE = re.compile("b'" + re.escape('{"type":"') + r'([A-Za-z][\w.]*)"')
_JSON_BLOCK = re.compile(r"^```json\n(.*?)^```", re.M | re.S)
_LABELLED_BLOCK = re.compile(r"<!-- example: (\w+) -->\s*\n```json\n(.*?)^```", re.M | re.S)
_TABLE_CODE = re.compile(r"^\|\s*`?(\d{4})`?\s*\|", re.M)


@cache
def doc() -> str:
    assert DOC.is_file(), f"{DOC} is missing"
    return DOC.read_text(encoding="utf-8")


@cache
def sources() -> dict[str, str]:
    """server/*.py and the packages under it (server/storage/...), by path relative to server/."""
    found = {
        path.relative_to(SERVER).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(SERVER.rglob("*.py"))
    }
    assert found, f"no Python files in {SERVER}"
    return found


def headings() -> set[str]:
    return {line.strip() for line in doc().splitlines() if line.startswith("#")}


def json_blocks() -> list[str]:
    return _JSON_BLOCK.findall(doc())


def json_examples() -> list[object]:
    return [json.loads(block) for block in json_blocks()]


def error_classes() -> list[type[errors.BackchannelError]]:
    found: list[type[errors.BackchannelError]] = []
    pending: list[type[errors.BackchannelError]] = [errors.BackchannelError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def server_message_types() -> set[str]:
    names: set[str] = set()
    for text in sources().values():
        names.update(_TYPE_FIELD.findall(text))
        names.update(_PREBUILT_TYPE.findall(text))
    names = {n for n in names if not _ASGI_EVENT.match(n) and n not in _SCHEMA_TYPES}
    return names - client_message_types()  # feed.py's docstring quotes the client's auth message


def client_message_types() -> set[str]:
    members = typing.get_args(protocol.ClientMessage) or (protocol.ClientMessage,)
    tags = set()
    for member in members:
        config = member.__struct_config__
        assert config.tag_field == "type", f"{member.__name__} is not tagged by 'type'"
        assert isinstance(config.tag, str), f"{member.__name__} has no string tag"
        tags.add(config.tag)
    return tags


def error_codes() -> set[str]:
    classes = "|".join(sorted(cls.__name__ for cls in error_classes()))
    raised = re.compile(rf'\b(?:{classes})\(\s*"([a-z_]+)"')
    text_errors = re.compile(r'\bTextError\(\s*"([a-z_]+)"')  # re-raised as BadRequest(exc.code)
    literal = re.compile(r'"code"\s*:\s*"([a-z_]+)"')  # app.py: internal, method_not_allowed
    param = re.compile(r'\bint_param\(\s*request\s*,\s*"([a-z_]+)"')  # BadRequest(f"bad_{name}")
    per_param = any('BadRequest(f"bad_{name}"' in text for text in sources().values())
    codes: set[str] = set()
    for name, text in sources().items():
        codes.update(raised.findall(text))
        codes.update(text_errors.findall(text))
        if name != "errors.py":  # its docstring quotes an example body only
            codes.update(literal.findall(text))
        if per_param:
            codes.update(f"bad_{p}" for p in param.findall(text))
    return codes


def close_codes() -> set[int]:
    codes = {cls.close_code for cls in error_classes()}
    for text in sources().values():
        codes.update(int(c) for c in re.findall(r"^CLOSE_[A-Z_]+\s*=\s*(\d{4})\b", text, re.M))
        codes.update(int(c) for c in re.findall(r"\.close\(\s*(\d{4})\b", text))
    return codes


# --- The tests -----------------------------------------------------------------------------------


def test_every_event_kind_is_documented_with_an_example() -> None:
    examples = [
        event
        for example in json_examples()
        if isinstance(example, dict)
        for event in (example.get("events") or [example])
        if isinstance(event, dict)
    ]
    for kind in protocol.EVENT_KINDS:
        assert f"`{kind}`" in doc(), f"event kind {kind} is not in docs/protocol.md"
        assert f"### `{kind}`" in headings(), f"no heading ### `{kind}`"
        assert any(e.get("kind") == kind for e in examples), f"no JSON example of a {kind} event"


def test_every_server_message_type_is_documented_with_an_example() -> None:
    types = server_message_types()
    # The scan must find the frames every connection gets, or it is looking in the wrong place.
    assert {"hello", "events", "error"} <= types, f"the source scan found only {sorted(types)}"
    examples = {e.get("type") for e in json_examples() if isinstance(e, dict)}
    for name in sorted(types):
        assert f"`{name}`" in doc(), f"message type {name} is not in docs/protocol.md"
        assert f"### `{name}`" in headings(), f"no heading ### `{name}`"
        assert name in examples, f"no JSON example of a {name} message"


def test_every_client_message_type_is_documented_with_a_valid_example() -> None:
    tags = client_message_types()
    assert tags, "ClientMessage has no members"
    for tag in sorted(tags):
        assert f"`{tag}`" in doc(), f"client message type {tag} is not in docs/protocol.md"
        assert f"### `{tag}`" in headings(), f"no heading ### `{tag}`"
        blocks = [b for b in json_blocks() if json.loads(b).get("type") == tag]
        assert blocks, f"no JSON example of a {tag} message"
        for block in blocks:
            protocol.decode_client_message(block)  # raises if the example is not valid


def test_every_error_code_is_documented() -> None:
    codes = error_codes()
    assert "session_closed" in codes, f"the source scan found only {sorted(codes)}"
    missing = sorted(code for code in codes if f"`{code}`" not in doc())
    assert not missing, f"error codes not in docs/protocol.md: {missing}"


def test_every_route_is_documented() -> None:
    table = routes()
    assert table, "server.app.routes() is empty"
    for route in table:
        assert route.path in doc(), f"route {route.path} is not in docs/protocol.md"
        if isinstance(route, Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                assert f"{method} {route.path}" in doc(), f"{method} {route.path} is not documented"
        elif isinstance(route, Mount):  # the static pages: named by their mount point
            mount = route.path or "/"
            assert f"`{mount}`" in doc(), f"the pages mounted at {mount} are not documented"
        else:
            assert isinstance(route, WebSocketRoute)


def test_every_close_code_is_in_the_close_code_table() -> None:
    codes = close_codes()
    assert 4008 in codes, "the too-slow close code (hub.CLOSE_TOO_SLOW) was not found"
    listed = {int(code) for code in _TABLE_CODE.findall(doc())}
    missing = sorted(codes - listed)
    assert not missing, f"close codes missing from the close code table: {missing}"


def test_json_examples_are_valid_json() -> None:
    blocks = json_blocks()
    assert blocks, "docs/protocol.md has no JSON examples"
    for block in blocks:
        try:
            json.loads(block)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"invalid JSON example ({exc}):\n{block}") from None


def check_example(kind: type[msgspec.Struct], text: str) -> None:
    """``text`` decodes as ``kind``. Request types refuse unknown fields themselves; a response
    example must also be exactly what the server would write (no field missing or extra)."""
    try:
        decoded = msgspec.json.decode(text.encode(), type=kind)
    except msgspec.ValidationError as exc:
        raise AssertionError(f"a {kind.__name__} example does not fit: {exc}\n{text}") from None
    if not kind.__struct_config__.forbid_unknown_fields:
        written = json.loads(msgspec.json.encode(decoded))
        assert written == json.loads(text), f"a {kind.__name__} example has other fields:\n{text}"


def test_labelled_examples_match_their_wire_types() -> None:
    """``<!-- example: PostResult -->`` before a JSON block: the block is a ``PostResult``."""
    labelled = _LABELLED_BLOCK.findall(doc())
    assert labelled, "no labelled examples"
    for name, block in labelled:
        kind = getattr(protocol, name, None)
        assert isinstance(kind, type) and issubclass(kind, msgspec.Struct), f"no wire type {name}"
        check_example(kind, block)


def test_every_http_body_type_has_an_example() -> None:
    types = {op.response for op in OPERATIONS} | {op.request for op in OPERATIONS if op.request}
    wanted = {t.__name__ for t in types if isinstance(t, type) and issubclass(t, msgspec.Struct)}
    assert wanted, "no wire types in server.openapi.OPERATIONS"
    labelled = {name for name, _ in _LABELLED_BLOCK.findall(doc())}
    missing = sorted(wanted - labelled)
    assert not missing, f"request/response types with no labelled example: {missing}"


def test_event_examples_match_the_event_type() -> None:
    events = []
    for example in json_examples():
        if isinstance(example, dict) and example.get("type") == "events":
            events.extend(example["events"])
        elif isinstance(example, dict) and {"seq", "kind", "at", "total"} <= example.keys():
            events.append(example)
    assert events, "no event examples"
    for event in events:
        text = json.dumps(event, ensure_ascii=False)
        check_example(protocol.Event, text)
        decoded = msgspec.json.decode(text.encode(), type=protocol.Event)
        assert decoded.kind in protocol.EVENT_KINDS, f"unknown kind {decoded.kind}"
        if decoded.kind.startswith("comment."):
            assert decoded.comment is not None and decoded.session is None, event
            public = decoded.comment.status in protocol.PUBLIC_STATES
            redacted = decoded.comment.body is None and decoded.comment.author is None
            assert public != redacted, (
                f"comment {decoded.comment.id}: redaction does not fit status"
            )
        elif decoded.kind == "helpful.counts":  # counts of several comments, no state
            assert decoded.helpful and decoded.session is None and decoded.comment is None, event
        else:
            assert decoded.session is not None and decoded.comment is None, event
