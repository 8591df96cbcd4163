"""S3 event notifications delivered locally as S3 delivers them to Lambda,
each remembered with what became of it, so a run can say why an upload
went nowhere."""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from local.event_sources import Invoke, Poller
from local.s3_gateway import ObjectCreated
from local.template import REGION, NotificationSpec

log = logging.getLogger(__name__)

#: Size and ETag of a stored object, read back once it exists.
Describe = Callable[[str, str], tuple[int, str]]


def event_matches(pattern: str, event_name: str) -> bool:
    """Whether a configured event type (``s3:ObjectCreated:*``,
    ``s3:ObjectCreated:Put``) covers a record's ``eventName``
    (``ObjectCreated:Put``)."""
    wanted = pattern.removeprefix("s3:")
    if wanted.endswith("*"):
        return event_name.startswith(wanted[:-1])
    return wanted == event_name


def matching(
    notifications: Sequence[NotificationSpec], bucket: str, key: str, event_name: str
) -> list[NotificationSpec]:
    return [
        spec
        for spec in notifications
        if spec.bucket == bucket
        and any(event_matches(pattern, event_name) for pattern in spec.events)
        and key.startswith(spec.prefix)
        and key.endswith(spec.suffix)
    ]


def event_record(
    created: ObjectCreated,
    *,
    size: int,
    etag: str,
    sequencer: str,
    configuration_id: str,
    now: datetime,
) -> dict[str, Any]:
    """One record of S3's event JSON (event version 2.1). The key is
    URL-encoded with ``+`` for spaces, as S3 sends it."""
    principal = f"AWS:{created.principal}" if created.principal else "Anonymous"
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "eventName": f"ObjectCreated:{created.event}",
        "userIdentity": {"principalId": principal},
        "requestParameters": {"sourceIPAddress": created.source_ip},
        "responseElements": {
            "x-amz-request-id": created.request_id,
            "x-amz-id-2": uuid.uuid4().hex,
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": created.bucket,
                "ownerIdentity": {"principalId": "LOCALOWNER"},
                "arn": f"arn:aws:s3:::{created.bucket}",
            },
            "object": {
                "key": quote_plus(created.key, safe="/"),
                "size": size,
                "eTag": etag.strip('"'),
                "sequencer": sequencer,
            },
        },
    }


@dataclasses.dataclass
class Delivery:
    """What became of one object-created event."""

    bucket: str
    key: str
    event_name: str
    functions: tuple[str, ...]
    #: pending, delivered, failed, or unmatched (no configuration covers it)
    outcome: str = "pending"
    error: str | None = None
    #: What each function returned, by logical id.
    results: dict[str, Any] = dataclasses.field(default_factory=dict)


class EventDelivery(Poller):
    """Receives the gateway's object-created reports and delivers the
    matching ones on a thread of its own. Reports on buckets without any
    notification configuration are dropped at once."""

    def __init__(
        self,
        notifications: Sequence[NotificationSpec],
        *,
        describe: Describe,
        invoke: Invoke,
    ) -> None:
        self._notifications = tuple(notifications)
        self._describe = describe
        self._invoke = invoke
        self._pending: queue.Queue[tuple[ObjectCreated, Delivery] | None] = (
            queue.Queue()
        )
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        super().__init__("s3-event-delivery")

    def stop(self) -> None:
        """Deliver what is queued, then stop."""
        if self._thread.is_alive():
            self._pending.put(None)
            self._thread.join()

    def object_created(self, created: ObjectCreated) -> None:
        if not any(spec.bucket == created.bucket for spec in self._notifications):
            return
        event_name = f"ObjectCreated:{created.event}"
        targets = matching(self._notifications, created.bucket, created.key, event_name)
        delivery = Delivery(
            bucket=created.bucket,
            key=created.key,
            event_name=event_name,
            functions=tuple(spec.function for spec in targets),
            outcome="pending" if targets else "unmatched",
        )
        with self._lock:
            self._deliveries.append(delivery)
        if targets:
            self._pending.put((created, delivery))

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return [
                dataclasses.replace(d, results=dict(d.results))
                for d in self._deliveries
            ]

    def _run(self) -> None:
        while (item := self._pending.get()) is not None:
            created, delivery = item
            try:
                self._deliver(created, delivery)
            except Exception as error:
                log.exception(
                    "delivering %s of s3://%s/%s failed",
                    delivery.event_name,
                    created.bucket,
                    created.key,
                )
                with self._lock:
                    delivery.outcome = "failed"
                    delivery.error = f"{type(error).__name__}: {error}"

    def _deliver(self, created: ObjectCreated, delivery: Delivery) -> None:
        size, etag = self._describe(created.bucket, created.key)
        record = event_record(
            created,
            size=size,
            etag=etag,
            sequencer=f"{time.time_ns():X}",
            configuration_id="local-" + "-".join(delivery.functions),
            now=datetime.now(UTC),
        )
        for function in delivery.functions:
            result = self._invoke(function, {"Records": [record]})
            with self._lock:
                delivery.results[function] = result
        with self._lock:
            delivery.outcome = "delivered"
