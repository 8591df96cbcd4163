"""ECS task scale-in protection while a job runs, through the ECS agent's
endpoint, so that the service scaling in picks an idle task rather than one
halfway through an encode. Outside ECS (no ``ECS_AGENT_URI``) it does nothing.

Protection is asked for a limited time and renewed from the job's heartbeat,
so a task whose worker hangs does not stay protected for ever.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from collections.abc import Callable, Mapping

from worker.logs import event

#: Set by the ECS agent in every container of a task (platform 1.4+).
AGENT_URI_VARIABLE = "ECS_AGENT_URI"
PROTECTION_MINUTES = 60
_TIMEOUT_SECONDS = 5


class TaskProtection:
    def __init__(
        self,
        agent_uri: str | None,
        *,
        minutes: int = PROTECTION_MINUTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if agent_uri and not agent_uri.startswith(("http://", "https://")):
            raise ValueError(f"{AGENT_URI_VARIABLE} must be an http URI: {agent_uri!r}")
        self._url = (
            f"{agent_uri.rstrip('/')}/task-protection/v1/state" if agent_uri else None
        )
        self._minutes = minutes
        self._clock = clock
        self._wanted = False
        self._granted_at: float | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TaskProtection:
        source = os.environ if env is None else env
        return cls(source.get(AGENT_URI_VARIABLE) or None)

    def enable(self) -> None:
        self._wanted = True
        granted = self._put(
            {"ProtectionEnabled": True, "ExpiresInMinutes": self._minutes}
        )
        self._granted_at = self._clock() if granted else None

    def renew(self) -> None:
        """Ask again once half the protected time has passed, or when the last
        ask failed."""
        if not self._wanted:
            return
        if (
            self._granted_at is None
            or self._clock() - self._granted_at >= self._minutes * 30
        ):
            self.enable()

    def disable(self) -> None:
        self._wanted = False
        self._granted_at = None
        self._put({"ProtectionEnabled": False})

    def _put(self, state: Mapping[str, object]) -> bool:
        """Protection is an optimization: a failed call is logged, never fatal."""
        if self._url is None:
            return False
        request = urllib.request.Request(  # noqa: S310 - checked to be http(s)
            self._url,
            data=json.dumps(state).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS):  # noqa: S310
                pass
        except OSError as error:
            event(
                "protection.failed",
                level=logging.WARNING,
                state=dict(state),
                error=str(error),
            )
            return False
        return True
