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

from vod.model import (
    OWNER_INDEX,
    OWNER_INDEX_PARTITION_KEY,
    OWNER_INDEX_SORT_KEY,
    TABLE_PARTITION_KEY,
    TTL_ATTRIBUTE,
    Status,
    Video,
    now_iso,
    sources_of,
    to_dynamo,
)


class BadCursor(ValueError):
    """A paging cursor that this table did not hand out."""


_DESERIALIZER = TypeDeserializer()


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
        values: dict[str, Any] = {":target": str(target), ":now": now_iso()}
        names: dict[str, str] = {"#status": "status", "#updated": "updated_at"}
        sets = ["#status = :target", "#updated = :now"]
        for index, (name, value) in enumerate((fields or {}).items()):
            names[f"#f{index}"] = name
            values[f":f{index}"] = value
            sets.append(f"#f{index} = :f{index}")
        statuses = sorted(str(s) for s in allowed)
        placeholders = []
        for index, status in enumerate(statuses):
            values[f":s{index}"] = status
            placeholders.append(f":s{index}")
        condition = f"#status IN ({', '.join(placeholders)})"
        if owner is not None:
            names["#owner"] = "owner"
            values[":owner"] = owner
            condition += " AND #owner = :owner"
        if key is not None:
            names["#key"] = "key"
            values[":key"] = key
            condition += " AND #key = :key"
        expression = "SET " + ", ".join(sets)
        removed = list(remove)
        if removed:
            for index, name in enumerate(removed):
                names[f"#r{index}"] = name
            expression += " REMOVE " + ", ".join(
                f"#r{index}" for index in range(len(removed))
            )
        try:
            response = self._table.update_item(
                Key={"id": video_id},
                UpdateExpression=expression,
                ConditionExpression=f"attribute_exists(id) AND {condition}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_dynamo(values),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                # The error carries the item in the low-level wire format.
                old = error.response.get("Item")
                current = (
                    Video.from_item(
                        {k: _DESERIALIZER.deserialize(v) for k, v in old.items()}
                    )
                    if old
                    else None
                )
                return TransitionResult(video=None, current=current)
            raise
        return TransitionResult(video=Video.from_item(response["Attributes"]))

    def update_details(
        self, video_id: str, owner: str, fields: Mapping[str, Any]
    ) -> Video | None:
        """Set user-editable fields (title, description) of an owned record."""
        names = {"#owner": "owner", "#updated": "updated_at"}
        values: dict[str, Any] = {":owner": owner, ":now": now_iso()}
        sets = ["#updated = :now"]
        for index, (name, value) in enumerate(fields.items()):
            names[f"#f{index}"] = name
            values[f":f{index}"] = value
            sets.append(f"#f{index} = :f{index}")
        try:
            response = self._table.update_item(
                Key={"id": video_id},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_exists(id) AND #owner = :owner",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_dynamo(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return None
            raise
        return Video.from_item(response["Attributes"])

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

    def list_by_owner(
        self, owner: str, *, limit: int, cursor: str | None = None
    ) -> tuple[list[Video], str | None]:
        """One page of the owner's videos, newest first, and the next cursor."""
        query: dict[str, Any] = {
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": "#owner = :owner",
            "ExpressionAttributeNames": {"#owner": OWNER_INDEX_PARTITION_KEY},
            "ExpressionAttributeValues": {":owner": owner},
            "ScanIndexForward": False,
            "Limit": limit,
        }
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


#: What a LastEvaluatedKey of the owner index holds: the table's key and the
#: index's.
_INDEX_CURSOR_KEYS = frozenset(
    {TABLE_PARTITION_KEY, OWNER_INDEX_PARTITION_KEY, OWNER_INDEX_SORT_KEY}
)

#: Attributes an UPLOADING record carries only while its upload is open.
UPLOAD_ONLY_ATTRIBUTES = (TTL_ATTRIBUTE, "upload_id")


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
