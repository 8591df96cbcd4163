"""The HTTP edge shared by the upload and videos functions: API Gateway HTTP
API (payload 2.0) events in, JSON responses out.

A route is a plain function ``(service, request) -> JSON-able body``. It
parses and checks its input here, once, with the field readers below; the
services raise the domain errors of ``lambdas.errors`` (invalid, not found,
conflict, limit). ``serve`` turns each into ``{"message": ...}`` with its
status, and anything else into a logged 500, so a client never sees a
traceback.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from lambdas.errors import Conflict, Invalid, LimitReached, NotFound, Refused

LOGGER = logging.getLogger("vod.api")
LOGGER.setLevel(logging.INFO)

#: Field limits shared by the record's writers (create and PATCH).
TITLE_MAX_CHARS = 200
DESCRIPTION_MAX_CHARS = 5000

_JSON_HEADERS = {"content-type": "application/json"}

Service = TypeVar("Service")

#: The status of each kind of refusal.
STATUS_OF: Mapping[type[Refused], int] = {
    Invalid: 400,
    NotFound: 404,
    Conflict: 409,
    LimitReached: 429,
}


class ApiError(Exception):
    """What only the edge answers: no caller (401), no route (404)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class Request:
    """The parts of an HTTP API event a route needs, with the caller resolved."""

    owner: str
    path: Mapping[str, str]
    query: Mapping[str, str]
    body_text: str | None

    def path_param(self, name: str) -> str:
        value = self.path.get(name, "")
        if not value:
            raise Invalid(f"{name} is required in the path")
        return value

    def json_body(self) -> dict[str, Any]:
        """The body as a JSON object; a 400 when it is missing or malformed."""
        if not self.body_text:
            raise Invalid("body is required: send a JSON object")
        try:
            value = json.loads(self.body_text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise Invalid("body is not valid JSON") from None
        if not isinstance(value, dict):
            raise Invalid("body must be a JSON object")
        return value


def parse_event(event: Mapping[str, Any]) -> Request:
    context = event.get("requestContext") or {}
    claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
    owner = claims.get("sub")
    if not isinstance(owner, str) or not owner:
        # The JWT authorizer sits on every route; a call without a subject
        # did not come through it.
        raise ApiError(401, "Unauthorized")
    body = event.get("body")
    if body is not None and event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Invalid("body must be UTF-8 text") from None
    return Request(
        owner=owner,
        path=event.get("pathParameters") or {},
        query=event.get("queryStringParameters") or {},
        body_text=body,
    )


def json_response(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": dict(_JSON_HEADERS),
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def serve(
    event: Mapping[str, Any],
    routes: Mapping[str, Callable[[Service, Request], Any]],
    service: Callable[[], Service],
) -> dict[str, Any]:
    """Dispatch ``event`` on its route key. ``service`` is called only for a
    known route, so a misconfigured function still answers unknown routes."""
    try:
        route = routes.get(str(event.get("routeKey", "")))
        if route is None:
            raise ApiError(404, "Not Found")
        request = parse_event(event)
        return json_response(200, route(service(), request))
    except ApiError as error:
        return json_response(error.status, {"message": error.message})
    except Refused as error:
        status = next(s for kind, s in STATUS_OF.items() if isinstance(error, kind))
        return json_response(status, {"message": error.message})
    except Exception:
        LOGGER.exception("unhandled error on %s", event.get("routeKey"))
        return json_response(500, {"message": "Internal Server Error"})


# Field readers: each names the field in its message, so a client can fix
# the request from the 400 alone.


def required_str(value: object, name: str, *, max_chars: int) -> str:
    text = optional_str(value, name, max_chars=max_chars)
    if text is None:
        raise Invalid(f"{name} is required")
    return text


def optional_str(
    value: object, name: str, *, max_chars: int, allow_blank: bool = False
) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string")
    if not allow_blank and not value.strip():
        raise Invalid(f"{name} must not be empty")
    if len(value) > max_chars:
        raise Invalid(f"{name} must be at most {max_chars} characters")
    return value


def optional_object(value: object, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{name} must be an object")
    return value


def optional_int(value: object, name: str, *, low: int, high: int) -> int | None:
    return None if value is None else to_int(value, name, low=low, high=high)


def to_int(value: object, name: str, *, low: int, high: int) -> int:
    """A JSON integer in ``[low, high]``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not low <= value <= high
    ):
        raise Invalid(f"{name} must be an integer from {low} to {high}")
    return value


def text_int(text: str, name: str, *, low: int, high: int) -> int:
    """An integer written in a path or query string, in ``[low, high]``."""
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()):
        raise Invalid(f"{name} must be an integer from {low} to {high}")
    return to_int(int(digits), name, low=low, high=high)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
