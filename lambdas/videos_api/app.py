"""The videos function: the caller's videos under ``/videos``. The CDK stack
creates one route per key in ``ROUTE_KEYS``."""

from __future__ import annotations

import functools
import re
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
from vod.captions import (
    MAX_CAPTION_BYTES,
    MAX_LABEL_CHARS,
    CaptionsError,
    parse_captions,
)
from vod.languages import caption_language

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_CURSOR_CHARS = 2048
_EDITABLE = ("title", "description")
_LABEL = re.compile(r'[^"\x00-\x1f\x7f]+')


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


def put_caption(api: VideosApi, request: Request) -> Any:
    video_id = _video_id(request)
    # Someone else's video is a 404 whatever the body and tag say.
    api.check_owned(request.owner, video_id)
    language = _caption_language(request)
    label = optional_str(request.query.get("label"), "label", max_chars=MAX_LABEL_CHARS)
    if label is not None and not _LABEL.fullmatch(label):
        raise Invalid("label must be plain text without quotes or line breaks")
    body = request.body_text or ""
    if not body.strip():
        raise Invalid("body is required: send the captions as WebVTT or SRT")
    if len(body.encode()) > MAX_CAPTION_BYTES:
        raise Invalid(f"captions must be at most {MAX_CAPTION_BYTES} bytes")
    try:
        cues = parse_captions(body)
    except CaptionsError as error:
        raise Invalid(f"body is not WebVTT or SRT: {error}") from None
    return api.put_caption(request.owner, video_id, language, cues, label=label)


def list_captions(api: VideosApi, request: Request) -> Any:
    return api.list_captions(request.owner, _video_id(request))


def delete_caption(api: VideosApi, request: Request) -> Any:
    video_id = _video_id(request)
    api.check_owned(request.owner, video_id)
    return api.delete_caption(request.owner, video_id, _caption_language(request))


def _caption_language(request: Request) -> str:
    raw = request.path_param("lang")
    language = caption_language(raw)
    if language is None:
        raise Invalid(
            f"lang must be a BCP 47 language tag like en, pt-BR or zh-Hant, "
            f"got {raw[:40]!r}"
        )
    return language


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
    "GET /videos/{id}/captions": list_captions,
    "PUT /videos/{id}/captions/{lang}": put_caption,
    "DELETE /videos/{id}/captions/{lang}": delete_caption,
}
ROUTE_KEYS: tuple[str, ...] = tuple(ROUTES)


@functools.cache
def api() -> VideosApi:
    """Settings and clients, made once per cold start."""
    return VideosApi.from_env()


def handler(event: Mapping[str, Any], _context: object) -> dict[str, Any]:
    return serve(event, ROUTES, api)
