"""The local playback origin: the stand-in for CloudFront with Origin Access
Control, reading the private output bucket with credentials of its own."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import unquote, urlsplit

from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

CHUNK_SIZE = 256 * 1024
#: Idle keep-alive connections are closed after this long.
CLIENT_TIMEOUT_SECONDS = 30
_EXPOSED = ("Content-Length", "Content-Range", "ETag", "Accept-Ranges")
_PASSED_HEADERS = (
    ("ContentType", "Content-Type"),
    ("ContentRange", "Content-Range"),
    ("ETag", "ETag"),
    ("CacheControl", "Cache-Control"),
    ("ContentEncoding", "Content-Encoding"),
)


class LoopbackHttpServer(ThreadingHTTPServer):
    """A threaded HTTP server that, on :meth:`stop`, also cuts the
    connections it still holds, so that nothing listens or lingers after."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: Callable[..., BaseHTTPRequestHandler],
        *,
        name: str,
    ) -> None:
        super().__init__(address, handler)
        self._name = name
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self._name,
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        with self._connections_lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    log.debug("connection already closed")
        self.server_close()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002
        log.debug("connection from %s failed", client_address, exc_info=True)


def requested_headers(value: str | None) -> list[str]:
    """A preflight's ``Access-Control-Request-Headers``, lower-cased."""
    return [h.strip().lower() for h in (value or "").split(",") if h.strip()]


class LoopbackService:
    """A server of the local run: its URL once made, started and stopped on
    its own or as a context manager."""

    _server: LoopbackHttpServer

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut open connections, and wait for the server."""
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PlaybackReader(LoopbackService):
    """Serves ``bucket`` read-only over HTTP on ``host:port`` (a free port
    when 0) through ``s3``, a boto3 S3 client holding the reader's own
    credentials. ``allowed_origins`` get CORS headers (``*`` allows any)."""

    def __init__(
        self,
        *,
        bucket: str,
        s3: Any,
        allowed_origins: Sequence[str],
        max_age_seconds: int = 3600,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.bucket = bucket
        self.s3 = s3
        self.allowed_origins = tuple(allowed_origins)
        self.max_age_seconds = max_age_seconds
        handler = type("Handler", (_ReaderHandler,), {"reader": self})
        self._server = LoopbackHttpServer((host, port), handler, name="playback-reader")

    def cors_headers(self, origin: str | None) -> list[tuple[str, str]]:
        if not origin:
            return []
        if "*" in self.allowed_origins:
            allowed = "*"
        elif origin in self.allowed_origins:
            allowed = origin
        else:
            return []
        return [
            ("Access-Control-Allow-Origin", allowed),
            ("Access-Control-Expose-Headers", ", ".join(_EXPOSED)),
            ("Vary", "Origin"),
        ]


class _ReaderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = CLIENT_TIMEOUT_SECONDS
    reader: PlaybackReader

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_OPTIONS(self) -> None:
        origin = self.headers.get("Origin")
        method = (self.headers.get("Access-Control-Request-Method") or "").upper()
        requested = requested_headers(
            self.headers.get("Access-Control-Request-Headers")
        )
        allowed = bool(self.reader.cors_headers(origin))
        if not allowed or method not in ("GET", "HEAD") or set(requested) - {"range"}:
            self._send(403, [], b"")
            return
        headers = [
            ("Access-Control-Allow-Methods", "GET, HEAD"),
            ("Access-Control-Max-Age", str(self.reader.max_age_seconds)),
        ]
        if requested:
            headers.append(("Access-Control-Allow-Headers", ", ".join(requested)))
        self._send(204, headers, b"")

    def do_GET(self) -> None:
        self._read(head=False)

    def do_HEAD(self) -> None:
        self._read(head=True)

    def _not_allowed(self) -> None:
        self._send(405, [("Allow", "GET, HEAD, OPTIONS")], b"")

    do_PUT = do_POST = do_DELETE = do_PATCH = _not_allowed

    def _read(self, *, head: bool) -> None:
        key = unquote(urlsplit(self.path).path.lstrip("/"))
        if not key or key.endswith("/"):
            self._send(404, [], b"")
            return
        request: dict[str, Any] = {"Bucket": self.reader.bucket, "Key": key}
        if self.headers.get("Range"):
            request["Range"] = self.headers["Range"]
        if self.headers.get("If-None-Match"):
            request["IfNoneMatch"] = self.headers["If-None-Match"]
        try:
            answer = (
                self.reader.s3.head_object(**request)
                if head
                else self.reader.s3.get_object(**request)
            )
        except ClientError as error:
            self._send_failure(error)
            return
        status = 206 if answer.get("ContentRange") else 200
        headers = [
            (header, str(answer[field]))
            for field, header in _PASSED_HEADERS
            if answer.get(field)
        ]
        headers += [
            ("Accept-Ranges", "bytes"),
            ("Content-Length", str(answer["ContentLength"])),
            *self.reader.cors_headers(self.headers.get("Origin")),
        ]
        if answer.get("LastModified"):
            headers.append(
                (
                    "Last-Modified",
                    self.date_time_string(answer["LastModified"].timestamp()),
                )
            )
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if head:
            return
        body = answer["Body"]
        try:
            while chunk := body.read(CHUNK_SIZE):
                self.wfile.write(chunk)
        finally:
            body.close()

    def _send_failure(self, error: ClientError) -> None:
        """S3's answer as CloudFront passes it on: not modified, missing,
        forbidden or out of range; anything else is a bad gateway."""
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status not in (304, 403, 404, 416):
            log.warning("reading s3://%s failed: %s", self.reader.bucket, error)
            status = 502
        body = b"" if status == 304 else self.responses[status][0].encode()
        self._send(status, [], body)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """An answer without an object: CORS headers are added, so that a
        browser lets the page see the status."""
        self.send_response(status)
        for name, value in headers + self.reader.cors_headers(
            self.headers.get("Origin")
        ):
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
