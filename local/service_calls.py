"""The JSON APIs the components call (DynamoDB and its streams, SQS,
EventBridge), checked by signature and IAM and refused in each service's own
error shape."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.iam import Authorize
from local.sigv4_verify import S3Error, SecretLookup, verify_header_signed
from local.template import PARTITION, REGION, arn

#: The signing name of each API, by the prefix of its X-Amz-Target.
SIGNING_NAMES = {
    "DynamoDB_20120810": "dynamodb",
    "DynamoDBStreams_20120810": "dynamodb",
    "AmazonSQS": "sqs",
    "AWSEvents": "events",
}
#: The JSON services' codes for what S3 calls its refusals; SQS, a former
#: query API, adds its query code in a header, and answers 403 where the
#: others answer 400.
_JSON_CODES = {
    "MissingAuthenticationToken": "MissingAuthenticationTokenException",
    "AccessDenied": "AccessDeniedException",
    "InvalidAccessKeyId": "UnrecognizedClientException",
    "SignatureDoesNotMatch": "InvalidSignatureException",
    "RequestTimeTooSkewed": "InvalidSignatureException",
}
_QUERY_CODES = {"InvalidAccessKeyId": "InvalidClientTokenId"}
#: The item action each part of a DynamoDB transaction needs.
_TRANSACT_ACTIONS = {
    "Get": "GetItem",
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _named(name: str, kind: str) -> str:
    """The ARN of a table or bus given by name or by ARN."""
    if name.startswith("arn:"):
        return name
    return arn("dynamodb" if kind == "table/" else "events", kind + name)


def _table(name: str) -> str:
    return _named(name, "table/")


def service_checks(target: str, request: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What IAM checks for one JSON API call: (action, resource ARN) each."""
    prefix, _, operation = target.partition(".")
    service = SIGNING_NAMES[prefix]
    found: list[tuple[str, str]] = []
    if service == "dynamodb":
        if "StreamArn" in request:
            found = [(operation, request["StreamArn"])]
        elif "ShardIterator" in request:
            # moto's iterators start with their stream's ARN (AWS's are opaque).
            found = [(operation, request["ShardIterator"].partition("|")[0])]
        elif "TableName" in request:
            index = request.get("IndexName")
            table = _table(request["TableName"])
            found = [(operation, f"{table}/index/{index}" if index else table)]
        found += [(operation, _table(t)) for t in request.get("RequestItems", {})]
        found += [
            (_TRANSACT_ACTIONS[kind], _table(part["TableName"]))
            for item in request.get("TransactItems", [])
            for kind, part in item.items()
        ]
    elif service == "sqs":
        operation = operation.removesuffix("Batch")
        if "QueueUrl" in request:
            account, name = urlsplit(request["QueueUrl"]).path.split("/")[-2:]
            found = [(operation, f"arn:{PARTITION}:sqs:{REGION}:{account}:{name}")]
        elif "QueueName" in request:
            found = [(operation, arn("sqs", request["QueueName"]))]
    else:
        found = [
            (operation, _named(entry.get("EventBusName") or "default", "event-bus/"))
            for entry in request.get("Entries", [])
        ]
    return [(f"{service}:{action}", resource) for action, resource in found] or [
        (f"{service}:{operation}", "*")
    ]


def check_call(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: SecretLookup,
    authorize: Authorize,
    now: datetime,
) -> None:
    """Refuse a JSON API call (:class:`S3Error`) that is not validly signed
    by a known key, or that IAM does not allow its signer; ``headers`` has
    lower-case names."""
    target = headers.get("x-amz-target", "")
    service = SIGNING_NAMES.get(target.partition(".")[0], "")
    if not service:
        raise S3Error(
            "UnknownOperationException",
            f"the local run fronts the JSON APIs {sorted(SIGNING_NAMES)}; "
            f"X-Amz-Target is {target!r}",
        )
    if "authorization" not in headers:
        raise S3Error(
            "MissingAuthenticationToken", "Request is missing Authentication Token"
        )
    url = urlsplit(path)
    signer = verify_header_signed(
        method=method,
        raw_path=url.path,
        query=parse_qsl(url.query, keep_blank_values=True),
        headers=headers,
        secret_for=secret_for,
        now=now,
        body=body,
        service=service,
    ).access_key
    try:
        request = json.loads(body or b"{}")
    except ValueError as error:
        raise S3Error("SerializationException", str(error)) from None
    for action, resource in service_checks(target, request):
        denial = authorize(signer, action, resource, {})
        if denial is not None:
            raise S3Error("AccessDenied", denial)


def refusal(target: str, error: S3Error) -> tuple[int, list[tuple[str, str]], bytes]:
    """The service's answer to a refused call: status, headers and body."""
    service = SIGNING_NAMES.get(target.partition(".")[0], "")
    headers = [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]
    if service == "sqs":
        query_code = _QUERY_CODES.get(error.code, error.code)
        headers.append(("x-amzn-query-error", f"{query_code};Sender"))
    body = {"__type": _JSON_CODES.get(error.code, error.code), "message": error.message}
    return 403 if service == "sqs" else 400, headers, json.dumps(body).encode()
