"""A local token issuer, the stand-in for the Cognito user pool: it mints
RS256 JWTs, checks them the way API Gateway's JWT authorizer does, and serves
the hosted UI's code grant with PKCE (:class:`CodeGrant`).

The authorizer accepts a token when its signature verifies against the
issuer's key, ``iss`` equals the configured issuer, ``exp``/``nbf``/``iat``
hold, and ``aud`` (or, when the token has no ``aud``, ``client_id``, as in
Cognito access tokens) names a configured audience.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Collection, Mapping
from typing import Any, Literal
from urllib.parse import urlencode

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
        aud = claims.get("aud", claims.get("client_id"))
        if self.audience not in (aud if isinstance(aud, list) else [aud]):
            raise InvalidToken(f"token is not for audience {self.audience!r}")
        return claims


def user_sub(email: str) -> str:
    """The ``sub`` of whoever signs in locally as ``email``: a UUID, as
    Cognito's are, the same at every sign-in."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "mailto:" + email.strip().lower()))


class SignInError(Exception):
    """An OAuth 2.0 error (RFC 6749 5.2): ``error`` is its code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


SIGN_IN_FORM = b"""<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in (local run)</title><h1>Sign in as</h1>
<form method="post"><label for="email">Email</label>
<input id="email" name="email" type="email" required value="demo@example.com">
<button type="submit">Sign in</button></form>
<p>Local run: no password; each email is a user of its own.</p></html>"""


class CodeGrant:
    """Cognito's hosted UI for one public app client, locally: ``/oauth2/
    authorize`` asks whom to sign in as (no password; the form posts back to
    its own URL) and sends the browser back with a code; ``/oauth2/token``
    takes a code once, within five minutes, with the PKCE verifier whose S256
    hash is its challenge, for ID, access and refresh tokens, and a refresh
    token for new ID and access tokens; ``/logout`` sends the browser back."""

    def __init__(self, issuer: LocalIssuer, client: Mapping[str, Any]) -> None:
        """``client``: the template's properties of the app client."""
        self.issuer = issuer
        self.allowed: dict[str, Collection[str]] = {
            "redirect_uri": client.get("CallbackURLs", []),
            "logout_uri": client.get("LogoutURLs", []),
        }
        self.scope = " ".join(client.get("AllowedOAuthScopes", []))
        self._codes: dict[str, tuple[str, Mapping[str, str], float]] = {}
        self._refresh_tokens: dict[str, str] = {}

    def respond(
        self, method: str, path: str, query: Mapping[str, str], form: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes] | None:
        """The answer (status, headers, body) to a hosted UI request, or None
        for a path that is not one of its endpoints."""
        try:
            if path == "/oauth2/authorize":
                self._check(query, "redirect_uri")
                pkce = query.get("code_challenge_method") == "S256"
                if query.get("response_type") != "code" or not pkce:
                    raise SignInError("invalid_request", "code grant with PKCE only")
                if method == "GET":
                    return 200, {"Content-Type": "text/html"}, SIGN_IN_FORM
                return 302, {"Location": self._code_redirect(query, form)}, b""
            if path == "/oauth2/token" and method == "POST":
                return json_answer(200, self._token(form))
            if path == "/logout":
                return 302, {"Location": self._check(query, "logout_uri")}, b""
        except SignInError as error:
            return json_answer(
                400, {"error": error.error, "error_description": str(error)}
            )
        return None

    def _check(self, fields: Mapping[str, str], url_field: str = "") -> str:
        if fields.get("client_id") != self.issuer.audience:
            raise SignInError("invalid_client", "client_id is not this app client's")
        url = fields.get(url_field, "")
        if url_field and url not in self.allowed[url_field]:
            allowed = sorted(self.allowed[url_field])
            raise SignInError("invalid_request", f"{url_field} is not one of {allowed}")
        return url

    def _code_redirect(self, query: Mapping[str, str], form: Mapping[str, str]) -> str:
        email = form.get("email", "").strip()
        if "@" not in email:
            raise SignInError("invalid_request", "sign in with an email address")
        code = secrets.token_urlsafe(24)
        self._codes[code] = (email, dict(query), time.monotonic() + 300)
        answer = {
            "code": code,
            **({"state": query["state"]} if "state" in query else {}),
        }
        return f"{query['redirect_uri']}?{urlencode(answer)}"

    def _token(self, form: Mapping[str, str]) -> dict[str, Any]:
        self._check(form)
        if form.get("grant_type") == "refresh_token":
            email = self._refresh_tokens.get(form.get("refresh_token", ""))
            if email is None:
                raise SignInError("invalid_grant", "the refresh token is not valid")
            return self._tokens(email)
        email, asked, deadline = self._codes.pop(form.get("code", ""), ("", {}, 0))
        verifier = form.get("code_verifier", "").encode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest())
        if (
            form.get("grant_type") != "authorization_code"
            or time.monotonic() > deadline
            or form.get("redirect_uri") != asked.get("redirect_uri")
            or challenge.rstrip(b"=").decode() != asked.get("code_challenge")
        ):
            raise SignInError(
                "invalid_grant", "code, redirect_uri or verifier is wrong"
            )
        refresh_token = secrets.token_urlsafe(32)
        self._refresh_tokens[refresh_token] = email
        return {**self._tokens(email), "refresh_token": refresh_token}

    def _tokens(self, email: str, ttl: int = 3600) -> dict[str, Any]:
        """ID and access tokens for an hour, as Cognito's last. Its access
        tokens name the client in client_id (these also carry the issuer's
        aud, which the authorizer checks first)."""
        sub, mint = user_sub(email), self.issuer.mint
        access = {"client_id": self.issuer.audience, "scope": self.scope}
        return {
            "id_token": mint(sub, ttl, email=email),
            "access_token": mint(sub, ttl, **access, token_use="access"),  # noqa: S106
            "token_type": "Bearer",
            "expires_in": ttl,
        }


def json_answer(
    status: int, payload: Mapping[str, Any]
) -> tuple[int, dict[str, str], bytes]:
    # Neither tokens (RFC 6749 5.1) nor the page's config may be cached.
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    return status, headers, json.dumps(payload).encode()
