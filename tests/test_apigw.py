"""The local HTTP API behaves like API Gateway's HTTP API where handlers and
browsers can tell: routing, the payload 2.0 event and response, the JWT
authorizer, CORS; and handlers called in process (tests/api_stack.py) each
see their own environment."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from typing import Any

import pytest
import requests

from local.apigw import LocalHttpApi, Route
from local.jwt_issuer import InvalidToken, LocalIssuer
from local.lambda_runtime import LambdaContext
from local.template import ACCOUNT_ID
from tests.api_stack import in_environment

ORIGIN = "http://localhost:3000"
ISSUER = LocalIssuer()


def echo(event, context):
    return {"event": event, "function": context.function_name}


def gateway(routes, *, issuer=ISSUER, **options):
    options.setdefault("allowed_origins", [ORIGIN])
    return LocalHttpApi(routes, issuer=issuer, **options)


def send(api, method, target, *, headers=(), body=b"", token=True):
    all_headers = list(headers)
    if token:
        all_headers.append(("Authorization", f"Bearer {ISSUER.mint('user-1')}"))
    return api.handle(method=method, target=target, headers=all_headers, body=body)


def json_of(response):
    return json.loads(response.body)


# Routing


ROUTES = {
    "GET /s3/multipart/{uploadId}/{partNumber}": echo,
    "GET /s3/multipart/{uploadId}/batch": echo,
    "ANY /files/{path+}": echo,
    "GET /files/{path+}": echo,
    "GET /videos": echo,
}


@pytest.mark.parametrize(
    ("method", "target", "route_key", "params"),
    [
        (
            "GET",
            "/s3/multipart/abc/batch",
            "GET /s3/multipart/{uploadId}/batch",
            {"uploadId": "abc"},
        ),
        (
            "GET",
            "/s3/multipart/a%2Bb%3D/7",
            "GET /s3/multipart/{uploadId}/{partNumber}",
            {"uploadId": "a+b=", "partNumber": "7"},
        ),
        ("GET", "/files/a/b%20c", "GET /files/{path+}", {"path": "a/b c"}),
        ("DELETE", "/files/a/b", "ANY /files/{path+}", {"path": "a/b"}),
        ("GET", "/videos?x=1", "GET /videos", None),
    ],
)
def test_routes_are_chosen_like_api_gateway(method, target, route_key, params):
    event = json_of(send(gateway(ROUTES), method, target))["event"]
    assert event["routeKey"] == event["requestContext"]["routeKey"] == route_key
    assert event.get("pathParameters") == params


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/nowhere"),
        ("POST", "/videos"),
        ("GET", "/videos/extra"),
        ("GET", "/files"),
    ],
)
def test_no_matching_route_is_404_not_found(method, target):
    response = send(gateway(ROUTES), method, target)
    assert (response.status, json_of(response)) == (404, {"message": "Not Found"})


def test_default_route_catches_the_rest():
    api = gateway({"GET /videos": echo, "$default": echo})
    assert json_of(send(api, "PUT", "/anything"))["event"]["routeKey"] == "$default"
    assert json_of(send(api, "GET", "/videos"))["event"]["routeKey"] == "GET /videos"


def test_a_malformed_route_key_is_refused_early():
    with pytest.raises(ValueError, match="METHOD /path"):
        gateway({"GET videos": echo})


# The payload 2.0 event


def test_the_event_carries_the_request_like_payload_2():
    response = send(
        gateway({"POST /videos/{id}": echo}),
        "POST",
        "/videos/v%201?a=1&a=2&b=&c=x%2By",
        headers=[
            ("Content-Type", "application/json"),
            ("X-Multi", "one"),
            ("x-multi", "two"),
            ("Cookie", "s=1; theme=dark"),
            ("User-Agent", "tests"),
        ],
        body=b'{"k": "v"}',
    )
    event = json_of(response)["event"]
    assert event["version"] == "2.0"
    assert event["rawPath"] == "/videos/v%201"
    assert event["rawQueryString"] == "a=1&a=2&b=&c=x%2By"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "", "c": "x+y"}
    assert event["pathParameters"] == {"id": "v 1"}
    assert event["headers"]["x-multi"] == "one,two"
    assert event["headers"]["content-type"] == "application/json"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["s=1", "theme=dark"]
    assert (event["body"], event["isBase64Encoded"]) == ('{"k": "v"}', False)
    http = event["requestContext"]["http"]
    assert http == {
        "method": "POST",
        "path": "/videos/v%201",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "tests",
    }
    context = event["requestContext"]
    assert context["accountId"] == ACCOUNT_ID
    assert context["stage"] == "$default"
    assert abs(context["timeEpoch"] / 1000 - time.time()) < 60


def test_binary_bodies_arrive_base64_encoded():
    data = bytes(range(256))
    event = json_of(
        send(
            gateway({"PUT /blob": echo}),
            "PUT",
            "/blob",
            headers=[("Content-Type", "application/octet-stream")],
            body=data,
        )
    )["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == data


def test_a_request_without_a_body_has_none():
    event = json_of(send(gateway({"GET /videos": echo}), "GET", "/videos"))["event"]
    assert "body" not in event
    assert "queryStringParameters" not in event
    assert "pathParameters" not in event


def test_the_context_names_the_function_and_counts_down():
    seen = {}

    def handler(event, context):
        seen["context"] = context
        seen["remaining"] = context.get_remaining_time_in_millis()
        return {}

    api = gateway(
        {"GET /x": Route(handler, function_name="upload", timeout_seconds=10)}
    )
    send(api, "GET", "/x")
    context = seen["context"]
    assert isinstance(context, LambdaContext)
    assert context.function_name == "upload"
    assert context.invoked_function_arn.endswith(":function:upload")
    assert 0 < seen["remaining"] <= 10_000
    assert context.aws_request_id


# The JWT authorizer


def test_claims_reach_the_handler_as_strings_with_scopes():
    token = ISSUER.mint("user-1", scope="videos/read videos/write", groups=["a", "b"])
    response = send(
        gateway({"GET /x": echo}),
        "GET",
        "/x",
        headers=[("Authorization", token)],
        token=False,
    )
    jwt = json_of(response)["event"]["requestContext"]["authorizer"]["jwt"]
    assert jwt["claims"]["sub"] == "user-1"
    assert jwt["claims"]["exp"].isdigit()
    assert jwt["claims"]["groups"] == "[a b]"
    assert jwt["scopes"] == ["videos/read", "videos/write"]


OTHER_KEY = LocalIssuer(issuer=ISSUER.issuer, audience=ISSUER.audience)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer ",
        "Bearer not-a-jwt",
        f"Bearer {ISSUER.mint('user-1', ttl=-10)}",
        f"Bearer {ISSUER.mint('user-1', aud='someone-else')}",
        f"Bearer {ISSUER.mint('user-1', iss='https://elsewhere')}",
        f"Bearer {OTHER_KEY.mint('user-1')}",
        f"Bearer {ISSUER.mint('user-1', nbf=2_000_000_000 * 2)}",
    ],
)
def test_a_missing_or_bad_token_is_401_unauthorized(authorization):
    calls = []
    headers = [("Authorization", authorization)] if authorization is not None else []
    response = send(
        gateway({"GET /x": lambda event, _context: calls.append(event)}),
        "GET",
        "/x",
        headers=headers,
        token=False,
    )
    assert (response.status, json_of(response)) == (401, {"message": "Unauthorized"})
    assert calls == []


def test_routes_without_the_authorizer_and_apis_without_an_issuer_pass():
    unguarded = gateway({"GET /x": Route(echo, authorize=False)})
    event = json_of(send(unguarded, "GET", "/x", token=False))["event"]
    assert "authorizer" not in event["requestContext"]
    open_api = gateway({"GET /x": echo}, issuer=None)
    assert send(open_api, "GET", "/x", token=False).status == 200


def test_the_issuer_accepts_cognito_access_tokens_with_client_id():
    access = LocalIssuer(audience_claim="client_id")
    claims = access.verify(access.mint("user-2"))
    assert claims["client_id"] == access.audience
    assert "aud" not in claims
    wrong = access.mint("user-2", client_id="another-client")
    with pytest.raises(InvalidToken, match="audience"):
        access.verify(wrong)


# Responses


@pytest.mark.parametrize(
    ("result", "status", "body"),
    [
        ({"a": 1}, 200, b'{"a": 1}'),
        ([1, 2], 200, b"[1, 2]"),
        ("text", 200, b'"text"'),
        ({"statusCode": 204}, 204, b""),
        ({"statusCode": 201, "body": "made"}, 201, b"made"),
        (
            {
                "statusCode": 200,
                "body": base64.b64encode(b"\0\1").decode(),
                "isBase64Encoded": True,
            },
            200,
            b"\0\1",
        ),
    ],
)
def test_handler_results_follow_the_payload_2_response_rules(result, status, body):
    response = send(gateway({"GET /x": lambda _event, _context: result}), "GET", "/x")
    assert (response.status, response.body) == (status, body)


def test_response_headers_and_cookies_pass_through():
    result = {
        "statusCode": 200,
        "headers": {"content-type": "text/plain", "x-id": "7"},
        "cookies": ["a=1; Path=/", "b=2"],
        "body": "ok",
    }
    response = send(gateway({"GET /x": lambda _event, _context: result}), "GET", "/x")
    assert ("x-id", "7") in response.headers
    assert [v for n, v in response.headers if n == "set-cookie"] == [
        "a=1; Path=/",
        "b=2",
    ]
    assert any(n == "apigw-requestid" for n, _ in response.headers)


@pytest.mark.parametrize(
    "handler",
    [
        lambda _event, _context: 1 / 0,
        lambda _event, _context: {"statusCode": "200"},
        lambda _event, _context: {"statusCode": 200, "body": {"not": "a string"}},
        lambda _event, _context: {1, 2},
    ],
)
def test_a_failing_or_malformed_handler_is_500_and_logged(handler, caplog):
    with caplog.at_level(logging.ERROR, logger="local.apigw"):
        response = send(gateway({"GET /x": handler}), "GET", "/x")
    assert (response.status, json_of(response)) == (
        500,
        {"message": "Internal Server Error"},
    )
    assert "Traceback" in caplog.text


# CORS


def preflight(api, origin=ORIGIN, method="POST", request_headers="authorization"):
    return send(
        api,
        "OPTIONS",
        "/videos",
        headers=[
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
            ("Access-Control-Request-Headers", request_headers),
        ],
        token=False,
    )


def test_preflights_from_allowed_origins_are_answered_by_the_api():
    response = preflight(gateway({"GET /videos": echo}, max_age_seconds=300))
    headers = dict(response.headers)
    assert response.status == 204
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "authorization,content-type"
    assert headers["access-control-max-age"] == "300"


@pytest.mark.parametrize(
    "overrides",
    [
        {"origin": "http://evil.example"},
        {"method": "PUT"},
        {"request_headers": "authorization,x-secret"},
    ],
)
def test_preflights_outside_the_configuration_get_no_cors_headers(overrides):
    api = gateway({"GET /videos": echo}, allow_methods=("GET", "POST"))
    response = preflight(api, **overrides)
    assert response.status == 204
    assert not any(n.startswith("access-control-") for n, _ in response.headers)


def test_responses_carry_the_allowed_origin_and_never_the_handlers_own_cors():
    def handler(event, context):
        return {"statusCode": 200, "headers": {"access-control-allow-origin": "*"}}

    api = gateway({"GET /x": handler})
    allowed = dict(send(api, "GET", "/x", headers=[("Origin", ORIGIN)]).headers)
    assert allowed["access-control-allow-origin"] == ORIGIN
    refused = send(api, "GET", "/x", headers=[("Origin", "http://evil.example")])
    assert not any(n.startswith("access-control-") for n, _ in refused.headers)
    unauthorized = send(api, "GET", "/x", headers=[("Origin", ORIGIN)], token=False)
    assert dict(unauthorized.headers)["access-control-allow-origin"] == ORIGIN


# Each function's environment


def test_each_route_sees_its_own_environment_even_when_called_concurrently(monkeypatch):
    monkeypatch.setenv("VOD_SHARED", "outside")
    monkeypatch.delenv("VOD_ONLY_A", raising=False)

    def reader(event, context):
        return {
            "shared": os.environ.get("VOD_SHARED"),
            "a": os.environ.get("VOD_ONLY_A"),
        }

    api = gateway(
        {
            "GET /a": Route(
                in_environment(reader, {"VOD_SHARED": "a", "VOD_ONLY_A": "yes"})
            ),
            "GET /b": Route(in_environment(reader, {"VOD_SHARED": "b"})),
        }
    )
    answers: list[tuple[str, dict[str, Any]]] = []

    def call(path):
        for _ in range(20):
            answers.append((path, json_of(send(api, "GET", path))))

    threads = [threading.Thread(target=call, args=(p,)) for p in ("/a", "/b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(answers) == 40
    for path, answer in answers:
        expected = {"/a": {"shared": "a", "a": "yes"}, "/b": {"shared": "b", "a": None}}
        assert answer == expected[path]
    assert os.environ["VOD_SHARED"] == "outside"
    assert "VOD_ONLY_A" not in os.environ


# Over real HTTP


def test_it_serves_real_http_on_loopback():
    with gateway({"POST /echo/{id}": echo}) as api:
        url = api.url
        assert api.url.startswith("http://127.0.0.1:")
        response = requests.post(
            f"{api.url}/echo/7?q=1",
            json={"hello": "world"},
            headers={
                "Authorization": f"Bearer {ISSUER.mint('user-1')}",
                "Origin": ORIGIN,
            },
            timeout=10,
        )
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        event = response.json()["event"]
        assert event["pathParameters"] == {"id": "7"}
        assert json.loads(event["body"]) == {"hello": "world"}
        assert event["headers"]["host"] == api.url.split("://")[1]
        missing = requests.get(f"{api.url}/nowhere", timeout=10)
        assert (missing.status_code, missing.json()) == (404, {"message": "Not Found"})
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/echo/7", timeout=2)
