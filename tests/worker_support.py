"""Shared by the worker's tests: makes tiny lavfi clips once per session,
seeds moto with a queued video, and builds in-process workers. (pytest puts
containers/ffmpeg on the path, as the image puts the worker beside vod/.)"""

from __future__ import annotations

import atexit
import functools
import http.server
import json
import shutil
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local.motoserver import SETUP_CREDENTIALS, MotoEndpoint
from tests.conftest import client, make_bucket, make_queue, make_table
from vod.jobs import JobMessage
from vod.keys import upload_key
from vod.ladder import Rung
from vod.model import Status, Video, now_iso
from vod.repository import VideoRepository
from vod.settings import Env, WorkerSettings
from worker.jobs import Transcoder
from worker.ledger import Ledger
from worker.loop import Worker
from worker.messages import JobsQueue
from worker.protection import TaskProtection
from worker.storage import Storage

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_ROOT = REPO_ROOT / "containers" / "ffmpeg"

#: Small rungs keep the encodes fast; the default ladder is tested as pure
#: planning. Names are the rungs' folders.
SMALL_LADDER = (Rung("360p", 360, 800), Rung("240p", 240, 400), Rung("144p", 144, 200))
FAST_PRESET = "ultrafast"
_CLIPS = Path(tempfile.mkdtemp(prefix="worker-clips-"))
atexit.register(shutil.rmtree, _CLIPS, True)


@functools.cache
def clip(
    *,
    size: str = "640x360",
    rate: str = "30",
    seconds: float = 3,
    audio: bool = True,
    rotate: int = 0,
    faststart: bool = False,
    pix_fmt: str = "yuv420p",
    languages: tuple[str, ...] = (),
    crf: int | None = None,
) -> Path:
    """A testsrc2 clip, made once: with a sine tone when ``audio``, untagged,
    or with one tone per language of ``languages`` (ISO 639-2, as containers
    tag tracks), each a track of its own. A low ``crf`` raises its bitrate,
    which the ladder lowers its rungs' caps to."""
    name = (
        f"{size}-{rate}-{seconds}-{audio}-{rotate}-{faststart}-{pix_fmt}"
        f"-{'+'.join(languages)}-{crf}.mp4"
    )
    path = _CLIPS / name.replace("/", "_")
    inputs = [
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={rate}:duration={seconds}",
    ]
    tracks: list[str] = []
    if audio and languages:
        for index, language in enumerate(languages):
            tone = f"sine=frequency={440 * (index + 1)}:duration={seconds}"
            inputs += ["-f", "lavfi", "-i", tone]
            tracks += ["-map", f"{index + 1}:a", f"-metadata:s:a:{index}"]
            tracks.append(f"language={language}")
        tracks[:0] = ["-map", "0:v"]
    elif audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    flags = ["-movflags", "+faststart"] if faststart else []
    target = path.with_suffix(".plain.mp4") if rotate else path
    _ffmpeg(
        *inputs,
        # testsrc2 draws even sizes only; the scaler makes odd ones.
        "-vf",
        f"scale={size.replace('x', ':')}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        pix_fmt,
        *(["-crf", str(crf)] if crf is not None else []),
        *(["-c:a", "aac"] if audio else []),
        *tracks,
        *flags,
        str(target),
    )
    if rotate:
        _rotate(target, path, rotate)
    return path


#: The BT.709 picture every SDR reference and HDR clip starts from.
SDR_PICTURE = (
    "scale=out_color_matrix=bt709:out_range=tv,format=yuv444p,"
    "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"
)


#: A P3 mastering display of 1000 cd/m2, content of 1000 and 400 cd/m2.
HDR10_SOURCE = (
    "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)"
    "L(10000000,50):max-cll=1000,400"
)


@functools.cache
def hdr_clip(
    transfer: str, *, size: str = "192x108", rate: int = 10, seconds: float = 1
) -> Path:
    """The testsrc2 picture as a phone records HDR: converted to ``transfer``
    (``arib-std-b67``, HLG, or ``smpte2084``, PQ) in BT.2020 with SDR white
    at the 203 cd/m2 of ITU-R BT.2408, in 10-bit HEVC tagged so; PQ with
    HDR10 metadata (HDR10_SOURCE). ``bt709`` makes wide-gamut SDR: BT.2020
    primaries in the SDR transfer."""
    path = _CLIPS / f"hdr-{transfer}-{size}-{rate}-{seconds}.mp4"
    hdr10 = f":{HDR10_SOURCE}" if transfer == "smpte2084" else ""
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={rate}:duration={seconds}",
        "-vf",
        f"{SDR_PICTURE},zscale=t={transfer}:p=bt2020:m=bt2020nc:r=tv:npl=203,"
        "format=yuv420p10le",
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        f"colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc{hdr10}:"
        "log-level=error",
        str(path),
    )
    return path


def picture_means(
    path: Path | str, *, lavfi: bool = False, video_filter: str = "null"
) -> tuple[float, float]:
    """signalstats' mean luma (YAVG) and mean saturation (SATAVG), 8-bit,
    averaged over every frame of a file or of a lavfi source."""
    result = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostats",
            *(["-f", "lavfi"] if lavfi else []),
            "-i",
            str(path),
            "-vf",
            f"{video_filter},format=yuv420p,signalstats,metadata=print:file=-",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    values: dict[str, list[float]] = {"YAVG": [], "SATAVG": []}
    for line in result.stdout.splitlines():
        key, _, value = line.removeprefix("lavfi.signalstats.").partition("=")
        if key in values:
            values[key].append(float(value))
    luma, saturation = values["YAVG"], values["SATAVG"]
    assert luma, result.stderr
    return sum(luma) / len(luma), sum(saturation) / len(saturation)


def _rotate(source: Path, target: Path, degrees: int) -> None:
    """Tag a display rotation without re-encoding: ``-display_rotation`` on
    ffmpeg 6+, the ``rotate`` stream tag on 5.1 (which 6+ ignores)."""
    help_text = subprocess.run(
        ["ffmpeg", "-hide_banner", "-h", "full"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "display_rotation" in help_text:
        _ffmpeg(
            "-display_rotation",
            str(degrees),
            "-i",
            str(source),
            "-c",
            "copy",
            str(target),
        )
    else:
        _ffmpeg(
            "-i",
            str(source),
            "-c",
            "copy",
            "-metadata:s:v:0",
            f"rotate={degrees}",
            str(target),
        )


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=120,
    )


def probe_json(path: Path, *extra: str) -> dict[str, Any]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", *extra, "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


class Stack:
    """One table, source and output bucket, and jobs queue with its DLQ."""

    def __init__(self, moto: MotoEndpoint) -> None:
        self.moto = moto
        self.table = make_table(moto)
        self.source_bucket = make_bucket(moto, "uploads")
        self.output_bucket = make_bucket(moto, "outputs")
        self.queue_url, self.dlq_url = make_queue(moto, max_receive_count=3)
        self.s3 = boto3.client(
            "s3",
            endpoint_url=moto.url,
            region_name=moto.region,
            aws_access_key_id=SETUP_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=SETUP_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(signature_version="s3v4"),
        )
        self.sqs = client(moto, "sqs")
        self.repository = VideoRepository(
            self.table, dynamodb=resource(moto, "dynamodb")
        )

    def settings(self, work_dir: Path, **overrides: Any) -> WorkerSettings:
        values: dict[str, Any] = {
            "table_name": self.table,
            "source_bucket": self.source_bucket,
            "output_bucket": self.output_bucket,
            "queue_url": self.queue_url,
            "ladder": SMALL_LADDER,
            "work_dir": str(work_dir),
            "x264_preset": FAST_PRESET,
            "progress_interval_seconds": 0,
            "disk_headroom_bytes": 0,
            # One run unless a test asks for chunks.
            "chunk_seconds": 600,
            # The first loudness pass where a test asks for it (the chunk
            # tests' two-track source, test_worker_loudness): elsewhere it
            # would only decode every source's audio once more.
            "loudness": None,
        }
        values.update(overrides)
        return WorkerSettings(**values)

    def worker(
        self,
        work_dir: Path,
        *,
        owner: str = "worker-1",
        repository: VideoRepository | None = None,
        s3: Any = None,
        protection: TaskProtection | None = None,
        **overrides: Any,
    ) -> Worker:
        """An in-process worker with its own id and scratch directory."""
        settings = self.settings(work_dir, **overrides)
        queue = JobsQueue(
            self.sqs,
            settings.queue_url,
            visibility_timeout=settings.visibility_timeout_seconds,
        )
        return Worker(
            queue=queue,
            transcoder=Transcoder(
                settings,
                ledger=Ledger(
                    repository or self.repository,
                    owner=owner,
                    lease_seconds=settings.visibility_timeout_seconds,
                ),
                storage=Storage(s3 or self.s3),
                jobs=queue,
            ),
            protection=protection or TaskProtection(None),
            heartbeat_seconds=settings.heartbeat_seconds,
            stop_timeout_seconds=settings.stop_timeout_seconds,
            max_receive_count=settings.max_receive_count,
        )

    def env(self, work_dir: Path, **overrides: str) -> dict[str, str]:
        """The variables a worker process reads (plus the moto endpoint)."""
        return {
            **self.moto.client_env(),
            Env.TABLE_NAME: self.table,
            Env.SOURCE_BUCKET: self.source_bucket,
            Env.OUTPUT_BUCKET: self.output_bucket,
            Env.JOBS_QUEUE_URL: self.queue_url,
            Env.LADDER: json.dumps(
                [
                    {"name": r.name, "shortSide": r.short_side, "maxKbps": r.max_kbps}
                    for r in SMALL_LADDER
                ]
            ),
            Env.WORK_DIR: str(work_dir),
            Env.X264_PRESET: FAST_PRESET,
            Env.PROGRESS_INTERVAL_SECONDS: "0",
            Env.CHUNK_SECONDS: "600",
            **overrides,
        }

    def queue_video(self, path: Path, *, status: Status = Status.QUEUED) -> str:
        """Upload ``path`` as a new video's original, record it in ``status``
        and send its job; returns the video id."""
        video_id = uuid.uuid4().hex
        key = upload_key("owner-1", video_id, f"clip{path.suffix}")
        self.s3.upload_file(str(path), self.source_bucket, key)
        stamp = now_iso()
        self.repository.create(
            Video(
                id=video_id,
                owner="owner-1",
                status=status,
                key=key,
                filename=f"clip{path.suffix}",
                content_type="video/mp4",
                created_at=stamp,
                updated_at=stamp,
                size=path.stat().st_size,
            )
        )
        self.send_job(video_id, key)
        return video_id

    def send_job(self, video_id: str, key: str) -> None:
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=JobMessage(video_id, self.source_bucket, key).to_json(),
        )

    def receive_all(self) -> list[Any]:
        """Take every waiting message off the queue (hidden for a minute)."""
        taken: list[Any] = []
        while True:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=60,
                WaitTimeSeconds=0,
            )
            messages = response.get("Messages", [])
            if not messages:
                return taken
            taken += messages

    def outputs(self, video_id: str) -> dict[str, dict[str, Any]]:
        """Every output object's key (relative to the video's folder) and head."""
        prefix = f"videos/{video_id}/"
        listing = self.s3.list_objects_v2(Bucket=self.output_bucket, Prefix=prefix)
        return {
            item["Key"][len(prefix) :]: self.s3.head_object(
                Bucket=self.output_bucket, Key=item["Key"]
            )
            for item in listing.get("Contents", [])
        }

    def read_output(self, video_id: str, name: str) -> bytes:
        body = self.s3.get_object(
            Bucket=self.output_bucket, Key=f"videos/{video_id}/{name}"
        )
        data: bytes = body["Body"].read()
        return data

    def queue_depths(self) -> tuple[int, int]:
        """Messages (visible + in flight) in the jobs queue and in its DLQ."""

        def depth(url: str) -> int:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            return sum(int(v) for v in attributes.values())

        return depth(self.queue_url), depth(self.dlq_url)


def resource(moto: MotoEndpoint, service: str) -> Any:
    return boto3.resource(
        service,
        endpoint_url=moto.url,
        region_name=moto.region,
        aws_access_key_id=SETUP_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SETUP_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


class AgentStub:
    """A loopback stand-in for the ECS agent's task-protection endpoint that
    records each request's method, path and JSON body."""

    def __init__(self, status: int = 200) -> None:
        requests: list[tuple[str, str, dict[str, Any]]] = []
        self.requests = requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                requests.append(("PUT", self.path, json.loads(self.rfile.read(length))))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self._server.server_address[1]}/api/task"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def __enter__(self) -> AgentStub:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def states(self) -> list[bool]:
        return [body["ProtectionEnabled"] for _, _, body in self.requests]
