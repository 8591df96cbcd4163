"""S3's request authentication as pure functions: SigV4 presigned URLs, POST
policies, and the header signature the gateway puts on its own requests.

The checks follow what S3 answers, error code and message included, so that a
client that works against the local gateway works against S3 and fails the
same way. Everything here is plain data in, :class:`S3Error` out.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
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
_POST_AUTH_FIELDS = ("x-amz-algorithm", "x-amz-credential", "x-amz-date")
#: Form fields S3 never expects a policy condition for.
_POST_FIELDS_WITHOUT_CONDITION = frozenset({"x-amz-signature", "file", "policy"})
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you "
    "provided. Check your key and signing method."
)


class S3Error(Exception):
    """An error S3 would answer with: HTTP status, code, message and the extra
    elements S3 puts in its ``<Error>`` document."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})


@dataclasses.dataclass(frozen=True)
class Credential:
    """An access key with its secret and the scope a signature is made for."""

    access_key: str
    secret: str
    date: str
    region: str
    service: str = "s3"

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"

    def sign(self, amz_date: str, canonical_request: str) -> tuple[str, str]:
        """Return (string to sign, hex signature) for a canonical request."""
        text = string_to_sign(amz_date, self.scope, canonical_request)
        return text, self.sign_text(text)

    def sign_text(self, text: str) -> str:
        key = f"AWS4{self.secret}".encode()
        for part in (self.date, self.region, self.service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


@dataclasses.dataclass(frozen=True)
class PostGrant:
    """What a verified POST policy allows: who signed it and the size bounds."""

    credential: Credential
    min_size: int = 0
    max_size: int | None = None

    def check_size(self, size: int) -> None:
        if self.max_size is not None and size > self.max_size:
            raise S3Error(
                400,
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size",
                {"ProposedSize": str(size), "MaxSizeAllowed": str(self.max_size)},
            )
        if size < self.min_size:
            raise S3Error(
                400,
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                {"ProposedSize": str(size), "MinSizeAllowed": str(self.min_size)},
            )


def canonical_uri(raw_path: str) -> str:
    """S3 signs the path as each segment URI-encoded once, slashes kept."""
    return quote(unquote(raw_path), safe="/~")


def canonical_query(pairs: Sequence[tuple[str, str]]) -> str:
    encoded = sorted(
        (quote(name, safe="~"), quote(value, safe="~")) for name, value in pairs
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_request(
    method: str,
    raw_path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    """The SigV4 canonical request; ``headers`` has lower-case names."""
    header_lines = "".join(
        f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed_headers
    )
    return "\n".join(
        [
            method,
            canonical_uri(raw_path),
            canonical_query(query),
            header_lines,
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


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
) -> None:
    """Check a query-string SigV4 request the way S3 does; raise :class:`S3Error`.

    ``headers`` maps lower-case names to the request's values.
    """
    params = dict(query)
    if not any(name in params for name in _PRESIGNED_PARAMS):
        raise S3Error(
            400,
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. "
            "Please use AWS4-HMAC-SHA256.",
        )
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
        raise S3Error(403, "AccessDenied", "Request is not yet valid")
    if now > signed_at + timedelta(seconds=expires):
        raise S3Error(
            403,
            "AccessDenied",
            "Request has expired",
            {
                "X-Amz-Expires": str(expires),
                "Expires": _iso(signed_at + timedelta(seconds=expires)),
                "ServerTime": _iso(now),
            },
        )
    signed_headers = params["X-Amz-SignedHeaders"].lower().split(";")
    canonical = canonical_request(
        method,
        raw_path,
        [(name, value) for name, value in query if name != "X-Amz-Signature"],
        headers,
        signed_headers,
        UNSIGNED_PAYLOAD,
    )
    text, expected = credential.sign(amz_date, canonical)
    provided = params["X-Amz-Signature"]
    if not hmac.compare_digest(expected, provided):
        raise S3Error(
            403,
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
        raise S3Error(403, "AccessDenied", "Access Denied")
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
            403,
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


def sign_headers(
    *,
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    credential: Credential,
    now: datetime,
) -> dict[str, str]:
    """Header-signed SigV4 for a request with an unsigned payload.

    Returns ``headers`` (lower-case names, ``host`` included) plus the
    ``x-amz-date``, ``x-amz-content-sha256`` and ``authorization`` headers.
    """
    amz_date = now.astimezone(UTC).strftime(AMZ_DATE_FORMAT)
    dated = dataclasses.replace(credential, date=amz_date[:8])
    signed = {
        **headers,
        "x-amz-date": amz_date,
        "x-amz-content-sha256": UNSIGNED_PAYLOAD,
    }
    names = sorted(signed)
    canonical = canonical_request(method, raw_path, [], signed, names, UNSIGNED_PAYLOAD)
    _, signature = dated.sign(amz_date, canonical)
    signed["authorization"] = (
        f"{ALGORITHM} Credential={dated.access_key}/{dated.scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return signed


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
    value: str, secret_for: SecretLookup, malformed: Callable[[str], S3Error]
) -> Credential:
    parts = value.split("/")
    if len(parts) != 5:
        raise malformed(
            "Error parsing the X-Amz-Credential parameter; the Credential is "
            'mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
        )
    access_key, date, region, service, terminal = parts
    if service != "s3":
        raise malformed(
            f"Error parsing the X-Amz-Credential parameter; incorrect service "
            f'"{service}". This endpoint belongs to "s3".'
        )
    if terminal != "aws4_request":
        raise malformed(
            f"Error parsing the X-Amz-Credential parameter; incorrect terminal "
            f'"{terminal}". This endpoint uses "aws4_request".'
        )
    secret = secret_for(access_key)
    if secret is None:
        raise S3Error(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            {"AWSAccessKeyId": access_key},
        )
    return Credential(access_key, secret, date, region, service)


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


def _query_error(message: str) -> S3Error:
    return S3Error(400, "AuthorizationQueryParametersError", message)


def _form_error(message: str) -> S3Error:
    return S3Error(400, "InvalidArgument", message)


def _missing_field(name: str) -> S3Error:
    return _form_error(
        f"Bucket POST must contain a field named '{name}'.  "
        "If it is specified, please check the order of the fields."
    )


def _invalid_policy(message: str) -> S3Error:
    return S3Error(400, "InvalidPolicyDocument", message)


def _policy_denied(reason: str) -> S3Error:
    return S3Error(403, "AccessDenied", f"Invalid according to Policy: {reason}")
