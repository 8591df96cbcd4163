"""Lambda's poller for a DynamoDB stream event source, run locally: the
table's stream is read from its start (or its end) and handed to the
function in batches of the mapping's size, as Lambda hands it.

As Lambda does for a mapping with ``ReportBatchItemFailures``, a batch whose
answer names failed items is retried from the first of them; a batch that
raises is retried whole. After the mapping's retry attempts the batch is
given up, and its description goes to the on-failure queue, if there is one.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from local.template import StreamMappingSpec

log = logging.getLogger(__name__)

#: Invokes a function (by logical id) with an event and returns its result.
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


class DynamoStreamPoller:
    """Feeds one table stream to one function on a thread of its own.

    :param streams: a boto3 ``dynamodbstreams`` client of the local server
    :param sqs: a boto3 SQS client, for the on-failure queue
    :param on_failure_url: the URL of the mapping's on-failure queue, if any
    """

    def __init__(
        self,
        spec: StreamMappingSpec,
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
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"stream-{spec.logical_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

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
