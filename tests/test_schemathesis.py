"""The HTTP API against its own OpenAPI description (``/openapi.json``, ``server/openapi.py``).

1. :func:`test_openapi_describes_every_route_fully`: every route the server answers
   (``server.app.routes()``, each method but ``HEAD``; not the pages mount nor the feed) is
   described, with every path parameter of its template; with a request body exactly where its
   handler reads one (its own ``read_json(request, Kind)`` names the schema; a moderator's
   optional ``reason`` is an optional body); with each success status its handler answers and a
   JSON schema for it (and ``text/csv`` where it can answer CSV); and nothing is described that
   is not served. (This strengthens ``test_api.py::test_openapi_describes_every_http_route``,
   which checks that each method is there.)
2. :func:`test_api_conforms_to_its_description`: Schemathesis (its Hypothesis strategies, valid
   and invalid requests) for every operation of the description served live by a real uvicorn
   server in this process (on its own loop and thread), as an admin for every event, with path
   parameters that name real objects of a fixture board about half the time (its event and
   session; a comment published, replied to, removed and held; an author), checking that no
   answer is a 5xx (``not_a_server_error``) and that every answer matches its described schema
   (``response_schema_conformance``). ``SCHEMATHESIS_EXAMPLES`` examples per operation (20 by
   default): about 30 s for the 36 operations, 50-75 s for the whole file on this 2-core
   machine (the more, the busier it is with other runs). Each test prints the statuses it got
   (``pytest -s``).

Findings (all fixed since) are kept as minimal reproductions at the end, as regression tests;
the Schemathesis run excuses no 5xx.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server import endpoints, moderator_endpoints
from server.app import routes
from server.config import Settings

from .conftest import Board, make_token
from .model import LoopThread
from .servers import InProcessServer

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "backchannel-hypothesis")

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "20"))
ADMIN = make_token("admin", "*", sub="schemathesis-admin", name="Schemathesis")


# --- A live server on its own loop, and a board to aim at ----------------------------------------


@dataclass
class Live:
    url: str
    board: dict[str, list[str]]
    """Real values for each path parameter: event, slug, comment_id, author_id."""


async def start(settings: Settings) -> InProcessServer:
    return await InProcessServer(settings).start()


def build_board(url: str) -> dict[str, list[str]]:
    """An event with a session holding a comment in each state, a reply, a report and a flag."""
    suffix = uuid.uuid4().hex[:8]
    event, slug = f"st-{suffix}", f"st-board-{suffix}"
    admin = {"Authorization": f"Bearer {ADMIN}"}
    author = {"Authorization": f"Bearer {make_token('attendee', '*', name='Ana')}"}
    reporter = {"Authorization": f"Bearer {make_token('attendee', '*', name='Rui')}"}
    with httpx.Client(base_url=url, timeout=60) as http:

        def call(method: str, path: str, headers: dict[str, str], **kw: Any) -> Any:
            response = http.request(method, path, headers=headers, **kw)
            assert response.status_code < 300, (method, path, response.text)
            return response.json()

        call("POST", "/v1/events", admin, json={"slug": event, "title": "Schemathesis"})
        call("POST", f"/v1/events/{event}/sessions", admin, json={"slug": slug, "title": "Board"})
        post = f"/v1/sessions/{slug}/comments"
        top = call("POST", post, author, json={"body": "A top-level comment"})["comment"]
        reply = call("POST", post, author, json={"body": "A reply", "parent_id": top["id"]})
        gone = call("POST", post, author, json={"body": "Removed later"})["comment"]
        call("POST", f"/v1/comments/{gone['id']}/remove", admin)
        held = call("POST", post, author, json={"body": "My notes: www.example.com/notes"})
        assert held["comment"]["status"] == "held"
        call("POST", f"/v1/comments/{top['id']}/report", reporter, json={"reason": "other"})
        author_id = top["author"]["id"]
        path = f"/v1/events/{event}/authors/{author_id}/sanctions"
        call("POST", path, admin, json={"kind": "flag"})
    ids = [top["id"], reply["comment"]["id"], gone["id"], held["comment"]["id"]]
    return {
        "event": [event],
        "slug": [slug],
        "comment_id": [str(i) for i in ids],
        "author_id": [str(author_id)],
    }


@pytest.fixture(scope="module")
def live(make_settings: Callable[..., Settings]) -> Iterator[Live]:
    runner = LoopThread()
    settings = make_settings(
        posts_per_minute=0, address_posts_per_minute=0, address_connects_per_minute=0
    )
    server = runner.run(start(settings))
    try:
        yield Live(server.url, build_board(server.url))
    finally:
        runner.run(server.stop())
        runner.close()


@pytest.fixture(scope="module")
def description(live: Live) -> Any:
    """The live ``/openapi.json``, as Schemathesis reads it, authenticated as an admin for every
    event, each path parameter naming a real object of the board half the time."""
    config = schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {ADMIN}"},
            "generation": {"database": "none"},
        }
    )
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json", config=config)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
        if not path_parameters:
            return st.just(path_parameters)
        choices = {
            name: st.sampled_from(live.board[name]) | st.just(value)
            for name, value in path_parameters.items()
            if name in live.board
        }
        return st.fixed_dictionaries(choices).map(lambda real: {**path_parameters, **real})

    return schema


# --- Every route is described ---------------------------------------------------------------------


def document() -> dict[str, Any]:
    from server.openapi import document as build

    return build()


def handler_functions(handler: Callable[..., Any]) -> list[Callable[..., Any]]:
    """The handler and the helpers of its own module it calls (transitively): where its body is
    read and its response built."""
    found, todo = [], [handler]
    while todo:
        function = todo.pop()
        if function in found:
            continue
        found.append(function)
        module = inspect.getmodule(function)
        for name in re.findall(r"\b(\w+)\(", inspect.getsource(function)):
            helper = getattr(module, name, None)
            if (
                inspect.iscoroutinefunction(helper)
                and helper.__module__ == function.__module__
                and name not in ("read_json", "action_reason")
            ):
                todo.append(helper)
    return found


def arguments_of(source: str, call: str) -> list[str]:
    """The argument text of each ``call(...)`` in ``source``."""
    found = []
    for match in re.finditer(re.escape(call) + r"\(", source):
        end, depth = match.end(), 1
        while depth:
            depth += {"(": 1, ")": -1}.get(source[end], 0)
            end += 1
        found.append(source[match.end() : end - 1])
    return found


@dataclass
class Handled:
    body: str
    """The wire type the body is read as (``read_json(request, Kind)``), or ""."""
    body_optional: bool
    statuses: set[str]
    """The success statuses of its ``JSONResponse`` (200 unless one is given)."""
    csv: bool
    """It can answer CSV (``?format=csv``)."""


def handled(handler: Callable[..., Any]) -> Handled:
    result = Handled("", True, set(), False)
    for function in handler_functions(handler):
        source = inspect.getsource(function)
        kinds = re.findall(r"read_json\(request, (\w+)\)", source)
        if kinds and not result.body:
            result.body, result.body_optional = kinds[0], False
        elif "action_reason(request)" in source and not result.body:
            result.body, result.body_optional = "ModeratorAction", True
        for arguments in arguments_of(source, "JSONResponse"):
            result.statuses |= set(re.findall(r"\b(2\d\d)\b", arguments)) or {"200"}
        result.csv |= "csv_response(" in source
    result.statuses = result.statuses or {"200"}
    return result


def description_problems() -> list[str]:
    """What ``/openapi.json`` gets wrong or leaves out about the routes the server answers."""
    doc = document()
    problems, served = [], set()
    for route in routes():
        if not isinstance(route, Route):
            continue  # the pages (a Mount) and the feed (a WebSocketRoute)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            where = f"{method} {route.path}"
            served.add((method.lower(), route.path))
            operation = doc["paths"].get(route.path, {}).get(method.lower())
            if operation is None:
                problems.append(f"{where}: not described")
                continue
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            for name in sorted(set(re.findall(r"{(\w+)}", route.path)) - declared):
                problems.append(f"{where}: path parameter {name} not declared")
            does = handled(route.endpoint)
            request = operation.get("requestBody")
            if does.body and request is None:
                problems.append(f"{where}: reads a {does.body} body, none described")
            elif does.body:
                schema = request["content"]["application/json"]["schema"]
                if schema != {"$ref": f"#/components/schemas/{does.body}"}:
                    problems.append(f"{where}: reads a {does.body}, described as {schema}")
                if request["required"] is does.body_optional:
                    problems.append(f"{where}: body required is {request['required']}")
            elif request is not None:
                problems.append(f"{where}: reads no body, one is described")
            described = {s for s in operation["responses"] if s.startswith("2")}
            for status in sorted(does.statuses - described):
                problems.append(f"{where}: answers {status}, not described")
            for status in sorted(described):
                content = operation["responses"][status].get("content", {})
                if not content.get("application/json", {}).get("schema"):
                    problems.append(f"{where}: no JSON schema for {status}")
                if does.csv and "text/csv" not in content:
                    problems.append(f"{where}: answers text/csv, not described")
    described_ops = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    problems += [f"{m.upper()} {p}: described, not served" for m, p in described_ops - served]
    return problems


SANCTIONS = "/v1/events/{event}/authors/{author_id}/sanctions"
KNOWN = {
    "finding 2": [
        f"POST {SANCTIONS}: path parameter author_id not declared",
        f"DELETE {SANCTIONS}: path parameter author_id not declared",
    ],
    "finding 3": [
        "POST /v1/sessions/{slug}/comments: answers 200, not described",
        "POST /v1/comments/{comment_id}/report: answers 200, not described",
    ],
    "finding 4": [
        "GET /v1/events/{event}/audit: answers text/csv, not described",
        "GET /v1/sessions/{slug}/export: answers text/csv, not described",
    ],
}


def test_openapi_describes_every_route_fully() -> None:
    """Every route, with its path parameters, its body and its success responses."""
    assert endpoints and moderator_endpoints  # where the handlers read above live
    problems = description_problems()
    assert problems == [], "\n".join(problems)


def test_openapi_declares_author_id() -> None:
    """Fix: in ``server/openapi.document``, declare every ``{name}`` of the path (``author_id``
    included, ``type: integer``) instead of a fixed list of three names."""
    assert not set(KNOWN["finding 2"]) & set(description_problems())


def test_openapi_describes_200_of_retries() -> None:
    """Fix: let ``Operation`` take several success statuses (``statuses=(201, 200)`` for posting
    and reporting), each described with the same response schema."""
    assert not set(KNOWN["finding 3"]) & set(description_problems())


def test_openapi_describes_csv_answers() -> None:
    """Fix: describe ``text/csv`` (a string schema) beside ``application/json`` for the audit
    log and the export, and ``format`` as ``enum: [json, csv]``."""
    assert not set(KNOWN["finding 4"]) & set(description_problems())


# --- Schemathesis ---------------------------------------------------------------------------------

# The operations, known before the server starts: the description is built from code. Those
# that can stop the board's session from taking posts (a window, closing) run last.
LAST = ("PATCH /v1/sessions/{slug}", "POST /v1/sessions/{slug}/close")
OPERATIONS = sorted(
    (
        f"{method.upper()} {path}"
        for path, operations in document()["paths"].items()
        for method in operations
    ),
    key=lambda operation: (operation in LAST, operation),
)
INT64 = 2**63 - 1


def scalars(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from scalars(item)
    elif isinstance(value, list):
        for item in value:
            yield from scalars(item)
    else:
        yield value


def known_cause(case: Any) -> str | None:
    """The finding a 5xx answer to ``case`` is already reported as (each has a strict xfail
    reproduction below), or None."""
    sent = [case.body, case.path_parameters, case.query]
    values = [v for part in sent if part is not None for v in scalars(part)]
    if any(isinstance(v, str) and "\x00" in v for v in values):
        return "finding 5"
    if any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > INT64 for v in values):
        return "finding 6"
    if any(isinstance(v, str) and v.isdigit() and not v.isdecimal() for v in values):
        return "finding 8"
    return None


EXCUSED: Counter[str] = Counter()


def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """``not_a_server_error``, counting 5xx that a fixed finding would explain."""
    cause = known_cause(case) if response.status_code >= 500 else None
    if cause is not None:
        EXCUSED[cause] += 1  # a fixed finding come back: not excused
    return not_a_server_error(ctx, response, case)


# Schemathesis's own pytest loader for a fixture (``schemathesis.pytest.from_fixture``) reads
# ``request.node._nodeid``, which pytest 9 no longer has; its strategies, used with ``given``,
# do the same work.
@pytest.mark.parametrize("operation", OPERATIONS)
def test_api_conforms_to_its_description(description: Any, operation: str) -> None:
    """Valid and invalid requests (Schemathesis's positive and negative modes) for one
    operation: never a 5xx, and every answer as described."""
    method, path = operation.split(" ", 1)
    api_operation = description[path][method]
    cases = st.one_of(
        api_operation.as_strategy(GenerationMode.POSITIVE),
        api_operation.as_strategy(GenerationMode.NEGATIVE),
    )
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(case=cases)
    def answered_as_described(case: Any) -> None:
        response = case.call_and_validate(checks=[no_server_error, response_schema_conformance])
        statuses[response.status_code] += 1

    EXCUSED.clear()
    answered_as_described()
    print(operation, dict(sorted(statuses.items())), "5xx of", dict(EXCUSED) or "none")


# --- Findings, as minimal reproductions -----------------------------------------------------------

NUL = "a\u0000b"
BIG = INT64 + 1


def fresh_slug() -> str:
    return f"nul-{uuid.uuid4().hex[:8]}"


NUL_REQUESTS = [
    ("POST", "/v1/events", lambda: {"slug": fresh_slug(), "title": NUL}),
    ("POST", "/v1/events/{event}/sessions", lambda: {"slug": fresh_slug(), "title": NUL}),
    (
        "POST",
        "/v1/events/{event}/sessions",
        lambda: {"slug": fresh_slug(), "title": "t", "speakers": [NUL]},
    ),
    ("PATCH", "/v1/sessions/{slug}", lambda: {"prompt": NUL}),
    ("PATCH", "/v1/sessions/{slug}", lambda: {"prompt": "p", "reason": NUL}),
    ("POST", "/v1/sessions/{slug}/comments", lambda: {"body": "hi", "client_key": NUL}),
    ("POST", "/v1/comments/{comment_id}/remove", lambda: {"reason": NUL}),
    ("POST", "/v1/comments/{comment_id}/report", lambda: {"reason": "other", "detail": NUL}),
    ("PATCH", "/v1/events/{event}/rules", lambda: {"suspect_words": [NUL]}),
    ("PATCH", "/v1/events/{event}/rules", lambda: {"support_message": NUL}),
    ("POST", SANCTIONS, lambda: {"kind": "flag", "reason": NUL}),
]


async def send(board: Board, method: str, template: str, body: Any) -> httpx.Response:
    """One request as the admin, about a comment just posted on ``board``. These run on the
    suite's own server, in the test's thread: a server in another thread of this process logging
    a 500's traceback while pytest formats one can trip CPython 3.11.7's AST recursion check."""
    async with board.api("attendee") as author:
        comment = (await author.post(board.session, "A comment"))["comment"]
    names = {
        "event": board.event,
        "slug": board.session,
        "comment_id": comment["id"],
        "author_id": comment["author"]["id"],
    }
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=board.url, headers=headers, timeout=60) as http:
        return await http.request(method, template.format(**names), json=body)


@pytest.mark.parametrize(
    ("method", "template", "body"),
    NUL_REQUESTS,
    ids=[f"{m} {t} {'+'.join(sorted(b()))}" for m, t, b in NUL_REQUESTS],
)
async def test_text_with_nul_is_refused(
    board: Board, method: str, template: str, body: Callable[[], Any]
) -> None:
    """Fix: refuse NUL in ``read_json`` (400 ``invalid_field``; PostgreSQL text cannot hold
    it), or give every free-text field of the wire types a pattern that excludes it."""
    response = await send(board, method, template, body())
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize(
    "path", ["/v1/sessions/a%00b", "/v1/sessions/a%00b/comments", "/v1/events/a%00b"]
)
async def test_slug_with_nul_is_not_found(board: Board, path: str) -> None:
    """Fix: check slugs of the path against the slug pattern before any query (``session_of``,
    ``Store.session`` and ``Store.event``): anything else is ``unknown_session`` or
    ``unknown_event``, 404 (4404 on the feed)."""
    async with httpx.AsyncClient(base_url=board.url, timeout=60) as http:
        response = await http.get(path)
    assert response.status_code == 404, response.text


async def test_feed_of_slug_with_nul_is_not_found(board: Board) -> None:
    url = board.url.replace("http://", "ws://") + "/v1/sessions/a%00b/live?since=0"
    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404, closed.value


@pytest.mark.parametrize(
    ("method", "template", "body"),
    [
        ("POST", "/v1/sessions/{slug}/comments", {"body": "hi", "parent_id": BIG}),
        ("POST", "/v1/events/{event}/queue/approve", {"ids": [BIG]}),
        ("POST", "/v1/events/{event}/queue/reject", {"ids": [BIG]}),
    ],
    ids=["parent_id", "approve ids", "reject ids"],
)
async def test_ids_beyond_64_bits_are_refused(
    board: Board, method: str, template: str, body: dict[str, Any]
) -> None:
    """Fix: an ``Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]`` in ``protocol.py`` for
    ``NewComment.parent_id`` and ``BulkReview.ids`` (400 ``invalid_field``, and the bounds are
    then described)."""
    response = await send(board, method, template, body)
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/comments/%C2%B9", "bad_comment_id"),
        ("/v1/comments/%C2%B9/replies", "bad_comment_id"),
        ("/v1/sessions/{slug}/comments?before=%C2%B2", "bad_before"),
        ("/v1/admin/sessions?limit=%C2%B3", "bad_limit"),
    ],
)
async def test_superscript_digits_are_refused(board: Board, path: str, code: str) -> None:
    """Fix: in ``endpoints.int_param`` (and ``feed._since``), accept ASCII digits only:
    ``text.isascii() and text.isdigit()`` (or ``re.fullmatch(r"[0-9]{1,19}", text)``)."""
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=board.url, headers=headers, timeout=60) as http:
        response = await http.get(path.format(slug=board.session))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code


async def test_feed_since_superscript_is_refused(board: Board) -> None:
    url = board.url.replace("http://", "ws://") + f"/v1/sessions/{board.session}/live?since=%C2%B9"
    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400, closed.value
