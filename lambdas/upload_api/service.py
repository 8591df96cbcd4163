"""What the upload routes do, behind the HTTP edge: make keys and records,
check ownership and status, sign, and drive S3's multipart calls.

Ownership is one rule for every route: the key must be one this API made,
its record must belong to the caller and carry that key, and a given upload
ID must be the record's. A multipart upload that a browser created straight
against S3 (Uppy 6) gives its record the first upload ID that S3 confirms is
that key's; a single PUT or POST upload has none, so no upload ID is signed
or completed for it. Anything else is the same 404 as a missing upload, so
no route tells a caller that someone else's upload exists.

What S3 can bind, the signature binds: a part of an upload of known size is
signed for its exact length, and a single PUT only while the key is free
(``If-None-Match: *``), for a few minutes.
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from lambdas.errors import Conflict, Invalid, LimitReached, NotFound
from lambdas.upload_api.parts import (
    S3_MAX_SINGLE_UPLOAD_BYTES,
    PartPlan,
    comma_part_numbers,
    completed_parts,
    composite_sha256,
    first_parts,
    part_number,
    part_numbers,
    plan_parts,
)
from lambdas.upload_api.rules import SIGNED_METHODS, S3Operation
from lambdas.upload_api.signer import S3Presigner
from lambdas.upload_api.storage import PartsRejected, UploadGone, UploadStore
from vod.keys import parse_upload_key, upload_key
from vod.model import Status, UploadMethod, Video
from vod.repository import UPLOAD_ONLY_ATTRIBUTES, VideoRepository
from vod.settings import UploadApiSettings

_OPEN = frozenset({Status.UPLOADING})
#: The ids _start makes: str(uuid.uuid4()).
_VIDEO_ID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)


@dataclasses.dataclass(frozen=True)
class NewUpload:
    """A validated request to start an upload."""

    filename: str
    content_type: str
    title: str | None = None
    size: int | None = None
    #: "SHA256": S3 verifies each part by the SHA-256 it is signed with.
    checksum_algorithm: str | None = None


@dataclasses.dataclass(frozen=True)
class SignRequest:
    """A validated Uppy 6 ``signRequest`` request."""

    operation: S3Operation
    key: str
    upload_id: str | None
    part_number: object
    expires_in: int


class UploadApi:
    def __init__(
        self,
        settings: UploadApiSettings,
        *,
        videos: VideoRepository,
        store: UploadStore,
        presigner: S3Presigner,
    ) -> None:
        self.settings = settings
        self._videos = videos
        self._store = store
        self._presigner = presigner

    @classmethod
    def from_env(cls) -> UploadApi:
        settings = UploadApiSettings.from_env()
        return cls(
            settings,
            videos=VideoRepository(settings.table_name),
            store=UploadStore(settings.source_bucket),
            presigner=S3Presigner.from_boto3_session(bucket=settings.source_bucket),
        )

    # Starting an upload: the server makes the key and the UPLOADING record.

    def create_multipart(
        self, owner: str, new: NewUpload, *, sign_first: int | None = None
    ) -> dict[str, Any]:
        """With ``sign_first``, the answer also carries the URLs of the first
        parts (at most that many, the part count and one sign call's worth),
        so that a client can start sending without a sign call in between."""
        plan = self._plan(new.size)
        if sign_first is not None and plan.part_count is None:
            raise Invalid("signParts needs size, so that parts can be counted")
        if sign_first is not None and new.checksum_algorithm:
            raise Invalid(
                "signParts cannot go with checksumAlgorithm: each part is signed "
                "with its checksum; sign parts with POST "
                "/s3/multipart/{uploadId}/sign and checksums",
            )
        video = self._start(owner, new, UploadMethod.MULTIPART, create=True)
        response: dict[str, Any] = {
            "uploadId": video.upload_id,
            "key": video.key,
            "videoId": video.id,
            "partSize": plan.part_size,
            "expiresAt": _iso(video.expires_at or 0),
        }
        if plan.part_count is not None:
            response["partCount"] = plan.part_count
        if sign_first is not None and plan.part_count is not None and video.upload_id:
            response["signedParts"] = self._signed_parts(
                video, video.upload_id, first_parts(sign_first, plan.part_count)
            )
        return response

    def post_policy(self, owner: str, new: NewUpload) -> dict[str, Any]:
        max_bytes = min(self.settings.max_upload_bytes, S3_MAX_SINGLE_UPLOAD_BYTES)
        if new.size is not None and new.size > max_bytes:
            raise Invalid(
                f"size {new.size} is above the {max_bytes} bytes of a single "
                "upload; use POST /s3/multipart",
            )
        video = self._start(owner, new, UploadMethod.POST)
        expires = self.settings.single_upload_expires_seconds
        # A declared size is the only size the form takes.
        post = self._store.post_policy(
            video.key,
            content_type=new.content_type,
            min_bytes=new.size or 1,
            max_bytes=new.size or max_bytes,
            expires_in=expires,
        )
        return {
            "method": "POST",
            "url": post["url"],
            "fields": post["fields"],
            "expires": expires,
        }

    # The open upload: parts, signing, completion.

    def list_parts(self, owner: str, key: str, upload_id: str) -> list[dict[str, Any]]:
        self._open_upload(owner, key, upload_id)
        try:
            return self._store.list_parts(key, upload_id)
        except UploadGone:
            raise NotFound("upload") from None

    def sign_part(
        self,
        owner: str,
        key: str,
        upload_id: str,
        requested: int,
        checksum: str | None = None,
    ) -> dict[str, Any]:
        video = self._open_upload(owner, key, upload_id)
        number = part_number(requested, part_count=self._part_count(video))
        expires = self.settings.presign_expires_seconds
        return {
            "url": self._part_url(video, upload_id, number, expires, checksum),
            "expires": expires,
        }

    def sign_batch(
        self, owner: str, key: str, upload_id: str, raw_part_numbers: str
    ) -> dict[str, Any]:
        video = self._open_upload(owner, key, upload_id)
        numbers = comma_part_numbers(
            raw_part_numbers, part_count=self._part_count(video)
        )
        expires = self.settings.presign_expires_seconds
        return {
            "presignedUrls": {
                str(n): self._part_url(video, upload_id, n, expires) for n in numbers
            }
        }

    def sign_parts(
        self,
        owner: str,
        key: str,
        upload_id: str,
        raw_part_numbers: object,
        checksums: Mapping[int, str] | None = None,
    ) -> dict[str, Any]:
        video = self._open_upload(owner, key, upload_id)
        numbers = part_numbers(raw_part_numbers, part_count=self._part_count(video))
        return self._signed_parts(video, upload_id, numbers, checksums)

    def complete(
        self, owner: str, key: str, upload_id: str, raw_parts: object
    ) -> dict[str, Any]:
        """Idempotent: a retry after S3 already completed the upload succeeds
        when the object exists, and so does one after the record moved on."""
        video = self._owned(owner, key, upload_id)
        parts = completed_parts(
            raw_parts,
            part_count=self._part_count(video),
            checksums=bool(video.checksum_algorithm),
        )
        if video.status is Status.ABORTED:
            raise Conflict("upload was aborted; start a new one")
        checksum = video.checksum
        if video.status is Status.UPLOADING:
            try:
                checksum = self._store.complete(key, upload_id, parts)
            except UploadGone:
                pass  # Completed by an earlier try, or aborted: the object decides.
            except PartsRejected as rejected:
                raise Invalid(f"parts: S3 refused them ({rejected})") from None
            size = self._store.object_size(key)
            if size is None:
                raise NotFound("upload")
            fields: dict[str, Any] = {"size": size}
            if video.checksum_algorithm:
                checksum = _object_checksum(checksum, parts)
                fields["checksum"] = checksum
            # None: the S3 event already moved the record on, which is success.
            self._videos.transition(
                video.id,
                Status.UPLOADED,
                fields=fields,
                remove=UPLOAD_ONLY_ATTRIBUTES,
                only_from=_OPEN,
                owner=owner,
            )
        answer: dict[str, Any] = {
            "location": self._object_url(key),
            "bucket": self.settings.source_bucket,
            "key": key,
            "videoId": video.id,
        }
        if video.checksum_algorithm and checksum:
            answer["checksum"] = {
                "algorithm": video.checksum_algorithm,
                "type": "COMPOSITE",
                "value": checksum,
            }
        return answer

    def abort(self, owner: str, key: str, upload_id: str) -> dict[str, Any]:
        video = self._abortable(owner, key, upload_id)
        self._store.abort(key, upload_id)
        self._videos.transition(video.id, Status.ABORTED, only_from=_OPEN, owner=owner)
        return {}

    # Uppy 6: sign one S3 request for the browser to send itself.

    def sign_request(
        self, owner: str, request: SignRequest, new: NewUpload | None
    ) -> dict[str, Any]:
        """``new`` is the upload that PutObject and CreateMultipartUpload
        start; those ignore the requested key and return the server's."""
        operation, expires = request.operation, request.expires_in
        method = SIGNED_METHODS[operation]
        if operation is S3Operation.CREATE_MULTIPART_UPLOAD and new is not None:
            # The browser creates the multipart upload itself, with this URL.
            key = self._start(owner, new, UploadMethod.MULTIPART).key
            url = self._presigner.presign(
                method, key, query={"uploads": ""}, expires_in=expires
            )
            return {"url": url, "key": key}
        if operation is S3Operation.PUT_OBJECT and new is not None:
            # Only onto a free key, so the URL cannot replace the upload.
            key = self._start(owner, new, UploadMethod.PUT).key
            url = self._presigner.presign(
                method,
                key,
                headers=_ONLY_IF_ABSENT,
                expires_in=min(expires, self.settings.single_upload_expires_seconds),
            )
            return {"url": url, "key": key, "headers": dict(_ONLY_IF_ABSENT)}
        key, upload_id = request.key, request.upload_id or ""
        if operation is S3Operation.ABORT_MULTIPART_UPLOAD:
            video = self._abortable(owner, key, upload_id)
            self._videos.transition(
                video.id, Status.ABORTED, only_from=_OPEN, owner=owner
            )
        else:
            video = self._open_upload(owner, key, upload_id)
        if operation is S3Operation.UPLOAD_PART:
            number = part_number(
                request.part_number, part_count=self._part_count(video)
            )
            return {"url": self._part_url(video, upload_id, number, expires)}
        url = self._presigner.presign(
            method, key, query={"uploadId": upload_id}, expires_in=expires
        )
        return {"url": url}

    # Records, ownership and status.

    def _start(
        self,
        owner: str,
        new: NewUpload,
        method: UploadMethod,
        *,
        create: bool = False,
    ) -> Video:
        """A new video: its key, its multipart upload when the server starts
        one (``create``), and its UPLOADING record, which expires unless
        completed."""
        self._check_limits(owner)
        video_id = str(uuid.uuid4())
        key = upload_key(owner, video_id, new.filename)
        upload_id = (
            self._store.create_multipart_upload(
                key, new.content_type, checksum_algorithm=new.checksum_algorithm
            )
            if create
            else None
        )
        video = Video.new_upload(
            video_id=video_id,
            owner=owner,
            key=key,
            filename=new.filename,
            content_type=new.content_type,
            size=new.size,
            upload_id=upload_id,
            upload_method=method,
            checksum_algorithm=new.checksum_algorithm if create else None,
            expires_at=int(time.time()) + self.settings.upload_ttl_seconds,
            title=new.title or "",
        )
        self._videos.create(video)
        return video

    def _check_limits(self, owner: str) -> None:
        """429 when the caller is at a per-user limit. Counted before the
        record is made, so concurrent starts may pass it by a few."""
        settings = self.settings
        stored = self._videos.count_by_owner(owner, up_to=settings.max_videos_per_owner)
        if stored >= settings.max_videos_per_owner:
            raise LimitReached(
                f"you have {stored} videos, the most one user may keep "
                f"(maxVideosPerUser); delete some to upload more",
            )
        open_uploads = self._videos.count_by_owner(
            owner, up_to=settings.max_uploads_in_flight, status=Status.UPLOADING
        )
        if open_uploads >= settings.max_uploads_in_flight:
            raise LimitReached(
                f"you have {open_uploads} uploads in progress, the most one user "
                "may have at once (maxUploadsInFlightPerUser); finish one, or "
                "DELETE /videos/{id} of one you gave up on",
            )

    def _owned(self, owner: str, key: str, upload_id: str) -> Video:
        parsed = parse_upload_key(key)
        # Only ids this API made are looked up: anything else could not be
        # a record, and might not even be a valid DynamoDB key.
        video_id = parsed[1] if parsed and _VIDEO_ID.fullmatch(parsed[1]) else None
        video = self._videos.get(video_id) if video_id else None
        if video is None or video.owner != owner or video.key != key:
            raise NotFound("upload")
        if video.upload_id == upload_id:
            return video
        if (
            video.upload_id is None
            and video.upload_method == UploadMethod.MULTIPART
            and video.status in _OPEN
            # S3 ties an upload ID to its key: the ID is this upload's only
            # if S3 knows it for this key.
            and self._store.upload_exists(key, upload_id)
        ):
            bound = self._videos.bind_upload_id(
                video.id, owner=owner, key=key, upload_id=upload_id
            )
            if bound.video is not None:
                return bound.video
        raise NotFound("upload")

    def _open_upload(self, owner: str, key: str, upload_id: str) -> Video:
        video = self._owned(owner, key, upload_id)
        if video.status not in _OPEN:
            raise Conflict(f"upload is {video.status}; it takes no more parts")
        return video

    def _abortable(self, owner: str, key: str, upload_id: str) -> Video:
        video = self._owned(owner, key, upload_id)
        if video.status not in _OPEN | {Status.ABORTED}:
            raise Conflict(f"upload is {video.status}; it can no longer abort")
        return video

    def _plan(self, size: int | None) -> PartPlan:
        return plan_parts(
            size,
            min_part_bytes=self.settings.min_part_bytes,
            max_upload_bytes=self.settings.max_upload_bytes,
        )

    def _part_count(self, video: Video) -> int | None:
        return self._plan(video.size).part_count if video.size else None

    def _signed_parts(
        self,
        video: Video,
        upload_id: str,
        numbers: Iterable[int],
        checksums: Mapping[int, str] | None = None,
    ) -> dict[str, Any]:
        """``{parts: [{partNumber, url}], expiresAt}``, as the sign route
        answers."""
        expires = self.settings.presign_expires_seconds
        digests = checksums or {}
        return {
            "parts": [
                {
                    "partNumber": n,
                    "url": self._part_url(video, upload_id, n, expires, digests.get(n)),
                }
                for n in numbers
            ],
            "expiresAt": _iso(int(time.time()) + expires),
        }

    def _part_url(
        self,
        video: Video,
        upload_id: str,
        number: int,
        expires: int,
        checksum: str | None = None,
    ) -> str:
        """An UploadPart URL; in an upload of declared size, only for the
        part's planned length; in an upload with checksums, only for the
        part's SHA-256, which S3 then verifies."""
        headers: dict[str, str] = {}
        length = self._plan(video.size).part_length(number)
        if length is not None:
            headers["content-length"] = str(length)
        if video.checksum_algorithm and checksum is None:
            raise Invalid(
                f"checksums: part {number} needs its SHA-256; the upload was "
                f"created with checksumAlgorithm {video.checksum_algorithm}",
            )
        if checksum is not None:
            if not video.checksum_algorithm:
                raise Invalid(
                    "checksums: this upload was created without checksumAlgorithm",
                )
            headers["x-amz-checksum-sha256"] = checksum
        # botocore's parameter order, so a URL reads like the SDK's.
        return self._presigner.presign(
            "PUT",
            video.key,
            query={"partNumber": str(number), "uploadId": upload_id},
            headers=headers or None,
            expires_in=expires,
        )

    def _object_url(self, key: str) -> str:
        # The object's address is the presigned URL's, minus the signature.
        return self._presigner.presign("GET", key, expires_in=1).split("?", 1)[0]


#: Signed on a single PUT: S3 writes the object only if the key is free.
_ONLY_IF_ABSENT = {"if-none-match": "*"}


def _object_checksum(from_s3: str | None, parts: list[dict[str, Any]]) -> str:
    """The whole object's SHA-256 as ``<base64>-<parts>``: S3's answer, or
    the same value made from the parts' digests, each of which S3 checked."""
    if from_s3:
        return from_s3 if "-" in from_s3 else f"{from_s3}-{len(parts)}"
    return composite_sha256(p["ChecksumSHA256"] for p in parts)


def _iso(epoch_seconds: int) -> str:
    stamp = datetime.fromtimestamp(epoch_seconds, UTC)
    return stamp.isoformat().replace("+00:00", "Z")
