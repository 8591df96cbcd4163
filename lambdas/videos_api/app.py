"""The videos function: the caller's videos under ``/videos``. The CDK stack
creates one route per key in ``ROUTE_KEYS``."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from lambdas.api_edge import (
    DESCRIPTION_MAX_CHARS,
    TITLE_MAX_CHARS,
    Request,
    optional_str,
    serve,
    text_int,
)
from lambdas.errors import Invalid
from lambdas.videos_api.service import VideosApi

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_CURSOR_CHARS = 2048
_EDITABLE = ("title", "description")


def list_videos(api: VideosApi, request: Request) -> Any:
    raw_limit = request.query.get("limit")
    limit = (
        DEFAULT_PAGE_SIZE
        if raw_limit is None
        else text_int(raw_limit, "limit", low=1, high=MAX_PAGE_SIZE)
    )
    cursor = optional_str(
        request.query.get("cursor"), "cursor", max_chars=MAX_CURSOR_CHARS
    )
    return api.list(request.owner, limit=limit, cursor=cursor)


def get_video(api: VideosApi, request: Request) -> Any:
    return api.get(request.owner, _video_id(request))


def update_video(api: VideosApi, request: Request) -> Any:
    video_id = _video_id(request)
    # Someone else's video is a 404 whatever the body says.
    api.check_owned(request.owner, video_id)
    body = request.json_body()
    unknown = sorted(set(body) - set(_EDITABLE))
    if unknown:
        raise Invalid(
            f"{unknown[0]} cannot be changed; editable: {', '.join(_EDITABLE)}"
        )
    fields = {
        name: value
        for name, value in (
            (
                "title",
                optional_str(body.get("title"), "title", max_chars=TITLE_MAX_CHARS),
            ),
            (
                "description",
                optional_str(
                    body.get("description"),
                    "description",
                    max_chars=DESCRIPTION_MAX_CHARS,
                    allow_blank=True,
                ),
            ),
        )
        if value is not None
    }
    if not fields:
        raise Invalid("send title or description to change")
    return api.update(request.owner, video_id, fields)


def delete_video(api: VideosApi, request: Request) -> Any:
    return api.delete(request.owner, _video_id(request))


def _video_id(request: Request) -> str:
    raw = request.path_param("id")
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise Invalid("id must be a video id (a UUID)") from None


ROUTES: Mapping[str, Callable[[VideosApi, Request], Any]] = {
    "GET /videos": list_videos,
    "GET /videos/{id}": get_video,
    "PATCH /videos/{id}": update_video,
    "DELETE /videos/{id}": delete_video,
}
ROUTE_KEYS: tuple[str, ...] = tuple(ROUTES)


@functools.cache
def api() -> VideosApi:
    """Settings and clients, made once per cold start."""
    return VideosApi.from_env()


def handler(event: Mapping[str, Any], _context: object) -> dict[str, Any]:
    return serve(event, ROUTES, api)
