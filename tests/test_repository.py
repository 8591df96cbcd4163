"""The table adapter against a real (moto) DynamoDB: conditional status moves,
ownership and newest-first paging through the owner index."""

from __future__ import annotations

import time

import pytest

from tests.conftest import make_table
from vod.model import Status, Video
from vod.repository import BadCursor, VideoRepository


@pytest.fixture
def repo(aws_env):
    return VideoRepository(make_table(aws_env))


def _new(video_id: str, owner: str = "alice") -> Video:
    return Video.new_upload(
        video_id=video_id,
        owner=owner,
        key=f"uploads/{owner}/{video_id}/clip.mp4",
        filename="clip.mp4",
        content_type="video/mp4",
        size=10,
        upload_id="up",
        expires_at=int(time.time()) + 3600,
    )


def test_create_refuses_to_overwrite_an_existing_record(repo):
    repo.create(_new("v1"))
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        repo.create(_new("v1"))


def test_transitions_follow_the_model_and_losers_learn_they_lost(repo):
    repo.create(_new("v1"))
    uploaded = repo.transition(
        "v1", Status.UPLOADED, remove=["expires_at", "upload_id"]
    )
    assert uploaded is not None
    assert uploaded.status is Status.UPLOADED
    assert uploaded.expires_at is None
    assert uploaded.upload_id is None
    assert repo.transition("v1", Status.QUEUED) is not None
    assert repo.transition("v1", Status.QUEUED) is None, "a duplicate event loses"
    assert repo.transition("v1", Status.ABORTED) is None
    progressed = repo.transition("v1", Status.PROCESSING, fields={"progress": 40})
    assert progressed is not None
    assert progressed.progress == 40
    ready = repo.transition("v1", Status.READY, fields={"duration": 12.5})
    assert ready is not None
    assert ready.duration == 12.5
    assert repo.transition("v1", Status.FAILED, fields={"error": "late"}) is None
    assert repo.get("v1").status is Status.READY


def test_only_from_narrows_and_owner_guards_a_transition(repo):
    repo.create(_new("v1"))
    assert repo.transition("v1", Status.QUEUED, only_from=[Status.UPLOADED]) is None
    assert repo.transition("v1", Status.ABORTED, owner="mallory") is None
    assert repo.transition("v1", Status.ABORTED, owner="alice") is not None
    assert repo.transition("absent", Status.ABORTED) is None


def test_get_owned_hides_foreign_records(repo):
    repo.create(_new("v1", owner="alice"))
    assert repo.get_owned("v1", "alice") is not None
    assert repo.get_owned("v1", "bob") is None
    assert repo.get_owned("nope", "alice") is None


def test_details_and_delete_are_owner_guarded(repo):
    repo.create(_new("v1", owner="alice"))
    assert repo.update_details("v1", "bob", {"title": "x"}) is None
    updated = repo.update_details("v1", "alice", {"title": "Holiday"})
    assert updated is not None
    assert updated.title == "Holiday"
    assert repo.delete("v1", "bob") is False
    assert repo.delete("v1", "alice") is True
    assert repo.get("v1") is None


def test_listing_is_newest_first_and_paged_per_owner(repo):
    for index in range(5):
        repo.create(_new(f"a{index}", owner="alice"))
        time.sleep(0.002)
    repo.create(_new("b0", owner="bob"))
    first, cursor = repo.list_by_owner("alice", limit=3)
    assert [v.id for v in first] == ["a4", "a3", "a2"]
    assert cursor is not None
    second, end = repo.list_by_owner("alice", limit=3, cursor=cursor)
    assert [v.id for v in second] == ["a1", "a0"]
    assert end is None
    with pytest.raises(BadCursor):
        repo.list_by_owner("bob", limit=3, cursor=cursor)
    with pytest.raises(BadCursor):
        repo.list_by_owner("alice", limit=3, cursor="%%%not-a-cursor")


def test_a_refused_transition_reports_the_record_as_it_is(repo):
    repo.create(_new("v1"))
    repo.transition("v1", Status.QUEUED)
    refused = repo.try_transition("v1", Status.QUEUED)
    assert refused.video is None
    assert refused.current is not None
    assert refused.current.status is Status.QUEUED
    absent = repo.try_transition("nope", Status.QUEUED)
    assert absent.video is None
    assert absent.current is None


def test_key_guard_refuses_a_record_whose_source_is_another_object(repo):
    repo.create(_new("v1"))
    assert (
        repo.transition("v1", Status.QUEUED, key="uploads/alice/v1/other.mp4") is None
    )
    assert repo.transition("v1", Status.QUEUED, key="uploads/alice/v1/clip.mp4")
