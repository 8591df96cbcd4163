"""``python -m worker``: the container's entry point."""

from __future__ import annotations

import signal
import sys

from vod.settings import WorkerSettings
from worker import logs
from worker.loop import Worker


def main() -> int:
    logs.configure()
    worker = Worker.from_settings(WorkerSettings.from_env())
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.request_stop())
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
