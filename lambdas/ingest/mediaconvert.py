"""The ingest Lambda's job sender in ``transcoder=mediaconvert`` mode: one
MediaConvert job per upload, from the stack's job template."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import boto3

from lambdas.mediaconvert.job import create_job_request
from vod.jobs import JobMessage
from vod.loudness import DEFAULT_LOUDNESS, LoudnessTarget
from vod.settings import Env, read_loudness, read_str

logger = logging.getLogger(__name__)


class MediaConvertJobSender:
    def __init__(
        self,
        *,
        role_arn: str,
        template_name: str,
        output_bucket: str,
        loudness: LoudnessTarget | None = DEFAULT_LOUDNESS,
        mediaconvert: Any = None,
    ) -> None:
        self._loudness = loudness
        self._role_arn = role_arn
        self._template_name = template_name
        self._output_bucket = output_bucket
        # MediaConvert takes requests on its regional endpoint; the
        # account-specific one from DescribeEndpoints is no longer needed.
        self._mediaconvert = mediaconvert or boto3.client("mediaconvert")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MediaConvertJobSender:
        return cls(
            role_arn=read_str(Env.MEDIACONVERT_ROLE_ARN, env),
            template_name=read_str(Env.MEDIACONVERT_JOB_TEMPLATE, env),
            output_bucket=read_str(Env.OUTPUT_BUCKET, env),
            loudness=read_loudness(env),
        )

    def send(self, job: JobMessage) -> None:
        response = self._mediaconvert.create_job(
            **create_job_request(
                job,
                output_bucket=self._output_bucket,
                role_arn=self._role_arn,
                template_name=self._template_name,
                loudness=self._loudness,
            )
        )
        logger.info(
            "MediaConvert job created",
            extra={"videoId": job.video_id, "jobId": response["Job"].get("Id")},
        )
