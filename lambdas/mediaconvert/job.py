"""MediaConvert's version of the shared ladder, in four pure functions:

- ``template_settings``: the job template the stack creates;
- ``create_job_request``: the CreateJob call for one upload;
- ``ready_fields``: what a COMPLETE event says about the outputs, as the
  record's READY fields;
- ``job_cost``: what those outputs cost, as the record's ``cost``.

The CDK construct, the ingest Lambda and the status Lambda all call these, so
the template, the jobs and the reading of their outputs cannot drift apart.

How the template mirrors the Fargate worker (``vod.ladder``): the same rung
names and bitrate caps (QVBR with MaxBitrate, a buffer of two seconds at the
cap), 6 s fMP4 HLS segments (a CMAF group writing only the HLS manifest), a
closed 2 s GOP with no scene-cut keyframes, one AAC-LC stereo rendition
(its language the source track's, its loudness normalized to the same
target, ITU-R BS.1770-3 with a true-peak limiter) and a poster JPEG. A job
template is static, so what the worker plans per source becomes a per-rung
bounding box: each rung fits its 16:9 frame into a square
of the frame's long side without upscaling, which gives landscape and portrait
16:9 sources exactly the worker's sizes. A source smaller than a rung gets
that rung at its own size rather than no rung, other aspect ratios keep their
shape inside the box, the caps are not lowered to the source's bitrate, frame
rates follow the source, a source without audio gets a silent audio track,
and only the source's first audio track is kept: a template cannot know how
many a source has, and a selector for a track the source lacks falls back to
the first track, which would list it twice.

Every picture output (the rungs and the poster) is converted to BT.709 SDR
and says so: an HDR source (PQ or HLG, which MediaConvert detects from the
input's colour metadata) is tone-mapped, as the worker does. A static
template cannot add an HDR ladder for HDR sources only, so there is none:
the ``hdrLadder`` knob is the worker's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from vod.costs import (
    MEDIACONVERT_BASIC_USD_PER_MINUTE,
    MEDIACONVERT_PRO_USD_PER_MINUTE,
    Output,
    mediaconvert_cost,
)
from vod.jobs import JobMessage
from vod.keys import MASTER_PLAYLIST, output_prefix
from vod.ladder import (
    AUDIO_BITRATE,
    AUDIO_CHANNELS,
    AUDIO_NAME,
    AUDIO_SAMPLE_RATE,
    BUFFER_TO_RATE,
    DEFAULT_LADDER,
    GOP_SECONDS,
    SEGMENT_SECONDS,
    Rung,
)
from vod.loudness import DEFAULT_LOUDNESS, QUIET_FLOOR_LUFS, LoudnessTarget
from vod.model import Rendition
from vod.settings import Env, read_float

#: UserMetadata keys of every job we submit. The EventBridge rule matches
#: PIPELINE_KEY against the template's name, so it hears only this stack's jobs.
VIDEO_ID_KEY = "videoId"
PIPELINE_KEY = "vodPipeline"
#: The job states the status Lambda acts on; the EventBridge rule sends only
#: these.
HANDLED_STATUSES = ("PROGRESSING", "STATUS_UPDATE", "COMPLETE", "ERROR", "CANCELED")
#: MediaConvert reports progress each minute by default; 30 s keeps the
#: record's percent fresh at one Lambda call per half minute of transcoding.
STATUS_UPDATE_INTERVAL = "SECONDS_30"
AUDIO_SELECTOR = "Audio Selector 1"
#: CMAF writes the master as ``{base}.m3u8`` and each output's playlist as
#: ``{base}{NameModifier}.m3u8``.
MASTER_BASE = MASTER_PLAYLIST.removesuffix(".m3u8")
#: Frame captures are named ``poster.NNNNNNN.jpg``.
POSTER_BASE = "poster"
#: One capture at the start, then one every 2 s, six at most: the COMPLETE
#: event names the last one, the poster, which is thus up to 10 s in and past
#: a fade from black, like the worker's.
POSTER_INTERVAL_SECONDS = 2
POSTER_CAPTURES = 6
POSTER_QUALITY = 80
#: QVBR quality level (1-10), fixed rather than AUTO so that every job
#: encodes alike; the rung's MaxBitrate still caps what it spends.
QVBR_QUALITY = 7
_AAC_CODING_MODES = {1: "CODING_MODE_1_0", 2: "CODING_MODE_2_0"}
HLS_GROUP_TYPE = "CMAF_GROUP"
POSTER_GROUP_TYPE = "FILE_GROUP"
#: Accelerated transcoding when the job allows it, standard speed otherwise
#: (ENABLED would fail the jobs it cannot accelerate). An accelerated job is
#: billed at the Professional tier.
ACCELERATION_MODE = "PREFERRED"
ACCELERATED = "ACCELERATED"
#: MediaConvert's tone mapping of an HDR input: VIBRANT is AWS's advice for
#: HDR10 (PQ) sources; HLG sources always get PRESERVE_DETAILS.
TONE_MAPPER = "VIBRANT"
#: The template keeps the source's frame rate, which no COMPLETE event
#: reports; the cost takes 30 fps, the most that is billed at the base rate.
ASSUMED_FRAME_RATE = 30.0


class UnexpectedOutputs(ValueError):
    """A COMPLETE event whose outputs are not the ones our template makes."""


def frame_box(rung: Rung) -> int:
    """The side of the square a rung's frame must fit in: the long side of a
    16:9 frame with the rung's short side, rounded to even."""
    return max(2, round(rung.short_side * 16 / 9 / 2) * 2)


def rendition_playlist(rung: Rung) -> str:
    """A rung's media playlist, relative to the video's output prefix."""
    return f"{MASTER_BASE}_{rung.name}.m3u8"


def template_settings(
    ladder: Sequence[Rung] = DEFAULT_LADDER,
    loudness: LoudnessTarget | None = DEFAULT_LOUDNESS,
) -> dict[str, Any]:
    """The job template's ``SettingsJson`` (MediaConvert's JobTemplateSettings):
    everything but the input file and the output locations. ``loudness``
    None leaves the audio's loudness as it is."""
    rungs = _largest_first(ladder)
    return {
        "TimecodeConfig": {"Source": "ZEROBASED"},
        "Inputs": [
            {
                "AudioSelectors": {AUDIO_SELECTOR: {"DefaultSelection": "DEFAULT"}},
                # Phones store portrait video landscape with a rotation tag.
                "VideoSelector": {"Rotate": "AUTO"},
                "TimecodeSource": "ZEROBASED",
            }
        ],
        "OutputGroups": [
            {
                "Name": "HLS",
                "OutputGroupSettings": {
                    "Type": "CMAF_GROUP_SETTINGS",
                    "CmafGroupSettings": {
                        "SegmentLength": SEGMENT_SECONDS,
                        "SegmentLengthControl": "GOP_MULTIPLE",
                        "FragmentLength": GOP_SECONDS,
                        "SegmentControl": "SEGMENTED_FILES",
                        "WriteHlsManifest": "ENABLED",
                        "WriteDashManifest": "DISABLED",
                        "ManifestDurationFormat": "FLOATING_POINT",
                        "StreamInfResolution": "INCLUDE",
                        "CodecSpecification": "RFC_6381",
                    },
                },
                "Outputs": [
                    *(_video_output(rung) for rung in rungs),
                    _audio_output(loudness),
                ],
            },
            {
                "Name": "Poster",
                "OutputGroupSettings": {
                    "Type": "FILE_GROUP_SETTINGS",
                    "FileGroupSettings": {},
                },
                "Outputs": [_poster_output(rungs[0])],
            },
        ],
    }


def job_settings(
    source_uri: str,
    destination_uri: str,
    ladder: Sequence[Rung] = DEFAULT_LADDER,
    loudness: LoudnessTarget | None = DEFAULT_LOUDNESS,
) -> dict[str, Any]:
    """The template's settings with the input file and the output locations
    (``destination_uri`` ends with '/'). The job spells out its whole output
    groups, as AWS's own VOD solution does, so that nothing depends on how
    MediaConvert merges a job's groups into its template's."""
    settings = template_settings(ladder, loudness)
    settings["Inputs"][0]["FileInput"] = source_uri
    hls, poster = settings["OutputGroups"]
    hls["OutputGroupSettings"]["CmafGroupSettings"]["Destination"] = (
        destination_uri + MASTER_BASE
    )
    poster["OutputGroupSettings"]["FileGroupSettings"]["Destination"] = (
        destination_uri + POSTER_BASE
    )
    return settings


def create_job_request(
    job: JobMessage,
    *,
    output_bucket: str,
    role_arn: str,
    template_name: str,
    ladder: Sequence[Rung] = DEFAULT_LADDER,
    loudness: LoudnessTarget | None = DEFAULT_LOUDNESS,
) -> dict[str, Any]:
    """The keyword arguments of ``CreateJob`` for one upload."""
    return {
        "JobTemplate": template_name,
        "Role": role_arn,
        "Settings": job_settings(
            f"s3://{job.bucket}/{job.key}",
            f"s3://{output_bucket}/{output_prefix(job.video_id)}",
            ladder,
            loudness,
        ),
        "UserMetadata": {VIDEO_ID_KEY: job.video_id, PIPELINE_KEY: template_name},
        "StatusUpdateInterval": STATUS_UPDATE_INTERVAL,
        "AccelerationSettings": {"Mode": ACCELERATION_MODE},
        # botocore retries a CreateJob whose response was lost; with the same
        # token MediaConvert returns the first job instead of making a second.
        "ClientRequestToken": job.video_id,
    }


def ready_fields(
    output_groups: Sequence[Mapping[str, Any]],
    video_id: str,
    ladder: Sequence[Rung] = DEFAULT_LADDER,
) -> dict[str, Any]:
    """The record's READY fields from a COMPLETE event's ``outputGroupDetails``,
    shaped as the worker writes them; raises UnexpectedOutputs.

    A CMAF group's event lists the master playlist but not the outputs' files,
    so each rendition's playlist path follows from the naming above. The
    rungs' frames shrink with the rung, so the outputs sorted by size are the
    rungs in order (equal sizes, from a small source, are interchangeable).
    """
    prefix = output_prefix(video_id)
    hls = _group(output_groups, HLS_GROUP_TYPE)
    masters = [p for p in hls.get("playlistFilePaths", []) if p.endswith(".m3u8")]
    if len(masters) != 1:
        raise UnexpectedOutputs(f"expected one HLS master playlist, got {masters}")
    details = hls.get("outputDetails", [])
    videos = sorted(
        (d["videoDetails"] for d in details if "videoDetails" in d),
        key=lambda v: int(v["widthInPx"]) * int(v["heightInPx"]),
        reverse=True,
    )
    rungs = _largest_first(ladder)
    if len(videos) != len(rungs):
        names = ", ".join(r.name for r in rungs)
        raise UnexpectedOutputs(
            f"expected {len(rungs)} video outputs ({names}), got {len(videos)}"
        )
    renditions = [
        Rendition(
            name=rung.name,
            width=int(video["widthInPx"]),
            height=int(video["heightInPx"]),
            bitrate=rung.max_kbps * 1000,
            playlist=prefix + rendition_playlist(rung),
        )
        for rung, video in zip(rungs, videos, strict=True)
    ]
    posters = [
        path
        for detail in _group(output_groups, POSTER_GROUP_TYPE).get("outputDetails", [])
        for path in detail.get("outputFilePaths", [])
    ]
    if not posters:
        raise UnexpectedOutputs("the poster group lists no captured frame")
    duration_ms = max(int(d.get("durationInMs", 0)) for d in details)
    return {
        "progress": 100,
        "duration": round(duration_ms / 1000, 3),
        "width": renditions[0].width,
        "height": renditions[0].height,
        "renditions": [r.to_dict() for r in renditions],
        "playback": _key_under(masters[0], prefix),
        "poster": _key_under(posters[-1], prefix),
    }


@dataclasses.dataclass(frozen=True)
class TierPrices:
    """USD per normalized minute in each on-demand tier."""

    basic_usd_per_minute: float = MEDIACONVERT_BASIC_USD_PER_MINUTE
    pro_usd_per_minute: float = MEDIACONVERT_PRO_USD_PER_MINUTE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TierPrices:
        return cls(
            basic_usd_per_minute=read_float(
                Env.MEDIACONVERT_BASIC_USD_PER_MINUTE,
                env,
                default=cls.basic_usd_per_minute,
            ),
            pro_usd_per_minute=read_float(
                Env.MEDIACONVERT_PRO_USD_PER_MINUTE,
                env,
                default=cls.pro_usd_per_minute,
            ),
        )


#: The us-east-1 on-demand list prices (``vod.costs``).
LIST_PRICES = TierPrices()


def job_cost(
    output_groups: Sequence[Mapping[str, Any]],
    *,
    acceleration_status: str | None,
    prices: TierPrices,
) -> dict[str, Any]:
    """The record's ``cost`` from a COMPLETE event's ``outputGroupDetails``:
    every output with video (the poster's frame capture too) for its
    duration, at the Professional tier when the job ran accelerated."""
    outputs = [
        Output(
            width=int(detail["videoDetails"]["widthInPx"]),
            height=int(detail["videoDetails"]["heightInPx"]),
            frame_rate=ASSUMED_FRAME_RATE,
            seconds=int(detail.get("durationInMs", 0)) / 1000,
        )
        for group in output_groups
        for detail in group.get("outputDetails", [])
        if "videoDetails" in detail
    ]
    if acceleration_status == ACCELERATED:
        return mediaconvert_cost(
            outputs, usd_per_minute=prices.pro_usd_per_minute, tier="Professional"
        )
    return mediaconvert_cost(
        outputs, usd_per_minute=prices.basic_usd_per_minute, tier="Basic"
    )


def _largest_first(ladder: Sequence[Rung]) -> list[Rung]:
    if not ladder:
        raise ValueError("the ladder needs at least one rung")
    return sorted(ladder, key=lambda r: r.short_side, reverse=True)


def _video_output(rung: Rung) -> dict[str, Any]:
    cap = rung.max_kbps * 1000
    box = frame_box(rung)
    return {
        "NameModifier": f"_{rung.name}",
        "ContainerSettings": {
            "Container": "CMFC",
            "CmfcSettings": {"AudioRenditionSets": AUDIO_NAME},
        },
        "VideoDescription": {
            "Width": box,
            "Height": box,
            "ScalingBehavior": "FIT_NO_UPSCALE",
            "VideoPreprocessors": _to_bt709(),
            "ColorMetadata": "INSERT",
            "CodecSettings": {
                "Codec": "H_264",
                "H264Settings": {
                    "CodecProfile": "HIGH",
                    "CodecLevel": "AUTO",
                    "RateControlMode": "QVBR",
                    "QvbrSettings": {"QvbrQualityLevel": QVBR_QUALITY},
                    "MaxBitrate": cap,
                    "HrdBufferSize": cap * BUFFER_TO_RATE,
                    "FramerateControl": "INITIALIZE_FROM_SOURCE",
                    # Keyframes only on the 2 s cadence, every GOP closed, so
                    # that all rungs switch at the same instants.
                    "GopSize": GOP_SECONDS,
                    "GopSizeUnits": "SECONDS",
                    "GopClosedCadence": 1,
                    "SceneChangeDetect": "DISABLED",
                    "MinIInterval": 0,
                },
            },
        },
    }


def _to_bt709() -> dict[str, Any]:
    """Video preprocessing that makes every picture out BT.709 SDR:
    MediaConvert tone-maps an HDR input and converts other SDR colour
    spaces."""
    return {
        "ColorCorrector": {
            "ColorSpaceConversion": "FORCE_709",
            "HdrToSdrToneMapper": TONE_MAPPER,
        }
    }


def _audio_output(loudness: LoudnessTarget | None) -> dict[str, Any]:
    description: dict[str, Any] = {
        "AudioSourceName": AUDIO_SELECTOR,
        # The source track's language tag, as the worker's LANGUAGE.
        "LanguageCodeControl": "FOLLOW_INPUT",
        "CodecSettings": {
            "Codec": "AAC",
            "AacSettings": {
                "CodecProfile": "LC",
                "CodingMode": _AAC_CODING_MODES[AUDIO_CHANNELS],
                "Bitrate": AUDIO_BITRATE,
                "SampleRate": AUDIO_SAMPLE_RATE,
                "RateControlMode": "CBR",
            },
        },
    }
    if loudness is not None:
        description["AudioNormalizationSettings"] = {
            # BS.1770-3: gated integrated loudness, as EBU R128 measures it.
            "Algorithm": "ITU_BS_1770_3",
            "AlgorithmControl": "CORRECT_AUDIO",
            "TargetLkfs": loudness.integrated,
            "PeakCalculation": "TRUE_PEAK",
            "TruePeakLimiterThreshold": loudness.true_peak,
            # Like the worker, silence and hiss are not raised to the target.
            "CorrectionGateLevel": int(QUIET_FLOOR_LUFS),
        }
    return {
        "NameModifier": f"_{AUDIO_NAME}",
        "ContainerSettings": {
            "Container": "CMFC",
            "CmfcSettings": {
                "AudioGroupId": AUDIO_NAME,
                "AudioTrackType": "ALTERNATE_AUDIO_AUTO_SELECT_DEFAULT",
            },
        },
        "AudioDescriptions": [description],
    }


def _poster_output(top: Rung) -> dict[str, Any]:
    """The poster at the top rung's size, as the worker takes it."""
    box = frame_box(top)
    return {
        "ContainerSettings": {"Container": "RAW"},
        "VideoDescription": {
            "Width": box,
            "Height": box,
            "ScalingBehavior": "FIT_NO_UPSCALE",
            "VideoPreprocessors": _to_bt709(),
            "CodecSettings": {
                "Codec": "FRAME_CAPTURE",
                "FrameCaptureSettings": {
                    "FramerateNumerator": 1,
                    "FramerateDenominator": POSTER_INTERVAL_SECONDS,
                    "MaxCaptures": POSTER_CAPTURES,
                    "Quality": POSTER_QUALITY,
                },
            },
        },
    }


def _group(output_groups: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any]:
    matches = [g for g in output_groups if g.get("type") == type_]
    if len(matches) != 1:
        found = [g.get("type") for g in output_groups]
        raise UnexpectedOutputs(f"expected one {type_} output group, got {found}")
    return matches[0]


def _key_under(uri: str, prefix: str) -> str:
    """The object key of ``s3://bucket/key``, which must lie under ``prefix``."""
    scheme, _, rest = uri.partition("://")
    _, _, key = rest.partition("/")
    if scheme != "s3" or not key.startswith(prefix):
        raise UnexpectedOutputs(f"output {uri} is not under the video's {prefix}")
    return key
