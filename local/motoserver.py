"""An in-process moto server on loopback: the local stand-in for S3, DynamoDB
and SQS, shared by the local runner, the tests and the benchmarks."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

from moto.server import ThreadedMotoServer

from vod.model import (
    OWNER_INDEX,
    OWNER_INDEX_PARTITION_KEY,
    OWNER_INDEX_SORT_KEY,
    TABLE_PARTITION_KEY,
)

#: Fake, loopback-only credentials. moto accepts any key; these name no account.
SETUP_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIALOCALSETUP000000",
    "AWS_SECRET_ACCESS_KEY": "local-setup-secret-not-a-real-key",
}
REGION = "us-east-1"


@dataclasses.dataclass(frozen=True)
class MotoEndpoint:
    url: str
    port: int
    region: str = REGION

    def client_env(self) -> dict[str, str]:
        """Environment that points any boto3 client in a process at this server."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            **SETUP_CREDENTIALS,
        }


@contextlib.contextmanager
def moto_server(port: int = 0, host: str = "127.0.0.1") -> Iterator[MotoEndpoint]:
    """Start moto on ``host:port`` (a free port when 0) and stop it on exit."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        bound = server._server.server_port  # type: ignore[union-attr]
        yield MotoEndpoint(url=f"http://{host}:{bound}", port=bound)
    finally:
        server.stop()


def create_video_table(dynamodb: Any, name: str) -> None:
    """The video table with the model's keys and owner index, for tests and
    benchmarks that need one without synthesizing (the local runner builds
    its tables from the template instead)."""
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": TABLE_PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": OWNER_INDEX_PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": OWNER_INDEX_SORT_KEY, "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": OWNER_INDEX,
                "KeySchema": [
                    {"AttributeName": OWNER_INDEX_PARTITION_KEY, "KeyType": "HASH"},
                    {"AttributeName": OWNER_INDEX_SORT_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
