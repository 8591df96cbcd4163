"""Upload speed: ``vod upload``'s engine against boto3's ``upload_file``
(s3transfer), with the same part size and concurrency, in the same run.

Both send a random file to the same local S3: the signature-checking gateway
in front of one moto server, the endpoint the API signs URLs for. The server
side (moto, gateway, API) runs in a process of its own, so that neither
client shares an interpreter lock with it. Ours goes
through the local HTTP API as the CLI does (create, sign, complete), s3transfer
talks to S3 alone. Neither sends part checksums (botocore's
``request_checksum_calculation="when_required"``; ours with
``checksums=False``, where ``vod upload`` signs each part with its SHA-256),
so moto does the same work for both:
with botocore's default CRC32 parts, moto's CompleteMultipartUpload takes a
cheaper path for s3transfer's upload alone, and the run would time moto's
checksumming rather than the clients. Each round runs both, who goes first
alternating; each time is the best of the rounds, as in bench/sign.py (the
least disturbed by other work on the machine), and every stored object's
sha256 is checked against the file's.

Run from the repo root: ``.venv/bin/python bench/upload.py [--size-mib 256]``.
The last line is ``upload: <ratio>x s3transfer`` (s3transfer's time / ours).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from client.api import VodApi
from client.uploader import upload_file
from local.motoserver import SETUP_CREDENTIALS, moto_server
from tests.api_stack import serve_api
from vod.settings import MIB, Env

PART_BYTES = 8 * MIB


@dataclasses.dataclass(frozen=True)
class Stack:
    api_url: str
    s3_url: str
    token: str
    bucket: str
    region: str


def serve(connection: Connection, max_upload: int) -> None:
    """The server side, in a process of its own: moto, the gateway and the
    API, until the parent says stop."""
    with moto_server() as moto:
        os.environ.update(moto.client_env())
        with serve_api(
            moto,
            max_upload=max_upload,
            upload_env={Env.MIN_PART_BYTES: str(PART_BYTES)},
        ) as stack:
            connection.send(
                Stack(
                    api_url=stack.api.url,
                    s3_url=stack.s3_url,
                    token=stack.owner.token,
                    bucket=stack.source,
                    region=moto.region,
                )
            )
            connection.recv()


@contextlib.contextmanager
def server_process(max_upload: int) -> Iterator[Stack]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve, args=(theirs, max_upload), daemon=True)
    process.start()
    try:
        yield ours.recv()
    finally:
        ours.send("stop")
        process.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    size = args.size_mib * MIB

    with tempfile.TemporaryDirectory() as scratch, server_process(size) as stack:
        path = Path(scratch) / "bench.mp4"
        digest = write_random_file(path, size)
        api = VodApi(stack.api_url, stack.token)

        def ours() -> str:
            result = upload_file(
                api,
                path,
                concurrency=args.concurrency,
                state_dir=Path(scratch) / "state",
                # As s3transfer here: no part checksums (see the docstring).
                checksums=False,
            )
            if result.parts != -(-size // PART_BYTES):
                raise SystemExit(f"expected {PART_BYTES}-byte parts: {result}")
            return result.key

        s3 = boto3.client(
            "s3",
            endpoint_url=stack.s3_url,
            region_name=stack.region,
            aws_access_key_id=SETUP_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=SETUP_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(request_checksum_calculation="when_required"),
        )
        config = TransferConfig(
            multipart_threshold=PART_BYTES,
            multipart_chunksize=PART_BYTES,
            max_concurrency=args.concurrency,
        )

        def theirs() -> str:
            key = f"bench/{time.monotonic_ns()}.mp4"
            s3.upload_file(str(path), stack.bucket, key, Config=config)
            return key

        timings: dict[str, list[float]] = {"vod": [], "s3transfer": []}
        runners = [("vod", ours), ("s3transfer", theirs)]
        for _ in range(args.rounds):
            for name, run in runners:
                seconds, key = timed(run)
                timings[name].append(seconds)
                check_stored(s3, stack.bucket, key, digest)
                # moto holds objects in memory; keep it the same for every run.
                s3.delete_object(Bucket=stack.bucket, Key=key)
            runners.reverse()

    ours_s, theirs_s = (min(timings[n]) for n in ("vod", "s3transfer"))
    print(
        f"{args.size_mib} MiB in {PART_BYTES // MIB} MiB parts, "
        f"concurrency {args.concurrency}, best of {args.rounds} rounds"
    )
    for name, seconds in (("vod", ours_s), ("s3transfer", theirs_s)):
        rate = args.size_mib / seconds
        runs = ", ".join(f"{t:.2f}" for t in timings[name])
        print(f"{name:>10}: {seconds:.2f} s ({rate:.0f} MiB/s; runs {runs})")
    print(f"upload: {theirs_s / ours_s:.2f}x s3transfer")


def write_random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for offset in range(0, size, MIB):
            block = os.urandom(min(MIB, size - offset))
            digest.update(block)
            file.write(block)
    return digest.hexdigest()


def timed(run: Callable[[], str]) -> tuple[float, str]:
    start = time.perf_counter()
    key = run()
    return time.perf_counter() - start, key


def check_stored(s3: object, bucket: str, key: str, expected: str) -> None:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]  # type: ignore[attr-defined]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(MIB), b""):
        digest.update(chunk)
    if digest.hexdigest() != expected:
        raise SystemExit(f"{key}: the stored object differs from the file")


if __name__ == "__main__":
    main()
