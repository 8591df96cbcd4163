"""MediaConvert's job template, job and outputs, checked against botocore's
model of the MediaConvert API and against the shared ladder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.model import Shape
from botocore.validate import ParamValidator

from lambdas.mediaconvert.job import (
    AUDIO_SELECTOR,
    PIPELINE_KEY,
    VIDEO_ID_KEY,
    UnexpectedOutputs,
    create_job_request,
    frame_box,
    job_settings,
    ready_fields,
    rendition_playlist,
    template_settings,
)
from vod.jobs import JobMessage
from vod.ladder import (
    AUDIO_BITRATE,
    AUDIO_SAMPLE_RATE,
    DEFAULT_LADDER,
    GOP_SECONDS,
    SEGMENT_SECONDS,
    parse_ladder,
)
from vod.loudness import LoudnessTarget

FIXTURES = Path(__file__).parent / "fixtures" / "events"
MODEL = botocore.session.get_session().get_service_model("mediaconvert")
LADDERS = {
    "default": DEFAULT_LADDER,
    "custom": parse_ladder(
        '[{"name": "sd", "shortSide": 480, "maxKbps": 1500},'
        ' {"name": "uhd", "shortSide": 2160, "maxKbps": 16000}]'
    ),
}
JOB = JobMessage(
    video_id="3f2b8c1e-7d4a-4e0b-9a61-2c5d8e9f0a1b",
    bucket="vod-source-bucket",
    key="uploads/alice/3f2b8c1e-7d4a-4e0b-9a61-2c5d8e9f0a1b/holiday.mp4",
)


def _model_errors(value: Any, shape: Shape, path: str = "") -> list[str]:
    """What botocore's ParamValidator leaves out: enums, numeric ranges,
    string lengths and patterns of the model."""
    errors = []
    meta = shape.metadata
    if shape.type_name == "structure":
        for name, member in value.items():
            errors += _model_errors(member, shape.members[name], f"{path}.{name}")
    elif shape.type_name == "list":
        for index, item in enumerate(value):
            errors += _model_errors(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "map":
        for key, item in value.items():
            errors += _model_errors(item, shape.value, f"{path}.{key}")
    elif shape.type_name == "string":
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of {shape.enum}")
        if len(value) < meta.get("min", 0) or len(value) > meta.get("max", 1 << 31):
            errors.append(f"{path}: length {len(value)} out of range")
        if "pattern" in meta and not re.search(meta["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {meta['pattern']}")
    elif shape.type_name in ("integer", "long", "double") and not (
        meta.get("min", value) <= value <= meta.get("max", value)
    ):
        errors.append(f"{path}: {value} out of range")
    return errors


def _assert_valid(params: dict[str, Any], shape: Shape) -> None:
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()
    assert _model_errors(params, shape) == []


@pytest.mark.parametrize("ladder", LADDERS.values(), ids=LADDERS.keys())
def test_the_template_is_valid_job_template_settings(ladder):
    create = MODEL.operation_model("CreateJobTemplate").input_shape
    _assert_valid(
        {"Name": "vod", "Settings": template_settings(ladder)},
        create,
    )


def test_the_audio_is_normalized_to_the_target_in_the_tracks_language():
    create = MODEL.operation_model("CreateJobTemplate").input_shape
    for loudness in (LoudnessTarget(-16, -1), LoudnessTarget(-23, -2), None):
        settings = template_settings(DEFAULT_LADDER, loudness)
        _assert_valid({"Name": "vod", "Settings": settings}, create)
        (audio,) = [
            output
            for output in settings["OutputGroups"][0]["Outputs"]
            if "AudioDescriptions" in output
        ]
        (description,) = audio["AudioDescriptions"]
        assert description["LanguageCodeControl"] == "FOLLOW_INPUT"
        if loudness is None:
            assert "AudioNormalizationSettings" not in description
            continue
        assert description["AudioNormalizationSettings"] == {
            "Algorithm": "ITU_BS_1770_3",
            "AlgorithmControl": "CORRECT_AUDIO",
            "TargetLkfs": loudness.integrated,
            "PeakCalculation": "TRUE_PEAK",
            "TruePeakLimiterThreshold": loudness.true_peak,
            "CorrectionGateLevel": -50,
        }


@pytest.mark.parametrize("ladder", LADDERS.values(), ids=LADDERS.keys())
def test_every_job_is_a_valid_create_job_request(ladder):
    request = create_job_request(
        JOB,
        output_bucket="vod-output-bucket",
        role_arn="arn:aws:iam::111122223333:role/Vod-MediaConvertRole",
        template_name="Vod-JobTemplate-1A2B3C4D5E6F",
        ladder=ladder,
    )
    _assert_valid(request, MODEL.operation_model("CreateJob").input_shape)


def test_every_job_asks_for_acceleration_where_it_can_have_it():
    request = create_job_request(
        JOB,
        output_bucket="vod-output-bucket",
        role_arn="arn:aws:iam::111122223333:role/Vod-MediaConvertRole",
        template_name="Vod-JobTemplate-1A2B3C4D5E6F",
    )
    # PREFERRED runs a job that cannot be accelerated at standard speed;
    # ENABLED would fail it.
    assert request["AccelerationSettings"] == {"Mode": "PREFERRED"}
    shape = MODEL.operation_model("CreateJob").input_shape
    assert "PREFERRED" in shape.members["AccelerationSettings"].members["Mode"].enum
    request["AccelerationSettings"] = {"Mode": "PREFER"}
    (error,) = _model_errors(request, shape)
    assert ".AccelerationSettings.Mode: 'PREFER' is not one of" in error


def test_the_model_check_catches_a_misspelt_enum():
    settings = template_settings()
    settings["OutputGroups"][0]["Outputs"][0]["VideoDescription"]["CodecSettings"][
        "Codec"
    ] = "H264"
    shape = MODEL.operation_model("CreateJobTemplate").input_shape.members["Settings"]
    (error,) = _model_errors(settings, shape)
    assert "'H264' is not one of" in error


def test_a_job_reads_the_upload_and_writes_under_the_videos_folder():
    request = create_job_request(
        JOB,
        output_bucket="vod-output-bucket",
        role_arn="arn:aws:iam::111122223333:role/Vod-MediaConvertRole",
        template_name="Vod-JobTemplate-1A2B3C4D5E6F",
    )
    assert request["JobTemplate"] == "Vod-JobTemplate-1A2B3C4D5E6F"
    assert request["Role"] == "arn:aws:iam::111122223333:role/Vod-MediaConvertRole"
    assert request["UserMetadata"] == {
        VIDEO_ID_KEY: JOB.video_id,
        PIPELINE_KEY: "Vod-JobTemplate-1A2B3C4D5E6F",
    }
    settings = request["Settings"]
    (source,) = settings["Inputs"]
    assert source["FileInput"] == (
        "s3://vod-source-bucket/uploads/alice/"
        "3f2b8c1e-7d4a-4e0b-9a61-2c5d8e9f0a1b/holiday.mp4"
    )
    hls, poster = settings["OutputGroups"]
    folder = f"s3://vod-output-bucket/videos/{JOB.video_id}/"
    assert hls["OutputGroupSettings"]["CmafGroupSettings"]["Destination"] == (
        folder + "master"
    )
    assert poster["OutputGroupSettings"]["FileGroupSettings"]["Destination"] == (
        folder + "poster"
    )


def test_the_job_is_the_template_plus_input_and_destinations():
    settings = job_settings("s3://in/uploads/a/v/x.mp4", "s3://out/videos/v/")
    del settings["Inputs"][0]["FileInput"]
    for group in settings["OutputGroups"]:
        for key in ("CmafGroupSettings", "FileGroupSettings"):
            group["OutputGroupSettings"].get(key, {}).pop("Destination", None)
    assert settings == template_settings()


def _hls(settings: dict[str, Any]) -> Any:
    (group,) = [
        g
        for g in settings["OutputGroups"]
        if g["OutputGroupSettings"]["Type"] == "CMAF_GROUP_SETTINGS"
    ]
    return group


def test_the_template_has_the_ladders_rungs_and_caps():
    outputs = _hls(template_settings())["Outputs"]
    videos = [o for o in outputs if "VideoDescription" in o]
    assert [o["NameModifier"] for o in videos] == [f"_{r.name}" for r in DEFAULT_LADDER]
    for output, rung in zip(videos, DEFAULT_LADDER, strict=True):
        h264 = output["VideoDescription"]["CodecSettings"]["H264Settings"]
        assert h264["RateControlMode"] == "QVBR"
        assert h264["MaxBitrate"] == rung.max_kbps * 1000
        assert h264["HrdBufferSize"] == 2 * rung.max_kbps * 1000
    assert [frame_box(r) for r in DEFAULT_LADDER] == [1920, 1280, 960, 768, 640]
    assert rendition_playlist(DEFAULT_LADDER[0]) == "master_1080p.m3u8"


def test_every_picture_out_is_tone_mapped_to_bt709_sdr():
    settings = template_settings()
    videos = [
        output["VideoDescription"]
        for group in settings["OutputGroups"]
        for output in group["Outputs"]
        if "VideoDescription" in output
    ]
    assert len(videos) == len(DEFAULT_LADDER) + 1
    codecs = set()
    for video in videos:
        codecs.add(video["CodecSettings"]["Codec"])
        corrector = video["VideoPreprocessors"]["ColorCorrector"]
        assert corrector["ColorSpaceConversion"] == "FORCE_709"
        assert corrector["HdrToSdrToneMapper"] == "VIBRANT"
    assert codecs == {"H_264", "FRAME_CAPTURE"}
    # The rungs tag what they are; the input's colour space is detected.
    assert {v.get("ColorMetadata") for v in videos} == {"INSERT", None}
    assert "ColorSpace" not in settings["Inputs"][0]["VideoSelector"]
    # Checked against the model: a conversion it does not know is refused.
    shape = MODEL.operation_model("CreateJobTemplate").input_shape.members["Settings"]
    videos[0]["VideoPreprocessors"]["ColorCorrector"]["ColorSpaceConversion"] = "709"
    (error,) = _model_errors(settings, shape)
    assert "'709' is not one of" in error


def test_every_rung_fits_a_square_box_without_upscaling():
    for output in _hls(template_settings())["Outputs"]:
        video = output.get("VideoDescription")
        if video:
            assert video["ScalingBehavior"] == "FIT_NO_UPSCALE"
            assert video["Width"] == video["Height"]


def test_segments_are_6_s_fmp4_hls_with_aligned_closed_2_s_gops():
    group = _hls(template_settings())
    cmaf = group["OutputGroupSettings"]["CmafGroupSettings"]
    assert (SEGMENT_SECONDS, GOP_SECONDS) == (6, 2)
    assert cmaf["SegmentLength"] == SEGMENT_SECONDS
    assert cmaf["FragmentLength"] == GOP_SECONDS
    assert cmaf["SegmentControl"] == "SEGMENTED_FILES"
    assert (cmaf["WriteHlsManifest"], cmaf["WriteDashManifest"]) == (
        "ENABLED",
        "DISABLED",
    )
    for output in group["Outputs"]:
        assert output["ContainerSettings"]["Container"] == "CMFC"
        if "VideoDescription" in output:
            h264 = output["VideoDescription"]["CodecSettings"]["H264Settings"]
            assert (h264["GopSize"], h264["GopSizeUnits"]) == (GOP_SECONDS, "SECONDS")
            assert h264["GopClosedCadence"] == 1
            assert h264["SceneChangeDetect"] == "DISABLED"
            assert h264["MinIInterval"] == 0


def test_one_aac_stereo_rendition_serves_every_rung():
    outputs = _hls(template_settings())["Outputs"]
    (audio,) = [o for o in outputs if "AudioDescriptions" in o]
    (description,) = audio["AudioDescriptions"]
    assert description["AudioSourceName"] == AUDIO_SELECTOR
    aac = description["CodecSettings"]["AacSettings"]
    assert (aac["CodecProfile"], aac["CodingMode"]) == ("LC", "CODING_MODE_2_0")
    assert (aac["Bitrate"], aac["SampleRate"]) == (AUDIO_BITRATE, AUDIO_SAMPLE_RATE)
    group = audio["ContainerSettings"]["CmfcSettings"]["AudioGroupId"]
    for output in outputs:
        if output is not audio:
            assert output["ContainerSettings"]["CmfcSettings"] == {
                "AudioRenditionSets": group
            }
            assert "AudioDescriptions" not in output


def test_the_poster_is_a_frame_capture_at_the_top_rungs_size():
    (poster,) = [
        g
        for g in template_settings()["OutputGroups"]
        if g["OutputGroupSettings"]["Type"] == "FILE_GROUP_SETTINGS"
    ]
    (output,) = poster["Outputs"]
    assert output["ContainerSettings"]["Container"] == "RAW"
    video = output["VideoDescription"]
    assert video["CodecSettings"]["Codec"] == "FRAME_CAPTURE"
    capture = video["CodecSettings"]["FrameCaptureSettings"]
    last_capture_at = (
        (capture["MaxCaptures"] - 1)
        * capture["FramerateDenominator"]
        / capture["FramerateNumerator"]
    )
    assert 0 < last_capture_at <= 10
    assert video["Width"] == frame_box(DEFAULT_LADDER[0])


def _complete_outputs() -> list[dict[str, Any]]:
    event = json.loads((FIXTURES / "mediaconvert_complete.json").read_text())
    outputs: list[dict[str, Any]] = event["detail"]["outputGroupDetails"]
    return outputs


def test_ready_fields_name_the_outputs_as_the_worker_does():
    fields = ready_fields(_complete_outputs(), "v1")
    assert fields["playback"] == "videos/v1/master.m3u8"
    assert fields["poster"] == "videos/v1/poster.0000005.jpg"
    assert fields["duration"] == 30.08
    assert (fields["width"], fields["height"]) == (1920, 1080)
    assert fields["progress"] == 100
    assert [
        (r["name"], r["width"], r["height"], r["bitrate"], r["playlist"])
        for r in fields["renditions"]
    ] == [
        ("1080p", 1920, 1080, 5_000_000, "videos/v1/master_1080p.m3u8"),
        ("720p", 1280, 720, 3_000_000, "videos/v1/master_720p.m3u8"),
        ("540p", 960, 540, 2_000_000, "videos/v1/master_540p.m3u8"),
        ("432p", 768, 432, 1_200_000, "videos/v1/master_432p.m3u8"),
        ("360p", 640, 360, 800_000, "videos/v1/master_360p.m3u8"),
    ]


def test_outputs_outside_the_videos_folder_are_refused():
    with pytest.raises(UnexpectedOutputs, match="not under the video's videos/v2/"):
        ready_fields(_complete_outputs(), "v2")


def test_a_missing_rung_is_refused():
    outputs = _complete_outputs()
    outputs[0]["outputDetails"].pop(0)
    with pytest.raises(UnexpectedOutputs, match="expected 5 video outputs"):
        ready_fields(outputs, "v1")


def test_a_job_without_the_poster_group_is_refused():
    with pytest.raises(UnexpectedOutputs, match="one FILE_GROUP output group"):
        ready_fields(_complete_outputs()[:1], "v1")
