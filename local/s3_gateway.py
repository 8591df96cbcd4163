"""The local front of S3 and of the JSON APIs: a streaming reverse proxy in
front of moto that enforces what S3 enforces and moto does not; only
path-style requests (what botocore makes for loopback endpoints) are
understood.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import http.client
import io
import logging
import re
import socket
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler
from io import BufferedIOBase
from itertools import chain
from typing import IO, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from moto.s3.responses import ACTION_MAP
from werkzeug.http import is_hop_by_hop_header, parse_options_header
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Event,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)

from local.iam import Authorize, allow_all
from local.playback import LoopbackHttpServer, LoopbackService, requested_headers
from local.service_calls import check_call, refusal
from local.sigv4_verify import (
    S3Error,
    SecretLookup,
    is_query_authenticated,
    verify_header_signed,
    verify_post_policy,
    verify_presigned,
)

log = logging.getLogger(__name__)

#: Bodies move in pieces of this size; no more than one is held at a time.
CHUNK_SIZE = 1024 * 1024
#: S3's limit on the form fields that precede a POST upload's file.
MAX_POST_FIELDS_SIZE = 20 * 1024
#: A POST upload's file stays in memory up to this size, then goes to disk.
POST_SPOOL_IN_MEMORY = 1024 * 1024
UPSTREAM_TIMEOUT_SECONDS = 120
#: Idle keep-alive connections are closed after this long.
CLIENT_TIMEOUT_SECONDS = 60

_LIST_PARTS_ROOT = re.compile(rb"(</?)ListPartsResponse\b")
#: Form fields a POST upload turns into the stored object's headers.
_POST_FIELD_HEADERS = frozenset(
    {
        "cache-control",
        "content-type",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-md5",
        "expires",
    }
)
_POST_AUTH_FIELDS = frozenset(
    {
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-signature",
        "x-amz-security-token",
    }
)
_SUCCESS_STATUSES = {"200": 200, "201": 201}
_CORS_VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
_CORS_NOT_ALLOWED = (
    # S3's own wording, misspelling included.
    "CORSResponse: This CORS request is not allowed. This is usually because the "
    "evalution of Origin, request method / Access-Control-Request-Method or "
    "Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _passed_on(header: str) -> bool:
    """Whether a proxy passes ``header`` on: not HTTP/1.1's hop-by-hop ones,
    nor Expect, which the gateway has answered itself."""
    hop = header.lower() in ("proxy-connection", "expect")
    return not hop and not is_hop_by_hop_header(header)


@dataclasses.dataclass(frozen=True)
class ObjectCreated:
    """An object S3 just accepted: what an ObjectCreated event reports.

    ``event`` is the event type without its family, e.g. ``Put``, ``Post``,
    ``Copy`` or ``CompleteMultipartUpload``; ``principal`` is the access key
    that signed the request, when one did.
    """

    bucket: str
    key: str
    event: str
    source_ip: str
    principal: str | None
    request_id: str


#: Query parameters a PutObject may carry besides a presigned URL's own.
_PUT_OBJECT_QUERY = frozenset({"x-id"})
#: What DeleteObjects may carry: at most 1000 keys of at most 1 KiB each.
MAX_DELETE_BODY = 2 * 1024 * 1024

Check = tuple[str, str, dict[str, str]]


def s3_checks(
    method: str,
    bucket: str,
    key: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    deleted: Sequence[str] = (),
) -> list[Check]:
    """What IAM checks for one path-style request: (action, resource ARN,
    condition keys) each; ``deleted`` are the keys a DeleteObjects names."""
    if not bucket:
        return [("s3:ListAllMyBuckets", "*", {})]
    arn = f"arn:aws:s3:::{bucket}"
    params = dict(query)
    # moto's map of S3's requests to IAM actions, whose HeadBucket IAM knows
    # as ListBucket.
    actions = ACTION_MAP["KEY" if key else "BUCKET"].get(method, {})
    name = next(
        (actions[param] for param in params if param in actions),
        actions.get("DEFAULT", method),
    )
    action = "s3:" + ("ListBucket" if name == "HeadBucket" else name)
    if key:
        checks: list[Check] = [(action, f"{arn}/{key}", {})]
        source = headers.get("x-amz-copy-source")
        if method == "PUT" and source:
            copied = unquote(source.lstrip("/").partition("?")[0])
            checks.append(("s3:GetObject", f"arn:aws:s3:::{copied}", {}))
        return checks
    if method == "POST" and "delete" in params:
        return [("s3:DeleteObject", f"{arn}/{name}", {}) for name in deleted]
    context = {}
    if action == "s3:ListBucket":
        context = {
            f"s3:{name}": params[name]
            for name in ("prefix", "delimiter", "max-keys")
            if name in params
        }
    return [(action, arn, context)]


class S3Gateway(LoopbackService):
    """A threaded HTTP server on ``host:port`` (a free port when 0) that fronts
    the moto server at ``upstream``.

    ``secrets`` maps an access key id to its secret, for verifying signatures:
    a request that no known key signed is refused. ``authorize`` then judges
    each call by who signed it (by default, anyone known may do anything).
    ``clock`` tells the time signatures and policies are checked against.
    ``on_object_created`` is called, on the request's thread, after S3 accepted
    a PutObject, a POST upload or a CompleteMultipartUpload; it must return
    quickly (S3 event delivery is asynchronous), and whatever it raises is
    logged, never answered.
    """

    def __init__(
        self,
        *,
        upstream: str,
        secrets: Mapping[str, str] | Callable[[str], str | None],
        authorize: Authorize = allow_all,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], datetime] = _utc_now,
        on_object_created: Callable[[ObjectCreated], None] | None = None,
    ) -> None:
        target = urlsplit(upstream)
        if target.scheme != "http" or not target.hostname:
            raise ValueError(
                f"upstream must be an http://host:port URL of the moto server, "
                f"got {upstream!r}"
            )
        self.upstream_host = target.hostname
        self.upstream_port = target.port or 80
        self.secret_for: SecretLookup = (
            secrets.get if isinstance(secrets, Mapping) else secrets
        )
        self.authorize = authorize
        self.clock = clock
        self.on_object_created = on_object_created
        # Only reads bucket CORS configurations, which moto serves unsigned.
        self.upstream_s3 = boto3.client(
            "s3",
            endpoint_url=upstream,
            region_name="us-east-1",
            config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
        )
        self._upload_keys: dict[tuple[str, str], str] = {}
        self._upstream: set[http.client.HTTPConnection] = set()
        handler = type("Handler", (_Handler,), {"gateway": self})
        self._server = LoopbackHttpServer((host, port), handler, name="s3-gateway")
        # Stopping joins every request's thread, so nothing outlives the gateway.
        self._server.daemon_threads = False

    def upload_key(self, bucket: str, upload_id: str) -> str | None:
        """The key a multipart upload was created for, which S3 ties its ID
        to and moto does not; None for an ID moto does not list."""
        known = self._upload_keys.get((bucket, upload_id))
        if known is not None:
            return known
        try:
            listing = self.upstream_s3.list_multipart_uploads(Bucket=bucket)
        except (BotoCoreError, ClientError):
            return None
        for upload in listing.get("Uploads", []):
            self._upload_keys[(bucket, upload["UploadId"])] = upload["Key"]
        return self._upload_keys.get((bucket, upload_id))

    @contextlib.contextmanager
    def upstream_connection(self) -> Iterator[http.client.HTTPConnection]:
        connection = http.client.HTTPConnection(
            self.upstream_host,
            self.upstream_port,
            timeout=UPSTREAM_TIMEOUT_SECONDS,
            blocksize=CHUNK_SIZE,
        )
        self._upstream.add(connection)
        try:
            yield connection
        finally:
            self._upstream.discard(connection)
            connection.close()

    def stop(self) -> None:
        """Cut the calls moto still holds (an SQS long poll holds one for 20
        s), then stop as every loopback server stops."""
        for connection in self._upstream.copy():
            with contextlib.suppress(OSError, AttributeError):
                connection.sock.shutdown(socket.SHUT_RDWR)
        super().stop()

    def object_created(self, created: ObjectCreated) -> None:
        if self.on_object_created is None:
            return
        try:
            self.on_object_created(created)
        except Exception:
            log.exception(
                "object-created hook failed on s3://%s/%s", created.bucket, created.key
            )

    def cors_rules(self, bucket: str) -> list[dict[str, Any]] | None:
        """The bucket's CORS rules, or None when it has no CORS configuration."""
        if not bucket:
            return None
        try:
            rules = self.upstream_s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
        except (ClientError, BotoCoreError):
            return None
        return list(rules)


class _RequestBody:
    """The request body as it arrives, read at most once, chunked or not."""

    def __init__(
        self, rfile: BufferedIOBase | IO[bytes], headers: Message | Mapping[str, str]
    ) -> None:
        self._rfile = rfile
        self.chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self._remaining = 0 if self.chunked else int(headers.get("Content-Length") or 0)
        self._done = False

    def chunks(self) -> Iterator[bytes]:
        while not self._done:
            chunk = self._read_chunk()
            if chunk:
                yield chunk
            else:
                self._done = True

    def drain(self) -> None:
        for _ in self.chunks():
            pass

    def _read_chunk(self) -> bytes:
        if self.chunked and self._remaining == 0:
            self._remaining = self._next_chunk_size()
        if self._remaining <= 0:
            return b""
        data = self._rfile.read(min(CHUNK_SIZE, self._remaining))
        if not data:
            raise ConnectionError("request body ended early")
        self._remaining -= len(data)
        if self.chunked and self._remaining == 0:
            self._rfile.readline(16)  # the CRLF that closes a chunk
        return data

    def _next_chunk_size(self) -> int:
        line = self._rfile.readline(1024).split(b";")[0].strip()
        try:
            size = int(line, 16)
        except ValueError as error:
            raise ConnectionError(f"malformed chunk size {line!r}") from error
        if size == 0:
            while self._rfile.readline(1024).strip():
                pass  # trailers: S3 requests through here carry none we need
        return size


class _SpooledBody:
    """A request body read to the end before it is forwarded."""

    def __init__(self, file: IO[bytes], *, chunked: bool) -> None:
        self._file = file
        self.chunked = chunked

    def chunks(self) -> Iterator[bytes]:
        self._file.seek(0)
        yield from iter(lambda: self._file.read(CHUNK_SIZE), b"")

    def drain(self) -> None:
        pass


@contextlib.contextmanager
def _checked_sha256(
    body: _RequestBody, headers: Message
) -> Iterator[_RequestBody | _SpooledBody]:
    """The body, verified against its ``x-amz-checksum-sha256`` first (S3
    stores nothing whose checksum is wrong, so it is spooled and hashed
    before moto sees it, which checks none)."""
    claimed = headers.get("x-amz-checksum-sha256")
    if claimed is None:
        yield body
        return
    digest = hashlib.sha256()
    with tempfile.SpooledTemporaryFile(max_size=POST_SPOOL_IN_MEMORY) as spool:
        for chunk in body.chunks():
            digest.update(chunk)
            spool.write(chunk)
        if base64.b64encode(digest.digest()).decode() != claimed.strip():
            raise S3Error(
                "BadDigest",
                "The SHA256 you specified did not match the calculated checksum.",
            )
        yield _SpooledBody(spool, chunked=body.chunked)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = CLIENT_TIMEOUT_SECONDS
    gateway: S3Gateway
    _response_started = False

    def do_request(self) -> None:
        self._response_started = False
        body = _RequestBody(self.rfile, self.headers)
        target = urlsplit(self.path)
        bucket, _, key = (unquote(part) for part in target.path[1:].partition("/"))
        try:
            if "X-Amz-Target" in self.headers or (
                self.command == "POST" and not bucket
            ):
                self._service_call(body)
                return
            if self.command == "OPTIONS":
                self._answer_preflight(bucket, is_object=bool(key))
                return
            if self.command == "POST" and not key and self._is_form():
                self._post_object(bucket, body)
                return
            query = parse_qsl(target.query, keep_blank_values=True)
            headers = self._lower_headers()
            verify = (
                verify_presigned
                if is_query_authenticated(query)
                else verify_header_signed
            )
            signer = verify(
                method=self.command,
                raw_path=target.path,
                query=query,
                headers=headers,
                secret_for=self.gateway.secret_for,
                now=self.gateway.clock(),
            ).access_key
            deleted: list[str] = []
            if self.command == "POST" and not key and "delete" in dict(query):
                body, deleted = _deleted_keys(body)
            checks = s3_checks(self.command, bucket, key, query, headers, deleted)
            for check in checks:
                self._authorize(signer, *check)
            upload_id = dict(query).get("uploadId")
            if key and upload_id is not None:
                self._check_upload_of(bucket, key, upload_id)
            reads = checks[0][0] == "s3:GetObject"
            with _checked_sha256(body, self.headers) as checked:
                self._forward(bucket, key, checked, signer, hides_missing=reads)
        except S3Error as error:
            body.drain()
            self._send_error(error, bucket)
        except (ConnectionError, TimeoutError) as error:
            log.info("%s %s: connection failed: %r", self.command, self.path, error)
            self._fail(bucket)
        except Exception:
            log.exception("gateway failed on %s %s", self.command, self.path)
            self._fail(bucket)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_PATCH = do_request

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _lower_headers(self) -> dict[str, str]:
        return {
            name.lower(): ",".join(self.headers.get_all(name) or [])
            for name in self.headers
        }

    def _service_call(self, body: _RequestBody) -> None:
        """A call of a JSON API: checked, then forwarded to moto as it came."""
        data = b"".join(body.chunks())
        try:
            check_call(
                method=self.command,
                path=self.path,
                headers=self._lower_headers(),
                body=data,
                secret_for=self.gateway.secret_for,
                authorize=self.gateway.authorize,
                now=self.gateway.clock(),
            )
        except S3Error as error:
            self._send(*refusal(self.headers.get("X-Amz-Target", ""), error))
            return
        self._forward("", "", _buffered(data), "", hides_missing=False)

    def _check_upload_of(self, bucket: str, key: str, upload_id: str) -> None:
        """S3 answers NoSuchUpload for an upload ID used on another key."""
        created_for = self.gateway.upload_key(bucket, upload_id)
        if created_for is not None and created_for != key:
            raise S3Error(
                "NoSuchUpload",
                "The specified upload does not exist. The upload ID may be "
                "invalid, or the upload may have been aborted or completed.",
                {"UploadId": upload_id},
            )

    def _is_form(self) -> bool:
        content_type, _ = parse_options_header(self.headers.get("Content-Type"))
        return content_type == "multipart/form-data"

    def _authorize(
        self, signer: str, action: str, resource: str, context: Mapping[str, str]
    ) -> None:
        denial = self.gateway.authorize(signer, action, resource, context)
        if denial is not None:
            raise S3Error("AccessDenied", denial)

    def _forward(
        self,
        bucket: str,
        key: str,
        body: _RequestBody | _SpooledBody,
        signer: str,
        *,
        hides_missing: bool,
    ) -> None:
        """Send the request to moto as it came and stream the answer back.

        S3 tells a caller that a key is missing (404) only if it may list
        the bucket there; to anyone else it answers 403 (``hides_missing``).
        """
        creates = self._object_creation(bucket, key, signer)
        with self.gateway.upstream_connection() as connection:
            connection.putrequest(
                self.command, self.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in self.headers.items():
                if _passed_on(name):
                    connection.putheader(name, value)
            if body.chunked:
                connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            for chunk in body.chunks():
                if body.chunked:
                    connection.send(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                else:
                    connection.send(chunk)
            if body.chunked:
                connection.send(b"0\r\n\r\n")
            response = connection.getresponse()
            if response.status == 404 and hides_missing:
                denial = self.gateway.authorize(
                    signer,
                    "s3:ListBucket",
                    f"arn:aws:s3:::{bucket}",
                    {"s3:prefix": key},
                )
                if denial is not None:
                    response.read()
                    raise S3Error("AccessDenied", denial)
            self._relay(response, bucket)
        if creates is not None and response.status == 200:
            self.gateway.object_created(creates)

    def _object_creation(
        self, bucket: str, key: str, signer: str
    ) -> ObjectCreated | None:
        """The object this request creates if S3 accepts it, else None."""
        if not key:
            return None
        names = {name for name, _ in parse_qsl(urlsplit(self.path).query, True)}
        if self.command == "PUT" and not any(
            name not in _PUT_OBJECT_QUERY and not name.lower().startswith("x-amz-")
            for name in names
        ):
            event = "Copy" if "x-amz-copy-source" in self.headers else "Put"
        elif self.command == "POST" and "uploadId" in names:
            event = "CompleteMultipartUpload"
        else:
            return None
        return self._created(bucket, key, event, signer)

    def _created(
        self, bucket: str, key: str, event: str, principal: str
    ) -> ObjectCreated:
        return ObjectCreated(
            bucket=bucket,
            key=key,
            event=event,
            source_ip=self.client_address[0],
            principal=principal,
            request_id=uuid.uuid4().hex[:16].upper(),
        )

    def _relay(self, response: http.client.HTTPResponse, bucket: str) -> None:
        """Stream moto's answer back with its status and headers, CORS headers
        replaced by those of the bucket's configuration."""
        self._start_response(response.status, response.reason)
        # moto names ListParts' root element ListPartsResponse; S3 says
        # ListPartsResult, which browser clients (Uppy's) look for.
        query = {name for name, _ in parse_qsl(urlsplit(self.path).query, True)}
        renamed = None
        if self.command == "GET" and response.status == 200 and "uploadId" in query:
            renamed = _LIST_PARTS_ROOT.sub(rb"\1ListPartsResult", response.read())
        for name, value in response.getheaders():
            lower = name.lower()
            if renamed is not None and lower == "content-length":
                value = str(len(renamed))
            # moto's server adds permissive CORS headers of its own to every
            # answer; the bucket's configuration decides them instead.
            cors = lower.startswith("access-control-") or lower == "vary"
            if _passed_on(name) and not cors:
                self.send_header(name, value)
        for name, value in self._cors_headers(bucket):
            self.send_header(name, value)
        has_body = self.command != "HEAD" and response.status not in (204, 304)
        if has_body and response.getheader("Content-Length") is None:
            self.send_header("Connection", "close")
        self.end_headers()
        if renamed is not None:
            self.wfile.write(renamed)
        elif has_body:
            while chunk := response.read(CHUNK_SIZE):
                self.wfile.write(chunk)

    def _post_object(self, bucket: str, body: _RequestBody) -> None:
        """S3's browser upload: check the form against its policy, store the
        file with a PutObject, and answer as S3's PostObject does."""
        _, options = parse_options_header(self.headers.get("Content-Type"))
        boundary = options.get("boundary")
        if not boundary:
            raise _malformed_post()
        events = _multipart_events(boundary.encode(), body.chunks())
        fields, filename = _read_fields(events)
        grant = verify_post_policy(
            bucket=bucket,
            fields=fields,
            secret_for=self.gateway.secret_for,
            now=self.gateway.clock(),
        )
        key = fields["key"].replace("${filename}", filename)
        signer = grant.credential.access_key
        self._authorize(signer, "s3:PutObject", f"arn:aws:s3:::{bucket}/{key}", {})
        with tempfile.SpooledTemporaryFile(max_size=POST_SPOOL_IN_MEMORY) as spool:
            size = _spool_file(events, spool, keep_up_to=grant.max_size)
            body.drain()  # S3 ignores the fields after the file
            grant.check_size(size)
            spool.seek(0)
            path = f"/{quote(bucket)}/{quote(key, safe='/~')}"
            # moto takes unsigned requests: the gateway has checked this one.
            headers = {"content-length": str(size), **_object_headers(fields)}
            with self.gateway.upstream_connection() as connection:
                connection.request("PUT", path, body=spool, headers=headers)
                stored = connection.getresponse()
                if stored.status != 200:
                    self._relay(stored, bucket)
                    return
                stored.read()
        self._answer_post(bucket, key, fields, stored)
        self.gateway.object_created(self._created(bucket, key, "Post", signer))

    def _answer_post(
        self,
        bucket: str,
        key: str,
        fields: Mapping[str, str],
        stored: http.client.HTTPResponse,
    ) -> None:
        host = self.headers.get("Host") or self.gateway.url.removeprefix("http://")
        location = f"http://{host}/{quote(bucket, safe='')}/{quote(key, safe='')}"
        etag = stored.getheader("ETag", "")
        status = _SUCCESS_STATUSES.get(fields.get("success_action_status", ""), 204)
        headers = [("Location", location), ("ETag", etag)]
        version = stored.getheader("x-amz-version-id")
        if version:
            headers.append(("x-amz-version-id", version))
        body = b""
        if status == 201:
            headers.append(("Content-Type", "application/xml"))
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse>'
                f"<Location>{escape(location)}</Location>"
                f"<Bucket>{escape(bucket)}</Bucket>"
                f"<Key>{escape(key)}</Key>"
                f"<ETag>{escape(etag)}</ETag>"
                "</PostResponse>"
            ).encode()
        self._send(status, headers + self._cors_headers(bucket), body)

    def _answer_preflight(self, bucket: str, *, is_object: bool) -> None:
        origin = self.headers.get("Origin")
        method = self.headers.get("Access-Control-Request-Method")
        if not origin:
            raise S3Error(
                "BadRequest", "Insufficient information. Origin request header needed."
            )
        if not method:
            raise S3Error("BadRequest", "Invalid Access-Control-Request-Method: null")
        rules = self.gateway.cors_rules(bucket)
        if not rules:
            raise S3Error(
                "AccessForbidden", "CORSResponse: CORS is not enabled for this bucket."
            )
        requested = requested_headers(
            self.headers.get("Access-Control-Request-Headers")
        )
        rule = match_cors_rule(rules, origin, method, requested)
        if rule is None:
            raise S3Error(
                "AccessForbidden",
                _CORS_NOT_ALLOWED,
                {"Method": method, "ResourceType": "OBJECT" if is_object else "BUCKET"},
            )
        headers = cors_headers(rule, origin)
        if requested:
            headers.append(("Access-Control-Allow-Headers", ", ".join(requested)))
        self._send(200, headers, b"")

    def _cors_headers(self, bucket: str) -> list[tuple[str, str]]:
        """CORS headers for an actual (not preflight) request to ``bucket``."""
        origin = self.headers.get("Origin")
        if not origin or self.command == "OPTIONS":
            return []
        rules = self.gateway.cors_rules(bucket) or []
        rule = match_cors_rule(rules, origin, self.command)
        return [] if rule is None else cors_headers(rule, origin)

    def _send_error(self, error: S3Error, bucket: str) -> None:
        request_id = uuid.uuid4().hex[:16].upper()
        details = "".join(
            f"<{name}>{escape(value)}</{name}>" for name, value in error.details.items()
        )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{error.code}</Code><Message>{escape(error.message)}</Message>"
            f"{details}<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers = [
            ("Content-Type", "application/xml"),
            ("x-amz-request-id", request_id),
            *self._cors_headers(bucket),
        ]
        self._send(error.status, headers, b"" if self.command == "HEAD" else body)

    def _fail(self, bucket: str) -> None:
        """Answer 500 if nothing was answered yet, and drop the connection,
        whose state is no longer known."""
        self.close_connection = True
        if not self._response_started:
            with contextlib.suppress(OSError):
                self._send_error(
                    S3Error(
                        "InternalError",
                        "We encountered an internal error. Please try again.",
                    ),
                    bucket,
                )

    def _send(
        self, status: int, headers: Sequence[tuple[str, str]], body: bytes
    ) -> None:
        self._start_response(status)
        self.send_header("Date", self.date_time_string())
        for name, value in headers:
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _start_response(self, status: int, reason: str | None = None) -> None:
        self._response_started = True
        self.send_response_only(status, reason)


def match_cors_rule(
    rules: Sequence[Mapping[str, Any]],
    origin: str,
    method: str,
    request_headers: Sequence[str] = (),
) -> Mapping[str, Any] | None:
    """S3's CORS evaluation: the first rule that allows the origin, the method
    and (for a preflight) every requested header."""
    for rule in rules:
        if (
            any(_wildcard_match(allowed, origin) for allowed in rule["AllowedOrigins"])
            and method.upper() in rule["AllowedMethods"]
            and all(
                any(
                    _wildcard_match(allowed.lower(), header.lower())
                    for allowed in rule.get("AllowedHeaders", [])
                )
                for header in request_headers
            )
        ):
            return rule
    return None


def cors_headers(rule: Mapping[str, Any], origin: str) -> list[tuple[str, str]]:
    """The Access-Control-* headers S3 sends for a request that ``rule`` allows."""
    any_origin = "*" in rule["AllowedOrigins"]
    headers = [
        ("Access-Control-Allow-Origin", "*" if any_origin else origin),
        ("Access-Control-Allow-Methods", ", ".join(rule["AllowedMethods"])),
        ("Vary", _CORS_VARY),
    ]
    if not any_origin:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    if rule.get("ExposeHeaders"):
        headers.append(
            ("Access-Control-Expose-Headers", ", ".join(rule["ExposeHeaders"]))
        )
    if rule.get("MaxAgeSeconds") is not None:
        headers.append(("Access-Control-Max-Age", str(rule["MaxAgeSeconds"])))
    return headers


def _wildcard_match(pattern: str, value: str) -> bool:
    """S3 patterns hold at most one ``*``, which matches any run of characters."""
    prefix, star, suffix = pattern.partition("*")
    if not star:
        return pattern == value
    return (
        len(value) >= len(prefix) + len(suffix)
        and value.startswith(prefix)
        and value.endswith(suffix)
    )


def _multipart_events(boundary: bytes, chunks: Iterator[bytes]) -> Iterator[Event]:
    decoder = MultipartDecoder(boundary)
    try:
        for chunk in chain(chunks, [None]):
            decoder.receive_data(chunk)
            while not isinstance(event := decoder.next_event(), NeedData):
                yield event
                if isinstance(event, Epilogue):
                    return
    except ValueError as error:
        raise _malformed_post() from error


def _read_fields(events: Iterator[Event]) -> tuple[dict[str, str], str]:
    """Read the form fields up to the file part; return them by lower-case name
    with the file's name."""
    fields: dict[str, str] = {}
    name = ""
    value = bytearray()
    total = 0
    for event in events:
        if isinstance(event, (Field, File)):
            if event.name.lower() == "file":
                return fields, event.filename if isinstance(event, File) else ""
            name, value = event.name.lower(), bytearray()
        elif isinstance(event, Data):
            value += event.data
            total += len(event.data)
            if total > MAX_POST_FIELDS_SIZE:
                raise S3Error(
                    "MaxPostPreDataLengthExceeded",
                    "Your POST request fields preceeding the upload file "
                    "was too large.",
                )
            if not event.more_data:
                try:
                    fields.setdefault(name, value.decode())
                except UnicodeDecodeError as error:
                    raise _malformed_post() from error
    raise S3Error(
        "IncorrectNumberOfFilesInPostRequest",
        "POST requires exactly one file upload per request.",
    )


def _spool_file(
    events: Iterator[Event], spool: IO[bytes], keep_up_to: int | None
) -> int:
    """Copy the file part into ``spool`` and return its size. Past
    ``keep_up_to`` bytes it is only counted: it will be refused anyway."""
    size = 0
    for event in events:
        if isinstance(event, Data):
            size += len(event.data)
            if keep_up_to is None or size <= keep_up_to:
                spool.write(event.data)
            if not event.more_data:
                return size
    raise _malformed_post()


def _object_headers(fields: Mapping[str, str]) -> dict[str, str]:
    """The PutObject headers that a POST upload's form fields stand for."""
    headers = {
        name: value
        for name, value in fields.items()
        if name in _POST_FIELD_HEADERS
        or (name.startswith("x-amz-") and name not in _POST_AUTH_FIELDS)
    }
    if "acl" in fields:
        headers["x-amz-acl"] = fields["acl"]
    return headers


def _deleted_keys(body: _RequestBody) -> tuple[_RequestBody, list[str]]:
    """A DeleteObjects body, read whole, and the keys it names."""
    data = b"".join(body.chunks())
    if len(data) > MAX_DELETE_BODY:
        raise S3Error("MalformedXML", "The XML you provided was too large.")
    try:
        # A component's own request on loopback, not untrusted input.
        document = ET.fromstring(data)  # noqa: S314
    except ET.ParseError as error:
        raise S3Error(
            "MalformedXML", "The XML you provided was not well-formed"
        ) from error
    keys = [
        element.text or ""
        for element in document.iter()
        if element.tag.rpartition("}")[2] == "Key"
    ]
    return _buffered(data), keys


def _buffered(data: bytes) -> _RequestBody:
    return _RequestBody(io.BytesIO(data), {"Content-Length": str(len(data))})


def _malformed_post() -> S3Error:
    return S3Error(
        "MalformedPOSTRequest",
        "The body of your POST request is not well-formed multipart/form-data.",
    )
