"""A moto server on loopback, in a process of its own: the local stand-in for
S3, DynamoDB, SQS and EventBridge, shared by the local runner, the tests and
the benchmarks."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import requests

from local.workers import stop_processes

#: Fake, loopback-only credentials. moto accepts any key; these name no account.
SETUP_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIALOCALSETUP000000",
    "AWS_SECRET_ACCESS_KEY": "local-setup-secret-not-a-real-key",
}
REGION = "us-east-1"
MOTO_START_SECONDS = 30.0
MOTO_STOP_SECONDS = 5.0


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
def moto_server(
    port: int = 0, *, log_path: Path | None = None
) -> Iterator[MotoEndpoint]:
    """Start moto on loopback (a free port when 0) and stop it on exit. moto
    keeps its state per process, so each server is a fresh account of its
    own, as a new stack in a new account would be."""
    if port == 0:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        output = (
            stack.enter_context(log_path.open("ab")) if log_path else subprocess.DEVNULL
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            # Out of the terminal's process group: Ctrl-C stops the runner,
            # which then stops moto last, after everything that talks to it.
            start_new_session=True,
        )
        stack.callback(stop_processes, [process], MOTO_STOP_SECONDS)
        _wait_until_serving(url, process)
        yield MotoEndpoint(url=url, port=port)


def _wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + MOTO_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the moto server exited with code {process.returncode} "
                f"(is port {urlsplit(url).port} free?)"
            )
        try:
            if requests.get(f"{url}/moto-api/data.json", timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.05)
    raise RuntimeError(f"the moto server did not answer on {url}")
