"""What an interrupted upload needs to resume: one small JSON file per upload
in a state directory, named after the file it uploads.

A file is the same file while its absolute path, size and modification time
are; any change makes a new upload rather than a resumed one. The API's URL is
part of the name too, because an upload ID means nothing to another API.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

#: Overrides the default state directory.
STATE_DIR_ENV = "VOD_STATE_DIR"


@dataclasses.dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> LocalFile:
        """Raises ``FileNotFoundError``, ``IsADirectoryError`` & co. as open does."""
        resolved = Path(path).resolve()
        with resolved.open("rb") as file:
            stat = os.fstat(file.fileno())
        return cls(path=resolved, size=stat.st_size, mtime_ns=stat.st_mtime_ns)


@dataclasses.dataclass(frozen=True)
class UploadState:
    """An open multipart upload of ``file`` through the API at ``api_url``."""

    api_url: str
    file: LocalFile
    upload_id: str
    key: str
    video_id: str
    part_size: int
    #: Whether S3 verifies each part by its SHA-256 (``checksumAlgorithm``).
    checksums: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "apiUrl": self.api_url,
            "path": str(self.file.path),
            "size": self.file.size,
            "mtimeNs": self.file.mtime_ns,
            "uploadId": self.upload_id,
            "key": self.key,
            "videoId": self.video_id,
            "partSize": self.part_size,
            "checksums": self.checksums,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UploadState:
        return cls(
            api_url=str(data["apiUrl"]),
            file=LocalFile(
                path=Path(data["path"]),
                size=int(data["size"]),
                mtime_ns=int(data["mtimeNs"]),
            ),
            upload_id=str(data["uploadId"]),
            key=str(data["key"]),
            video_id=str(data["videoId"]),
            part_size=int(data["partSize"]),
            checksums=bool(data.get("checksums", False)),
        )


def default_state_dir() -> Path:
    """``$VOD_STATE_DIR``, else ``$XDG_STATE_HOME/vod``, else
    ``~/.local/state/vod``."""
    if explicit := os.environ.get(STATE_DIR_ENV):
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "vod"


class StateStore:
    """Upload states under ``directory``, one file each."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, api_url: str, file: LocalFile) -> Path:
        identity = "\0".join(
            (api_url.rstrip("/"), str(file.path), str(file.size), str(file.mtime_ns))
        )
        digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
        return self.directory / f"upload-{digest}.json"

    def load(self, api_url: str, file: LocalFile) -> UploadState | None:
        """The saved state of this file's upload, or None when there is none
        or it cannot be read (then the upload starts over)."""
        try:
            data = json.loads(self.path_for(api_url, file).read_text())
            state = UploadState.from_json(data)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        same = state.file == file and state.api_url == api_url.rstrip("/")
        return state if same else None

    def save(self, state: UploadState) -> Path:
        """Written to a temporary file and renamed, so that a kill mid-write
        leaves the previous state or the new one, never half of one."""
        path = self.path_for(state.api_url, state.file)
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(state.to_json(), indent=2))
        os.replace(temporary, path)
        return path

    def delete(self, state: UploadState) -> None:
        self.path_for(state.api_url, state.file).unlink(missing_ok=True)
