"""The worker's loop: one message at a time, kept invisible by a heartbeat
while its job runs, settled by the job's outcome.

Stopping (SIGTERM on scale-in or a Spot interruption): no new message is
taken; the current job may finish within the stop timeout, after which
ffmpeg is killed and the message released for another worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3

from vod.jobs import JobMessage
from vod.repository import VideoRepository
from vod.settings import WorkerSettings
from worker.errors import Interrupted
from worker.jobs import Transcoder
from worker.logs import event
from worker.messages import WAIT_SECONDS, Heartbeat, JobsQueue, Received
from worker.protection import TaskProtection
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

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> Worker:
        """Clients from the standard AWS_* environment (AWS_ENDPOINT_URL
        points them at a local server in tests)."""
        session = boto3.session.Session()
        return cls(
            queue=JobsQueue(
                session.client("sqs"),
                settings.queue_url,
                visibility_timeout=settings.visibility_timeout_seconds,
            ),
            transcoder=Transcoder(
                settings,
                repository=VideoRepository(
                    settings.table_name, dynamodb=session.resource("dynamodb")
                ),
                storage=Storage(session.client("s3")),
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
        deadline = threading.Timer(self._stop_timeout_seconds, self._cancel.set)
        deadline.daemon = True
        deadline.start()
        event("worker.stopping", stopTimeoutSeconds=self._stop_timeout_seconds)

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
        event("job.received", **fields)
        started = self._clock()
        self._protection.enable()
        try:
            with Heartbeat(self._heartbeat_seconds, lambda: self._beat(message)):
                outcome = self._transcoder.process(job, self._cancel)
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
            self._protection.disable()
        if outcome.settles_message:
            self._queue.delete(message)
        event(
            "job.finished",
            outcome=outcome.value,
            seconds=round(self._clock() - started, 2),
            **fields,
        )

    def _beat(self, message: Received) -> None:
        self._queue.extend(message)
        self._protection.renew()
