"""SigV4 query-string presigning for S3, byte for byte what botocore's
``generate_presigned_url`` returns with ``signature_version="s3v4"``, but
fast enough to sign every part of a 10,000-part upload in one request.

botocore spends ~250 µs per URL building and preparing a request object. A
presigned URL only needs one SHA-256 and one HMAC once the signing key is
known, so this derives that key once per day and credentials and reuses it.

URL shape, matching botocore 1.44 (tests pin it):

* no ``endpoint_url``: virtual-hosted, as botocore's
  ``addressing_style="virtual"`` does: ``https://{bucket}.s3.{region}.amazonaws.com``
  (``https://{bucket}.s3.amazonaws.com`` in us-east-1). botocore's "auto"
  style presigns to the global endpoint in every region, which answers
  other regions with a redirect that browsers do not follow on a CORS
  preflight. Bucket names that cannot be a DNS label (dots, capitals) fall
  back to path style, as botocore does.
* ``endpoint_url`` (moto, LocalStack): path style,
  ``{endpoint_url}/{bucket}/{key}``, which is what botocore picks for any
  custom endpoint unless told otherwise.

Only the aws partition's host names are built.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import boto3
from botocore.exceptions import NoCredentialsError

if TYPE_CHECKING:
    from botocore.credentials import ReadOnlyCredentials

#: SigV4 caps a presigned URL's lifetime at seven days.
MAX_EXPIRES_SECONDS = 7 * 24 * 3600

_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})
_ALGORITHM = "AWS4-HMAC-SHA256"
_SERVICE = "s3"
_TERMINATOR = "aws4_request"
# botocore's own check for a name it will put in a URL at all.
_VALID_BUCKET = re.compile(r"[A-Za-z0-9.\-_]{1,255}")
# A bucket botocore puts in the host name rather than the path.
_VIRTUAL_HOSTABLE_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# An HTTP field name (RFC 9110 token), lowercased.
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
# botocore.utils.percent_encode's safe set: RFC 3986 unreserved characters.
_UNRESERVED = "-_.~"


@functools.lru_cache(maxsize=1024)
def _quote_key(key: str) -> str:
    # The S3 serializer's encoding of the greedy {Key+} label.
    return quote(key, safe="/~")


@functools.lru_cache(maxsize=4096)
def _quote_param(text: str) -> str:
    return quote(text, safe=_UNRESERVED)


def _signing_key(secret_key: str, date: str, region: str) -> bytes:
    key = f"AWS4{secret_key}".encode()
    for part in (date, region, _SERVICE, _TERMINATOR):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


@dataclasses.dataclass(frozen=True, slots=True)
class _Signing:
    """What one set of credentials signs with on one UTC day."""

    credentials: ReadOnlyCredentials
    date: str
    key: bytes
    scope: str
    credential_param: str
    token_param: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Endpoint:
    origin: str
    path_prefix: str
    host: str


def _aws_endpoint(bucket: str, region: str) -> _Endpoint:
    # us-east-1 keeps the legacy global name unless the SDK is told otherwise.
    s3_host = (
        "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
    )
    if _VIRTUAL_HOSTABLE_BUCKET.fullmatch(bucket):
        host = f"{bucket}.{s3_host}"
        return _Endpoint(origin=f"https://{host}", path_prefix="", host=host)
    return _Endpoint(
        origin=f"https://{s3_host}", path_prefix=f"/{bucket}", host=s3_host
    )


def _custom_endpoint(bucket: str, endpoint_url: str) -> _Endpoint:
    parts = urlsplit(endpoint_url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(
            f"endpoint_url {endpoint_url!r} must be an http(s) URL with a host, "
            "e.g. http://127.0.0.1:4566"
        )
    if parts.query or parts.fragment or parts.username is not None:
        raise ValueError(
            f"endpoint_url {endpoint_url!r} must not carry a query, fragment or "
            "user info; pass only scheme, host, port and an optional path"
        )
    # The Host header SigV4 signs: lowercase, no default port (botocore's
    # _host_from_url), though the URL keeps the endpoint as written.
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS[parts.scheme]:
        host = f"{host}:{parts.port}"
    return _Endpoint(
        origin=f"{parts.scheme}://{parts.netloc}",
        path_prefix=f"{parts.path.rstrip('/')}/{bucket}",
        host=host,
    )


class S3Presigner:
    """Presigns S3 requests on one bucket with SigV4 query authentication."""

    def __init__(
        self,
        *,
        bucket: str,
        region: str,
        endpoint_url: str | None = None,
        credentials: Callable[[], ReadOnlyCredentials],
    ) -> None:
        if not _VALID_BUCKET.fullmatch(bucket):
            raise ValueError(f"bucket {bucket!r} is not a valid S3 bucket name")
        if not region:
            raise ValueError("region is required to sign S3 requests, e.g. eu-west-1")
        self._region = region
        self._credentials = credentials
        self._endpoint = (
            _custom_endpoint(bucket, endpoint_url)
            if endpoint_url
            else _aws_endpoint(bucket, region)
        )
        self._canonical_host = f"host:{self._endpoint.host}\n"
        self._signing: _Signing | None = None

    @classmethod
    def from_boto3_session(
        cls,
        *,
        bucket: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        session: boto3.session.Session | None = None,
    ) -> S3Presigner:
        """A presigner on the session's credentials, refreshed as they rotate.

        ``endpoint_url`` defaults to ``AWS_ENDPOINT_URL_S3`` or
        ``AWS_ENDPOINT_URL``, as boto3 clients do, which is how the local
        runner points everything at moto.
        """
        session = session or boto3.session.Session()
        resolved_region = region or session.region_name
        if not resolved_region:
            raise ValueError("no region: pass region= or set AWS_REGION")
        endpoint = (
            endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )

        def credentials() -> ReadOnlyCredentials:
            current = session.get_credentials()
            if current is None:
                raise NoCredentialsError()
            return current.get_frozen_credentials()

        return cls(
            bucket=bucket,
            region=resolved_region,
            endpoint_url=endpoint,
            credentials=credentials,
        )

    def presign(
        self,
        method: str,
        key: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        expires_in: int,
        now: datetime | None = None,
    ) -> str:
        """A URL that performs ``method`` on ``key`` until ``expires_in`` seconds
        after ``now`` (default: the current time; a naive ``now`` is UTC).

        ``query`` holds the operation's sub-resources, e.g. ``{"uploads": ""}``
        or ``{"partNumber": "7", "uploadId": upload_id}``; they appear in the
        URL in the mapping's order, as botocore keeps its ``Params`` order.
        ``headers`` are signed too (``X-Amz-SignedHeaders``), so the request
        must carry exactly them, e.g. ``{"content-length": "5242880"}`` binds
        the body's size and ``{"if-none-match": "*"}`` forbids replacing an
        object.
        """
        if method not in _METHODS:
            raise ValueError(f"method {method!r} must be one of {sorted(_METHODS)}")
        if not key:
            raise ValueError("key must not be empty")
        if not 1 <= expires_in <= MAX_EXPIRES_SECONDS:
            raise ValueError(
                f"expires_in={expires_in} must be between 1 and "
                f"{MAX_EXPIRES_SECONDS} seconds"
            )
        if now is None:
            now = datetime.now(UTC)
        elif now.tzinfo is not None:
            now = now.astimezone(UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        signing = self._signing_for(self._credentials(), amz_date[:8])

        params = (
            [(_quote_param(name), _quote_param(value)) for name, value in query.items()]
            if query
            else []
        )
        canonical_headers, signed_headers = self._canonical_headers(headers)
        params += (
            ("X-Amz-Algorithm", _ALGORITHM),
            ("X-Amz-Credential", signing.credential_param),
            ("X-Amz-Date", amz_date),
            ("X-Amz-Expires", str(expires_in)),
            ("X-Amz-SignedHeaders", _quote_param(signed_headers)),
        )
        if signing.token_param is not None:
            params.append(("X-Amz-Security-Token", signing.token_param))
        # SigV4 signs the parameters sorted by encoded name, then value; the
        # URL keeps botocore's order (operation parameters, then auth ones).
        canonical_query = "&".join([f"{n}={v}" for n, v in sorted(params)])
        path = self._endpoint.path_prefix + "/" + _quote_key(key)
        canonical_request = (
            f"{method}\n{path}\n{canonical_query}\n{canonical_headers}\n"
            f"{signed_headers}\nUNSIGNED-PAYLOAD"
        )
        string_to_sign = (
            f"{_ALGORITHM}\n{amz_date}\n{signing.scope}\n"
            f"{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        )
        signature = hmac.digest(signing.key, string_to_sign.encode(), "sha256").hex()
        url_query = "&".join([f"{n}={v}" for n, v in params])
        return f"{self._endpoint.origin}{path}?{url_query}&X-Amz-Signature={signature}"

    def _canonical_headers(self, headers: Mapping[str, str] | None) -> tuple[str, str]:
        """SigV4's canonical headers block and signed header list: ``host``
        and ``headers``, lowercased, sorted, values trimmed."""
        if not headers:
            return self._canonical_host, "host"
        lines = {"host": self._endpoint.host}
        for name, value in headers.items():
            lower = name.lower()
            if lower == "host" or not _HEADER_NAME.fullmatch(lower):
                raise ValueError(f"header {name!r} cannot be signed")
            lines[lower] = " ".join(str(value).split())
        names = sorted(lines)
        return "".join(f"{n}:{lines[n]}\n" for n in names), ";".join(names)

    def _signing_for(self, credentials: ReadOnlyCredentials, date: str) -> _Signing:
        signing = self._signing
        if (
            signing is not None
            and signing.date == date
            and signing.credentials == credentials
        ):
            return signing
        access_key, secret_key, token = (
            credentials.access_key,
            credentials.secret_key,
            credentials.token,
        )
        if not access_key or not secret_key:
            raise NoCredentialsError()
        scope = f"{date}/{self._region}/{_SERVICE}/{_TERMINATOR}"
        signing = _Signing(
            credentials=credentials,
            date=date,
            key=_signing_key(secret_key, date, self._region),
            scope=scope,
            credential_param=quote(f"{access_key}/{scope}", safe=_UNRESERVED),
            token_param=None if token is None else quote(token, safe=_UNRESERVED),
        )
        self._signing = signing
        return signing
