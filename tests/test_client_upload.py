"""The ``vod upload`` engine against the real local stack: the HTTP API, the
signature-checking S3 gateway and moto, with a fault proxy in front of S3."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from client import uploader
from client.api import VodApi
from client.cli import main
from client.state import LocalFile, StateStore, UploadState
from client.transport import Backoff
from client.uploader import UploadError, upload_file
from lambdas.upload_api import parts as server_parts
from tests.api_stack import MIB, Fault, serve_api
from tests.conftest import ROOT
from vod.settings import Env

PART = 5 * MIB
#: Five parts, the last one short.
FILE_BYTES = 21 * MIB
FAST = Backoff(attempts=4, base=0.01, cap=0.05)


class SkewedClock:
    """The gateway's clock: real time, except that the next ``n`` signature
    checks happen two hours later, when every URL has expired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._late_checks = 0

    def expire_next(self, checks: int) -> None:
        self._late_checks = checks

    def __call__(self) -> datetime:
        with self._lock:
            late = self._late_checks > 0
            self._late_checks -= late
        return datetime.now(UTC) + (timedelta(hours=2) if late else timedelta())


@pytest.fixture
def clock() -> SkewedClock:
    return SkewedClock()


@pytest.fixture
def stack(aws_env, moto, clock):
    with serve_api(
        moto,
        max_upload=64 * MIB,
        upload_env={Env.MIN_PART_BYTES: str(PART)},
        gateway_clock=clock,
        fault_proxy=True,
    ) as stack:
        yield stack


@pytest.fixture
def api(stack) -> VodApi:
    return VodApi(stack.api.url, stack.owner.token, backoff=FAST)


@pytest.fixture
def video_file(tmp_path):
    path = tmp_path / "clip one.mp4"
    path.write_bytes(os.urandom(FILE_BYTES))
    return path


def sha256_of_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sha256_in_s3(stack, key: str) -> str:
    body = stack.s3.get_object(Bucket=stack.source, Key=key)["Body"]
    return hashlib.sha256(body.read()).hexdigest()


def upload(api, path, state_dir, **kwargs):
    return upload_file(
        api, path, concurrency=4, state_dir=state_dir, backoff=FAST, **kwargs
    )


class Recorder:
    """An UploadProgress that keeps the net bytes reported."""

    def __init__(self) -> None:
        self.total = self.done = 0
        self._lock = threading.Lock()

    def start(self, total_bytes: int, done_bytes: int) -> None:
        self.total, self.done = total_bytes, done_bytes

    def advance(self, sent_bytes: int) -> None:
        with self._lock:
            self.done += sent_bytes


def test_the_cli_uploads_in_parallel_parts_and_s3_holds_the_same_bytes(
    stack, video_file, tmp_path, capsys
):
    state_dir = tmp_path / "state"
    code = main(
        [
            "upload",
            str(video_file),
            "--api",
            stack.api.url,
            "--token",
            stack.owner.token,
            "--concurrency",
            "4",
            "--state-dir",
            str(state_dir),
        ]
    )

    out, err = capsys.readouterr()
    assert code == 0, err
    video_id = out.strip()
    video = stack.owner.ok("GET", f"/videos/{video_id}")
    assert (video["status"], video["size"]) == ("UPLOADED", FILE_BYTES)
    assert sha256_in_s3(stack, video_key(stack, video_id)) == sha256_of_file(video_file)
    assert sorted(stack.proxy.stored_parts) == [1, 2, 3, 4, 5]
    assert list(state_dir.iterdir()) == []


def video_key(stack, video_id: str):
    listed = stack.s3.list_objects_v2(Bucket=stack.source)["Contents"]
    (key,) = [o["Key"] for o in listed if f"/{video_id}/" in o["Key"]]
    return key


def test_failed_dropped_and_stalled_parts_are_retried(stack, api, video_file, tmp_path):
    faults = {2: Fault.ERROR, 3: Fault.DROP, 4: Fault.STALL}
    # Long enough for the client to give up, with room for a loaded machine.
    stack.proxy.stall_seconds = 3.5
    stack.proxy.rule = lambda request: (
        faults.get(request.part_number, Fault.PASS)
        if request.method == "PUT" and request.attempt == 1
        else Fault.PASS
    )
    progress = Recorder()

    result = upload(api, video_file, tmp_path, progress=progress, timeout=(5.0, 2.0))

    assert result.retries == 3
    attempts = [r.part_number for r, _ in stack.proxy.seen if r.method == "PUT"]
    assert sorted(attempts) == [1, 2, 2, 3, 3, 4, 4, 5]
    assert sha256_in_s3(stack, result.key) == sha256_of_file(video_file)
    # Bytes of failed attempts are taken back, so the bar ends at the size.
    assert (progress.total, progress.done) == (FILE_BYTES, FILE_BYTES)


def test_a_part_that_keeps_failing_ends_the_upload_with_its_reason(
    stack, api, video_file, tmp_path
):
    stack.proxy.rule = lambda request: (
        Fault.ERROR if request.part_number == 3 else Fault.PASS
    )

    with pytest.raises(UploadError, match=r"part 3 failed 4 times.*500 InternalError"):
        upload(api, video_file, tmp_path)

    assert len(list(tmp_path.glob("upload-*.json"))) == 1


def recorded_signs(api):
    """The part numbers of every sign call ``api`` makes from now on, in
    order; the calls still sign."""
    asked = []
    original = api.sign_parts

    def sign(upload_id, key, numbers, checksums=None):
        asked.append(list(numbers))
        return original(upload_id, key, numbers, checksums)

    api.sign_parts = sign
    return asked


def test_expired_urls_are_signed_again(stack, api, video_file, tmp_path, clock):
    original_create = api.create_multipart

    def create(**fields):
        # Armed once the upload exists: the function's own S3 calls are
        # signed for now, and a clock two hours off would refuse them.
        answer = original_create(**fields)
        clock.expire_next(2)
        return answer

    api.create_multipart = create
    signs = recorded_signs(api)
    # Without checksums, so that the create answer carries every URL.
    result = upload(api, video_file, tmp_path, checksums=False)

    assert result.resigned == 2
    assert result.retries == 0
    # The create answer carried every URL; each refused part was signed
    # again alone, since the other URLs were still good.
    assert sorted(map(len, signs)) == [1, 1]
    assert sha256_in_s3(stack, result.key) == sha256_of_file(video_file)


def test_the_first_page_of_urls_comes_with_the_upload_so_no_sign_call_waits(
    stack, api, video_file, tmp_path
):
    created = []
    original_create = api.create_multipart

    def create(**fields):
        created.append(original_create(**fields))
        return created[-1]

    api.create_multipart = create
    signs = recorded_signs(api)
    result = upload(api, video_file, tmp_path, checksums=False)

    (answer,) = created
    assert [p["partNumber"] for p in answer["signedParts"]["parts"]] == [1, 2, 3, 4, 5]
    assert signs == []
    assert sha256_in_s3(stack, result.key) == sha256_of_file(video_file)


def test_an_api_without_signed_parts_on_create_is_signed_in_pages(
    stack, api, video_file, tmp_path
):
    """An older API answers create without ``signedParts``: every URL then
    comes from sign calls."""
    original_create = api.create_multipart

    def create(**fields):
        return {
            k: v for k, v in original_create(**fields).items() if k != "signedParts"
        }

    api.create_multipart = create
    signs = recorded_signs(api)
    result = upload(api, video_file, tmp_path, checksums=False)

    assert signs == [[1, 2, 3, 4, 5]]
    assert sha256_in_s3(stack, result.key) == sha256_of_file(video_file)


def test_sign_pages_shrink_to_what_the_api_accepts(
    stack, api, video_file, tmp_path, monkeypatch
):
    assert uploader.SIGN_PAGE_PARTS <= server_parts.MAX_PARTS_PER_CALL
    monkeypatch.setattr(server_parts, "MAX_PARTS_PER_CALL", 2)
    asked = recorded_signs(api)
    result = upload(api, video_file, tmp_path, checksums=False)

    # Create carried parts 1 and 2; three at once were refused, then the
    # page halved.
    assert asked == [[3, 4, 5], [3], [4], [5]]
    assert sha256_in_s3(stack, result.key) == sha256_of_file(video_file)


@pytest.mark.parametrize(
    ("stop", "exit_code", "says"),
    [
        (signal.SIGINT, 130, "run the same command again to resume"),
        (signal.SIGKILL, -signal.SIGKILL, ""),
    ],
    ids=["ctrl-c", "kill"],
)
def test_an_interrupted_upload_resumes_and_skips_the_parts_s3_has(
    stack, api, video_file, tmp_path, stop, exit_code, says
):
    """The CLI is stopped (Ctrl-C, or killed) once two parts are stored and
    the others hang; the next run sends only the missing parts."""
    state_dir = tmp_path / "state"
    stack.proxy.rule = lambda request: (
        Fault.HOLD
        if request.method == "PUT" and request.part_number and request.part_number > 2
        else Fault.PASS
    )
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "client",
            "upload",
            str(video_file),
            "--concurrency",
            "2",
            "--state-dir",
            str(state_dir),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "VOD_API_URL": stack.api.url,
            "VOD_TOKEN": stack.owner.token,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (
            sorted(stack.proxy.stored_parts) == [1, 2]
            and any(f is Fault.HOLD for _, f in stack.proxy.seen)
        ):
            assert time.monotonic() < deadline, "the CLI never got two parts in"
            assert cli.poll() is None, cli.communicate()
            time.sleep(0.02)
        cli.send_signal(stop)
        out, err = cli.communicate(timeout=15)
    finally:
        cli.kill()
    assert cli.returncode == exit_code, err
    assert says in err
    assert "Traceback" not in err
    assert out == ""
    (saved,) = state_dir.iterdir()
    upload_id = json.loads(saved.read_text())["uploadId"]

    stack.proxy.rule = lambda _request: Fault.PASS
    result = upload(api, video_file, state_dir)

    assert (result.resumed, result.upload_id) == (True, upload_id)
    assert (result.skipped_parts, result.uploaded_parts) == (2, 3)
    assert sorted(stack.proxy.stored_parts) == [1, 2, 3, 4, 5]
    assert sha256_in_s3(stack, result.key) == sha256_of_file(video_file)
    assert list(state_dir.iterdir()) == []


def test_a_saved_upload_that_was_aborted_starts_over(stack, api, video_file, tmp_path):
    stack.proxy.rule = lambda request: (
        Fault.ERROR if request.part_number == 5 else Fault.PASS
    )
    with pytest.raises(UploadError):
        upload(api, video_file, tmp_path)
    (saved,) = tmp_path.glob("upload-*.json")
    first = json.loads(saved.read_text())
    stack.owner.ok(
        "DELETE", f"/s3/multipart/{first['uploadId']}", params={"key": first["key"]}
    )
    stack.proxy.rule = lambda _request: Fault.PASS

    result = upload(api, video_file, tmp_path)

    assert (result.resumed, result.skipped_parts) == (False, 0)
    assert result.video_id != first["videoId"]
    assert sha256_in_s3(stack, result.key) == sha256_of_file(video_file)


def test_a_run_that_died_after_completing_is_not_uploaded_again(
    stack, api, video_file, tmp_path
):
    first = upload(api, video_file, tmp_path)
    # The state the run would have left had it died right after completing.
    StateStore(tmp_path).save(
        UploadState(
            api_url=api.base_url,
            file=LocalFile.of(video_file),
            upload_id=first.upload_id,
            key=first.key,
            video_id=first.video_id,
            part_size=PART,
        )
    )
    puts_before = len(stack.proxy.stored_parts)

    again = upload(api, video_file, tmp_path)

    assert (again.video_id, again.resumed, again.uploaded_parts) == (
        first.video_id,
        True,
        0,
    )
    assert len(stack.proxy.stored_parts) == puts_before
    assert list(tmp_path.glob("upload-*.json")) == []


def test_every_part_is_checked_by_its_sha256_and_the_record_keeps_the_checksum(
    stack, api, video_file, tmp_path
):
    """A part changed on its way is refused by S3 (BadDigest) and sent
    again, so the stored object is the file; the object's checksum S3
    reports matches the file's and is on the record."""
    stack.proxy.rule = lambda request: (
        Fault.CORRUPT
        if request.part_number == 2 and request.attempt == 1
        else Fault.PASS
    )
    result = upload(api, video_file, tmp_path)

    assert result.retries == 1
    assert sha256_in_s3(stack, result.key) == sha256_of_file(video_file)
    data = video_file.read_bytes()
    digests = [
        hashlib.sha256(data[start : start + PART]).digest()
        for start in range(0, len(data), PART)
    ]
    whole = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    assert result.checksum == f"{whole}-{len(digests)}"
    assert api.video(result.video_id)["checksum"] == result.checksum


def test_without_checksums_a_part_changed_on_its_way_is_stored_as_sent(
    stack, api, video_file, tmp_path
):
    """What the checksums are for: with none, S3 has no way to tell."""
    stack.proxy.rule = lambda request: (
        Fault.CORRUPT if request.part_number == 2 else Fault.PASS
    )
    result = upload(api, video_file, tmp_path, checksums=False)

    assert result.checksum is None
    assert sha256_in_s3(stack, result.key) != sha256_of_file(video_file)
