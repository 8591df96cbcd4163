"""A local token issuer, the stand-in for the Cognito user pool: it mints
RS256 JWTs and checks them the way API Gateway's JWT authorizer does.

The authorizer accepts a token when its signature verifies against the
issuer's key, ``iss`` equals the configured issuer, ``exp``/``nbf``/``iat``
hold, and ``aud`` (or, when the token has no ``aud``, ``client_id``, as in
Cognito access tokens) names a configured audience.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


class InvalidToken(Exception):
    """A token the JWT authorizer would answer with 401."""


class LocalIssuer:
    """An RSA key pair, an issuer URL and one audience.

    :param audience_claim: ``aud`` (like a Cognito ID token) or ``client_id``
        (like a Cognito access token) is where minted tokens carry the
        audience; ``verify`` accepts either.
    """

    def __init__(
        self,
        issuer: str = "http://127.0.0.1/local-issuer",
        audience: str = "local-client",
        *,
        audience_claim: Literal["aud", "client_id"] = "aud",
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.audience_claim = audience_claim
        self.key_id = uuid.uuid4().hex
        self._private_key = rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
        self._public_key = self._private_key.public_key()

    def mint(self, sub: str, ttl: int = 3600, **claims: Any) -> str:
        """A signed token for ``sub``, valid for ``ttl`` seconds (a negative
        ``ttl`` makes an expired one); ``claims`` add or override claims."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            self.audience_claim: self.audience,
            "sub": sub,
            "iat": now,
            "exp": now + ttl,
            "token_use": "access" if self.audience_claim == "client_id" else "id",
        }
        payload.update(claims)
        return jwt.encode(
            payload, self._private_key, algorithm="RS256", headers={"kid": self.key_id}
        )

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or ``InvalidToken`` saying why not."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public_key,
                algorithms=["RS256"],
                issuer=self.issuer,
                options={"verify_aud": False, "require": ["exp", "iss"]},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from None
        if not _names_audience(claims, self.audience):
            raise InvalidToken(f"token is not for audience {self.audience!r}")
        return claims


def _names_audience(claims: Mapping[str, Any], audience: str) -> bool:
    if "aud" in claims:
        aud = claims["aud"]
        return audience in (aud if isinstance(aud, list) else [aud])
    return claims.get("client_id") == audience
