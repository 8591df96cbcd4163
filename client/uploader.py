"""The multipart upload engine: a file goes to S3 in parts through URLs the API
signs, in parallel, and survives failures and interruptions.

- Parts are sent by ``concurrency`` threads, each streaming its part straight
  from the file a block at a time, over pooled keep-alive connections.
- A 5xx, a reset or a timeout is retried with backoff; a URL that S3 calls
  expired is signed again. The first page of URLs comes with the create
  answer, so the first part leaves without a sign call in between; later
  pages are signed as the upload reaches them, and again when they are about
  to expire.
- The upload ID is saved before the first part is sent, so a run that dies
  (Ctrl-C, a kill, a crash) resumes: S3's part list says which parts are
  already there, and only the others are sent.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import itertools
import os
import queue
import re
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import requests

from client.api import ApiError, VodApi, VodError, failure_reason
from client.media import video_type
from client.state import LocalFile, StateStore, UploadState, default_state_dir
from client.transport import (
    DEFAULT_TIMEOUT,
    RETRYABLE_STATUSES,
    Backoff,
    pooled_session,
)

#: Part URLs asked for per sign call: the most the API signs at once
#: (``MAX_PARTS_PER_CALL`` of the upload API). An API that takes fewer
#: answers 400, and the page is halved until it fits.
SIGN_PAGE_PARTS = 400
#: Part URLs signed per call when each is signed with its part's SHA-256:
#: the parts of a page are hashed before the call, so a page is smaller.
CHECKSUM_PAGE_PARTS = 16
#: A URL this close to its expiry is signed again before it is used.
URL_EXPIRY_MARGIN_SECONDS = 60
#: S3 error codes that a freshly signed URL cures: an expired signature
#: (``AccessDenied: Request has expired``) or an expired session token.
_RESIGN_CODES = frozenset({"AccessDenied", "ExpiredToken"})
#: S3 error codes of a body that changed on its way: sending it again cures them.
_RESEND_CODES = frozenset({"BadDigest", "InvalidDigest", "IncompleteBody"})
_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")
_S3_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


class UploadError(VodError):
    """S3 refused a part, or kept failing past every retry."""


class UploadCancelled(Exception):
    """Raised inside a part's body when the upload stops, so that the send
    ends mid-part instead of running to its end."""


class UploadProgress(Protocol):
    """Where bytes are reported as they are sent. ``advance`` may get a
    negative count: the bytes of an attempt that failed and will be resent."""

    def start(self, total_bytes: int, done_bytes: int) -> None: ...

    def advance(self, sent_bytes: int) -> None: ...


class _NoProgress:
    def start(self, total_bytes: int, done_bytes: int) -> None:
        pass

    def advance(self, sent_bytes: int) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class Part:
    number: int
    offset: int
    size: int


def plan_parts(size: int, part_size: int) -> list[Part]:
    """The parts of a ``size``-byte file in ``part_size`` pieces, the last one
    shorter."""
    return [
        Part(number=index + 1, offset=offset, size=min(part_size, size - offset))
        for index, offset in enumerate(range(0, size, part_size))
    ]


@dataclasses.dataclass(frozen=True)
class UploadResult:
    video_id: str
    key: str
    upload_id: str
    size: int
    parts: int
    #: Parts S3 already had from an earlier run, and so not sent.
    skipped_parts: int
    uploaded_parts: int
    #: Attempts repeated after a 5xx, a reset or a timeout.
    retries: int
    #: Parts whose URL was signed again after S3 refused it as expired.
    resigned: int
    resumed: bool
    #: S3's SHA-256 of the object, ``<base64>-<parts>``, matched against
    #: the file's (None when the upload had no checksums).
    checksum: str | None = None


def upload_file(
    api: VodApi,
    path: str | os.PathLike[str],
    *,
    concurrency: int = 4,
    progress: UploadProgress | None = None,
    state_dir: Path | None = None,
    content_type: str | None = None,
    backoff: Backoff | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    checksums: bool = True,
) -> UploadResult:
    """Upload ``path`` as a new video, or resume the earlier upload of the
    same file. The state file is kept when this raises (a failure, or
    ``KeyboardInterrupt``), so that the next call resumes.

    With ``checksums`` every part is signed with its SHA-256, which S3
    verifies, and the object's checksum S3 reports is matched against the
    file's. Without, the first page of part URLs comes with the create
    answer (one round trip sooner)."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    file = LocalFile.of(path)
    if file.size == 0:
        raise VodError(f"{file.path.name}: the file is empty")
    store = StateStore(state_dir or default_state_dir())
    saved = store.load(api.base_url, file)
    listed: list[dict[str, Any]] = []
    if saved is not None:
        try:
            listed = api.list_parts(saved.upload_id, saved.key)
        except ApiError as error:
            if error.status not in (404, 409):
                raise
            store.delete(saved)
            if error.status == 409 and _completed(api, saved):
                return _completed_result(saved)
            saved = None
    signed: Mapping[str, Any] | None = None
    if saved is None:
        state, signed = _start(api, store, file, content_type, checksums=checksums)
    else:
        state = saved
    job = _Upload(
        api,
        state,
        concurrency=concurrency,
        progress=progress or _NoProgress(),
        backoff=backoff or Backoff(),
        timeout=timeout,
    )
    result = job.run(listed, resumed=saved is not None, signed=signed)
    store.delete(state)
    return result


def _start(
    api: VodApi,
    store: StateStore,
    file: LocalFile,
    content_type: str | None,
    *,
    checksums: bool,
) -> tuple[UploadState, Mapping[str, Any] | None]:
    """The new upload's state, saved, and the part URLs signed with it (an
    API without ``signParts`` leaves them out, and they are signed later;
    with checksums they are signed with each part's digest, later)."""
    created = api.create_multipart(
        filename=file.path.name,
        content_type=content_type or guess_content_type(file.path),
        size=file.size,
        sign_parts=0 if checksums else SIGN_PAGE_PARTS,
        checksums=checksums,
    )
    state = UploadState(
        api_url=api.base_url,
        file=file,
        upload_id=created["uploadId"],
        key=created["key"],
        video_id=created["videoId"],
        part_size=int(created["partSize"]),
        checksums=checksums,
    )
    store.save(state)
    return state, created.get("signedParts")


def _completed(api: VodApi, saved: UploadState) -> bool:
    """Whether a saved upload that takes no more parts (a 409) was completed,
    by a run that died before it could delete its state, rather than aborted."""
    return bool(api.video(saved.video_id)["status"] != "ABORTED")


def _completed_result(saved: UploadState) -> UploadResult:
    count = len(plan_parts(saved.file.size, saved.part_size))
    return UploadResult(
        video_id=saved.video_id,
        key=saved.key,
        upload_id=saved.upload_id,
        size=saved.file.size,
        parts=count,
        skipped_parts=count,
        uploaded_parts=0,
        retries=0,
        resigned=0,
        resumed=True,
    )


def guess_content_type(path: Path) -> str:
    """The file's video type by its name; a clear error when it has none."""
    found = video_type(path)
    if found is None:
        raise VodError(
            f"{path.name}: cannot tell the video type from the name; pass it "
            "with --type, e.g. --type video/mp4"
        )
    return found


class _Upload:
    """One run over an upload's missing parts."""

    def __init__(
        self,
        api: VodApi,
        state: UploadState,
        *,
        concurrency: int,
        progress: UploadProgress,
        backoff: Backoff,
        timeout: tuple[float, float],
    ) -> None:
        self._api = api
        self._state = state
        self._concurrency = concurrency
        self._progress = progress
        self._backoff = backoff
        self._timeout = timeout
        self._s3 = pooled_session(concurrency)
        self._stop = threading.Event()
        self._counts_lock = threading.Lock()
        self._retries = 0
        self._resigned = 0
        self._digests: _Digests | None = None

    def run(
        self,
        listed: Sequence[Mapping[str, Any]],
        *,
        resumed: bool,
        signed: Mapping[str, Any] | None = None,
    ) -> UploadResult:
        state = self._state
        parts = plan_parts(state.file.size, state.part_size)
        held = {int(p["PartNumber"]): p for p in listed}
        etags = {
            part.number: str(held[part.number]["ETag"])
            for part in parts
            if part.number in held and int(held[part.number]["Size"]) == part.size
        }
        missing = [part for part in parts if part.number not in etags]
        self._progress.start(
            state.file.size, state.file.size - sum(part.size for part in missing)
        )
        digests = _Digests(state.file.path, parts) if state.checksums else None
        self._digests = digests
        try:
            etags.update(self._send_all(missing, signed, digests))
        finally:
            self._s3.close()
        completed: list[dict[str, Any]] = [
            {"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)
        ]
        if digests is not None:
            for entry in completed:
                entry["ChecksumSHA256"] = digests.get(entry["PartNumber"])
        answer = self._api.complete(state.upload_id, state.key, completed)
        checksum = None
        if digests is not None:
            checksum = str((answer.get("checksum") or {}).get("value") or "")
            expected = digests.composite()
            if checksum != expected:
                raise UploadError(
                    f"S3's checksum of the upload, {checksum or 'none'}, is not "
                    f"the file's, {expected}"
                )
        return UploadResult(
            video_id=state.video_id,
            key=state.key,
            upload_id=state.upload_id,
            size=state.file.size,
            parts=len(parts),
            skipped_parts=len(parts) - len(missing),
            uploaded_parts=len(missing),
            retries=self._retries,
            resigned=self._resigned,
            resumed=resumed,
            checksum=checksum,
        )

    def _send_all(
        self,
        parts: Sequence[Part],
        signed: Mapping[str, Any] | None,
        digests: _Digests | None = None,
    ) -> dict[int, str]:
        """ETags by part number. Workers are daemon threads: when the caller
        stops (an error, Ctrl-C), a send stuck on a dead socket cannot keep
        the process alive, and the others end at their next block."""
        urls = _PartUrls(
            self._api, self._state, [part.number for part in parts], digests
        )
        if signed is not None:
            urls.add(signed)
        todo: queue.SimpleQueue[Part] = queue.SimpleQueue()
        for part in parts:
            todo.put(part)
        done: queue.Queue[tuple[Part, str | BaseException]] = queue.Queue()

        def work() -> None:
            while not self._stop.is_set():
                try:
                    part = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put((part, self._send(part, urls)))
                except BaseException as error:  # handed to the caller
                    done.put((part, error))
                    return

        for index in range(min(self._concurrency, len(parts))):
            threading.Thread(target=work, name=f"vod-part-{index}", daemon=True).start()
        etags: dict[int, str] = {}
        try:
            while len(etags) < len(parts):
                part, outcome = done.get()
                if isinstance(outcome, BaseException):
                    raise outcome
                etags[part.number] = outcome
        finally:
            self._stop.set()
        return etags

    def _send(self, part: Part, urls: _PartUrls) -> str:
        """One part, tried until S3 takes it; its ETag."""
        attempts = self._backoff.attempts
        attempt = 0
        while True:
            attempt += 1
            if self._stop.is_set():
                raise UploadCancelled
            url = urls.get(part.number)
            outcome = self._put(url, part)
            if isinstance(outcome, str):
                return outcome
            if outcome.action is _Next.GIVE_UP:
                raise UploadError(f"S3 refused part {part.number}: {outcome.reason}")
            if attempt == attempts:
                raise UploadError(
                    f"part {part.number} failed {attempts} times, "
                    f"last: {outcome.reason}"
                )
            if outcome.action is _Next.RESIGN:
                urls.forget(part.number, url)
                self._count(resigned=1)
            else:
                self._count(retries=1)
                self._backoff.sleep(attempt)

    def _put(self, url: str, part: Part) -> str | _Failure:
        """One attempt: the part's ETag, or what went wrong and what to do."""
        # The URL is signed with the part's digest: the request carries it.
        headers = (
            {"x-amz-checksum-sha256": self._digests.get(part.number)}
            if self._digests is not None
            else None
        )
        with _PartBody(self._state.file.path, part, self._progress, self._stop) as body:
            try:
                response = self._s3.put(
                    url, data=body, headers=headers, timeout=self._timeout
                )
            except requests.RequestException as error:
                self._progress.advance(-body.sent)
                return _Failure(failure_reason(error), _Next.RETRY)
        if response.status_code == 200:
            etag = response.headers.get("ETag")
            if etag:
                return etag
            raise UploadError(f"S3 took part {part.number} but sent no ETag")
        self._progress.advance(-body.sent)
        code, message = _s3_error(response)
        reason = f"{response.status_code} {code}: {message}"
        if code in _RESIGN_CODES:
            return _Failure(reason, _Next.RESIGN)
        if code in _RESEND_CODES:
            return _Failure(reason, _Next.RETRY)
        if response.status_code in RETRYABLE_STATUSES:
            return _Failure(reason, _Next.RETRY)
        return _Failure(reason, _Next.GIVE_UP)

    def _count(self, *, retries: int = 0, resigned: int = 0) -> None:
        with self._counts_lock:
            self._retries += retries
            self._resigned += resigned


class _Next(enum.Enum):
    RETRY = "retry"
    RESIGN = "resign"
    GIVE_UP = "give up"


@dataclasses.dataclass(frozen=True)
class _Failure:
    reason: str
    action: _Next


class _PartBody:
    """A part of the file as a request body: ``read`` returns at most one
    block, so the part is never in memory whole, and reports each block."""

    def __init__(
        self,
        path: Path,
        part: Part,
        progress: UploadProgress,
        stop: threading.Event,
    ) -> None:
        self._file: BinaryIO = path.open("rb")
        self._file.seek(part.offset)
        self._size = part.size
        self._progress = progress
        self._stop = stop
        self.sent = 0

    def __len__(self) -> int:
        # requests sets Content-Length from this.
        return self._size

    def read(self, size: int = -1) -> bytes:
        if self._stop.is_set():
            raise UploadCancelled
        left = self._size - self.sent
        block = self._file.read(left if size < 0 else min(size, left))
        self.sent += len(block)
        self._progress.advance(len(block))
        return block

    def __enter__(self) -> _PartBody:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


class _PartUrls:
    """Signed part URLs, fetched a page at a time in upload order as parts
    need them. Thread-safe; one sign call at a time."""

    def __init__(
        self,
        api: VodApi,
        state: UploadState,
        order: Sequence[int],
        digests: _Digests | None = None,
    ) -> None:
        self._api = api
        self._state = state
        self._order = list(order)
        self._position = {number: index for index, number in enumerate(order)}
        self._urls: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._digests = digests
        self.page_size = CHECKSUM_PAGE_PARTS if digests else SIGN_PAGE_PARTS

    def get(self, number: int) -> str:
        with self._lock:
            if not self._fresh(number, time.time()):
                self._sign_from(number)
            return self._urls[number][0]

    def add(self, signed: Mapping[str, Any]) -> None:
        """Keep the URLs of a sign answer, ``{parts, expiresAt}``."""
        with self._lock:
            self._keep(signed)

    def forget(self, number: int, url: str) -> None:
        """Drop a URL S3 refused, unless another thread already replaced it."""
        with self._lock:
            if self._urls.get(number, ("", 0.0))[0] == url:
                del self._urls[number]

    def _fresh(self, number: int, now: float) -> bool:
        cached = self._urls.get(number)
        return cached is not None and cached[1] - URL_EXPIRY_MARGIN_SECONDS > now

    def _sign_from(self, number: int) -> None:
        now = time.time()
        ahead = self._order[self._position[number] + 1 :]
        stale = (n for n in ahead if not self._fresh(n, now))
        wanted = [number, *itertools.islice(stale, self.page_size - 1)]
        while True:
            try:
                checksums = (
                    {n: self._digests.get(n) for n in wanted}
                    if self._digests is not None
                    else None
                )
                signed = self._api.sign_parts(
                    self._state.upload_id, self._state.key, wanted, checksums
                )
                break
            except ApiError as error:
                if error.status != 400 or len(wanted) == 1:
                    raise
                self.page_size = max(1, len(wanted) // 2)
                wanted = wanted[: self.page_size]
        self._keep(signed)

    def _keep(self, signed: Mapping[str, Any]) -> None:
        expires = datetime.fromisoformat(signed["expiresAt"]).timestamp()
        for entry in signed["parts"]:
            self._urls[int(entry["partNumber"])] = (str(entry["url"]), expires)


class _Digests:
    """Each part's SHA-256 (base64, as ``x-amz-checksum-sha256`` carries
    it), read from the file when first asked for. Thread-safe."""

    def __init__(self, path: Path, parts: Sequence[Part]) -> None:
        self._path = path
        self._parts = {part.number: part for part in parts}
        self._digests: dict[int, str] = {}
        self._lock = threading.Lock()

    def get(self, number: int) -> str:
        with self._lock:
            if number not in self._digests:
                self._digests[number] = self._hash(self._parts[number])
            return self._digests[number]

    def composite(self) -> str:
        """S3's checksum of the whole object: the SHA-256 of the parts'
        digests in order, then ``-`` and the part count."""
        raw = b"".join(base64.b64decode(self.get(n)) for n in sorted(self._parts))
        whole = base64.b64encode(hashlib.sha256(raw).digest()).decode()
        return f"{whole}-{len(self._parts)}"

    def _hash(self, part: Part) -> str:
        digest = hashlib.sha256()
        with self._path.open("rb") as file:
            file.seek(part.offset)
            left = part.size
            while left:
                block = file.read(min(left, 1024 * 1024))
                if not block:
                    raise UploadError(f"{self._path} is shorter than when it was read")
                digest.update(block)
                left -= len(block)
        return base64.b64encode(digest.digest()).decode()


def _s3_error(response: requests.Response) -> tuple[str, str]:
    """S3's error ``(Code, Message)`` from its XML body."""
    text = response.text
    code = _S3_CODE.search(text)
    message = _S3_MESSAGE.search(text)
    return (
        code.group(1) if code else response.reason or "Error",
        message.group(1) if message else " ".join(text.split())[:200],
    )
