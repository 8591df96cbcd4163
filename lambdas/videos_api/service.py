"""What the videos routes do: the caller's records, read, edited, deleted."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from lambdas.errors import Conflict, Invalid, NotFound
from lambdas.videos_api.storage import VideoObjects
from vod.captions import CaptionTrack, Cue, to_webvtt, tracks_of
from vod.keys import output_prefix
from vod.languages import language_name
from vod.model import Status, Video
from vod.repository import BadCursor, VideoRepository
from vod.settings import VideosApiSettings


class VideosApi:
    def __init__(
        self,
        settings: VideosApiSettings,
        *,
        videos: VideoRepository,
        objects: VideoObjects,
    ) -> None:
        self.settings = settings
        self._videos = videos
        self._objects = objects

    @classmethod
    def from_env(cls) -> VideosApi:
        settings = VideosApiSettings.from_env()
        return cls(
            settings,
            videos=VideoRepository(settings.table_name),
            objects=VideoObjects(
                source_bucket=settings.source_bucket,
                output_bucket=settings.output_bucket,
            ),
        )

    def list(self, owner: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
        try:
            videos, next_cursor = self._videos.list_by_owner(
                owner, limit=limit, cursor=cursor
            )
        except BadCursor:
            raise Invalid("cursor is not one this API handed out") from None
        return {
            "videos": [self._public(video) for video in videos],
            "nextCursor": next_cursor,
        }

    def get(self, owner: str, video_id: str) -> dict[str, Any]:
        return self._public(self._owned(owner, video_id))

    def check_owned(self, owner: str, video_id: str) -> None:
        """404 unless the caller owns the video."""
        self._owned(owner, video_id)

    def update(
        self, owner: str, video_id: str, fields: dict[str, str]
    ) -> dict[str, Any]:
        video = self._videos.update_details(video_id, owner, fields)
        if video is None:
            raise NotFound("video")
        return self._public(video)

    def delete(self, owner: str, video_id: str) -> dict[str, Any]:
        """Remove the upload, the source, the outputs, and last the record, so
        that a delete that fails half way can be retried."""
        video = self._owned(owner, video_id)
        if video.status is Status.PROCESSING:
            # A transcode in flight would write its outputs after they were
            # deleted and leave them behind without a record.
            raise Conflict(
                "video is being transcoded; delete it once it is READY or FAILED"
            )
        if video.status is Status.UPLOADING and video.upload_id:
            self._objects.abort_upload(video.key, video.upload_id)
        self._objects.delete_source(video.key)
        self._objects.delete_outputs(output_prefix(video.id))
        self._videos.delete(video.id, owner)
        return {}

    def put_caption(
        self,
        owner: str,
        video_id: str,
        language: str,
        cues: Sequence[Cue],
        *,
        label: str | None,
    ) -> dict[str, Any]:
        """Store the track as WebVTT and put it on the record; the captions
        function publishes it once the video is READY (at once if it is)."""
        track = CaptionTrack(
            language=language,
            label=label or language_name(language),
            auto=False,
            revision=uuid.uuid4().hex,
        )
        self._objects.put_captions(track.source_key(video_id), to_webvtt(cues))
        if self._videos.put_caption(video_id, track, owner=owner) is None:
            raise NotFound("video")
        return track.public()

    def list_captions(self, owner: str, video_id: str) -> dict[str, Any]:
        video = self._owned(owner, video_id)
        return {"captions": [track.public() for track in tracks_of(video.captions)]}

    def delete_caption(
        self, owner: str, video_id: str, language: str
    ) -> dict[str, Any]:
        """Take the track off the record; the captions function takes it out
        of the master, then deletes its files."""
        if not self._videos.remove_caption(video_id, owner, language):
            raise NotFound("caption track")
        return {}

    def _owned(self, owner: str, video_id: str) -> Video:
        video = self._videos.get_owned(video_id, owner)
        if video is None:
            raise NotFound("video")
        return video

    def _public(self, video: Video) -> dict[str, Any]:
        return video.to_public(self.settings.playback_base_url)
