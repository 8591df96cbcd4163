"""Publishing a chunked video's playlists while it is encoded and at READY.

Several workers finish chunks at once, and each may extend the playlists.
A playlist object carries the version it was written at (how many chunks
from the start it lists; the final one one more than there are chunks), and
is replaced only by a higher version, with a conditional write on its ETag:
so a playlist only ever grows, and a late writer cannot shorten it or turn
the final VOD playlist back into a growing one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from vod.keys import MASTER_PLAYLIST
from worker.storage import (
    GROWING_PLAYLIST_CACHE,
    PLAYLIST_CACHE,
    PreconditionFailed,
    Storage,
)

VERSION_METADATA = "vod-version"
_ATTEMPTS = 8


class Publisher:
    def __init__(self, storage: Storage, bucket: str) -> None:
        self._storage = storage
        self._bucket = bucket

    def media_playlists(
        self, prefix: str, texts: Mapping[str, str], *, version: int, final: bool
    ) -> None:
        """Write each ``name -> text`` under ``prefix`` unless a version at
        least as high is there."""
        for name, text in texts.items():
            self._grow(prefix + name, text, version=version, final=final)

    def master(self, prefix: str, text: str, *, final: bool) -> None:
        """The master playlist: written once while the video grows (its
        variants do not change), replaced by the measured one at READY."""
        key = prefix + MASTER_PLAYLIST
        if final:
            self._storage.put(self._bucket, key, text.encode())
            return
        with contextlib.suppress(PreconditionFailed):
            self._storage.put(
                self._bucket,
                key,
                text.encode(),
                if_absent=True,
                cache_control=GROWING_PLAYLIST_CACHE,
            )

    def _grow(self, key: str, text: str, *, version: int, final: bool) -> bool:
        for _ in range(_ATTEMPTS):
            head = self._storage.head(self._bucket, key)
            if head is not None:
                current = int(head.metadata.get(VERSION_METADATA, "-1"))
                if current >= version:
                    return False
            try:
                self._storage.put(
                    self._bucket,
                    key,
                    text.encode(),
                    metadata={VERSION_METADATA: str(version)},
                    if_match=head.etag if head is not None else None,
                    if_absent=head is None,
                    cache_control=PLAYLIST_CACHE if final else GROWING_PLAYLIST_CACHE,
                )
            except PreconditionFailed:
                continue
            return True
        raise RuntimeError(f"{key} kept changing under {_ATTEMPTS} conditional writes")
