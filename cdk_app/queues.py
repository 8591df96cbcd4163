"""One way to make a queue of the stack: encrypted with SQS-managed keys and
refusing requests not sent over TLS, so that no queue can forget either."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

#: SQS's longest retention: time to look at what failed.
FAILURE_RETENTION = Duration.days(14)


def secure_queue(
    scope: Construct,
    construct_id: str,
    *,
    retention: Duration = FAILURE_RETENTION,
    **props: Any,
) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=retention,
        **props,
    )
