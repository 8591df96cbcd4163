"""The platform's HTTP API on loopback, for end-to-end tests over real HTTP.

Table and buckets live on the session's moto server; "S3" is the gateway that
checks signatures in front of moto, as real S3 would; the local HTTP API
serves the upload and videos functions, each with its own environment, behind
a JWT authorizer with a local issuer. Optionally a :class:`FaultProxy` stands
between the clients and the gateway to fail chosen requests.
"""

from __future__ import annotations

import enum
import http.client
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from lambdas.upload_api import app as upload_app
from lambdas.videos_api import app as videos_app
from local.apigw import Handler, LocalHttpApi, Route
from local.jwt_issuer import LocalIssuer
from local.lambda_runtime import LambdaContext
from local.motoserver import SETUP_CREDENTIALS, MotoEndpoint
from local.s3_gateway import S3Gateway
from tests.conftest import client, make_bucket, make_table
from vod.settings import Env

MIB = 1024 * 1024
ORIGIN = "http://localhost:3000"
OWNER = "a7d3c1e0-4b5f-4e6a-9c8d-7e6f5a4b3c2d"
OTHER = "b8e4d2f1-5c6a-4f7b-8d9e-8f7a6b5c4d3e"
TIMEOUT = 30


class Session:
    """A signed-in user of the API."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.http.request(method, self.base + path, timeout=TIMEOUT, **kwargs)

    def ok(self, method: str, path: str, **kwargs):
        response = self.request(method, path, **kwargs)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/json"
        return response.json()


#: ``os.environ`` is process-wide: calls of handlers with an environment of
#: their own take turns, as a Lambda execution environment serves one
#: request at a time.
_ENVIRONMENT_LOCK = threading.Lock()


def in_environment(handler: Handler, env: Mapping[str, str]) -> Handler:
    """``handler`` called in process with its function's environment applied,
    so that it sees its own variables whenever it reads them, its cold start
    included."""

    def call(event: dict[str, Any], context: LambdaContext) -> Any:
        with _ENVIRONMENT_LOCK:
            saved = {name: os.environ.get(name) for name in env}
            os.environ.update(env)
            try:
                return handler(event, context)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

    return call


@dataclass
class ApiStack:
    api: LocalHttpApi
    gateway: S3Gateway
    #: What clients reach as S3: the gateway, or the fault proxy before it.
    s3_url: str
    proxy: FaultProxy | None
    s3: Any
    table: str
    source: str
    output: str
    owner: Session
    other: Session


@contextmanager
def serve_api(
    moto: MotoEndpoint,
    *,
    max_upload: int,
    upload_env: Mapping[str, str] | None = None,
    gateway_clock: Callable[[], datetime] | None = None,
    fault_proxy: bool = False,
) -> Iterator[ApiStack]:
    """Needs the ``aws_env`` fixture, so that the functions' clients reach
    moto. ``upload_env`` adds to the upload function's environment."""
    table = make_table(moto)
    source, output = make_bucket(moto, "source"), make_bucket(moto, "output")
    issuer = LocalIssuer()
    clock: dict[str, Any] = {} if gateway_clock is None else {"clock": gateway_clock}
    with ExitStack() as stack:
        gateway = stack.enter_context(
            S3Gateway(
                upstream=moto.url,
                secrets={
                    SETUP_CREDENTIALS["AWS_ACCESS_KEY_ID"]: SETUP_CREDENTIALS[
                        "AWS_SECRET_ACCESS_KEY"
                    ]
                },
                **clock,
            )
        )
        proxy = stack.enter_context(FaultProxy(gateway.url)) if fault_proxy else None
        s3_url = proxy.url if proxy else gateway.url
        common = {
            Env.TABLE_NAME: table,
            Env.SOURCE_BUCKET: source,
            "AWS_ENDPOINT_URL_S3": s3_url,
        }
        routes = {
            **{
                key: Route(
                    in_environment(
                        upload_app.handler,
                        {
                            **common,
                            Env.MAX_UPLOAD_BYTES: str(max_upload),
                            **(upload_env or {}),
                        },
                    ),
                    function_name="upload",
                )
                for key in upload_app.ROUTE_KEYS
            },
            **{
                key: Route(
                    in_environment(
                        videos_app.handler, {**common, Env.OUTPUT_BUCKET: output}
                    ),
                    function_name="videos",
                )
                for key in videos_app.ROUTE_KEYS
            },
        }
        upload_app.api.cache_clear()
        videos_app.api.cache_clear()
        stack.callback(upload_app.api.cache_clear)
        stack.callback(videos_app.api.cache_clear)
        api = stack.enter_context(
            LocalHttpApi(routes, issuer=issuer, allowed_origins=[ORIGIN])
        )
        yield ApiStack(
            api=api,
            gateway=gateway,
            s3_url=s3_url,
            proxy=proxy,
            s3=client(moto, "s3"),
            table=table,
            source=source,
            output=output,
            owner=Session(api.url, issuer.mint(OWNER)),
            other=Session(api.url, issuer.mint(OTHER)),
        )


class Fault(enum.Enum):
    PASS = "pass"
    #: Answer 500 InternalError, as S3 does now and then.
    ERROR = "error"
    #: Read the request, then close the connection without an answer.
    DROP = "drop"
    #: Forward the request only after ``FaultProxy.stall_seconds``.
    STALL = "stall"
    #: Never answer; close when the proxy stops.
    HOLD = "hold"
    #: Forward the request with one byte of its body changed.
    CORRUPT = "corrupt"


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    path: str
    query: dict[str, str]
    #: How many times this (method, path, part number) came, this one included.
    attempt: int

    @property
    def part_number(self) -> int | None:
        number = self.query.get("partNumber")
        return int(number) if number else None


class FaultProxy:
    """An HTTP proxy in front of the S3 gateway that fails the requests
    ``rule`` picks. Bodies are read whole: test parts are a few MiB."""

    def __init__(self, upstream: str, *, stall_seconds: float = 2.0) -> None:
        self.upstream = urlsplit(upstream).netloc
        self.stall_seconds = stall_seconds
        self.rule: Callable[[ProxiedRequest], Fault] = lambda _request: Fault.PASS
        #: Part numbers S3 took, in the order it answered.
        self.stored_parts: list[int] = []
        self.seen: list[tuple[ProxiedRequest, Fault]] = []
        self._attempts: Counter[tuple[str, str, int | None]] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FaultProxy:
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def decide(self, method: str, target: str) -> tuple[ProxiedRequest, Fault]:
        split = urlsplit(target)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        with self._lock:
            identity = (method, split.path, int(query.get("partNumber") or 0) or None)
            self._attempts[identity] += 1
            request = ProxiedRequest(
                method, split.path, query, attempt=self._attempts[identity]
            )
            fault = self.rule(request)
            self.seen.append((request, fault))
        return request, fault

    def stored(self, request: ProxiedRequest) -> None:
        with self._lock:
            if request.part_number is not None:
                self.stored_parts.append(request.part_number)

    def wait_held(self, timeout: float) -> None:
        self._stopping.wait(timeout)


_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "expect"})


def _proxy_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_request(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request, fault = proxy.decide(self.command, self.path)
            if fault is Fault.DROP or fault is Fault.HOLD:
                if fault is Fault.HOLD:
                    proxy.wait_held(TIMEOUT)
                self.close_connection = True
                return
            if fault is Fault.ERROR:
                self._answer(
                    500,
                    [("Content-Type", "application/xml")],
                    b"<Error><Code>InternalError</Code>"
                    b"<Message>We encountered an internal error.</Message></Error>",
                )
                return
            if fault is Fault.STALL:
                time.sleep(proxy.stall_seconds)
            if fault is Fault.CORRUPT and body:
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            upstream = http.client.HTTPConnection(proxy.upstream, timeout=TIMEOUT)
            try:
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in _HOP_BY_HOP
                }
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
            finally:
                upstream.close()
            if response.status == 200 and self.command == "PUT":
                proxy.stored(request)
            kept = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() not in _HOP_BY_HOP
            ]
            try:
                self._answer(response.status, kept, data)
            except OSError:
                self.close_connection = True  # the client gave up waiting

        def _answer(
            self, status: int, headers: list[tuple[str, str]], body: bytes
        ) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() != "content-length" or self.command == "HEAD":
                    self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_request

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
