"""Publishing a video's caption tracks into its HLS output as the record
changes: new tracks become SUBTITLES renditions once the video is READY,
replaced and deleted ones leave the master, then their files go."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from vod.captions import (
    CaptionsError,
    CaptionStatus,
    CaptionTrack,
    parse_captions,
    segment_name,
    segments,
    subtitle_playlist,
    tracks_of,
    with_subtitles,
)
from vod.model import Status, Video
from vod.repository import VideoRepository

logger = logging.getLogger(__name__)

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
WEBVTT_TYPE = "text/vtt; charset=utf-8"
#: A revision's files never change: a new upload of the language is a new
#: revision in a new folder.
IMMUTABLE_CACHE = "max-age=31536000, immutable"
_MASTER_ATTEMPTS = 8
#: The reason a pending track fails with when its video fails.
VIDEO_FAILED = "the video failed, so there is nothing to publish it in"
_DELETE_BATCH = 1000


class CaptionsPublisher:
    def __init__(self, *, s3: Any, bucket: str, videos: VideoRepository) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._videos = videos

    def record_changed(self, old: Video | None, new: Video) -> None:
        """Bring the output in line with ``new``'s tracks. Safe to run again
        on the same change: publishing writes the same files, the master is
        rewritten only when its text changes, and settling is conditional."""
        before = {t.language: t for t in tracks_of(old.captions if old else None)}
        after = {t.language: t for t in tracks_of(new.captions)}
        retired = [
            track
            for language, track in before.items()
            if language not in after or after[language].revision != track.revision
        ]
        if new.status is Status.READY and new.playback and new.duration:
            became_ready = old is None or old.status is not Status.READY
            pending = [t for t in after.values() if t.status is CaptionStatus.PENDING]
            if pending or retired or (became_ready and after):
                self._publish(new, list(after.values()), pending)
        elif new.status is Status.FAILED:
            # Nothing will be published for it: its tracks say why.
            for track in after.values():
                if track.status is CaptionStatus.PENDING:
                    self._videos.settle_caption(
                        new.id, track, CaptionStatus.FAILED, VIDEO_FAILED
                    )
        for track in retired:
            self._delete(new, track)

    def _publish(
        self,
        video: Video,
        tracks: Sequence[CaptionTrack],
        pending: Sequence[CaptionTrack],
    ) -> None:
        assert video.playback is not None
        assert video.duration is not None
        errors = {track.language: self._write_track(video, track) for track in pending}
        live = [
            track
            for track in tracks
            if track.status is CaptionStatus.PUBLISHED
            or (
                track.status is CaptionStatus.PENDING and errors[track.language] is None
            )
        ]
        self._rewrite_master(video, live)
        for track in pending:
            error = errors[track.language]
            status = CaptionStatus.FAILED if error else CaptionStatus.PUBLISHED
            self._videos.settle_caption(video.id, track, status, error)
            logger.info(
                "caption track settled",
                extra={
                    "videoId": video.id,
                    "language": track.language,
                    "status": str(status),
                },
            )

    def _write_track(self, video: Video, track: CaptionTrack) -> str | None:
        """Write the track's segments and media playlist; the reason when its
        stored file cannot be published."""
        assert video.duration is not None
        body = self._get(track.source_key(video.id))
        if body is None:
            return "the captions file is gone"
        try:
            cues = parse_captions(body["Body"].read().decode("utf-8"))
        except (CaptionsError, UnicodeDecodeError) as error:
            return f"the captions file cannot be read: {error}"
        folder = track.folder(video.id)
        for index, text in enumerate(segments(cues, video.duration)):
            self._put(folder + segment_name(index), text, WEBVTT_TYPE)
        self._put(
            folder + "index.m3u8", subtitle_playlist(video.duration), PLAYLIST_TYPE
        )
        return None

    def _rewrite_master(self, video: Video, tracks: Sequence[CaptionTrack]) -> None:
        """Replace the master's SUBTITLES group with ``tracks``, conditionally
        on the version read, so that a concurrent writer is never undone."""
        assert video.playback is not None
        for _ in range(_MASTER_ATTEMPTS):
            current = self._get(video.playback)
            if current is None:
                # The video was deleted after this change: nothing to caption.
                logger.info("no master playlist", extra={"videoId": video.id})
                return
            text = current["Body"].read().decode("utf-8")
            rewritten = with_subtitles(text, video.playback, video.id, tracks)
            if rewritten == text:
                return
            try:
                self._s3.put_object(
                    Bucket=self._bucket,
                    Key=video.playback,
                    Body=rewritten.encode(),
                    ContentType=PLAYLIST_TYPE,
                    # The encoder chose how long players may cache it.
                    **(
                        {"CacheControl": current["CacheControl"]}
                        if current.get("CacheControl")
                        else {}
                    ),
                    IfMatch=current["ETag"],
                )
            except ClientError as error:
                status = error.response.get("ResponseMetadata", {}).get(
                    "HTTPStatusCode"
                )
                if status in (409, 412):
                    continue
                raise
            return
        raise RuntimeError(
            f"{video.playback} kept changing under {_MASTER_ATTEMPTS} "
            "conditional writes"
        )

    def _delete(self, video: Video, track: CaptionTrack) -> None:
        """Delete a replaced or removed revision's file and what was
        published from it (absent keys are fine)."""
        keys = [track.source_key(video.id)]
        if video.duration:
            keys += track.published_keys(video.id, video.duration)
        for start in range(0, len(keys), _DELETE_BATCH):
            response = self._s3.delete_objects(
                Bucket=self._bucket,
                Delete={
                    "Objects": [
                        {"Key": key} for key in keys[start : start + _DELETE_BATCH]
                    ],
                    "Quiet": True,
                },
            )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise RuntimeError(
                    f"{len(response['Errors'])} caption files were not deleted, "
                    f"e.g. {first.get('Key')}: {first.get('Code')}"
                )

    def _get(self, key: str) -> dict[str, Any] | None:
        """The object, or None when there is none (a deleted video's)."""
        try:
            found: dict[str, Any] = self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchKey":
                return None
            raise
        return found

    def _put(self, key: str, text: str, content_type: str) -> None:
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=text.encode(),
            ContentType=content_type,
            CacheControl=IMMUTABLE_CACHE,
        )
