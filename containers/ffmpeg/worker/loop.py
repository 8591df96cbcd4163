"""The worker's loop: one message at a time, kept invisible (and its task's
lease renewed) by a heartbeat while its job runs, settled by the job's
outcome: deleted when done, shown again later when the job had to wait,
left alone when another worker took the task over.

Stopping (SIGTERM on scale-in or a Spot interruption): no new message is
taken; the current job may finish within the stop timeout, after which
ffmpeg is killed and the message released for another worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

from vod.jobs import JobMessage
from vod.repository import VideoRepository
from vod.settings import WorkerSettings
from worker.errors import Interrupted
from worker.jobs import Outcome, Transcoder
from worker.ledger import Ledger
from worker.logs import event
from worker.messages import WAIT_SECONDS, Heartbeat, JobsQueue, Received
from worker.protection import TaskProtection
from worker.run import StopReason, TaskRun
from worker.storage import Storage

#: Pause after a failed receive (throttling, a network blip) before the next.
RETRY_PAUSE_SECONDS = 5


class Worker:
    def __init__(
        self,
        *,
        queue: JobsQueue,
        transcoder: Transcoder,
        protection: TaskProtection,
        heartbeat_seconds: float,
        stop_timeout_seconds: float,
        max_receive_count: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue = queue
        self._transcoder = transcoder
        self._protection = protection
        self._heartbeat_seconds = heartbeat_seconds
        self._stop_timeout_seconds = stop_timeout_seconds
        self._max_receive_count = max_receive_count
        self._clock = clock
        self._stopping = threading.Event()
        self._cancel = threading.Event()
        self._run: TaskRun | None = None

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> Worker:
        """Clients from the standard AWS_* environment (AWS_ENDPOINT_URL
        points them at a local server in tests). S3 signs with SigV4, which
        the presigned source URLs need."""
        session = boto3.session.Session()
        queue = JobsQueue(
            session.client("sqs"),
            settings.queue_url,
            visibility_timeout=settings.visibility_timeout_seconds,
        )
        return cls(
            queue=queue,
            transcoder=Transcoder(
                settings,
                ledger=Ledger(
                    VideoRepository(
                        settings.table_name, dynamodb=session.resource("dynamodb")
                    ),
                    owner=worker_id(),
                    lease_seconds=settings.visibility_timeout_seconds,
                ),
                storage=Storage(
                    session.client("s3", config=Config(signature_version="s3v4"))
                ),
                jobs=queue,
            ),
            protection=TaskProtection.from_env(),
            heartbeat_seconds=settings.heartbeat_seconds,
            stop_timeout_seconds=settings.stop_timeout_seconds,
            max_receive_count=settings.max_receive_count,
        )

    def request_stop(self) -> None:
        """Safe from a signal handler: only sets flags and starts a timer."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        deadline = threading.Timer(self._stop_timeout_seconds, self._stop_now)
        deadline.daemon = True
        deadline.start()
        event("worker.stopping", stopTimeoutSeconds=self._stop_timeout_seconds)

    def _stop_now(self) -> None:
        self._cancel.set()
        if self._run is not None:
            self._run.stop(StopReason.SHUTDOWN)

    def run(self) -> None:
        event("worker.started")
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Exception:
                event("poll.failed", level=logging.ERROR, exc_info=True)
                self._stopping.wait(RETRY_PAUSE_SECONDS)
        event("worker.stopped")

    def poll_once(self, wait_seconds: int = WAIT_SECONDS) -> bool:
        """Receive and handle at most one message; False when none came."""
        message = self._queue.receive(wait_seconds)
        if message is None:
            return False
        self.handle(message)
        return True

    def handle(self, message: Received) -> None:
        if self._stopping.is_set():
            self._queue.release(message)
            event("job.released", messageId=message.message_id, reason="stopping")
            return
        try:
            job = JobMessage.from_json(message.body)
        except ValueError as error:
            # Left in the queue: after its last receive it lands in the DLQ,
            # where a producer bug can be looked at.
            event(
                "job.malformed",
                level=logging.ERROR,
                messageId=message.message_id,
                error=str(error),
            )
            return
        fields: dict[str, Any] = {
            "videoId": job.video_id,
            "messageId": message.message_id,
            "receiveCount": message.receive_count,
        }
        event("job.received", task=job.task, **fields)
        started = self._clock()
        run = TaskRun(self._clock, on_hold=lambda: self._queue.extend(message))
        self._run = run
        if self._cancel.is_set():
            run.stop(StopReason.SHUTDOWN)
        self._protection.enable()
        try:
            with Heartbeat(self._heartbeat_seconds, lambda: self._beat(message, run)):
                result = self._transcoder.process(job, run)
        except Interrupted:
            self._queue.release(message)
            event("job.released", reason="stop timeout", **fields)
            return
        except Exception as error:
            # Left in the queue: it reappears after the visibility timeout
            # and is retried, then lands in the DLQ. On its last delivery the
            # record says so, rather than staying PROCESSING for good.
            event("job.error", level=logging.ERROR, exc_info=True, **fields)
            if message.receive_count >= self._max_receive_count:
                self._transcoder.give_up(
                    job,
                    f"transcoding failed {message.receive_count} times; "
                    f"last error: {error}",
                )
                event("job.gave_up", level=logging.ERROR, **fields)
            return
        finally:
            self._run = None
            self._protection.disable()
        if result.settles_message:
            self._queue.delete(message)
        elif result.outcome is Outcome.DEFERRED and result.retry_after is not None:
            self._queue.release(message, after_seconds=result.retry_after)
        event(
            "job.finished",
            task=job.task,
            outcome=result.outcome.value,
            seconds=round(self._clock() - started, 2),
            **fields,
        )

    def _beat(self, message: Received, run: TaskRun) -> None:
        run.beat()
        self._queue.extend(message)
        self._protection.renew()


def worker_id() -> str:
    """Who holds a task: this host and process, and a nonce, since a
    replaced process may get the same pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
