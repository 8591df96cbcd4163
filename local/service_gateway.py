"""The local front of the JSON APIs the components call (DynamoDB and its
streams, SQS, EventBridge): a proxy in front of moto that checks each
request's SigV4 signature and asks IAM whether its signer may make the call,
as those services do and moto does not. A refusal has the service's own
status and error shape, so that boto3 raises what it raises on AWS.
"""

from __future__ import annotations

import http.client
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.iam import Authorize
from local.playback import LoopbackHttpServer, LoopbackService
from local.sigv4_verify import S3Error, SecretLookup, verify_header_signed
from local.template import PARTITION, REGION, arn

log = logging.getLogger(__name__)

#: Longer than SQS's longest poll (20 s).
UPSTREAM_TIMEOUT_SECONDS = 60
CLIENT_TIMEOUT_SECONDS = 60
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
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "expect"}
)
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


class ServiceGateway(LoopbackService):
    """A threaded HTTP server on ``host:port`` (a free port when 0) that fronts
    the moto server at ``upstream`` for the JSON APIs; ``secrets`` and
    ``authorize`` are as the S3 gateway's."""

    def __init__(
        self,
        *,
        upstream: str,
        secrets: SecretLookup,
        authorize: Authorize,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.secret_for = secrets
        self.authorize = authorize
        handler = type("Handler", (_Handler,), {"gateway": self})
        self._server = LoopbackHttpServer((host, port), handler, name="service-gateway")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = CLIENT_TIMEOUT_SECONDS
    gateway: ServiceGateway

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = self.headers.get("X-Amz-Target", "")
        service = SIGNING_NAMES.get(target.partition(".")[0], "")
        headers = {
            name.lower(): ",".join(self.headers.get_all(name) or [])
            for name in self.headers
        }
        try:
            if not service:
                raise S3Error(
                    400,
                    "UnknownOperationException",
                    f"the local run fronts the JSON APIs {sorted(SIGNING_NAMES)}; "
                    f"X-Amz-Target is {target!r}",
                )
            if "authorization" not in headers:
                raise S3Error(
                    400,
                    "MissingAuthenticationToken",
                    "Request is missing Authentication Token",
                )
            target_url = urlsplit(self.path)
            signer = verify_header_signed(
                method=self.command,
                raw_path=target_url.path,
                query=parse_qsl(target_url.query, keep_blank_values=True),
                headers=headers,
                secret_for=self.gateway.secret_for,
                now=datetime.now(UTC),
                body=body,
                service=service,
            ).access_key
            try:
                request = json.loads(body or b"{}")
            except ValueError as error:
                raise S3Error(400, "SerializationException", str(error)) from None
            for action, resource in service_checks(target, request):
                denial = self.gateway.authorize(signer, action, resource, {})
                if denial is not None:
                    raise S3Error(403, "AccessDenied", denial)
        except S3Error as error:
            self._refuse(service, error)
            return
        self._forward(body)

    def _forward(self, body: bytes) -> None:
        connection = http.client.HTTPConnection(
            *self.gateway.upstream, timeout=UPSTREAM_TIMEOUT_SECONDS
        )
        try:
            headers = {
                name: value
                for name, value in self.headers.items()
                if name.lower() not in _HOP_BY_HOP
            }
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
        finally:
            connection.close()
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self._end(answer)

    def _refuse(self, service: str, error: S3Error) -> None:
        code = _JSON_CODES.get(error.code, error.code)
        self.send_response_only(403 if service == "sqs" else 400)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if service == "sqs":
            query_code = _QUERY_CODES.get(error.code, error.code)
            self.send_header("x-amzn-query-error", f"{query_code};Sender")
        self._end(json.dumps({"__type": code, "message": error.message}).encode())

    def _end(self, body: bytes) -> None:
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
