"""Signing a clinician in as a public client: code + PKCE, refresh, device grant.

What a public client (the web app, the CLI) needs from the IdP, on top of
:class:`~.oauth.IdpClient` (same discovery, same error translation):

- :func:`new_pkce` and :meth:`SignInClient.authorization_url` (RFC 7636 S256,
  authlib's helpers), :meth:`SignInClient.exchange_code` (RFC 6749 §4.1.3);
- :meth:`SignInClient.refresh` (§6; the IdP rotates: keep the new refresh token);
- :meth:`SignInClient.start_device` and :meth:`SignInClient.wait_for_device`
  (RFC 8628 §3.1 and §3.4-3.5: poll at the interval, 5 s slower after each
  ``slow_down``, stop on any other error or at ``expires_in``);
- :meth:`SignInClient.revoke_refresh` (RFC 7009; the IdP ends the session).

Tokens and the PKCE verifier never appear in a repr, an error or a log.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import anyio
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from trustloop.identity.oauth import IdpClient, IdpUnavailableError, OAuthError

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP_S = 5
DEFAULT_SCOPE = "openid profile"


@dataclass(frozen=True)
class Pkce:
    """A PKCE pair (RFC 7636 §4.1-4.2); the verifier stays with the client."""

    verifier: str = field(repr=False)
    challenge: str
    method: str = "S256"


def new_pkce() -> Pkce:
    """A 64-character verifier (§4.1: 43-128 unreserved characters) and its S256."""
    verifier: str = generate_token(64)
    challenge: str = create_s256_code_challenge(verifier)
    return Pkce(verifier, challenge)


def new_state() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class SignInTokens:
    """A token answer of a sign-in; nothing secret in the repr."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    id_token: str | None = field(repr=False)
    expires_in: int
    scope: str | None


@dataclass(frozen=True)
class DeviceAuthorization:
    """RFC 8628 §3.2: what to show the clinician, and how to poll."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int


Sleep = Callable[[float], Awaitable[None]]


class SignInClient:
    """A public client (``client_id``, no credential) of one IdP."""

    def __init__(
        self,
        idp: IdpClient,
        client_id: str,
        *,
        sleep: Sleep = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idp = idp
        self._client_id = client_id
        self._sleep = sleep
        self._clock = clock

    async def authorization_url(
        self,
        *,
        redirect_uri: str,
        state: str,
        pkce: Pkce,
        nonce: str | None = None,
        scope: str = DEFAULT_SCOPE,
    ) -> str:
        """RFC 6749 §4.1.1 with RFC 7636 §4.3's ``code_challenge``."""
        params = {
            "response_type": "code",
            "client_id": self._client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": pkce.challenge,
            "code_challenge_method": pkce.method,
        }
        if nonce is not None:
            params["nonce"] = nonce
        endpoint = await self._idp.endpoint("authorization_endpoint")
        return f"{endpoint}?{urlencode(params)}"

    async def exchange_code(
        self, code: str, *, redirect_uri: str, pkce: Pkce
    ) -> SignInTokens:
        """RFC 6749 §4.1.3 with the PKCE verifier (RFC 7636 §4.5)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self._client_id,
            "code_verifier": pkce.verifier,
        }
        return _tokens(await self._idp.public_token(form))

    async def refresh(self, refresh_token: str) -> SignInTokens:
        """RFC 6749 §6; the answer's refresh token replaces the one sent."""
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self._client_id,
        }
        return _tokens(await self._idp.public_token(form))

    async def revoke_refresh(self, refresh_token: str) -> None:
        """RFC 7009 for a refresh token: the IdP ends the sign-in session."""
        hint = "refresh_token"
        await self._idp.revoke(
            refresh_token, client_id=self._client_id, token_type_hint=hint
        )

    async def start_device(self, scope: str = DEFAULT_SCOPE) -> DeviceAuthorization:
        """RFC 8628 §3.1: a device code and the user code to show."""
        form = {"client_id": self._client_id, "scope": scope}
        body = await self._idp.public_post("device_authorization_endpoint", form)
        try:
            return DeviceAuthorization(
                device_code=_text(body, "device_code"),
                user_code=_text(body, "user_code"),
                verification_uri=_text(body, "verification_uri"),
                verification_uri_complete=body.get("verification_uri_complete"),
                expires_in=int(body.get("expires_in", 0)),
                interval=int(body.get("interval", 5)),
            )
        except (TypeError, ValueError) as exc:
            raise IdpUnavailableError("malformed device authorization") from exc

    async def wait_for_device(self, device: DeviceAuthorization) -> SignInTokens:
        """RFC 8628 §3.4-3.5: poll until approved; :class:`OAuthError` otherwise.

        ``access_denied`` and ``expired_token`` end the wait; so does reaching
        ``expires_in`` (as ``expired_token``).
        """
        interval = max(device.interval, 1)
        deadline = self._clock() + device.expires_in
        while True:
            await self._sleep(interval)
            if self._clock() >= deadline:
                raise OAuthError("expired_token", "the device code expired", 400)
            try:
                return await self.poll_device(device)
            except OAuthError as error:
                if error.error == "slow_down":
                    interval += SLOW_DOWN_STEP_S
                elif error.error != "authorization_pending":
                    raise

    async def poll_device(self, device: DeviceAuthorization) -> SignInTokens:
        """One §3.4 token request with the device code."""
        form = {
            "grant_type": DEVICE_CODE_GRANT,
            "device_code": device.device_code,
            "client_id": self._client_id,
        }
        return _tokens(await self._idp.public_token(form))


def _tokens(body: dict[str, Any]) -> SignInTokens:
    token, expires_in = body.get("access_token"), body.get("expires_in")
    if not isinstance(token, str) or not isinstance(expires_in, int):
        raise IdpUnavailableError("malformed token answer")
    refresh, id_token = body.get("refresh_token"), body.get("id_token")
    return SignInTokens(
        access_token=token,
        refresh_token=refresh if isinstance(refresh, str) else None,
        id_token=id_token if isinstance(id_token, str) else None,
        expires_in=expires_in,
        scope=body.get("scope") if isinstance(body.get("scope"), str) else None,
    )


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(name)
    return value
