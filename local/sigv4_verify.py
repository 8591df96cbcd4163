"""S3's request authentication as pure functions (SigV4 header signatures,
presigned URLs, POST policies) on botocore's canonical requests, failing with
S3's own error code and message."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
#: S3 refuses presigned URLs valid for longer than seven days.
MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600
#: How far in the future X-Amz-Date may be before S3 calls the URL "not yet valid".
ALLOWED_CLOCK_SKEW = timedelta(minutes=15)

SecretLookup = Callable[[str], str | None]

_PRESIGNED_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
_SIGV2_QUERY_PARAMS = frozenset({"awsaccesskeyid", "signature"})
_AUTHORIZATION = re.compile(
    ALGORITHM + r" Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*"
    r"Signature=([0-9a-f]+)"
)
_POST_AUTH_FIELDS = ("x-amz-algorithm", "x-amz-credential", "x-amz-date")
#: Form fields S3 never expects a policy condition for.
_POST_FIELDS_WITHOUT_CONDITION = frozenset({"x-amz-signature", "file", "policy"})
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you "
    "provided. Check your key and signing method."
)


#: The HTTP status of each error code that S3 does not answer with 400.
_STATUS_OF = {
    "AccessDenied": 403,
    "AccessForbidden": 403,
    "InvalidAccessKeyId": 403,
    "RequestTimeTooSkewed": 403,
    "SignatureDoesNotMatch": 403,
    "NoSuchUpload": 404,
    "InternalError": 500,
}


class S3Error(Exception):
    """An error S3 would answer with: code, message and the extra elements S3
    puts in its ``<Error>`` document; the code tells the HTTP status."""

    def __init__(
        self, code: str, message: str, details: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = _STATUS_OF.get(code, 400)
        self.code = code
        self.message = message
        self.details = dict(details or {})


_query_error = functools.partial(S3Error, "AuthorizationQueryParametersError")
_header_error = functools.partial(S3Error, "AuthorizationHeaderMalformed")
_form_error = functools.partial(S3Error, "InvalidArgument")
_invalid_policy = functools.partial(S3Error, "InvalidPolicyDocument")
#: S3's answer to any signature but SigV4's.
_UNSUPPORTED = (
    "The authorization mechanism you have provided is not supported. "
    "Please use AWS4-HMAC-SHA256."
)


@dataclasses.dataclass(frozen=True)
class Credential:
    """An access key with its secret and the scope a signature is made for."""

    access_key: str
    secret: str
    date: str
    region: str
    service: str = "s3"

    def signer(self, *, presigned: bool = False) -> SigV4Auth:
        keys = Credentials(self.access_key, self.secret)
        if presigned:
            return S3SigV4QueryAuth(keys, self.service, self.region)
        kind = S3SigV4Auth if self.service == "s3" else SigV4Auth
        return kind(keys, self.service, self.region)

    def sign_text(self, text: str) -> str:
        """The signature of ``text`` itself, as a POST policy is signed."""
        request = AWSRequest()
        request.context["timestamp"] = f"{self.date}T000000Z"
        return str(self.signer().signature(text, request))


@dataclasses.dataclass(frozen=True)
class PostGrant:
    """What a verified POST policy allows: who signed it and the size bounds."""

    credential: Credential
    min_size: int = 0
    max_size: int | None = None

    def check_size(self, size: int) -> None:
        if self.max_size is not None and size > self.max_size:
            raise S3Error(
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size",
                {"ProposedSize": str(size), "MaxSizeAllowed": str(self.max_size)},
            )
        if size < self.min_size:
            raise S3Error(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                {"ProposedSize": str(size), "MinSizeAllowed": str(self.min_size)},
            )


def canonical_uri(raw_path: str) -> str:
    """S3 signs the path as each segment URI-encoded once, slashes kept."""
    return quote(unquote(raw_path), safe="/~")


def signature_of(
    credential: Credential,
    amz_date: str,
    *,
    method: str,
    raw_path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes | None = None,
    presigned: bool = False,
) -> tuple[str, str, str]:
    """(canonical request, string to sign, signature) as botocore's signer
    makes them for this request; ``headers`` has lower-case names."""
    request = AWSRequest(
        method=method,
        url=f"http://{headers.get('host', '')}{canonical_uri(raw_path)}",
        headers={name: headers.get(name, "") for name in signed_headers},
        params=list(query),
        data=body,
    )
    request.context["timestamp"] = amz_date
    signer = credential.signer(presigned=presigned)
    canonical = signer.canonical_request(request)
    text = signer.string_to_sign(request, canonical)
    return canonical, text, signer.signature(text, request)


def is_query_authenticated(query: Sequence[tuple[str, str]]) -> bool:
    """Whether the query carries any signature S3 would check.

    Any one of the parameters is enough: dropping X-Amz-Algorithm must not turn
    a presigned URL into an unchecked one (moto treats any ``Signature=`` in the
    URL as signed).
    """
    names = {name.lower() for name, _ in query}
    presigned = {name.lower() for name in _PRESIGNED_PARAMS}
    return bool(names & (presigned | _SIGV2_QUERY_PARAMS))


def verify_presigned(
    *,
    method: str,
    raw_path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    secret_for: SecretLookup,
    now: datetime,
) -> Credential:
    """Check a query-string SigV4 request the way S3 does and return who
    signed it; raise :class:`S3Error`.

    ``headers`` maps lower-case names to the request's values.
    """
    params = dict(query)
    if not any(name in params for name in _PRESIGNED_PARAMS):
        raise S3Error("InvalidRequest", _UNSUPPORTED)
    if not all(params.get(name) for name in _PRESIGNED_PARAMS):
        raise _query_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
            "and X-Amz-Expires parameters."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise _query_error(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    amz_date = params["X-Amz-Date"]
    signed_at = _parse_amz_date(amz_date, _query_error)
    expires = _parse_expires(params["X-Amz-Expires"])
    credential = _credential(params["X-Amz-Credential"], secret_for, _query_error)
    if credential.date != amz_date[:8]:
        raise _query_error(
            "Invalid credential date. Date is not the same as X-Amz-Date."
        )
    if signed_at - now > ALLOWED_CLOCK_SKEW:
        raise S3Error("AccessDenied", "Request is not yet valid")
    if now > signed_at + timedelta(seconds=expires):
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            {
                "X-Amz-Expires": str(expires),
                "Expires": _iso(signed_at + timedelta(seconds=expires)),
                "ServerTime": _iso(now),
            },
        )
    _check_signature(
        credential,
        amz_date,
        params["X-Amz-Signature"],
        method=method,
        raw_path=raw_path,
        query=[(name, value) for name, value in query if name != "X-Amz-Signature"],
        headers=headers,
        signed_headers=params["X-Amz-SignedHeaders"].lower().split(";"),
        presigned=True,
    )
    return credential


def verify_header_signed(
    *,
    method: str,
    raw_path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    secret_for: SecretLookup,
    now: datetime,
    body: bytes | None = None,
    service: str | None = "s3",
) -> Credential:
    """Check a request signed in its Authorization header the way S3 does,
    and return who signed it; raise :class:`S3Error` (anonymous requests
    included). ``service`` None takes any service's signature, whose payload
    hash is then that of ``body``."""
    authorization = headers.get("authorization", "")
    if not authorization:
        raise S3Error("AccessDenied", "Access Denied")
    parsed = _AUTHORIZATION.fullmatch(authorization.strip())
    if not authorization.startswith(ALGORITHM):
        raise S3Error("InvalidRequest", _UNSUPPORTED)
    if parsed is None:
        raise S3Error(
            "AuthorizationHeaderMalformed",
            "The authorization header is malformed; it must be "
            f"{ALGORITHM} Credential=..., SignedHeaders=..., Signature=...",
        )
    credential = _credential(parsed[1], secret_for, _header_error, service)
    amz_date = headers.get("x-amz-date", "")
    if abs(now - _parse_amz_date(amz_date, _header_error)) > ALLOWED_CLOCK_SKEW:
        raise S3Error(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is "
            "too large.",
        )
    _check_signature(
        credential,
        amz_date,
        parsed[3],
        method=method,
        raw_path=raw_path,
        query=query,
        headers=headers,
        signed_headers=parsed[2].lower().split(";"),
        body=body,
    )
    return credential


def _check_signature(
    credential: Credential,
    amz_date: str,
    provided: str,
    *,
    signed_headers: Sequence[str],
    headers: Mapping[str, str],
    **request: Any,
) -> None:
    unsigned = sorted(
        name
        for name in headers
        if name.startswith("x-amz-") and name not in signed_headers
    )
    if unsigned:
        raise S3Error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            {"HeadersNotSigned": ", ".join(unsigned)},
        )
    canonical, text, expected = signature_of(
        credential, amz_date, headers=headers, signed_headers=signed_headers, **request
    )
    if not hmac.compare_digest(expected, provided):
        raise S3Error(
            "SignatureDoesNotMatch",
            _SIGNATURE_MISMATCH,
            {
                "AWSAccessKeyId": credential.access_key,
                "StringToSign": text,
                "SignatureProvided": provided,
                "CanonicalRequest": canonical,
            },
        )


def verify_post_policy(
    *,
    bucket: str,
    fields: Mapping[str, str],
    secret_for: SecretLookup,
    now: datetime,
) -> PostGrant:
    """Check a browser POST upload's form fields against its signed policy.

    ``fields`` maps lower-case form field names to values, and holds only the
    fields before the file, which are all S3 reads. The file size is checked
    later with :meth:`PostGrant.check_size`, once it is known.
    """
    if "key" not in fields:
        raise _missing_field("key")
    if "policy" not in fields:
        # Without a policy S3 treats the upload as anonymous, which private
        # buckets (all of the platform's) refuse.
        raise S3Error("AccessDenied", "Access Denied")
    for name in (*_POST_AUTH_FIELDS, "x-amz-signature"):
        if name not in fields:
            raise _missing_field(name)
    if fields["x-amz-algorithm"] != ALGORITHM:
        raise _form_error(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    _parse_amz_date(fields["x-amz-date"], _form_error)
    credential = _credential(fields["x-amz-credential"], secret_for, _form_error)
    encoded_policy = fields["policy"]
    expected = credential.sign_text(encoded_policy)
    if not hmac.compare_digest(expected, fields["x-amz-signature"]):
        raise S3Error(
            "SignatureDoesNotMatch",
            _SIGNATURE_MISMATCH,
            {
                "AWSAccessKeyId": credential.access_key,
                "StringToSign": encoded_policy,
                "SignatureProvided": fields["x-amz-signature"],
            },
        )
    policy = _decode_policy(encoded_policy)
    if now > _policy_expiration(policy):
        raise _policy_denied("Policy expired.")
    values = {**fields, "bucket": bucket}
    covered, sizes = _check_conditions(policy.get("conditions"), values)
    extra = [
        name
        for name in fields
        if name not in covered
        and name not in _POST_FIELDS_WITHOUT_CONDITION
        and not name.startswith("x-ignore-")
    ]
    if extra:
        raise _policy_denied(f"Extra input fields: {', '.join(extra)}")
    min_size = max((low for low, _ in sizes), default=0)
    max_size = min((high for _, high in sizes), default=None)
    return PostGrant(credential=credential, min_size=min_size, max_size=max_size)


def _check_conditions(
    conditions: Any, values: Mapping[str, str]
) -> tuple[set[str], list[tuple[int, int]]]:
    """Evaluate every condition; return the field names they cover and the
    content-length ranges."""
    if not isinstance(conditions, list):
        raise _invalid_policy("Invalid Policy: Policy missing conditions.")
    covered: set[str] = set()
    sizes: list[tuple[int, int]] = []
    for condition in conditions:
        if isinstance(condition, dict):
            checks = [("eq", f"${name}", value) for name, value in condition.items()]
        elif (
            isinstance(condition, list)
            and len(condition) == 3
            and str(condition[0]).lower() == "content-length-range"
        ):
            sizes.append((_as_int(condition[1]), _as_int(condition[2])))
            continue
        elif isinstance(condition, list) and len(condition) == 3:
            checks = [(str(condition[0]).lower(), condition[1], condition[2])]
        else:
            raise _invalid_policy(f"Invalid Policy: Invalid Condition: {condition}")
        for operator, field, expected in checks:
            if not (isinstance(field, str) and field.startswith("$")) or not isinstance(
                expected, str
            ):
                raise _invalid_policy(f"Invalid Policy: Invalid Condition: {condition}")
            name = field[1:].lower()
            actual = values.get(name, "")
            if operator == "eq":
                matches = actual == expected
            elif operator == "starts-with":
                matches = actual.startswith(expected)
            else:
                raise _invalid_policy(
                    f"Invalid Policy: Invalid Condition: unknown operator {operator}"
                )
            if not matches:
                failed = json.dumps([operator, field, expected])
                raise _policy_denied(f"Policy Condition failed: {failed}")
            covered.add(name)
    return covered, sizes


def _decode_policy(encoded: str) -> dict[str, Any]:
    try:
        policy = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise _invalid_policy("Invalid Policy: Invalid JSON.") from error
    if not isinstance(policy, dict):
        raise _invalid_policy("Invalid Policy: Invalid JSON.")
    return policy


def _policy_expiration(policy: Mapping[str, Any]) -> datetime:
    value = policy.get("expiration")
    if not isinstance(value, str):
        raise _invalid_policy("Invalid Policy: Policy missing expiration.")
    try:
        expiration = datetime.fromisoformat(value)
    except ValueError as error:
        raise _invalid_policy(
            f"Invalid Policy: Invalid 'expiration' value: '{value}'"
        ) from error
    return expiration if expiration.tzinfo else expiration.replace(tzinfo=UTC)


def _credential(
    value: str,
    secret_for: SecretLookup,
    malformed: Callable[[str], S3Error],
    service: str | None = "s3",
) -> Credential:
    parts = value.split("/")
    if len(parts) != 5:
        raise malformed(
            "Error parsing the X-Amz-Credential parameter; the Credential is "
            'mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
        )
    access_key, date, region, scope_service, terminal = parts
    if service is not None and scope_service != service:
        raise malformed(
            f"Error parsing the X-Amz-Credential parameter; incorrect service "
            f'"{scope_service}". This endpoint belongs to "{service}".'
        )
    if terminal != "aws4_request":
        raise malformed(
            f"Error parsing the X-Amz-Credential parameter; incorrect terminal "
            f'"{terminal}". This endpoint uses "aws4_request".'
        )
    secret = secret_for(access_key)
    if secret is None:
        raise S3Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            {"AWSAccessKeyId": access_key},
        )
    return Credential(access_key, secret, date, region, scope_service)


def _parse_amz_date(value: str, malformed: Callable[[str], S3Error]) -> datetime:
    try:
        return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError as error:
        raise malformed(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
        ) from error


def _parse_expires(value: str) -> int:
    try:
        expires = int(value)
    except ValueError as error:
        raise _query_error("X-Amz-Expires should be a number") from error
    if expires < 0:
        raise _query_error("X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGNED_EXPIRES:
        raise _query_error(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800"
        )
    return expires


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as error:
        raise _invalid_policy(
            f"Invalid Policy: Invalid content-length-range value: {value!r}"
        ) from error


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _missing_field(name: str) -> S3Error:
    return _form_error(
        f"Bucket POST must contain a field named '{name}'.  "
        "If it is specified, please check the order of the fields."
    )


def _policy_denied(reason: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {reason}")
