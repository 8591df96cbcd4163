"""A client of the platform's HTTP API: the upload routes under ``/s3`` and the
records under ``/videos``, with ``Authorization: Bearer <token>``.

Every failure a user can cause or meet (an error answer, a refused
connection) is a :class:`VodError` whose text is one line; an error answer
is an :class:`ApiError` carrying the server's ``{"message"}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import requests

from client.transport import (
    DEFAULT_TIMEOUT,
    RETRYABLE_STATUSES,
    Backoff,
    pooled_session,
)

_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


class VodError(Exception):
    """An expected failure, shown to a user as one line."""


class ApiError(VodError):
    """An HTTP error answer, with the ``{"message"}`` the server gave."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


class UnreachableError(VodError):
    """No HTTP answer at all (refused, reset, timed out) after every retry."""


class VodApi:
    """The API at ``base_url`` as the user whose token is ``token``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        backoff: Backoff | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session or pooled_session(4)
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout
        self._backoff = backoff or Backoff()

    # Uploads

    def create_multipart(
        self,
        *,
        filename: str,
        content_type: str,
        size: int,
        sign_parts: int = 0,
        checksums: bool = False,
    ) -> dict[str, Any]:
        """``{uploadId, key, videoId, partSize, partCount, expiresAt}``, and
        with ``sign_parts``, ``signedParts``: the first parts' URLs in the
        answer of ``sign_parts``. Not retried: a retry after a lost answer
        would start a second upload."""
        body: dict[str, Any] = {
            "filename": filename,
            "type": content_type,
            "size": size,
        }
        if sign_parts:
            body["signParts"] = sign_parts
        if checksums:
            body["checksumAlgorithm"] = "SHA256"
        return self._object("POST", "/s3/multipart", json=body, idempotent=False)

    def sign_parts(
        self,
        upload_id: str,
        key: str,
        part_numbers: Sequence[int],
        checksums: Mapping[int, str] | None = None,
    ) -> dict[str, Any]:
        """``{parts: [{partNumber, url}], expiresAt}``; with ``checksums``
        (part number -> base64 SHA-256) each URL takes only that part."""
        body: dict[str, Any] = {"key": key, "partNumbers": list(part_numbers)}
        if checksums:
            body["checksums"] = {str(n): c for n, c in checksums.items()}
        return self._object("POST", f"{_upload_path(upload_id)}/sign", json=body)

    def list_parts(self, upload_id: str, key: str) -> list[dict[str, Any]]:
        """``[{PartNumber, Size, ETag}]``: every part S3 holds."""
        listed = self._call("GET", _upload_path(upload_id), params={"key": key})
        if not isinstance(listed, list):
            raise self._unexpected("GET", _upload_path(upload_id), "a JSON list")
        return listed

    def complete(
        self, upload_id: str, key: str, parts: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """``{location, bucket, key, videoId}``; the route is idempotent."""
        return self._object(
            "POST",
            f"{_upload_path(upload_id)}/complete",
            params={"key": key},
            json={"parts": list(parts)},
        )

    def abort(self, upload_id: str, key: str) -> None:
        self._call("DELETE", _upload_path(upload_id), params={"key": key})

    # Videos

    def videos(self, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """The caller's videos, newest first, across every page."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if cursor:
                params["cursor"] = cursor
            page = self._object("GET", "/videos", params=params)
            yield from page["videos"]
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def video(self, video_id: str) -> dict[str, Any]:
        return self._object("GET", f"/videos/{quote(video_id, safe='')}")

    def delete_video(self, video_id: str) -> None:
        self._call("DELETE", f"/videos/{quote(video_id, safe='')}")

    def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = self._call(method, path, **kwargs)
        if not isinstance(body, dict):
            raise self._unexpected(method, path, "a JSON object")
        return body

    def _unexpected(self, method: str, path: str, expected: str) -> VodError:
        return VodError(
            f"{method} {path} did not answer {expected}; "
            f"is {self.base_url} the API's URL?"
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool = True,
    ) -> Any:
        url = self.base_url + path
        attempts = self._backoff.attempts if idempotent else 1
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=self._headers,
                    timeout=self._timeout,
                )
            except requests.RequestException as error:
                if attempt == attempts:
                    raise UnreachableError(
                        f"cannot reach {self.base_url}: {failure_reason(error)}"
                    ) from None
            else:
                if response.ok:
                    try:
                        return response.json()
                    except ValueError:
                        raise self._unexpected(method, path, "JSON") from None
                if response.status_code not in RETRYABLE_STATUSES or (
                    attempt == attempts
                ):
                    raise ApiError(response.status_code, _message(response))
            self._backoff.sleep(attempt)


def failure_reason(error: requests.RequestException) -> str:
    """The short cause of a failed request, e.g. ``Connection refused``."""
    if isinstance(error, requests.Timeout):
        return "timed out"
    found = _ERRNO.search(str(error))
    return found.group(1).strip() if found else type(error).__name__


def _upload_path(upload_id: str) -> str:
    return f"/s3/multipart/{quote(upload_id, safe='')}"


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    text = " ".join(response.text.split())[:200]
    return text or response.reason or "no message"
