"""Automatic captions: an Amazon Transcribe job per video that reaches READY,
and its WebVTT subtitles added as the video's ``auto`` track when the job's
state change arrives from EventBridge."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from vod.captions import (
    CAPTIONS_FOLDER,
    AutoCaptionStatus,
    CaptionsError,
    CaptionTrack,
    parse_captions,
    to_webvtt,
)
from vod.keys import output_prefix
from vod.languages import caption_language, language_name
from vod.model import Video
from vod.repository import VideoRepository

logger = logging.getLogger(__name__)

#: Every job this platform starts is named so; the EventBridge rule matches
#: the prefix, and the function's IAM policy names only such jobs.
JOB_PREFIX = "vod-captions-"
EVENT_SOURCE = "aws.transcribe"
EVENT_DETAIL_TYPE = "Transcribe Job State Change"
FINISHED_STATUSES = ("COMPLETED", "FAILED")


def job_name(video_id: str) -> str:
    return f"{JOB_PREFIX}{video_id}"


def video_id_of(name: str) -> str | None:
    """The video a job name of ours belongs to; None for any other job."""
    if not name.startswith(JOB_PREFIX):
        return None
    try:
        return str(uuid.UUID(name[len(JOB_PREFIX) :]))
    except ValueError:
        return None


def output_folder(video_id: str) -> str:
    """Where Transcribe writes ``<job>.json`` and ``<job>.vtt``."""
    return f"{output_prefix(video_id)}{CAPTIONS_FOLDER}auto/"


class AutoCaptions:
    def __init__(
        self,
        *,
        transcribe: Any,
        s3: Any,
        source_bucket: str,
        output_bucket: str,
        videos: VideoRepository,
    ) -> None:
        self._transcribe = transcribe
        self._s3 = s3
        self._source_bucket = source_bucket
        self._output_bucket = output_bucket
        self._videos = videos

    def start(self, video: Video) -> None:
        """Start the video's job, once: a job of that name means a retried
        stream batch already started it."""
        try:
            self._transcribe.start_transcription_job(
                TranscriptionJobName=job_name(video.id),
                Media={"MediaFileUri": f"s3://{self._source_bucket}/{video.key}"},
                # The spoken language is unknown: Transcribe identifies it.
                IdentifyLanguage=True,
                OutputBucketName=self._output_bucket,
                OutputKey=output_folder(video.id),
                Subtitles={"Formats": ["vtt"], "OutputStartIndex": 1},
            )
        except self._transcribe.exceptions.ConflictException:
            logger.info("transcription already started", extra={"videoId": video.id})
            return
        # Only if nothing is recorded: the job's result may have come first.
        self._videos.set_auto_captions(
            video.id, {"status": AutoCaptionStatus.IN_PROGRESS}, first=True
        )

    def job_finished(self, detail: Mapping[str, Any]) -> None:
        """Add a finished job's subtitles as the video's ``auto`` track (an
        uploaded track of the language stays), and record on the video what
        became of them (``auto_captions``)."""
        name = str(detail.get("TranscriptionJobName", ""))
        video_id = video_id_of(name)
        if video_id is None:
            return
        job = self._transcribe.get_transcription_job(TranscriptionJobName=name)[
            "TranscriptionJob"
        ]
        state = self._add_track(video_id, name, job)
        logger.info("automatic captions: %s", state, extra={"videoId": video_id})
        self._videos.set_auto_captions(video_id, state)

    def _add_track(
        self, video_id: str, name: str, job: Mapping[str, Any]
    ) -> dict[str, str]:
        if job.get("TranscriptionJobStatus") != "COMPLETED":
            reason = job.get("FailureReason") or "Transcribe gave no reason"
            return {
                "status": AutoCaptionStatus.FAILED,
                "reason": f"Transcribe failed: {reason}",
            }
        language = caption_language(str(job.get("LanguageCode", "")))
        if language is None:
            reason = f"the identified language {job.get('LanguageCode')!r} is unknown"
            return {"status": AutoCaptionStatus.FAILED, "reason": reason}
        produced = self._s3.get_object(
            Bucket=self._output_bucket, Key=f"{output_folder(video_id)}{name}.vtt"
        )
        try:
            cues = parse_captions(produced["Body"].read().decode("utf-8"))
        except CaptionsError:
            # Silence gives a file with no cues: nothing to caption.
            return {"status": AutoCaptionStatus.NONE, "reason": "no speech was found"}
        track = CaptionTrack(
            language=language,
            label=language_name(language),
            auto=True,
            revision=uuid.uuid4().hex,
        )
        self._s3.put_object(
            Bucket=self._output_bucket,
            Key=track.source_key(video_id),
            Body=to_webvtt(cues).encode(),
            ContentType="text/vtt; charset=utf-8",
        )
        if self._videos.put_caption(video_id, track) is None:
            self._s3.delete_object(
                Bucket=self._output_bucket, Key=track.source_key(video_id)
            )
            reason = f"the video has an uploaded {language} track, which stays"
            return {
                "status": AutoCaptionStatus.NONE,
                "language": language,
                "reason": reason,
            }
        return {"status": AutoCaptionStatus.ADDED, "language": language}
