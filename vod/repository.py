"""The video table adapter: every read and write of a video record.

Status changes are conditional writes whose condition comes from the model's
transition table, so two writers racing (a duplicate S3 event, a redelivered
job, a retried complete) can never move a record along a path the model
forbids, and the loser learns it lost instead of overwriting.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from vod.captions import CaptionStatus, CaptionTrack
from vod.model import (
    OWNER_INDEX,
    OWNER_INDEX_PARTITION_KEY,
    OWNER_INDEX_SORT_KEY,
    TABLE_PARTITION_KEY,
    TTL_ATTRIBUTE,
    Status,
    UploadMethod,
    Video,
    now_iso,
    sources_of,
    to_dynamo,
)


class BadCursor(ValueError):
    """A paging cursor that this table did not hand out."""


_DESERIALIZER = TypeDeserializer()


def from_wire(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item in DynamoDB's low-level format (a stream record's image, a
    failed condition's ALL_OLD) as the resource API returns items."""
    return {k: _DESERIALIZER.deserialize(v) for k, v in item.items()}


@dataclasses.dataclass(frozen=True)
class TransitionResult:
    #: The record after the move, or None when the move was refused.
    video: Video | None
    #: On refusal, the record as it was (None when there is no record).
    current: Video | None = None


class VideoRepository:
    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        resource = dynamodb or boto3.resource("dynamodb")
        self._table = resource.Table(table_name)

    def create(self, video: Video) -> None:
        self._table.put_item(
            Item=video.to_item(), ConditionExpression="attribute_not_exists(id)"
        )

    def get(self, video_id: str) -> Video | None:
        item = self._table.get_item(Key={"id": video_id}, ConsistentRead=True).get(
            "Item"
        )
        return Video.from_item(item) if item else None

    def get_owned(self, video_id: str, owner: str) -> Video | None:
        """The record if it exists and belongs to ``owner``; otherwise None, so
        that callers answer 404 alike for absent and foreign videos."""
        video = self.get(video_id)
        return video if video is not None and video.owner == owner else None

    def transition(
        self,
        video_id: str,
        target: Status,
        *,
        fields: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
        only_from: Iterable[Status] | None = None,
        owner: str | None = None,
        key: str | None = None,
    ) -> Video | None:
        """Move a record to ``target`` if the model allows it from the current
        status (narrowed to ``only_from`` when given), and, when given, if the
        record's ``owner`` and source ``key`` match. Returns the new record,
        or None when the record is absent, foreign, or in a status from which
        the move is not allowed."""
        return self.try_transition(
            video_id,
            target,
            fields=fields,
            remove=remove,
            only_from=only_from,
            owner=owner,
            key=key,
        ).video

    def try_transition(
        self,
        video_id: str,
        target: Status,
        *,
        fields: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
        only_from: Iterable[Status] | None = None,
        owner: str | None = None,
        key: str | None = None,
    ) -> TransitionResult:
        """``transition``, also telling a refused caller the record as it is
        (from the failed write itself, so no read permission is needed)."""
        allowed = sources_of(target)
        if only_from is not None:
            allowed = allowed & frozenset(only_from)
        if not allowed:
            return TransitionResult(video=None)
        equal = {"owner": owner, "key": key}
        return self._conditional_update(
            video_id,
            fields={"status": str(target), **(fields or {})},
            remove=remove,
            equal={name: value for name, value in equal.items() if value is not None},
            status_in=allowed,
        )

    def bind_upload_id(
        self, video_id: str, *, owner: str, key: str, upload_id: str
    ) -> TransitionResult:
        """Give an open multipart record without an upload ID (one a browser
        created straight against S3) ``upload_id``; the same ID again is a
        no-op, any other is refused."""
        update = Update().set("upload_id", upload_id)
        update.require_equal("owner", owner).require_equal("key", key)
        update.require_equal("upload_method", str(UploadMethod.MULTIPART))
        update.require_status({Status.UPLOADING})
        path = update.path("upload_id")
        update.require(
            f"(attribute_not_exists({path}) OR {path} = {update.value(upload_id)})"
        )
        return self.apply(video_id, update)

    def update_details(
        self, video_id: str, owner: str, fields: Mapping[str, Any]
    ) -> Video | None:
        """Set user-editable fields (title, description) of an owned record."""
        return self._conditional_update(
            video_id, fields=fields, equal={"owner": owner}
        ).video

    def put_caption(
        self, video_id: str, track: CaptionTrack, *, owner: str | None = None
    ) -> Video | None:
        """Add or replace the record's track for ``track.language``; None when
        there is no such record (of ``owner``, when given). An ``auto`` track
        never replaces one: an uploaded track is the owner's choice."""
        # DynamoDB cannot SET a key of a map that does not exist yet.
        ensure = Update().set_if_absent(CAPTIONS, {})
        update = Update().set(f"{CAPTIONS}.{track.language}", track.to_raw())
        if owner is not None:
            ensure.require_equal("owner", owner)
            update.require_equal("owner", owner)
        if track.auto:
            path = update.path(f"{CAPTIONS}.{track.language}")
            update.require(f"attribute_not_exists({path})")
        if self.apply(video_id, ensure).video is None:
            return None
        return self.apply(video_id, update).video

    def remove_caption(self, video_id: str, owner: str, language: str) -> bool:
        """Remove the owner's track; False when there is none."""
        update = Update().remove(f"{CAPTIONS}.{language}")
        update.require_equal("owner", owner)
        path = update.path(f"{CAPTIONS}.{language}")
        update.require(f"attribute_exists({path})")
        return self.apply(video_id, update).video is not None

    def settle_caption(
        self,
        video_id: str,
        track: CaptionTrack,
        status: CaptionStatus,
        error: str | None = None,
    ) -> bool:
        """Mark the track's revision published or failed; False when it was
        replaced or removed meanwhile."""
        entry = f"{CAPTIONS}.{track.language}"
        update = Update().set(f"{entry}.status", str(status))
        if error:
            update.set(f"{entry}.error", error)
        update.require_equal(f"{entry}.revision", track.revision)
        return self.apply(video_id, update).video is not None

    def _conditional_update(
        self,
        video_id: str,
        *,
        fields: Mapping[str, Any],
        remove: Iterable[str] = (),
        equal: Mapping[str, Any],
        status_in: Iterable[Status] = (),
    ) -> TransitionResult:
        """SET ``fields`` (and ``updated_at``) and REMOVE ``remove`` on an
        existing record whose attributes equal ``equal`` and whose status is
        in ``status_in`` (when given)."""
        update = Update()
        for attribute, item in fields.items():
            update.set(attribute, item)
        for attribute in remove:
            update.remove(attribute)
        for attribute, item in equal.items():
            update.require_equal(attribute, item)
        if status_in:
            update.require_status(status_in)
        return self.apply(video_id, update)

    def set_auto_captions(
        self, video_id: str, state: Mapping[str, Any], *, first: bool = False
    ) -> bool:
        """Record what became of the video's automatic captions (when
        ``first``, only if nothing is recorded yet); False when the record
        is gone."""
        update = Update()
        if first:
            update.set_if_absent("auto_captions", {**state})
        else:
            update.set("auto_captions", {**state})
        return self.apply(video_id, update).video is not None

    def apply(self, video_id: str, update: Update) -> TransitionResult:
        """Run ``update`` on an existing record (``updated_at`` is set too);
        a refused condition returns the record as it was."""
        update.set("updated_at", now_iso())
        try:
            response = self._table.update_item(
                Key={"id": video_id},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **update.arguments(),
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                old = error.response.get("Item")
                current = Video.from_item(from_wire(old)) if old else None
                return TransitionResult(video=None, current=current)
            raise
        return TransitionResult(video=Video.from_item(response["Attributes"]))

    def delete(self, video_id: str, owner: str) -> bool:
        try:
            self._table.delete_item(
                Key={"id": video_id},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": owner},
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    def count_by_owner(
        self, owner: str, *, up_to: int, status: Status | None = None
    ) -> int:
        """How many of the owner's records there are (with ``status``, when
        given), counting no further than ``up_to``."""
        query = {**_owner_query(owner), "Select": "COUNT"}
        if status is not None:
            query["FilterExpression"] = "#status = :status"
            query["ExpressionAttributeNames"]["#status"] = "status"
            query["ExpressionAttributeValues"][":status"] = str(status)
        count = 0
        while count < up_to:
            response = self._table.query(**query)
            count += int(response.get("Count", 0))
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            query["ExclusiveStartKey"] = last
        return min(count, up_to)

    def list_by_owner(
        self, owner: str, *, limit: int, cursor: str | None = None
    ) -> tuple[list[Video], str | None]:
        """One page of the owner's videos, newest first, and the next cursor."""
        query = {**_owner_query(owner), "ScanIndexForward": False, "Limit": limit}
        if cursor:
            start = decode_cursor(cursor)
            # A forged key of another shape would fail the Query itself.
            if set(start) != _INDEX_CURSOR_KEYS:
                raise BadCursor("cursor is not one this API handed out")
            if start.get(OWNER_INDEX_PARTITION_KEY) != owner:
                raise BadCursor("cursor does not belong to this listing")
            query["ExclusiveStartKey"] = start
        response = self._table.query(**query)
        videos = [Video.from_item(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return videos, encode_cursor(last) if last else None


def _owner_query(owner: str) -> dict[str, Any]:
    """A Query of the owner index for one owner's records."""
    return {
        "IndexName": OWNER_INDEX,
        "KeyConditionExpression": "#owner = :owner",
        "ExpressionAttributeNames": {"#owner": OWNER_INDEX_PARTITION_KEY},
        "ExpressionAttributeValues": {":owner": owner},
    }


#: What a LastEvaluatedKey of the owner index holds: the table's key and the
#: index's.
_INDEX_CURSOR_KEYS = frozenset(
    {TABLE_PARTITION_KEY, OWNER_INDEX_PARTITION_KEY, OWNER_INDEX_SORT_KEY}
)

CAPTIONS = "captions"

#: Attributes an UPLOADING record carries only while its upload is open. (The
#: upload ID stays: a retried complete is checked against it.)
UPLOAD_ONLY_ATTRIBUTES = (TTL_ATTRIBUTE,)


class Update:
    """One UpdateItem: SET, ADD and REMOVE on attributes or document paths
    (``tasks.chunk-0003.owner``: each dotted part is one name), under
    conditions that all must hold, besides the record existing."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._values: dict[str, Any] = {}
        self._sets: list[str] = []
        self._adds: list[str] = []
        self._removes: list[str] = []
        self._conditions: list[str] = ["attribute_exists(id)"]

    def path(self, dotted: str) -> str:
        placeholders = []
        for part in dotted.split("."):
            placeholder = f"#n{len(self._names)}"
            self._names[placeholder] = part
            placeholders.append(placeholder)
        return ".".join(placeholders)

    def value(self, item: Any) -> str:
        placeholder = f":v{len(self._values)}"
        self._values[placeholder] = item
        return placeholder

    def set(self, dotted: str, item: Any) -> Update:
        self._sets.append(f"{self.path(dotted)} = {self.value(item)}")
        return self

    def set_if_absent(self, dotted: str, item: Any) -> Update:
        path = self.path(dotted)
        self._sets.append(f"{path} = if_not_exists({path}, {self.value(item)})")
        return self

    def increment(self, dotted: str, by: int | float = 1) -> Update:
        """SET path = path + by, counting from 0 when absent."""
        path = self.path(dotted)
        self._sets.append(
            f"{path} = if_not_exists({path}, {self.value(0)}) + {self.value(by)}"
        )
        return self

    def add(self, attribute: str, amount: int | float) -> Update:
        """ADD to a top-level number (atomic; absent counts as 0)."""
        self._adds.append(f"{self.path(attribute)} {self.value(amount)}")
        return self

    def remove(self, dotted: str) -> Update:
        self._removes.append(self.path(dotted))
        return self

    def require(self, condition: str) -> Update:
        """A condition in DynamoDB's syntax over this update's placeholders."""
        self._conditions.append(condition)
        return self

    def require_equal(self, dotted: str, item: Any) -> Update:
        return self.require(f"{self.path(dotted)} = {self.value(item)}")

    def require_status(self, statuses: Iterable[Status]) -> Update:
        listed = ", ".join(self.value(str(s)) for s in sorted(statuses))
        return self.require(f"{self.path('status')} IN ({listed})")

    def arguments(self) -> dict[str, Any]:
        clauses = []
        if self._sets:
            clauses.append("SET " + ", ".join(self._sets))
        if self._adds:
            clauses.append("ADD " + ", ".join(self._adds))
        if self._removes:
            clauses.append("REMOVE " + ", ".join(self._removes))
        arguments: dict[str, Any] = {
            "UpdateExpression": " ".join(clauses),
            "ConditionExpression": " AND ".join(self._conditions),
            "ExpressionAttributeNames": self._names,
        }
        if self._values:
            arguments["ExpressionAttributeValues"] = to_dynamo(self._values)
        return arguments


def encode_cursor(key: Mapping[str, Any]) -> str:
    raw = json.dumps(dict(key), sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadCursor("cursor is not one this API handed out") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadCursor("cursor is not one this API handed out")
    return value


def _is_conditional_failure(error: ClientError) -> bool:
    code: str = error.response.get("Error", {}).get("Code", "")
    return code == "ConditionalCheckFailedException"
