"""Caption tracks: reading WebVTT and SRT, segmenting and the master's
SUBTITLES group (pure), the caption routes on their event fixtures against
the moto server, the captions function's publishing, and automatic captions
against botocore's Stubber with Amazon Transcribe's documented shapes."""

from __future__ import annotations

import dataclasses
import uuid

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.captions import app as captions_app
from lambdas.captions.publisher import VIDEO_FAILED, CaptionsPublisher
from lambdas.captions.transcribe import AutoCaptions, job_name, output_folder
from lambdas.videos_api import app as videos_app
from tests.conftest import make_bucket, make_table
from tests.test_videos_api import OTHER, OWNER, add_video, call, ok, videos_env
from vod.captions import (
    MAX_CAPTION_BYTES,
    CaptionsError,
    CaptionStatus,
    CaptionTrack,
    Cue,
    parse_captions,
    segments,
    subtitle_playlist,
    to_webvtt,
    with_subtitles,
)
from vod.keys import output_prefix
from vod.languages import caption_language
from vod.model import Status

PUT = "PUT /videos/{id}/captions/{lang}"
LIST = "GET /videos/{id}/captions"
DELETE = "DELETE /videos/{id}/captions/{lang}"
SRT = (
    "1\r\n00:00:01,000 --> 00:00:02,500\r\nHello <i>there</i>\r\n\r\n"
    "2\r\n00:00:05,500 --> 00:00:07,000\r\nTwo\r\nlines\r\n"
)
WEBVTT = (
    "\ufeffWEBVTT - a title\n\nNOTE a comment\n\nSTYLE\n::cue { color: lime }\n\n"
    "intro\n00:05.500 --> 00:07.000 line:0 align:start\nTwo\nlines\n\n"
    "00:00:01.000 --> 00:00:02.500\nHello <i>there</i>\n"
)
MASTER = (
    "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="group_audio",LANGUAGE="und",'
    'NAME="Original audio",DEFAULT=YES,AUTOSELECT=YES,URI="audio/index.m3u8"\n'
    '#EXT-X-STREAM-INF:BANDWIDTH=300000,CODECS="avc1.64000d,mp4a.40.2",'
    'CLOSED-CAPTIONS=NONE,AUDIO="group_audio"\n144p/index.m3u8\n'
    '#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="avc1.64001e,mp4a.40.2",'
    'CLOSED-CAPTIONS=NONE,AUDIO="group_audio"\n360p/index.m3u8\n'
)


def test_srt_and_webvtt_read_to_the_same_cues():
    from_srt = parse_captions(SRT)
    from_vtt = parse_captions(WEBVTT)
    assert [(c.start, c.end, c.text) for c in from_srt] == [
        (1.0, 2.5, "Hello <i>there</i>"),
        (5.5, 7.0, "Two\nlines"),
    ]
    assert [(c.start, c.end, c.text) for c in from_vtt] == [
        (c.start, c.end, c.text) for c in from_srt
    ]
    # WebVTT's cue settings stay; SRT has none.
    assert from_vtt[1].settings == "line:0 align:start"
    assert to_webvtt(from_srt) == (
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nHello <i>there</i>\n\n"
        "00:00:05.500 --> 00:00:07.000\nTwo\nlines\n"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("just some words\nover two lines\n", "line 1: expected a cue"),
        ("WEBVTT\n\n", "has no cues"),
        ("1\n00:00:03,000 --> 00:00:01,000\nbackwards\n", "line 2: the cue ends"),
        ("one\n00:00:01,000 --> 00:00:02,000\nx\n", "line 1: an SRT cue starts"),
        ("WEBVTT\n\n00:01.000 -> 00:02.000\nx\n", "line 3: expected a cue"),
        ("\n \n", "empty"),
    ],
)
def test_what_is_not_webvtt_or_srt_is_refused_with_its_line(text, reason):
    with pytest.raises(CaptionsError, match=reason):
        parse_captions(text)


@pytest.mark.parametrize(
    ("tag", "canonical"),
    [
        ("en", "en"),
        ("pt-br", "pt-BR"),
        ("ZH-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("fra", "fr"),
        ("und", None),
        ("english", None),
        ("en_US", None),
        ("en-", None),
        ("x-klingon", None),
    ],
)
def test_caption_languages_are_bcp47_tags_in_canonical_case(tag, canonical):
    assert caption_language(tag) == canonical


def test_segments_follow_the_video_segment_length_and_repeat_a_spanning_cue():
    cues = [
        Cue(1.0, 2.0, "first"),
        Cue(5.5, 6.5, "spans"),
        Cue(13.0, 20.0, "past the end"),
    ]
    texts = segments(cues, duration=14.2)
    assert len(texts) == 3
    for text in texts:
        assert text.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n")
    assert ("first" in texts[0], "spans" in texts[0]) == (True, True)
    assert ("first" in texts[1], "spans" in texts[1]) == (False, True)
    assert "past the end" in texts[2]
    assert "#EXTINF:6.000000,\n00001.vtt\n#EXTINF:2.200000,\n00002.vtt\n" in (
        subtitle_playlist(14.2)
    )


def test_the_master_gets_one_subtitles_group_and_loses_it_again():
    video_id = str(uuid.uuid4())
    key = f"{output_prefix(video_id)}master.m3u8"
    tracks = [
        CaptionTrack("en", "English", auto=False, revision="r1"),
        CaptionTrack("en-US", "English", auto=False, revision="r2"),
        CaptionTrack("fr", "Français", auto=True, revision="r3"),
    ]
    captioned = with_subtitles(MASTER, key, video_id, tracks)
    lines = captioned.splitlines()
    media = [line for line in lines if "TYPE=SUBTITLES" in line]
    assert media == [
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",LANGUAGE="en",NAME="English",'
        'DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI="subs/en/r1/index.m3u8"',
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",LANGUAGE="en-US",'
        'NAME="English (en-US)",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,'
        'URI="subs/en-US/r2/index.m3u8"',
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",LANGUAGE="fr",'
        'NAME="Français (auto)",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,'
        'URI="subs/fr/r3/index.m3u8"',
    ]
    # After the audio rendition, before the first variant.
    assert lines.index(media[0]) == 4
    variants = [line for line in lines if line.startswith("#EXT-X-STREAM-INF")]
    assert all(line.endswith(',SUBTITLES="subs"') for line in variants)
    assert with_subtitles(captioned, key, video_id, tracks) == captioned
    assert with_subtitles(captioned, key, video_id, []) == MASTER


# The routes, on the videos function's event fixtures.


@pytest.fixture(scope="module")
def stores(moto):
    """One table and pair of buckets for the module: every test makes its
    own videos."""
    return {
        "table": make_table(moto),
        "source": make_bucket(moto, "source"),
        "output": make_bucket(moto, "output"),
    }


@pytest.fixture
def env(aws_env, moto, monkeypatch, stores):
    yield videos_env(moto, monkeypatch, **stores)
    videos_app.api.cache_clear()


def test_a_caption_upload_is_checked_after_ownership(env):
    mine = add_video(env)
    theirs = add_video(env, OTHER)
    cases = [
        (theirs.id, "english", "not captions", 404, "video not found"),
        (str(uuid.uuid4()), "en", WEBVTT, 404, "video not found"),
        (mine.id, "english", WEBVTT, 400, "lang must be a BCP 47 language tag"),
        (mine.id, "und", WEBVTT, 400, "lang must be a BCP 47 language tag"),
        (mine.id, "en", "", 400, "body is required"),
        (mine.id, "en", "   \n", 400, "body is required"),
        (mine.id, "en", "<tt>TTML</tt>", 400, "not WebVTT or SRT: line 1: expected"),
        (
            mine.id,
            "en",
            "WEBVTT\n\n" + "x" * MAX_CAPTION_BYTES,
            400,
            f"at most {MAX_CAPTION_BYTES} bytes",
        ),
    ]
    for video_id, lang, body, status, message in cases:
        got = call(PUT, path={"id": video_id, "lang": lang}, raw_body=body)
        assert got[0] == status, (lang, body[:20], got)
        assert message in got[1]["message"], got
    quoted = call(
        PUT,
        path={"id": mine.id, "lang": "en"},
        query={"label": 'say "hi"'},
        raw_body=WEBVTT,
    )
    assert quoted[0] == 400
    assert not env.videos.get(mine.id).captions


def test_tracks_are_added_listed_replaced_and_deleted(env):
    video = add_video(env)
    added = ok(PUT, path={"id": video.id, "lang": "pt-br"}, raw_body=SRT)
    assert added == {
        "language": "pt-BR",
        "label": "Português",
        "auto": False,
        "status": "PENDING",
        "error": None,
    }
    ok(
        PUT,
        path={"id": video.id, "lang": "en"},
        query={"label": "English (CC)"},
        raw_body=WEBVTT,
    )
    listed = ok(LIST, path={"id": video.id})["captions"]
    assert [(t["language"], t["label"]) for t in listed] == [
        ("en", "English (CC)"),
        ("pt-BR", "Português"),
    ]
    assert ok("GET /videos/{id}", path={"id": video.id})["captions"] == listed
    track = CaptionTrack.from_raw("pt-BR", env.videos.get(video.id).captions["pt-BR"])
    stored = env.s3.get_object(Bucket=env.output, Key=track.source_key(video.id))
    assert stored["Body"].read().decode() == to_webvtt(parse_captions(SRT))
    assert stored["ContentType"].startswith("text/vtt")

    ok(PUT, path={"id": video.id, "lang": "pt-BR"}, raw_body=WEBVTT)
    replaced = env.videos.get(video.id).captions["pt-BR"]
    assert replaced["revision"] != track.revision

    assert call(DELETE, path={"id": video.id, "lang": "en"}, sub=OTHER)[0] == 404
    assert ok(DELETE, path={"id": video.id, "lang": "en"}) == {}
    assert call(DELETE, path={"id": video.id, "lang": "en"})[0] == 404
    assert call(LIST, path={"id": video.id}, sub=OTHER)[0] == 404
    assert [t["language"] for t in ok(LIST, path={"id": video.id})["captions"]] == [
        "pt-BR"
    ]


# The captions function, on the moto server.


@pytest.fixture
def ready(env):
    """A READY video whose master is in the output bucket."""
    video = add_video(env)
    master = f"{output_prefix(video.id)}master.m3u8"
    env.s3.put_object(
        Bucket=env.output, Key=master, Body=MASTER.encode(), CacheControl="max-age=60"
    )
    video = dataclasses.replace(
        video, status=Status.READY, playback=master, duration=14.2
    )
    env.videos.delete(video.id, OWNER)
    env.videos.create(video)
    return video


def stream(old, new):
    def image(video):
        return boto3.dynamodb.types.TypeSerializer().serialize(video.to_item())["M"]

    change = {"SequenceNumber": "1", "NewImage": image(new)}
    if old is not None:
        change["OldImage"] = image(old)
    return [{"eventName": "MODIFY", "dynamodb": change}]


def test_the_captions_function_publishes_replaces_and_removes_a_track(env, ready):
    publisher = CaptionsPublisher(s3=env.s3, bucket=env.output, videos=env.videos)

    def run(old):
        new = env.videos.get(ready.id)
        assert (
            captions_app.on_stream(stream(old, new), publisher=publisher, auto=None)
            == []
        )
        return env.videos.get(ready.id)

    def master():
        got = env.s3.get_object(Bucket=env.output, Key=ready.playback)
        assert got["CacheControl"] == "max-age=60"
        return got["Body"].read().decode()

    ok(PUT, path={"id": ready.id, "lang": "en"}, raw_body=SRT)
    first = run(ready)
    track = CaptionTrack.from_raw("en", first.captions["en"])
    assert track.status is CaptionStatus.PUBLISHED
    assert f'URI="subs/en/{track.revision}/index.m3u8"' in master()
    folder = track.folder(ready.id)
    segment = env.s3.get_object(Bucket=env.output, Key=folder + "00000.vtt")
    assert "Hello <i>there</i>" in segment["Body"].read().decode()
    # The settling write is itself a change, and a no-op.
    assert run(first) == first

    ok(PUT, path={"id": ready.id, "lang": "en"}, raw_body=WEBVTT)
    second = run(first)
    new_track = CaptionTrack.from_raw("en", second.captions["en"])
    assert new_track.status is CaptionStatus.PUBLISHED
    assert f"subs/en/{new_track.revision}/" in master()
    assert track.revision not in master()
    left = env.s3.list_objects_v2(Bucket=env.output, Prefix=folder)
    assert left.get("KeyCount") == 0

    ok(DELETE, path={"id": ready.id, "lang": "en"})
    run(second)
    assert master() == MASTER
    gone = env.s3.list_objects_v2(
        Bucket=env.output, Prefix=f"{output_prefix(ready.id)}subs/"
    )
    assert gone.get("KeyCount") == 0


def test_a_stored_file_that_cannot_be_published_fails_its_track_only(env, ready):
    publisher = CaptionsPublisher(s3=env.s3, bucket=env.output, videos=env.videos)
    ok(PUT, path={"id": ready.id, "lang": "en"}, raw_body=SRT)
    track = CaptionTrack.from_raw("en", env.videos.get(ready.id).captions["en"])
    env.s3.put_object(
        Bucket=env.output, Key=track.source_key(ready.id), Body=b"\xff\xfe"
    )
    captions_app.on_stream(
        stream(ready, env.videos.get(ready.id)), publisher=publisher, auto=None
    )
    failed = ok(LIST, path={"id": ready.id})["captions"][0]
    assert failed["status"] == "FAILED"
    assert "cannot be read" in failed["error"]
    master = env.s3.get_object(Bucket=env.output, Key=ready.playback)
    assert master["Body"].read().decode() == MASTER


def test_the_pending_tracks_of_a_failed_video_fail_with_the_reason(env):
    publisher = CaptionsPublisher(s3=env.s3, bucket=env.output, videos=env.videos)
    video = add_video(env)
    ok(PUT, path={"id": video.id, "lang": "en"}, raw_body=SRT)
    captioned = env.videos.get(video.id)
    failed = dataclasses.replace(captioned, status=Status.FAILED, error="bad file")
    env.videos.delete(video.id, OWNER)
    env.videos.create(failed)
    records = stream(captioned, failed)
    assert captions_app.on_stream(records, publisher=publisher, auto=None) == []
    (track,) = ok(LIST, path={"id": video.id})["captions"]
    assert (track["status"], track["error"]) == ("FAILED", VIDEO_FAILED)


def test_a_change_that_arrives_after_the_video_was_deleted_is_skipped(env, ready):
    publisher = CaptionsPublisher(s3=env.s3, bucket=env.output, videos=env.videos)
    ok(PUT, path={"id": ready.id, "lang": "en"}, raw_body=SRT)
    captioned = env.videos.get(ready.id)
    assert ok("DELETE /videos/{id}", path={"id": ready.id}) == {}
    records = stream(ready, captioned)
    assert captions_app.on_stream(records, publisher=publisher, auto=None) == []
    left = env.s3.list_objects_v2(Bucket=env.output, Prefix=output_prefix(ready.id))
    assert left.get("KeyCount") == 0


# Automatic captions: Amazon Transcribe's documented request and response
# shapes (StartTranscriptionJob, GetTranscriptionJob, the EventBridge event).

TRANSCRIBED = "WEBVTT\n\n1\n00:00:00.500 --> 00:00:02.000\nHello from Transcribe.\n"


def transcribe_event(name, status):
    return {
        "version": "0",
        "id": "1a2b3c4d-0000-1111-2222-333344445555",
        "detail-type": "Transcribe Job State Change",
        "source": "aws.transcribe",
        "account": "123456789012",
        "time": "2026-12-03T16:30:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"TranscriptionJobName": name, "TranscriptionJobStatus": status},
    }


def finished_job(name, status, **fields):
    return {
        "TranscriptionJob": {
            "TranscriptionJobName": name,
            "TranscriptionJobStatus": status,
            "MediaFormat": "mp4",
            "Media": {"MediaFileUri": "s3://uploads/uploads/o/v/clip.mp4"},
            "IdentifyLanguage": True,
            "CreationTime": "2026-12-03T16:29:00Z",
            "CompletionTime": "2026-12-03T16:30:00Z",
            **fields,
        }
    }


@pytest.fixture
def auto(env):
    transcribe = boto3.client("transcribe", region_name="us-east-1")
    with Stubber(transcribe) as stubber:
        yield (
            AutoCaptions(
                transcribe=transcribe,
                s3=env.s3,
                source_bucket=env.source,
                output_bucket=env.output,
                videos=env.videos,
            ),
            stubber,
        )
        stubber.assert_no_pending_responses()


def test_a_video_reaching_ready_starts_one_transcription_job(env, ready, auto):
    captions, stubber = auto
    expected = {
        "TranscriptionJobName": job_name(ready.id),
        "Media": {"MediaFileUri": f"s3://{env.source}/{ready.key}"},
        "IdentifyLanguage": True,
        "OutputBucketName": env.output,
        "OutputKey": output_folder(ready.id),
        "Subtitles": {"Formats": ["vtt"], "OutputStartIndex": 1},
    }
    stubber.add_response(
        "start_transcription_job",
        {
            "TranscriptionJob": {
                "TranscriptionJobName": job_name(ready.id),
                "TranscriptionJobStatus": "IN_PROGRESS",
            }
        },
        expected,
    )
    # A retried stream batch starts it again: the name is taken.
    stubber.add_client_error(
        "start_transcription_job",
        "ConflictException",
        "The requested job name already exists.",
        400,
        expected_params=expected,
    )
    publisher = CaptionsPublisher(s3=env.s3, bucket=env.output, videos=env.videos)
    processing = dataclasses.replace(ready, status=Status.PROCESSING)
    for _ in range(2):
        assert (
            captions_app.on_stream(
                stream(processing, ready), publisher=publisher, auto=captions
            )
            == []
        )
    # A change to a video already READY starts nothing.
    captions_app.on_stream(stream(ready, ready), publisher=publisher, auto=captions)
    record = ok("GET /videos/{id}", path={"id": ready.id})
    assert record["autoCaptions"] == {"status": "IN_PROGRESS"}


def test_a_finished_job_adds_an_auto_track_unless_one_was_uploaded(env, ready, auto):
    captions, stubber = auto
    name = job_name(ready.id)
    stubber.add_response(
        "get_transcription_job",
        finished_job(name, "FAILED", FailureReason="Unsupported media format"),
        {"TranscriptionJobName": name},
    )
    captions.job_finished(transcribe_event(name, "FAILED")["detail"])
    captions.job_finished({"TranscriptionJobName": "someone-elses-job"})
    assert ok(LIST, path={"id": ready.id})["captions"] == []

    def auto_captions():
        return ok("GET /videos/{id}", path={"id": ready.id})["autoCaptions"]

    assert auto_captions() == {
        "status": "FAILED",
        "reason": "Transcribe failed: Unsupported media format",
    }

    env.s3.put_object(
        Bucket=env.output,
        Key=f"{output_folder(ready.id)}{name}.vtt",
        Body=TRANSCRIBED.encode(),
    )
    uri = f"https://s3.us-east-1.amazonaws.com/{env.output}/{output_folder(ready.id)}"
    done = finished_job(
        name,
        "COMPLETED",
        LanguageCode="en-US",
        IdentifiedLanguageScore=0.98,
        Transcript={"TranscriptFileUri": f"{uri}{name}.json"},
        Subtitles={
            "Formats": ["vtt"],
            "SubtitleFileUris": [f"{uri}{name}.vtt"],
            "OutputStartIndex": 1,
        },
    )
    for _ in range(2):
        stubber.add_response(
            "get_transcription_job", done, {"TranscriptionJobName": name}
        )
    captions.job_finished(transcribe_event(name, "COMPLETED")["detail"])
    track = ok(LIST, path={"id": ready.id})["captions"]
    assert track == [
        {
            "language": "en-US",
            "label": "English",
            "auto": True,
            "status": "PENDING",
            "error": None,
        }
    ]
    assert auto_captions() == {"status": "ADDED", "language": "en-US"}
    stored = CaptionTrack.from_raw("en-US", env.videos.get(ready.id).captions["en-US"])
    body = env.s3.get_object(Bucket=env.output, Key=stored.source_key(ready.id))
    assert "Hello from Transcribe." in body["Body"].read().decode()

    ok(PUT, path={"id": ready.id, "lang": "en-US"}, raw_body=SRT)
    captions.job_finished(transcribe_event(name, "COMPLETED")["detail"])
    kept = ok(LIST, path={"id": ready.id})["captions"]
    assert [(t["language"], t["auto"]) for t in kept] == [("en-US", False)]
    assert auto_captions() == {
        "status": "NONE",
        "language": "en-US",
        "reason": "the video has an uploaded en-US track, which stays",
    }


def test_a_job_that_heard_no_speech_adds_no_track_and_says_so(env, ready, auto):
    captions, stubber = auto
    name = job_name(ready.id)
    env.s3.put_object(
        Bucket=env.output,
        Key=f"{output_folder(ready.id)}{name}.vtt",
        Body=b"WEBVTT\n\n",
    )
    stubber.add_response(
        "get_transcription_job",
        finished_job(name, "COMPLETED", LanguageCode="en-US"),
        {"TranscriptionJobName": name},
    )
    captions.job_finished(transcribe_event(name, "COMPLETED")["detail"])
    record = ok("GET /videos/{id}", path={"id": ready.id})
    assert record["captions"] == []
    assert record["autoCaptions"] == {"status": "NONE", "reason": "no speech was found"}
