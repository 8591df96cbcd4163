"""What the API's services refuse, in their own terms. The HTTP edge
(``lambdas/api_edge.serve``) maps each kind to its status and the one error
shape, ``{"message": ...}``; no service knows a status code."""

from __future__ import annotations


class Refused(Exception):
    """A request the API refuses, with the message the client sees."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(Refused):
    """The request, or a field of it, is not one the API takes (400)."""


class NotFound(Refused):
    """No such thing for this caller: absent and someone else's alike (404)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")


class Conflict(Refused):
    """The thing is in a state that does not allow the request (409)."""


class LimitReached(Refused):
    """The caller is at a per-user limit (429)."""
