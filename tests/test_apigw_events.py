"""The API Gateway payload 2.0 event fixtures the handler tests run on, and
checks that they are what API Gateway (and so the local adapter) sends.

``api_event`` loads the fixture of a route key and fills in the request:
path and query parameters (with ``rawPath``/``rawQueryString`` to match),
a body, and the caller's ``sub``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from lambdas.upload_api.app import ROUTE_KEYS as UPLOAD_ROUTE_KEYS
from lambdas.videos_api.app import ROUTE_KEYS as VIDEOS_ROUTE_KEYS
from local.apigw import LocalHttpApi
from local.jwt_issuer import LocalIssuer

EVENTS = Path(__file__).parent / "fixtures" / "events"
_KEEP: Any = object()


def _load() -> dict[str, dict[str, Any]]:
    by_route: dict[str, dict[str, Any]] = {}
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        if "routeKey" not in event:
            continue  # another source's event, e.g. an S3 notification
        assert event["routeKey"] not in by_route, f"two fixtures for {path.name}"
        by_route[event["routeKey"]] = event
    return by_route


FIXTURES = _load()


def api_event(
    route_key: str,
    *,
    sub: str | None = _KEEP,
    path: dict[str, str] | None = _KEEP,
    query: dict[str, str] | None = _KEEP,
    body: Any = _KEEP,
    raw_body: str | None = None,
) -> dict[str, Any]:
    """The fixture of ``route_key`` with the given parts replaced; None
    removes a part (``sub=None`` removes the authorizer context)."""
    event = copy.deepcopy(FIXTURES[route_key])
    context = event["requestContext"]
    if sub is None:
        context.pop("authorizer", None)
    elif sub is not _KEEP:
        context["authorizer"]["jwt"]["claims"]["sub"] = sub
    if path is not _KEEP:
        event.pop("pathParameters", None)
        if path:
            event["pathParameters"] = path
    raw_path = route_key.split(" ", 1)[1]
    for name, value in (event.get("pathParameters") or {}).items():
        raw_path = raw_path.replace("{" + name + "}", quote(value, safe=""))
    event["rawPath"] = context["http"]["path"] = raw_path
    if query is not _KEEP:
        event.pop("queryStringParameters", None)
        event["rawQueryString"] = ""
        if query:
            event["queryStringParameters"] = query
            event["rawQueryString"] = urlencode(query, quote_via=quote)
    if body is not _KEEP or raw_body is not None:
        event.pop("body", None)
        text = raw_body if raw_body is not None else None
        if text is None and body is not None:
            text = json.dumps(body)
        if text is not None:
            event["body"] = text
            event["headers"]["content-type"] = "application/json"
            event["headers"]["content-length"] = str(len(text.encode()))
    return event


def test_every_route_key_has_one_fixture():
    assert sorted(FIXTURES) == sorted(UPLOAD_ROUTE_KEYS + VIDEOS_ROUTE_KEYS)


def test_route_keys_are_the_issues_table():
    assert UPLOAD_ROUTE_KEYS == (
        "GET /s3/params",
        "POST /s3/multipart",
        "GET /s3/multipart/{uploadId}",
        "GET /s3/multipart/{uploadId}/{partNumber}",
        "GET /s3/multipart/{uploadId}/batch",
        "POST /s3/multipart/{uploadId}/sign",
        "POST /s3/multipart/{uploadId}/complete",
        "DELETE /s3/multipart/{uploadId}",
        "POST /s3/sign",
    )
    assert VIDEOS_ROUTE_KEYS == (
        "GET /videos",
        "GET /videos/{id}",
        "PATCH /videos/{id}",
        "DELETE /videos/{id}",
        "GET /videos/{id}/captions",
        "PUT /videos/{id}/captions/{lang}",
        "DELETE /videos/{id}/captions/{lang}",
    )


def _shape(value: Any) -> Any:
    """Nested keys and value types, without the values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if k not in _PER_REQUEST}
    if isinstance(value, list):
        return sorted({type(v).__name__ for v in value})
    return type(value).__name__


# Parts that depend on the request or the token rather than on the format.
_PER_REQUEST = {"headers", "claims"}


def test_fixtures_have_the_shape_of_the_local_gateways_events():
    """The fixtures and ``LocalHttpApi`` agree on the payload 2.0 format, so
    handlers tested on one behave the same behind the other."""
    issuer = LocalIssuer()
    seen: list[dict[str, Any]] = []
    api = LocalHttpApi(
        {
            "POST /s3/multipart/{uploadId}/complete": lambda event, _context: (
                seen.append(event)
            )
        },
        issuer=issuer,
        allowed_origins=["http://localhost:3000"],
    )
    fixture = FIXTURES["POST /s3/multipart/{uploadId}/complete"]
    response = api.handle(
        method="POST",
        target=f"{fixture['rawPath']}?{fixture['rawQueryString']}",
        headers=[
            ("Authorization", f"Bearer {issuer.mint('user-1', scope='a b')}"),
            ("Content-Type", "application/json"),
            ("Host", "127.0.0.1:1234"),
        ],
        body=fixture["body"].encode(),
    )
    assert response.status == 200
    assert _shape(seen[0]) == _shape(fixture)
