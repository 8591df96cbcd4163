"""A local Lambda execution environment: one child process per function,
importing the handler from its staged asset with its own environment,
credentials and cold start, so a module the asset lacks fails here as in AWS.

The child answers on a pipe of its own, so that what the handler prints
cannot garble an answer; this file is also the child's program, so it
imports nothing outside the standard library.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

_THIS_FILE = Path(__file__).resolve()
#: How long a cold start (importing the handler's module) may take.
INIT_TIMEOUT_SECONDS = 30.0
#: How long a child has to exit once its stdin is closed, before it is killed.
STOP_TIMEOUT_SECONDS = 5.0


class HandlerError(Exception):
    """The handler failed: it raised, timed out, or could not be loaded."""


@dataclasses.dataclass
class _Running:
    process: subprocess.Popen[str]
    answers: Connection
    log: IO[bytes]

    def close(self, *, kill: bool = False) -> None:
        """End the process: it exits once its stdin closes, or is killed
        (at once when ``kill``, as Lambda ends an environment that timed out)."""
        if kill:
            self.process.kill()
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.answers.close()
        self.log.close()


class LambdaProcess:
    """The execution environment of one function.

    :param name: the function's name, as its context and logs show it
    :param handler: ``module.function``, as the template's ``Handler``
    :param task_root: the staged asset directory the code is imported from
    :param env: the whole environment of the process (nothing is inherited)
    :param forbidden_root: modules loaded from under this directory, but not
        from ``task_root``, are a packaging error
    """

    def __init__(
        self,
        *,
        name: str,
        handler: str,
        task_root: Path,
        env: Mapping[str, str],
        timeout_seconds: float,
        log_path: Path,
        forbidden_root: Path,
        arn: str = "",
        memory_mb: int = 128,
    ) -> None:
        self.name = name
        self.handler = handler
        self.task_root = task_root.resolve()
        self.env = dict(env)
        self.timeout_seconds = timeout_seconds
        self.log_path = log_path
        self.forbidden_root = forbidden_root
        self.arn = arn
        self.memory_mb = memory_mb
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._stopped = False

    def start(self) -> None:
        """Start the process and import the handler (the cold start)."""
        with self._lock:
            self._stopped = False
            self._discard()
            self._running = self._spawn()

    def invoke(self, event: Any, *, request_id: str) -> Any:
        """The handler's result for ``event``; :class:`HandlerError` when it
        raised, returned something that is not JSON, or ran out of time."""
        request = json.dumps(
            {
                "event": event,
                "requestId": request_id,
                "deadline": time.monotonic() + self.timeout_seconds,
            }
        )
        with self._lock:
            if self._stopped:
                raise HandlerError(f"{self.name}: the function is stopped")
            if self._running is None or self._running.process.poll() is not None:
                self._discard()
                self._running = self._spawn()
            running = self._running
            try:
                stdin = running.process.stdin
                if stdin is None:
                    raise OSError("no stdin")
                stdin.write(request + "\n")
                stdin.flush()
            except OSError as error:
                self._discard()
                raise HandlerError(
                    f"{self.name}: the process is gone: {error}"
                ) from None
            answer = _next_answer(running.answers, self.timeout_seconds + 1)
            if answer is None:
                self._discard(kill=True)
                raise HandlerError(
                    f"{self.name}: no answer within its timeout of "
                    f"{self.timeout_seconds:g} s; see {self.log_path}"
                )
        if "error" in answer:
            raise HandlerError(f"{self.name}: {answer['error']}")
        return answer["result"]

    def stop(self) -> None:
        """End the process; later invocations fail."""
        with self._lock:
            self._stopped = True
            self._discard()

    def _spawn(self) -> _Running:
        read_fd, write_fd = os.pipe()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    str(_THIS_FILE),
                    str(self.task_root),
                    self.handler,
                    str(write_fd),
                    str(self.forbidden_root),
                ],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={
                    **self.env,
                    "AWS_LAMBDA_FUNCTION_NAME": self.name,
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
                    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                    "LAMBDA_LOCAL_FUNCTION_ARN": self.arn,
                    "LAMBDA_TASK_ROOT": str(self.task_root),
                    "_HANDLER": self.handler,
                    "PYTHONUNBUFFERED": "1",
                    "PYTHONDONTWRITEBYTECODE": "1",
                },
                cwd=self.task_root,
                pass_fds=(write_fd,),
                text=True,
            )
        except OSError:
            os.close(read_fd)
            log.close()
            raise
        finally:
            os.close(write_fd)
        running = _Running(process, Connection(read_fd, writable=False), log)
        ready = _next_answer(running.answers, INIT_TIMEOUT_SECONDS)
        if ready is None or "error" in ready:
            running.close()
            reason = (
                ready["error"]
                if ready
                else f"no answer within {INIT_TIMEOUT_SECONDS:g} s"
            )
            raise HandlerError(
                f"{self.name}: handler {self.handler} cannot be loaded from its "
                f"asset {self.task_root.name}: {reason}"
            )
        return running

    def _discard(self, *, kill: bool = False) -> None:
        running, self._running = self._running, None
        if running is not None:
            running.close(kill=kill)


def _next_answer(answers: Connection, timeout: float) -> dict[str, Any] | None:
    """The child's next answer, or None when none comes within ``timeout`` or
    the child closed its end."""
    try:
        if not answers.poll(timeout):
            return None
        answer: dict[str, Any] = json.loads(answers.recv_bytes())
    except EOFError:
        return None
    return answer


# --- The child -------------------------------------------------------------


@dataclasses.dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers use;
    ``deadline`` is on :func:`time.monotonic`'s clock, which Linux shares
    between processes."""

    function_name: str
    aws_request_id: str
    deadline: float
    invoked_function_arn: str = ""
    memory_limit_in_mb: int = 128

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class _JsonLogs(logging.Formatter):
    """The shape of Lambda's JSON log format, extra fields included."""

    _STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
        "message",
        "asctime",
    }

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            **{k: v for k, v in record.__dict__.items() if k not in self._STANDARD},
        }
        if record.exc_info:
            entry["stackTrace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _foreign_modules(task_root: Path, forbidden_root: Path) -> dict[str, str]:
    """The error answer naming modules loaded from the repository instead of
    the asset; empty when there are none."""
    allowed = (task_root, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve())
    foreign = []
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if not origin:
            continue
        path = Path(origin).resolve()
        if (
            path != _THIS_FILE
            and path.is_relative_to(forbidden_root)
            and not any(path.is_relative_to(root) for root in allowed)
        ):
            foreign.append(f"{name} ({path})")
    if not foreign:
        return {}
    return {
        "error": "imports modules that are not in the asset: "
        + ", ".join(sorted(foreign))
    }


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def main(argv: list[str]) -> int:
    task_root, handler_name, answer_fd, forbidden = argv
    # Ctrl-C in a terminal reaches the whole process group; the parent ends
    # this process by closing its stdin once the invocations in flight end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    root = Path(task_root).resolve()
    forbidden_root = Path(forbidden).resolve()
    # The script's own directory must not shadow the asset's modules.
    sys.path[0] = str(root)
    answers = Connection(int(answer_fd), readable=False)

    def answer(message: Mapping[str, Any]) -> None:
        sys.stdout.flush()
        answers.send_bytes(json.dumps(message).encode())

    log_handler = logging.StreamHandler(sys.stdout)
    log_handler.setFormatter(_JsonLogs())
    logging.basicConfig(level=logging.INFO, handlers=[log_handler], force=True)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    module_name, _, function_name = handler_name.rpartition(".")
    try:
        handler: Callable[[Any, Any], Any] = getattr(
            importlib.import_module(module_name), function_name
        )
    except Exception as error:
        traceback.print_exc()
        answer({"error": _error_text(error)})
        return 1
    foreign = _foreign_modules(root, forbidden_root)
    answer(foreign or {"ready": True})
    if foreign:
        return 1
    for line in sys.stdin:
        request = json.loads(line)
        try:
            context = LambdaContext(
                os.environ["AWS_LAMBDA_FUNCTION_NAME"],
                request["requestId"],
                request["deadline"],
                os.environ.get("LAMBDA_LOCAL_FUNCTION_ARN", ""),
                int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]),
            )
            result = {"result": handler(request["event"], context)}
            json.dumps(result)  # what the parent could not read fails here
        except Exception as error:
            traceback.print_exc()
            result = {"error": _error_text(error)}
        answer(_foreign_modules(root, forbidden_root) or result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
