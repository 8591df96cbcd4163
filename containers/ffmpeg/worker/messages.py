"""The jobs queue: receive one message at a time, keep it invisible while its
job runs, and settle it (delete, release, or leave it to reappear)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from vod.jobs import JobMessage
from worker.logs import event

#: SQS's longest long poll: fewest empty receives while the queue is idle.
WAIT_SECONDS = 20
#: SQS keeps a message hidden for at most 12 hours.
MAX_VISIBILITY_SECONDS = 43200
_SEND_BATCH = 10


@dataclasses.dataclass(frozen=True)
class Received:
    body: str
    receipt: str
    message_id: str
    receive_count: int


class JobsQueue:
    def __init__(self, sqs: Any, queue_url: str, *, visibility_timeout: int) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._visibility = visibility_timeout

    def receive(self, wait_seconds: int = WAIT_SECONDS) -> Received | None:
        response = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=self._visibility,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return None
        message = messages[0]
        return Received(
            body=message["Body"],
            receipt=message["ReceiptHandle"],
            message_id=message["MessageId"],
            receive_count=int(
                message.get("Attributes", {}).get("ApproximateReceiveCount", 1)
            ),
        )

    def extend(self, message: Received) -> None:
        self._sqs.change_message_visibility(
            QueueUrl=self._url,
            ReceiptHandle=message.receipt,
            VisibilityTimeout=self._visibility,
        )

    def release(self, message: Received, *, after_seconds: float = 0) -> None:
        """Make the message visible again, now or ``after_seconds`` from now,
        for a worker to take."""
        self._sqs.change_message_visibility(
            QueueUrl=self._url,
            ReceiptHandle=message.receipt,
            VisibilityTimeout=max(0, min(MAX_VISIBILITY_SECONDS, round(after_seconds))),
        )

    def send(self, jobs: Sequence[JobMessage]) -> None:
        """Queue ``jobs`` in order, ten per request; raises when SQS refused
        any (the sender's job is then retried, and sends them all again:
        a task runs once however often its job arrives)."""
        for start in range(0, len(jobs), _SEND_BATCH):
            batch = jobs[start : start + _SEND_BATCH]
            response = self._sqs.send_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(index), "MessageBody": job.to_json()}
                    for index, job in enumerate(batch)
                ],
            )
            failed = response.get("Failed", [])
            if failed:
                raise RuntimeError(f"SQS refused {len(failed)} jobs: {failed[0]}")

    def delete(self, message: Received) -> None:
        self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message.receipt)


class Heartbeat:
    """Calls ``beat`` every ``interval`` seconds on a thread until stopped. A
    failed beat is logged and retried at the next one: one lost extension
    only matters if every later one is lost too."""

    def __init__(self, interval: float, beat: Callable[[], None]) -> None:
        self._interval = interval
        self._beat = beat
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._beat()
            except Exception:
                event("heartbeat.failed", level=logging.WARNING, exc_info=True)
