"""The lifecycle-event publisher on real DynamoDB stream JSON, publishing to a
moto EventBridge bus whose rule forwards to an SQS queue we read back."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from lambdas.events.app import emf_line, publish, status_changes
from tests.conftest import client, unique
from vod.events import DETAIL_TYPE, SOURCE
from vod.model import Status

FIXTURE = Path(__file__).parent / "fixtures" / "events" / "dynamodb_stream_ready.json"


def _records(status: str = "READY", old: str | None = "PROCESSING", **new_fields):
    event = json.loads(FIXTURE.read_text())
    record = event["Records"][0]
    record["dynamodb"]["NewImage"]["status"] = {"S": status}
    for name, value in new_fields.items():
        record["dynamodb"]["NewImage"][name] = {"S": value}
    if old is None:
        del record["dynamodb"]["OldImage"]
        record["eventName"] = "INSERT"
    else:
        record["dynamodb"]["OldImage"]["status"] = {"S": old}
    return event["Records"]


@pytest.fixture
def bus(aws_env) -> tuple[str, Any, str]:
    events, sqs = client(aws_env, "events"), client(aws_env, "sqs")
    name = unique("bus")
    events.create_event_bus(Name=name)
    queue_url = sqs.create_queue(QueueName=unique("seen"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="all",
        EventBusName=name,
        EventPattern=json.dumps({"source": [SOURCE]}),
    )
    events.put_targets(Rule="all", EventBusName=name, Targets=[{"Id": "q", "Arn": arn}])
    return name, events, queue_url


def _published(moto, queue_url: str) -> list[dict[str, Any]]:
    messages = (
        client(moto, "sqs")
        .receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return [json.loads(m["Body"]) for m in messages]


def test_ready_is_published_with_the_versioned_schema(aws_env, bus, capsys):
    name, events, queue_url = bus
    failures = publish(
        _records(),
        events=events,
        bus_name=name,
        playback_base_url="https://d111111abcdef8.cloudfront.net",
    )
    assert failures == []
    (event,) = _published(aws_env, queue_url)
    assert event["source"] == SOURCE
    assert event["detail-type"] == DETAIL_TYPE
    assert event["detail"] == {
        "version": "1",
        "videoId": "v1",
        "owner": "alice",
        "status": "READY",
        "previousStatus": "PROCESSING",
        "reason": None,
        "playbackUrl": "https://d111111abcdef8.cloudfront.net/videos/v1/master.m3u8",
        "occurredAt": "2026-11-21T23:02:00.000Z",
    }
    emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert emf["VideosReady"] == 1
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "VodPlatform"


def test_failed_carries_the_reason(aws_env, bus):
    name, events, queue_url = bus
    publish(
        _records("FAILED", error="no video stream"),
        events=events,
        bus_name=name,
        playback_base_url="",
    )
    (event,) = _published(aws_env, queue_url)
    assert event["detail"]["status"] == "FAILED"
    assert event["detail"]["reason"] == "no video stream"
    assert event["detail"]["playbackUrl"] is None


@pytest.mark.parametrize(
    ("new", "old"),
    [
        ("PROCESSING", "QUEUED"),
        ("QUEUED", "UPLOADED"),
        ("READY", "READY"),
        ("UPLOADING", None),
    ],
)
def test_other_changes_are_not_published(new, old):
    assert list(status_changes(_records(new, old))) == []


def test_a_deleted_record_is_not_an_event():
    records = _records()
    del records[0]["dynamodb"]["NewImage"]
    assert list(status_changes(records)) == []


def test_a_rejected_event_stops_the_batch_at_that_record():
    records = _records("UPLOADED", "UPLOADING") + copy.deepcopy(_records())
    records[1]["dynamodb"]["SequenceNumber"] = "222"
    calls = []

    class Flaky:
        def put_events(self, Entries):
            calls.append(Entries)
            return {"FailedEntryCount": int(len(calls) == 1), "Entries": []}

    failures = publish(records, events=Flaky(), bus_name="b", playback_base_url="")
    assert failures == [{"itemIdentifier": "111"}]
    assert len(calls) == 1, "nothing after the failed record is sent"


def test_only_terminal_outcomes_are_counted():
    assert emf_line(Status.UPLOADED) is None
    assert json.loads(emf_line(Status.FAILED) or "{}")["VideosFailed"] == 1
