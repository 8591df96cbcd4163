"""Lambda's pollers for a table's stream and an SQS queue, run locally with
the mapping's batch size, retries, partial batch failures and on-failure queue."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from local.template import REGION, MappingSpec

log = logging.getLogger(__name__)

#: Invokes a function (by logical id) with an event and returns its result;
#: raises when the function fails.
Invoke = Callable[[str, dict[str, Any]], Any]
#: How often an idle stream is read again.
POLL_SECONDS = 0.25
#: Pause between two attempts at a failing batch.
RETRY_SECONDS = 0.5


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A stream record as Lambda passes it: with the stream's ARN, and its
    creation time as epoch seconds (boto3 parses it into a datetime)."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": change, "eventSourceARN": stream_arn}


def failed_from(result: Any, batch: list[dict[str, Any]]) -> int | None:
    """Index of the first item a partial-batch answer reports failed, or None
    when the whole batch succeeded."""
    failures = result.get("batchItemFailures") if isinstance(result, dict) else None
    if not failures:
        return None
    failed = {str(item.get("itemIdentifier")) for item in failures}
    for index, record in enumerate(batch):
        if record["dynamodb"]["SequenceNumber"] in failed:
            return index
    return 0


class Poller:
    """A daemon thread that runs ``_run`` until ``stop``."""

    def __init__(self, name: str) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError


class DynamoStreamPoller(Poller):
    """Feeds one table stream to one function on a thread of its own.

    :param streams: a boto3 ``dynamodbstreams`` client of the local server
    :param sqs: a boto3 SQS client, for the on-failure queue
    :param on_failure_url: the URL of the mapping's on-failure queue, if any
    """

    def __init__(
        self,
        spec: MappingSpec,
        *,
        stream_arn: str,
        function_arn: str,
        streams: Any,
        sqs: Any,
        invoke: Invoke,
        on_failure_url: str | None,
    ) -> None:
        self.spec = spec
        self.stream_arn = stream_arn
        self.function_arn = function_arn
        self._streams = streams
        self._sqs = sqs
        self._invoke = invoke
        self._on_failure_url = on_failure_url
        super().__init__(f"stream-{spec.logical_id}")

    def _run(self) -> None:
        (shard,) = self._streams.describe_stream(StreamArn=self.stream_arn)[
            "StreamDescription"
        ]["Shards"]
        iterator = self._streams.get_shard_iterator(
            StreamArn=self.stream_arn,
            ShardId=shard["ShardId"],
            ShardIteratorType=self.spec.starting_position,
        )["ShardIterator"]
        while not self._stopping.is_set():
            try:
                answer = self._streams.get_records(
                    ShardIterator=iterator, Limit=self.spec.batch_size
                )
            except Exception:
                log.exception("reading stream %s failed", self.stream_arn)
                self._stopping.wait(RETRY_SECONDS)
                continue
            iterator = answer["NextShardIterator"]
            records = [lambda_record(r, self.stream_arn) for r in answer["Records"]]
            if records:
                self._deliver(records, shard["ShardId"])
            else:
                self._stopping.wait(POLL_SECONDS)

    def _deliver(self, batch: list[dict[str, Any]], shard_id: str) -> None:
        attempts = 0
        while batch and not self._stopping.is_set():
            try:
                result = self._invoke(self.spec.function, {"Records": batch})
            except Exception as error:
                log.warning(
                    "%s failed on a stream batch: %s", self.spec.function, error
                )
                retry_from: int | None = 0
            else:
                retry_from = failed_from(result, batch) if self.spec.partial else None
            if retry_from is None:
                return
            batch = batch[retry_from:]
            attempts += 1
            if attempts > self.spec.maximum_retry_attempts:
                self._give_up(batch, shard_id)
                return
            self._stopping.wait(RETRY_SECONDS)

    def _give_up(self, batch: list[dict[str, Any]], shard_id: str) -> None:
        log.error(
            "%s: a batch of %d stream records is given up after %d retries",
            self.spec.function,
            len(batch),
            self.spec.maximum_retry_attempts,
        )
        if self._on_failure_url is None:
            return
        first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
        self._sqs.send_message(
            QueueUrl=self._on_failure_url,
            MessageBody=json.dumps(
                {
                    "requestContext": {
                        "requestId": first["SequenceNumber"],
                        "functionArn": self.function_arn,
                        "condition": "RetryAttemptsExhausted",
                        "approximateInvokeCount": self.spec.maximum_retry_attempts + 1,
                    },
                    "responseContext": {"statusCode": 200},
                    "version": "1.0",
                    "timestamp": datetime.now(UTC).isoformat(),
                    "DDBStreamBatchInfo": {
                        "shardId": shard_id,
                        "startSequenceNumber": first["SequenceNumber"],
                        "endSequenceNumber": last["SequenceNumber"],
                        "batchSize": len(batch),
                        "streamArn": self.stream_arn,
                    },
                }
            ),
        )


#: How long one receive waits for messages: Lambda waits 20 s, but a shorter
#: wait lets the local run stop without delay.
LONG_POLL_SECONDS = 1
#: SQS hands out at most this many messages per receive.
SQS_MAX_MESSAGES = 10


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A received message (boto3's shape) as Lambda passes it to a function."""
    attributes = {}
    for name, value in message.get("MessageAttributes", {}).items():
        converted: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        if "StringValue" in value:
            converted["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        attributes[name] = converted
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def succeeded(result: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of a batch to delete, from the function's partial-batch
    answer: all but the ones it names, or none when it names one that is
    not in the batch (or names one badly)."""
    failures = result.get("batchItemFailures") if isinstance(result, dict) else None
    if not failures:
        return records
    ids = {record["messageId"] for record in records}
    failed = set()
    for failure in failures:
        identifier = (
            failure.get("itemIdentifier") if isinstance(failure, dict) else None
        )
        if not isinstance(identifier, str) or identifier not in ids:
            return []
        failed.add(identifier)
    return [record for record in records if record["messageId"] not in failed]


class SqsQueuePoller(Poller):
    """Feeds one queue to one function on a thread of its own.

    :param sqs: a boto3 SQS client of the local server
    """

    def __init__(
        self,
        spec: MappingSpec,
        *,
        queue_url: str,
        queue_arn: str,
        sqs: Any,
        invoke: Invoke,
    ) -> None:
        self.spec = spec
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self._sqs = sqs
        self._invoke = invoke
        super().__init__(f"queue-{spec.logical_id}")

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=min(self.spec.batch_size, SQS_MAX_MESSAGES),
                    WaitTimeSeconds=LONG_POLL_SECONDS,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception:
                log.exception("receiving from %s failed", self.queue_url)
                self._stopping.wait(RETRY_SECONDS)
                continue
            if messages:
                self._deliver([sqs_record(m, self.queue_arn) for m in messages])

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        try:
            result = self._invoke(self.spec.function, {"Records": records})
        except Exception as error:
            log.warning("%s failed on a queue batch: %s", self.spec.function, error)
            return
        done = succeeded(result, records) if self.spec.partial else records
        if len(done) < len(records):
            log.info(
                "%s: %d of %d messages stay in the queue",
                self.spec.function,
                len(records) - len(done),
                len(records),
            )
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": record["receiptHandle"]}
                    for n, record in enumerate(done)
                ],
            )
