"""Video lifecycle events: the versioned schema published to EventBridge and
the CloudWatch metrics counted from them. One definition, shared by the
publisher Lambda, the stack (rules, dashboard) and the README.

Every event is::

    source:      "vod.platform"
    detail-type: "Video Status Changed"
    detail: {
      "version": "1",
      "videoId": "...", "owner": "...",
      "status": "UPLOADED" | "READY" | "FAILED",
      "previousStatus": "...",
      "reason": null | "why it failed",
      "playbackUrl": null | "https://.../videos/{id}/master.m3u8",
      "occurredAt": "2026-11-21T23:00:00.000Z"
    }

Fields are only ever added within a version; a change that removes or
renames one bumps ``version``.
"""

from __future__ import annotations

from typing import Any

from vod.model import Status, Video

SOURCE = "vod.platform"
DETAIL_TYPE = "Video Status Changed"
SCHEMA_VERSION = "1"
#: The statuses announced: an upload landed, a video is playable, or not.
PUBLISHED_STATUSES = frozenset({Status.UPLOADED, Status.READY, Status.FAILED})

METRICS_NAMESPACE = "VodPlatform"
#: Count metrics, one data point per video reaching the status.
STATUS_METRICS = {Status.READY: "VideosReady", Status.FAILED: "VideosFailed"}


def event_detail(
    video: Video, previous: Status | None, playback_base_url: str
) -> dict[str, Any]:
    public = video.to_public(playback_base_url)
    return {
        "version": SCHEMA_VERSION,
        "videoId": video.id,
        "owner": video.owner,
        "status": str(video.status),
        "previousStatus": str(previous) if previous else None,
        "reason": video.error if video.status is Status.FAILED else None,
        "playbackUrl": public["playbackUrl"] if video.status is Status.READY else None,
        "occurredAt": video.updated_at,
    }
