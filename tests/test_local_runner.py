"""The local platform built from the synthesized template: resources read back
from moto match the template, the API serves the template's routes with the
JWT authorizer, functions run from their assets with their own environment,
S3 events reach the function the notification configuration names, the
playback reader serves the output bucket, and stop leaves nothing behind."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import socket
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import jwt
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from lambdas.ingest.app import object_created_records
from local.event_sources import DynamoStreamPoller, SqsQueuePoller, succeeded
from local.jwt_issuer import LocalIssuer, user_sub
from local.lambda_runtime import HandlerError, LambdaProcess
from local.motoserver import SETUP_CREDENTIALS
from local.runner import ROOT, LocalPlatform
from local.s3_events import event_matches, event_record, matching
from local.s3_gateway import ObjectCreated, S3Gateway
from local.template import MappingSpec, NotificationSpec
from tests.conftest import cdk_json_context, client, make_bucket, unique
from tests.test_dead_jobs import (
    STALLED,
    STALLED_DESCRIBED,
    chunk_job,
    chunked_video,
    stalled_tasks,
)
from vod.events import DETAIL_TYPE
from vod.events import SOURCE as SOURCE_NAME
from vod.model import Status
from vod.repository import VideoRepository
from vod.settings import Env

ORIGIN = "http://localhost:8787"
TIMEOUT = 10
SOURCE = "StorageSourceBucketB2F37168"
OUTPUT = "StorageOutputBucketCD2EEB3A"
TABLE = "VideosTable41110721"
QUEUE = "TranscoderJobsQueue80B55895"
DLQ = "TranscoderJobsDeadLetterQueue6147221E"
INGEST = "IngestFunction83726A21"
DEAD_JOBS = "TranscoderDeadJobsFunction2060F3E6"


@pytest.fixture(scope="module")
def page_port() -> int:
    """A port for the page that no template names (as `make demo-serve
    WEB_PORT=...` picks one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def platform(synth, tmp_path_factory, page_port):
    with LocalPlatform(
        synth.outdir,
        web_port=page_port,
        run_dir=tmp_path_factory.mktemp("run"),
        worker_stop_seconds=1,
    ) as running:
        yield running


def props(synth, logical: str):
    return synth.templates["Vod"]["Resources"][logical]["Properties"]


def name_of(platform, logical: str):
    return platform.template.resources[logical].ref


def gateway_s3(platform):
    """An S3 client that talks to the gateway, as the functions' clients do,
    with the runner's own all-powerful key."""
    return boto3.client(
        "s3",
        endpoint_url=platform.s3_url,
        region_name="us-east-1",
        aws_access_key_id=SETUP_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SETUP_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version="s3v4"),
    )


def wait_for_deliveries(platform, key: str, count: int = 1):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = [d for d in platform.events.deliveries() if d.key == key]
        if len(found) >= count and all(d.outcome != "pending" for d in found):
            return found
        time.sleep(0.05)
    raise AssertionError(f"no delivery settled for {key}")


# --- resources from the template ---


def test_buckets_have_the_template_cors(platform, synth):
    s3 = platform.admin_client("s3")
    source = name_of(platform, SOURCE)
    assert source.startswith("vod-storagesourcebucketb2f37168-")
    # The knob's origins, then the web app's; the local page's joins both.
    rules = s3.get_bucket_cors(Bucket=source)["CORSRules"]
    expected_rules = props(synth, SOURCE)["CorsConfiguration"]["CorsRules"]
    assert len(rules) == len(expected_rules) == 2
    for cors, expected in zip(rules, expected_rules, strict=True):
        assert cors["AllowedOrigins"][-1] == platform.web_url
        assert cors["AllowedMethods"] == expected["AllowedMethods"]
        assert cors["ExposeHeaders"] == expected["ExposedHeaders"]
    assert rules[0]["AllowedOrigins"][:-1] == expected_rules[0]["AllowedOrigins"]
    output = name_of(platform, OUTPUT)
    for output_cors in s3.get_bucket_cors(Bucket=output)["CORSRules"]:
        assert output_cors["AllowedMethods"] == ["GET", "HEAD"]


def test_the_table_has_the_template_keys_index_and_ttl(platform, synth):
    dynamodb = platform.admin_client("dynamodb")
    table = name_of(platform, TABLE)
    described = dynamodb.describe_table(TableName=table)["Table"]
    expected = props(synth, TABLE)
    assert described["KeySchema"] == expected["KeySchema"]
    assert [
        (index["IndexName"], index["KeySchema"])
        for index in described["GlobalSecondaryIndexes"]
    ] == [
        (index["IndexName"], index["KeySchema"])
        for index in expected["GlobalSecondaryIndexes"]
    ]
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": expected["TimeToLiveSpecification"]["AttributeName"],
    }


def test_the_jobs_queue_redrives_to_the_dead_letter_queue(platform, synth):
    sqs = platform.admin_client("sqs")
    queue_url = platform.template.resources[QUEUE].ref
    dlq_url = platform.template.resources[DLQ].ref
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq_arn
    assert int(redrive["maxReceiveCount"]) == cdk_json_context()["jobsMaxReceiveCount"]
    assert attributes["VisibilityTimeout"] == str(
        props(synth, QUEUE)["VisibilityTimeout"]
    )


# --- the API ---


def test_a_minted_token_passes_the_authorizer_and_a_missing_one_is_401(platform):
    ok = requests.get(
        f"{platform.api_url}/videos",
        headers={"Authorization": f"Bearer {platform.mint_token('user-1')}"},
        timeout=TIMEOUT,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["videos"] == []
    missing = requests.get(f"{platform.api_url}/videos", timeout=TIMEOUT)
    assert missing.status_code == 401
    assert missing.json() == {"message": "Unauthorized"}


def test_a_token_from_another_issuer_is_refused(platform):
    stranger = LocalIssuer(platform.issuer.issuer, platform.issuer.audience)
    refused = requests.get(
        f"{platform.api_url}/videos",
        headers={"Authorization": f"Bearer {stranger.mint('user-1')}"},
        timeout=TIMEOUT,
    )
    assert refused.status_code == 401


def test_the_api_answers_preflights_for_the_template_origins(platform):
    preflight = requests.options(
        f"{platform.api_url}/s3/multipart",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=TIMEOUT,
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN


def test_a_page_on_a_chosen_port_is_allowed_by_the_api_buckets_and_reader(
    platform, page_port
):
    page = f"http://localhost:{page_port}"
    assert platform.web_url == page
    assert page not in cdk_json_context()["allowedOrigins"]
    source = name_of(platform, SOURCE)
    preflights = {
        f"{platform.api_url}/s3/multipart": ("POST", "authorization,content-type"),
        f"{platform.s3_url}/{source}/uploads/u/v/clip.mp4": ("PUT", "content-type"),
        f"{platform.playback_url}/videos/v/master.m3u8": ("GET", "range"),
    }
    for url, (method, headers) in preflights.items():
        for origin, allowed in ((page, True), ("http://localhost:1", False)):
            answer = requests.options(
                url,
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": headers,
                },
                timeout=TIMEOUT,
            )
            granted = answer.headers.get("access-control-allow-origin")
            assert granted == (origin if allowed else None), (url, origin)


def test_an_upload_through_the_api_writes_the_template_bucket_and_table(platform):
    token = platform.mint_token("user-2")
    created = requests.post(
        f"{platform.api_url}/s3/multipart",
        json={"filename": "a.mp4", "type": "video/mp4", "size": 1024},
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    assert created.status_code == 200, created.text
    upload = created.json()
    listed = platform.admin_client("s3").list_multipart_uploads(
        Bucket=name_of(platform, SOURCE)
    )
    assert upload["key"] in {u["Key"] for u in listed.get("Uploads", [])}
    item = platform.admin_client("dynamodb").get_item(
        TableName=name_of(platform, TABLE), Key={"id": {"S": upload["videoId"]}}
    )
    assert item["Item"]["status"]["S"] == "UPLOADING"


# --- functions in their own processes ---


def test_each_function_runs_from_its_asset_with_its_own_environment(platform):
    lambdas = platform.lambdas
    assert set(lambdas) == {
        INGEST,
        DEAD_JOBS,
        "UploadApiUploadFunction29DF3109",
        "UploadApiVideosFunctionE8761CBA",
        "EventsPublisherFunction8D38CA1A",
        "CaptionsCaptionsPublisherFunctionBAB950FD",
    }
    keys = {process.env["AWS_ACCESS_KEY_ID"] for process in lambdas.values()}
    assert len(keys) == len(lambdas)
    for process in lambdas.values():
        assert process.task_root.parent == platform.assembly.directory
        assert process.env["AWS_ENDPOINT_URL_S3"] == platform.s3_url
        assert process.env.get(Env.TABLE_NAME, name_of(platform, TABLE)) == name_of(
            platform, TABLE
        )
    ingest = lambdas[INGEST].env
    assert ingest[Env.JOBS_QUEUE_URL].startswith(platform.moto_url)


def test_the_playback_base_url_points_at_the_local_reader(platform):
    videos = platform.lambdas["UploadApiVideosFunctionE8761CBA"]
    assert videos.env[Env.PLAYBACK_BASE_URL] == platform.playback_url


def test_a_handler_the_asset_lacks_fails_to_load_with_its_module_named(tmp_path):
    asset = tmp_path / "asset.broken"
    (asset / "app").mkdir(parents=True)
    (asset / "app" / "__init__.py").write_text("")
    (asset / "app" / "main.py").write_text("import vod.missing_module\n")
    process = LambdaProcess(
        name="broken",
        handler="app.main.handler",
        task_root=asset,
        env={"PATH": os.environ["PATH"]},
        timeout_seconds=5,
        log_path=tmp_path / "broken.log",
        forbidden_root=ROOT,
    )
    with pytest.raises(HandlerError, match=r"app\.main\.handler cannot be loaded.*vod"):
        process.start()


def test_a_module_loaded_from_the_repository_is_a_packaging_error(tmp_path):
    asset = tmp_path / "asset.leaky"
    asset.mkdir()
    (asset / "leaky.py").write_text(
        f"import sys\nsys.path.append({str(ROOT)!r})\nimport vod.keys\n"
        "def handler(event, context):\n    return 1\n"
    )
    process = LambdaProcess(
        name="leaky",
        handler="leaky.handler",
        task_root=asset,
        env={"PATH": os.environ["PATH"]},
        timeout_seconds=5,
        log_path=tmp_path / "leaky.log",
        forbidden_root=ROOT,
    )
    with pytest.raises(HandlerError, match=r"not in the asset: vod"):
        process.start()


def test_a_handler_that_raises_or_overruns_is_a_handler_error(tmp_path):
    asset = tmp_path / "asset.slow"
    asset.mkdir()
    (asset / "slow.py").write_text(
        "import time\n"
        "def handler(event, context):\n"
        "    if event == 'raise':\n        raise ValueError('bad event')\n"
        "    time.sleep(event)\n"
        "    return context.get_remaining_time_in_millis() > 0\n"
    )
    process = LambdaProcess(
        name="slow",
        handler="slow.handler",
        task_root=asset,
        env={"PATH": os.environ["PATH"]},
        timeout_seconds=1,
        log_path=tmp_path / "slow.log",
        forbidden_root=ROOT,
    )
    process.start()
    try:
        assert process.invoke(0, request_id="r1") is True
        with pytest.raises(HandlerError, match="ValueError: bad event"):
            process.invoke("raise", request_id="r2")
        with pytest.raises(HandlerError, match="no answer within its timeout of 1 s"):
            process.invoke(5, request_id="r3")
        assert process.invoke(0, request_id="r4") is True
    finally:
        process.stop()


# --- S3 events ---


def spec(**overrides) -> NotificationSpec:
    fields = {
        "bucket": "b",
        "function": "F",
        "events": ("s3:ObjectCreated:*",),
        "prefix": "uploads/",
        "suffix": ".mp4",
    }
    return NotificationSpec(**{**fields, **overrides})


def test_notification_filters_match_event_type_prefix_and_suffix():
    assert event_matches("s3:ObjectCreated:*", "ObjectCreated:CompleteMultipartUpload")
    assert event_matches("s3:ObjectCreated:Post", "ObjectCreated:Post")
    assert not event_matches("s3:ObjectCreated:Put", "ObjectCreated:Post")
    specs = [spec()]
    assert matching(specs, "b", "uploads/x/y.mp4", "ObjectCreated:Put") == specs
    assert not matching(specs, "b", "uploads/x/y.mov", "ObjectCreated:Put")
    assert not matching(specs, "b", "other/x/y.mp4", "ObjectCreated:Put")
    assert not matching(specs, "other-bucket", "uploads/y.mp4", "ObjectCreated:Put")
    assert not matching(specs, "b", "uploads/y.mp4", "ObjectRemoved:Delete")


def test_the_event_json_is_what_the_ingest_function_reads():
    created = ObjectCreated(
        bucket="b",
        key="uploads/o/v/my clip+1.mp4",
        event="CompleteMultipartUpload",
        source_ip="127.0.0.1",
        principal="AKIAEXAMPLE",
        request_id="R1",
    )
    record = event_record(
        created,
        size=42,
        etag='"abc-2"',
        sequencer="0A1B",
        configuration_id="c",
        now=__import__("datetime").datetime(2030, 1, 2, 3, 4, 5, 678000),
    )
    assert record["eventName"] == "ObjectCreated:CompleteMultipartUpload"
    assert record["s3"]["object"]["key"] == "uploads/o/v/my+clip%2B1.mp4"
    assert record["s3"]["object"]["eTag"] == "abc-2"
    assert record["eventTime"].endswith(".678Z")
    (parsed,) = object_created_records({"Records": [record]})
    assert (parsed.bucket, parsed.key, parsed.size, parsed.etag) == (
        "b",
        "uploads/o/v/my clip+1.mp4",
        42,
        "abc-2",
    )


def test_a_put_under_the_prefix_reaches_the_ingest_function(platform):
    source = name_of(platform, SOURCE)
    key = "uploads/someone/4a1b7e1e-0000-4000-8000-000000000001/x.mp4"
    gateway_s3(platform).put_object(Bucket=source, Key=key, Body=b"data")
    (delivery,) = wait_for_deliveries(platform, key)
    assert delivery.event_name == "ObjectCreated:Put"
    assert delivery.outcome == "delivered"
    # No record exists for that key: the function got the event and said so.
    assert delivery.results == {INGEST: {"outcomes": ["no-record"]}}


def test_a_completed_multipart_upload_reaches_the_ingest_function(platform):
    source = name_of(platform, SOURCE)
    key = "uploads/someone/4a1b7e1e-0000-4000-8000-000000000002/y.mp4"
    s3 = gateway_s3(platform)
    upload_id = s3.create_multipart_upload(Bucket=source, Key=key)["UploadId"]
    etag = s3.upload_part(
        Bucket=source, Key=key, UploadId=upload_id, PartNumber=1, Body=b"part"
    )["ETag"]
    s3.complete_multipart_upload(
        Bucket=source,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    (delivery,) = wait_for_deliveries(platform, key)
    assert delivery.event_name == "ObjectCreated:CompleteMultipartUpload"
    assert delivery.functions == (INGEST,)


def test_an_object_outside_the_prefix_notifies_nothing(platform):
    source = name_of(platform, SOURCE)
    gateway_s3(platform).put_object(Bucket=source, Key="elsewhere/z.mp4", Body=b"z")
    (delivery,) = wait_for_deliveries(platform, "elsewhere/z.mp4")
    assert delivery.outcome == "unmatched"
    assert delivery.functions == ()


def test_a_refused_put_notifies_nothing(platform):
    source = name_of(platform, SOURCE)
    key = "uploads/someone/4a1b7e1e-0000-4000-8000-000000000003/w.mp4"
    url = gateway_s3(platform).generate_presigned_url(
        "put_object", Params={"Bucket": source, "Key": key}
    )
    tampered = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    assert requests.put(tampered, data=b"x", timeout=TIMEOUT).status_code == 403
    gateway_s3(platform).put_object(Bucket=source, Key="elsewhere/after.mp4", Body=b"")
    wait_for_deliveries(platform, "elsewhere/after.mp4")
    assert [d for d in platform.events.deliveries() if d.key == key] == []


def test_a_failing_object_created_hook_never_fails_the_request(moto):
    bucket = make_bucket(moto, "hooked")
    calls = []

    def hook(created: ObjectCreated) -> None:
        calls.append(created)
        raise RuntimeError("the hook broke")

    with S3Gateway(
        upstream=moto.url,
        secrets={"AKIALOCALTEST0000000": "test-secret"},
        on_object_created=hook,
    ) as gateway:
        s3 = boto3.client(
            "s3",
            endpoint_url=gateway.url,
            region_name="us-east-1",
            aws_access_key_id="AKIALOCALTEST0000000",
            aws_secret_access_key="test-secret",
        )
        s3.put_object(Bucket=bucket, Key="a b.mp4", Body=b"data")
    ((created,),) = [calls]
    assert (created.bucket, created.key, created.event) == (bucket, "a b.mp4", "Put")
    assert created.principal == "AKIALOCALTEST0000000"


# --- table streams ---


def stream_table(moto) -> tuple[str, str]:
    """A table with a stream on the session's moto; (name, stream ARN)."""
    name = unique("streamed")
    created = client(moto, "dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    return name, created["TableDescription"]["LatestStreamArn"]


def mapping(**overrides) -> MappingSpec:
    fields = {
        "logical_id": "Mapping",
        "function": "Publisher",
        "source": "Table",
        "batch_size": 10,
        "starting_position": "TRIM_HORIZON",
        "partial": True,
        "maximum_retry_attempts": 1,
        "on_failure_queue": "Failed",
    }
    return MappingSpec(**{**fields, **overrides})


def test_a_failing_stream_batch_is_retried_from_its_failed_item_then_given_up(
    moto,
):
    table, stream_arn = stream_table(moto)
    sqs = client(moto, "sqs")
    failed_url = sqs.create_queue(QueueName=unique("failed-batches"))["QueueUrl"]
    calls: list[list[str]] = []

    def invoke(function, event):
        assert function == "Publisher"
        json.dumps(event)  # what a Lambda process is sent must be JSON
        assert {r["eventSourceARN"] for r in event["Records"]} == {stream_arn}
        numbers = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        calls.append(numbers)
        return {"batchItemFailures": [{"itemIdentifier": numbers[-1]}]}

    for n in range(3):
        client(moto, "dynamodb").put_item(TableName=table, Item={"id": {"S": f"{n}"}})
    poller = DynamoStreamPoller(
        mapping(),
        stream_arn=stream_arn,
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:publisher",
        streams=client(moto, "dynamodbstreams"),
        sqs=sqs,
        invoke=invoke,
        on_failure_url=failed_url,
    )
    poller.start()
    try:
        received = sqs.receive_message(QueueUrl=failed_url, WaitTimeSeconds=10)
    finally:
        poller.stop()
    (message,) = received["Messages"]
    info = json.loads(message["Body"])["DDBStreamBatchInfo"]
    first, retried = calls[0], calls[1]
    assert len(first) == 3
    assert retried == first[-1:]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == first[-1]
    assert info["streamArn"] == stream_arn


def test_the_table_stream_feeds_the_publisher_onto_the_event_bus(platform):
    """Each change of the record goes down the table's stream; the mapping
    hands it to the publisher, which puts the status on the stack's bus."""
    (bus,) = platform.template.event_buses()
    sqs = platform.admin_client("sqs")
    probe_url = sqs.create_queue(QueueName=unique("bus-probe"))["QueueUrl"]
    probe_arn = sqs.get_queue_attributes(
        QueueUrl=probe_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    events = platform.admin_client("events")
    events.put_rule(
        Name="probe",
        EventBusName=bus,
        EventPattern=json.dumps({"source": [SOURCE_NAME]}),
    )
    events.put_targets(
        Rule="probe", EventBusName=bus, Targets=[{"Id": "probe", "Arn": probe_arn}]
    )
    token = platform.mint_token("user-3")
    auth = {"Authorization": f"Bearer {token}"}
    upload = requests.post(
        f"{platform.api_url}/s3/multipart",
        json={"filename": "b.mp4", "type": "video/mp4", "size": 4},
        headers=auth,
        timeout=TIMEOUT,
    ).json()
    signed = requests.post(
        f"{platform.api_url}/s3/multipart/{upload['uploadId']}/sign",
        json={"key": upload["key"], "partNumbers": [1]},
        headers=auth,
        timeout=TIMEOUT,
    ).json()
    etag = requests.put(signed["parts"][0]["url"], data=b"data", timeout=TIMEOUT)
    completed = requests.post(
        f"{platform.api_url}/s3/multipart/{upload['uploadId']}/complete",
        params={"key": upload["key"]},
        json={"parts": [{"PartNumber": 1, "ETag": etag.headers["ETag"]}]},
        headers=auth,
        timeout=TIMEOUT,
    )
    assert completed.status_code == 200, completed.text
    # The completion queues a job and the worker fails the 4-byte "video":
    # the bus carries FAILED (after UPLOADED, unless the S3 event's job got
    # there first, as it may in AWS too).
    published: list[dict[str, Any]] = []
    deadline = time.monotonic() + 3 * TIMEOUT
    while time.monotonic() < deadline and "FAILED" not in {
        e["detail"]["status"] for e in published
    }:
        received = sqs.receive_message(
            QueueUrl=probe_url, WaitTimeSeconds=1, MaxNumberOfMessages=10
        )
        published += [json.loads(m["Body"]) for m in received.get("Messages", [])]
    (failed,) = [e for e in published if e["detail"]["status"] == "FAILED"]
    assert failed["detail-type"] == DETAIL_TYPE
    assert failed["detail"]["videoId"] == upload["videoId"]
    assert {e["detail"]["videoId"] for e in published} == {upload["videoId"]}


# --- queues ---


def test_a_partial_answer_naming_a_message_outside_the_batch_fails_it_all():
    records = [{"messageId": "a"}, {"messageId": "b"}]
    assert succeeded({"batchItemFailures": []}, records) == records
    assert succeeded(None, records) == records
    assert succeeded({"batchItemFailures": [{"itemIdentifier": "b"}]}, records) == [
        {"messageId": "a"}
    ]
    assert succeeded({"batchItemFailures": [{"itemIdentifier": "c"}]}, records) == []
    assert succeeded({"batchItemFailures": [{"itemIdentifier": None}]}, records) == []


def test_a_queue_batch_deletes_what_succeeded_and_keeps_what_failed(moto):
    sqs = client(moto, "sqs")
    url = sqs.create_queue(
        QueueName=unique("consumed"), Attributes={"VisibilityTimeout": "1"}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    for body in ("ok", "retry"):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": body}},
        )
    seen: list[dict[str, Any]] = []

    def invoke(function, event):
        assert function == "Consumer"
        json.dumps(event)  # what a Lambda process is sent must be JSON
        seen.extend(event["Records"])
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]}
                for r in event["Records"]
                if r["body"] == "retry"
            ]
        }

    poller = SqsQueuePoller(
        MappingSpec("Mapping", "Consumer", "Queue", batch_size=10, partial=True),
        queue_url=url,
        queue_arn=arn,
        sqs=sqs,
        invoke=invoke,
    )
    poller.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while (
            time.monotonic() < deadline and [r["body"] for r in seen].count("retry") < 2
        ):
            time.sleep(0.1)
    finally:
        poller.stop()
    bodies = [r["body"] for r in seen]
    assert bodies.count("ok") == 1, "deleted once it succeeded"
    assert bodies.count("retry") >= 2, "kept, and delivered again"
    retried = [r for r in seen if r["body"] == "retry"]
    assert [r["attributes"]["ApproximateReceiveCount"] for r in retried[:2]] == [
        "1",
        "2",
    ]
    first = retried[0]
    assert (first["eventSource"], first["eventSourceARN"]) == ("aws:sqs", arn)
    assert first["messageAttributes"]["kind"]["stringValue"] == "retry"
    assert first["md5OfBody"]


def videos(platform) -> VideoRepository:
    """The local table, through the runner's own credentials."""
    dynamodb = boto3.resource(
        "dynamodb",
        endpoint_url=platform.moto_url,
        region_name="us-east-1",
        aws_access_key_id=SETUP_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SETUP_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    return VideoRepository(name_of(platform, TABLE), dynamodb=dynamodb)


def wait_until_consumed(platform, queue_url: str) -> None:
    sqs = platform.admin_client("sqs")
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        if set(attributes.values()) == {"0"}:
            return
        time.sleep(0.1)
    raise AssertionError(f"{queue_url} still holds messages")


def test_a_dead_lettered_chunk_fails_its_video_through_the_dead_jobs_function(
    platform,
):
    """The job goes straight to the DLQ, as SQS's redrive moves it there; the
    queue's event source mapping hands it to the dead-jobs function."""
    repository = videos(platform)
    now = time.time()
    repository.create(chunked_video("local-stalled", tasks=stalled_tasks(now)))
    tasks = stalled_tasks(now)
    tasks[STALLED] = {**tasks[STALLED], "done": True}
    repository.create(chunked_video("local-done", tasks=tasks))
    dlq_url = platform.template.resources[DLQ].ref
    sqs = platform.admin_client("sqs")
    sqs.send_message(QueueUrl=dlq_url, MessageBody=chunk_job("local-done").to_json())
    sqs.send_message(QueueUrl=dlq_url, MessageBody=chunk_job("local-stalled").to_json())
    wait_until_consumed(platform, dlq_url)
    failed = repository.get("local-stalled")
    assert failed is not None
    assert failed.status is Status.FAILED
    assert failed.error is not None
    assert failed.error.startswith(f"{STALLED_DESCRIBED} was started 3 times")
    untouched = repository.get("local-done")
    assert untouched is not None
    assert (untouched.status, untouched.error) == (Status.PROCESSING, None)


# --- playback and the page ---


@pytest.fixture(scope="module")
def played(platform):
    key = "videos/v1/seg_00001.m4s"
    platform.admin_client("s3").put_object(
        Bucket=name_of(platform, OUTPUT),
        Key=key,
        Body=bytes(range(256)) * 4,
        ContentType="video/mp4",
        CacheControl="max-age=60",
    )
    return f"{platform.playback_url}/{key}"


def test_the_reader_serves_the_output_bucket_with_ranges_and_cors(played):
    whole = requests.get(played, headers={"Origin": ORIGIN}, timeout=TIMEOUT)
    assert whole.status_code == 200
    assert whole.content == bytes(range(256)) * 4
    assert whole.headers["Content-Type"] == "video/mp4"
    assert whole.headers["Cache-Control"] == "max-age=60"
    assert whole.headers["Access-Control-Allow-Origin"] == ORIGIN
    part = requests.get(played, headers={"Range": "bytes=10-19"}, timeout=TIMEOUT)
    assert part.status_code == 206
    assert part.content == bytes(range(10, 20))
    assert part.headers["Content-Range"] == "bytes 10-19/1024"
    foreign = requests.get(
        played, headers={"Origin": "https://evil.example"}, timeout=TIMEOUT
    )
    assert "Access-Control-Allow-Origin" not in foreign.headers


def test_the_reader_answers_preflights_heads_and_missing_keys(platform, played):
    preflight = requests.options(
        played,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
        timeout=TIMEOUT,
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Headers"] == "range"
    head = requests.head(played, timeout=TIMEOUT)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "1024"
    # CloudFront's origin access may read objects but not list the bucket, so
    # S3 answers a missing key with 403, as it does on AWS.
    missing = requests.get(f"{platform.playback_url}/videos/none.m3u8", timeout=TIMEOUT)
    assert missing.status_code == 403
    assert requests.put(played, data=b"x", timeout=TIMEOUT).status_code == 405


def test_the_page_config_names_the_api_playback_upload_limit_and_sign_in(platform):
    config = requests.get(f"{platform.web_url}/config.json", timeout=TIMEOUT).json()
    assert config["apiUrl"] == platform.api_url
    assert config["playbackUrl"] == platform.playback_url
    assert config["maxUploadBytes"] == cdk_json_context()["maxUploadBytes"]
    assert config["auth"] == {
        "authorizeUrl": f"{platform.web_url}/oauth2/authorize",
        "tokenUrl": f"{platform.web_url}/oauth2/token",
        "logoutUrl": f"{platform.web_url}/logout",
        "clientId": platform.issuer.audience,
        "scopes": ["openid", "email", "profile"],
    }
    assert "token" not in config


def test_the_hosted_sign_in_takes_a_code_once_with_its_pkce_verifier(platform):
    auth = requests.get(f"{platform.web_url}/config.json", timeout=TIMEOUT).json()[
        "auth"
    ]
    page = f"{ORIGIN}/"  # among the app client's callback and logout URLs
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    ask = {
        "response_type": "code",
        "client_id": auth["clientId"],
        "redirect_uri": page,
        "scope": "openid email",
        "state": "s-1",
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }

    def code_for(email: str) -> str:
        back = requests.post(
            auth["authorizeUrl"],
            params=ask,
            data={"email": email},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert back.status_code == 302, back.text
        location = urlsplit(back.headers["Location"])
        assert location._replace(query="").geturl() == page
        answer = dict(parse_qsl(location.query))
        assert answer["state"] == "s-1"
        return answer["code"]

    def token(**form: str) -> requests.Response:
        return requests.post(
            auth["tokenUrl"],
            data={"client_id": auth["clientId"], **form},
            timeout=TIMEOUT,
        )

    form = requests.get(auth["authorizeUrl"], params=ask, timeout=TIMEOUT)
    assert form.status_code == 200
    assert 'name="email"' in form.text
    exchange = {"grant_type": "authorization_code", "redirect_uri": page}
    wrong = token(**exchange, code=code_for("ann@example.com"), code_verifier="x" * 43)
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    code = code_for("ann@example.com")
    tokens = token(**exchange, code=code, code_verifier=verifier).json()
    again = token(**exchange, code=code, code_verifier=verifier)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")

    access = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    identity = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert access["sub"] == identity["sub"] == user_sub("ann@example.com")
    assert access["token_use"] == "access"
    assert identity["email"] == "ann@example.com"

    refreshed = token(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    listed = requests.get(
        f"{platform.api_url}/videos",
        headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"},
        timeout=TIMEOUT,
    )
    assert listed.status_code == 200, listed.text
    assert token(grant_type="refresh_token", refresh_token="made-up").status_code == 400

    elsewhere = {**ask, "redirect_uri": "https://evil.example/"}
    without_pkce = {k: v for k, v in ask.items() if not k.startswith("code_")}
    for refused in (elsewhere, without_pkce):
        answer = requests.get(auth["authorizeUrl"], params=refused, timeout=TIMEOUT)
        assert answer.status_code == 400, refused
    logout = requests.get(
        auth["logoutUrl"],
        params={"client_id": auth["clientId"], "logout_uri": page},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert (logout.status_code, logout.headers["Location"]) == (302, page)


# --- stopping ---


def child_pids() -> set[int]:
    """Live (non-zombie) processes whose parent is this one."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def refuses(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((parts.hostname, parts.port)) != 0


def test_stop_leaves_no_processes_or_listening_ports(synth, tmp_path):
    before = child_pids()
    platform = LocalPlatform(
        synth.outdir, web_port=0, run_dir=tmp_path, worker_stop_seconds=1
    ).start()
    started = child_pids() - before
    # moto, one process per function, and the worker
    assert len(started) == 1 + len(platform.lambdas) + len(platform.workers)
    urls = [
        platform.moto_url,
        platform.s3_url,
        platform.api_url,
        platform.playback_url,
        platform.web_url,
    ]
    assert not any(refuses(url) for url in urls)
    platform.stop()
    assert child_pids() - before == set()
    assert all(refuses(url) for url in urls)
    platform.stop()


@pytest.mark.parametrize(
    ("component", "status"),
    [
        # The readers of originals may list uploads/: a missing one is 404.
        ("TranscoderWorkerTaskFBF6B9AF", "404"),
        ("UploadApiUploadFunction29DF3109", "404"),
        # The ingest function may not list the bucket: S3 answers 403.
        (INGEST, "403"),
    ],
)
def test_a_missing_original_is_404_only_to_who_may_list_uploads(
    platform, component, status
):
    """Real S3 hides a missing key behind 403 from a caller without
    s3:ListBucket; the worker and the upload function have it for uploads/,
    so a deleted original fails its video (or answers 404) instead of
    looking like a permission error."""
    s3 = platform.component_client(component, "s3")
    key = f"uploads/nobody/{uuid.uuid4()}/gone.mp4"
    with pytest.raises(ClientError) as raised:
        s3.head_object(Bucket=name_of(platform, SOURCE), Key=key)
    assert raised.value.response["Error"]["Code"] == status
