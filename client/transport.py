"""HTTP plumbing shared by the API client and the uploader: pooled sessions
and the retry schedule."""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter

#: Bodies are read and sent in pieces of this size: large enough that a part
#: costs few system calls, small enough that memory stays bounded per thread.
SEND_BLOCK_BYTES = 1024 * 1024
#: Statuses worth another try: throttling and the server's own failures.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: (connect, read) seconds.
DEFAULT_TIMEOUT = (10.0, 60.0)


class _Adapter(HTTPAdapter):
    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **kwargs: Any
    ) -> None:
        # urllib3 sends file bodies 16 KiB at a time by default.
        super().init_poolmanager(
            connections, maxsize, block, blocksize=SEND_BLOCK_BYTES, **kwargs
        )


def pooled_session(pool_size: int) -> requests.Session:
    """A session that keeps up to ``pool_size`` connections open per host, so
    that every worker thread reuses its own connection."""
    session = requests.Session()
    adapter = _Adapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: before retry ``n`` (from 1), sleep
    a random time up to ``min(cap, base * 2 ** (n - 1))`` seconds, so that
    clients failing together do not retry together. ``attempts`` counts the
    first try."""

    attempts: int = 6
    base: float = 0.25
    cap: float = 10.0

    def delay(self, retry: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2 ** (retry - 1)))  # noqa: S311 - jitter, not a secret

    def sleep(self, retry: int) -> None:
        time.sleep(self.delay(retry))
