"""A local API Gateway HTTP API: real HTTP on loopback in front of Lambda
handlers called in-process with payload 2.0 events, with API Gateway's route
selection, JWT authorizer, response rules and CORS."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote

from local.jwt_issuer import InvalidToken, LocalIssuer
from local.lambda_runtime import LambdaContext
from local.playback import LoopbackHttpServer, LoopbackService, requested_headers
from local.template import ACCOUNT_ID, arn

LOGGER = logging.getLogger("local.apigw")

DEFAULT_ROUTE = "$default"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_TEXT_TYPES = (
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
)

Handler = Callable[[dict[str, Any], LambdaContext], Any]


@dataclasses.dataclass(frozen=True)
class Route:
    """A Lambda integration: the handler, its function's name and timeout,
    and whether the JWT authorizer guards it."""

    handler: Handler
    function_name: str = "local-function"
    authorize: bool = True
    timeout_seconds: float = 30.0


@dataclasses.dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclasses.dataclass(frozen=True)
class _CompiledRoute:
    key: str
    method: str
    segments: tuple[str, ...]
    route: Route

    def match(self, method: str, segments: Sequence[str]) -> dict[str, str] | None:
        if self.method not in ("ANY", method):
            return None
        params: dict[str, str] = {}
        for index, pattern in enumerate(self.segments):
            if pattern.startswith("{") and pattern.endswith("+}"):
                rest = segments[index:]
                if not rest:
                    return None
                params[pattern[1:-2]] = unquote("/".join(rest))
                return params
            if index >= len(segments):
                return None
            if pattern.startswith("{") and pattern.endswith("}"):
                if not segments[index]:
                    return None
                params[pattern[1:-1]] = unquote(segments[index])
            elif pattern != segments[index]:
                return None
        return params if len(segments) == len(self.segments) else None

    def rank(self) -> tuple[tuple[int, ...], int]:
        """Lower is more specific: literal < {param} < {greedy+} per segment,
        then an exact method before ANY."""
        kinds = tuple(
            2 if s.endswith("+}") else 1 if s.startswith("{") else 0
            for s in self.segments
        )
        return kinds, 1 if self.method == "ANY" else 0


def compile_routes(
    routes: Mapping[str, Route | Handler],
) -> tuple[list[_CompiledRoute], Route | None]:
    """Parse the route keys once, refusing a malformed one at start-up."""
    compiled: list[_CompiledRoute] = []
    default: Route | None = None
    for key, target in routes.items():
        route = target if isinstance(target, Route) else Route(handler=target)
        if key == DEFAULT_ROUTE:
            default = route
            continue
        method, _, path = key.partition(" ")
        if method not in (*_METHODS, "ANY") or not path.startswith("/"):
            raise ValueError(
                f"route key {key!r} must be '$default' or 'METHOD /path', "
                "e.g. 'GET /videos/{id}'"
            )
        compiled.append(_CompiledRoute(key, method, tuple(_split_path(path)), route))
    return compiled, default


class LocalHttpApi(LoopbackService):
    """An HTTP API on ``host:port`` (a free port when 0)."""

    def __init__(
        self,
        routes: Mapping[str, Route | Handler],
        *,
        issuer: LocalIssuer | None,
        allowed_origins: Sequence[str],
        allow_headers: Sequence[str] = ("authorization", "content-type"),
        allow_methods: Sequence[str] = ("GET", "POST", "PUT", "PATCH", "DELETE"),
        expose_headers: Sequence[str] = (),
        max_age_seconds: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._routes, self._default = compile_routes(routes)
        self._issuer = issuer
        self._allowed_origins = tuple(allowed_origins)
        self._allow_headers = tuple(h.lower() for h in allow_headers)
        self._allow_methods = tuple(m.upper() for m in allow_methods)
        self._expose_headers = tuple(expose_headers)
        self._max_age_seconds = max_age_seconds
        self._host = host
        self.api_id = secrets.token_hex(5)
        handler = type("Handler", (_ApiHandler,), {"api": self})
        self._server = LoopbackHttpServer((host, port), handler, name="local-apigw")

    # The service's request pipeline, independent of the HTTP server.

    def handle(
        self,
        *,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        source_ip: str = "127.0.0.1",
    ) -> HttpResponse:
        request_id = base64.b64encode(secrets.token_bytes(11)).decode()
        header_map = _joined((name.lower(), value) for name, value in headers)
        origin = header_map.get("origin")
        if (
            method == "OPTIONS"
            and origin
            and "access-control-request-method" in header_map
        ):
            return self._preflight(header_map, request_id)
        raw_path, _, raw_query = target.partition("?")
        segments = _split_path(raw_path)
        found = self._select(method, segments)
        if found is None:
            return self._respond(404, {"message": "Not Found"}, origin, request_id)
        compiled, path_params = found
        route = compiled.route
        jwt_context: dict[str, Any] | None = None
        if route.authorize and self._issuer is not None:
            jwt_context = _authorize(self._issuer, header_map.get("authorization"))
            if jwt_context is None:
                return self._respond(
                    401,
                    {"message": "Unauthorized"},
                    origin,
                    request_id,
                    extra=[("www-authenticate", 'Bearer error="invalid_token"')],
                )
        event = self._event(
            route_key=compiled.key,
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            header_map=header_map,
            path_params=path_params,
            body=body,
            source_ip=source_ip,
            request_id=request_id,
            jwt_context=jwt_context,
        )
        return self._invoke(route, event, origin, request_id)

    def _select(
        self, method: str, segments: Sequence[str]
    ) -> tuple[_CompiledRoute, dict[str, str]] | None:
        candidates = [
            (compiled.rank(), compiled, params)
            for compiled in self._routes
            if (params := compiled.match(method, segments)) is not None
        ]
        if candidates:
            _, best, params = min(candidates, key=lambda c: c[0])
            return best, params
        if self._default is not None:
            return _CompiledRoute(DEFAULT_ROUTE, "ANY", (), self._default), {}
        return None

    def _event(
        self,
        *,
        route_key: str,
        method: str,
        raw_path: str,
        raw_query: str,
        header_map: dict[str, str],
        path_params: dict[str, str],
        body: bytes,
        source_ip: str,
        request_id: str,
        jwt_context: dict[str, Any] | None,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        cookie_header = header_map.pop("cookie", "")
        domain = header_map.get("host", self._host)
        headers = {
            **header_map,
            "x-forwarded-for": source_ip,
            "x-forwarded-port": domain.rpartition(":")[2] or "80",
            "x-forwarded-proto": "http",
            "x-amzn-trace-id": (
                f"Root=1-{int(now.timestamp()):08x}-{secrets.token_hex(12)}"
            ),
        }
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": self.api_id,
                "domainName": domain,
                "domainPrefix": domain.split(".", 1)[0],
                "http": {
                    "method": method,
                    "path": raw_path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": source_ip,
                    "userAgent": header_map.get("user-agent", ""),
                },
                "requestId": request_id,
                "routeKey": route_key,
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "isBase64Encoded": False,
        }
        cookies = [c.strip() for c in cookie_header.split(";") if c.strip()]
        if cookies:
            event["cookies"] = cookies
        if raw_query:
            event["queryStringParameters"] = _joined(
                parse_qsl(raw_query, keep_blank_values=True)
            )
        if path_params:
            event["pathParameters"] = path_params
        if jwt_context is not None:
            event["requestContext"]["authorizer"] = {"jwt": jwt_context}
        if body:
            text = _as_text(body, header_map.get("content-type", ""))
            if text is None:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
            else:
                event["body"] = text
        return event

    def _invoke(
        self, route: Route, event: dict[str, Any], origin: str | None, request_id: str
    ) -> HttpResponse:
        context = LambdaContext(
            function_name=route.function_name,
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + route.timeout_seconds,
            invoked_function_arn=arn("lambda", f"function:{route.function_name}"),
        )
        try:
            status, headers, body = _lambda_response(route.handler(event, context))
        except Exception:
            LOGGER.exception(
                "%s failed on %s", route.function_name, event.get("routeKey")
            )
            return self._respond(
                500, {"message": "Internal Server Error"}, origin, request_id
            )
        kept = [
            (n, v) for n, v in headers if not n.lower().startswith("access-control-")
        ]
        return HttpResponse(
            status, kept + self._cors_headers(origin) + _id_header(request_id), body
        )

    def _respond(
        self,
        status: int,
        body: Any,
        origin: str | None,
        request_id: str,
        *,
        extra: Sequence[tuple[str, str]] = (),
    ) -> HttpResponse:
        headers = [("content-type", "application/json"), *extra]
        return HttpResponse(
            status,
            headers + self._cors_headers(origin) + _id_header(request_id),
            json.dumps(body).encode(),
        )

    def _preflight(
        self, header_map: Mapping[str, str], request_id: str
    ) -> HttpResponse:
        origin = header_map["origin"]
        method = header_map["access-control-request-method"].upper()
        requested = requested_headers(header_map.get("access-control-request-headers"))
        headers = _id_header(request_id)
        allowed = (
            self._allow_origin(origin) is not None
            and method in self._allow_methods
            and all(h in self._allow_headers for h in requested)
        )
        if allowed:
            headers = [
                *self._cors_headers(origin),
                ("access-control-allow-methods", ",".join(self._allow_methods)),
                ("access-control-allow-headers", ",".join(self._allow_headers)),
                *headers,
            ]
            if self._max_age_seconds is not None:
                headers.append(("access-control-max-age", str(self._max_age_seconds)))
        return HttpResponse(204, headers, b"")

    def _cors_headers(self, origin: str | None) -> list[tuple[str, str]]:
        allowed = self._allow_origin(origin) if origin else None
        if allowed is None:
            return []
        headers = [("access-control-allow-origin", allowed), ("vary", "origin")]
        if self._expose_headers:
            headers.append(
                ("access-control-expose-headers", ",".join(self._expose_headers))
            )
        return headers

    def _allow_origin(self, origin: str) -> str | None:
        if "*" in self._allowed_origins:
            return "*"
        return origin if origin in self._allowed_origins else None


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: LocalHttpApi

    def _serve(self) -> None:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            # API Gateway takes chunked bodies; no client of ours sends one.
            self.send_error(411, "send a Content-Length")
            return
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return
        body = self.rfile.read(length) if length > 0 else b""
        response = self.api.handle(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
        )
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        LOGGER.debug("%s " + format, self.client_address[0], *args)


def _authorize(issuer: LocalIssuer, authorization: str | None) -> dict[str, Any] | None:
    """The authorizer's ``jwt`` context, or None for a 401."""
    if not authorization:
        return None
    scheme, _, rest = authorization.strip().partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else authorization.strip()
    try:
        claims = issuer.verify(token)
    except InvalidToken as error:
        LOGGER.info("JWT authorizer refused a token: %s", error)
        return None
    scope = claims.get("scope")
    return {
        "claims": {name: _claim_text(value) for name, value in claims.items()},
        "scopes": scope.split() if isinstance(scope, str) else None,
    }


def _lambda_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Payload 2.0: a dict with statusCode is a response; anything else is
    the JSON body of a 200."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return 200, [("content-type", "application/json")], json.dumps(result).encode()
    status = result["statusCode"]
    if (
        isinstance(status, bool)
        or not isinstance(status, int)
        or not 100 <= status < 600
    ):
        raise ValueError(f"statusCode {status!r} is not an HTTP status")
    headers = [(str(n), str(v)) for n, v in (result.get("headers") or {}).items()]
    headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
    body = result.get("body")
    if body is None:
        return status, headers, b""
    if not isinstance(body, str):
        raise ValueError(f"body must be a string, got {type(body).__name__}")
    if result.get("isBase64Encoded"):
        return status, headers, base64.b64decode(body)
    return status, headers, body.encode()


def _split_path(path: str) -> list[str]:
    return path.strip("/").split("/") if path.strip("/") else []


def _joined(pairs: Any) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def _as_text(body: bytes, content_type: str) -> str | None:
    media_type = content_type.split(";", 1)[0].strip().lower()
    textual = (
        media_type.startswith("text/")
        or media_type in _TEXT_TYPES
        or media_type.endswith(("+json", "+xml"))
    )
    if not textual:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _claim_text(value: Any) -> str:
    """API Gateway hands claims to the integration as strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(v) for v in value) + "]"
    return str(value)


def _id_header(request_id: str) -> list[tuple[str, str]]:
    return [("apigw-requestid", request_id)]
