"""The web app's OIDC client: authorization code + PKCE, refresh, sign-out.

A public client (``trustloop-web``, no secret) of the IdP named by
``Settings.idp_url``; every endpoint comes from the discovery document (OIDC
Discovery 1.0 §4). What each step follows:

- :meth:`OidcClient.begin`: OIDC Core §3.1.2.1 with ``state``, ``nonce`` and a
  PKCE S256 ``code_challenge`` (RFC 7636 §4.2).
- :meth:`OidcClient.finish`: RFC 6749 §4.1.2 (``state`` MUST match), RFC 9207
  (``iss`` MUST be the issuer when present), RFC 7636 §4.5 (``code_verifier``), and
  the ID token checks of OIDC Core §3.1.3.7 (ES256 pinned, ``iss``, ``aud``,
  ``azp``, ``exp``, ``nonce``).
- :meth:`OidcClient.refresh`: RFC 6749 §6; the IdP rotates refresh tokens.
- :meth:`OidcClient.sign_out`: RFC 7009 revocation of the refresh token (which
  ends the IdP's sign-in session) and of the access token.

Errors::

    OidcError                 base
    ├── SignInError           the callback cannot sign anyone in (state, code,
    │                         ID token)
    ├── SessionEndedError     the IdP refused the refresh token: sign in again
    └── IdpUnavailableError   no usable answer from the IdP

Tokens never appear in a repr, an exception or a log line.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from trustloop.identity.transport import require_secure

WEB_CLIENT_ID = "trustloop-web"
SCOPE = "openid profile"
ID_TOKEN_ALGORITHMS = ["ES256"]
# As every validator in the project: the JWKS refetched at most this often.
MIN_REFETCH_S = 5.0
DISCOVERY_PATH = "/.well-known/openid-configuration"
# Refresh this long before the access token's expiry: one answer (a step-up wait
# included) must finish inside the token's lifetime.
REFRESH_MARGIN_S = 180.0

Clock = Callable[[], float]


class OidcError(Exception):
    """Base of the web app's sign-in errors."""


class SignInError(OidcError):
    """The authorization response cannot sign anyone in; the message is safe to show."""


class SessionEndedError(OidcError):
    """The IdP no longer honours this sign-in (refresh refused, session revoked)."""


class IdpUnavailableError(OidcError):
    """The IdP could not be reached or gave no usable answer."""


@dataclass(frozen=True)
class LoginRequest:
    """One authorization request in flight: what the callback must match."""

    url: str
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)


@dataclass(frozen=True)
class Tokens:
    """What one sign-in holds; lives in the server-side session only."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    id_token: str = field(repr=False)
    expires_at: float
    sub: str
    name: str
    username: str

    def __repr__(self) -> str:
        return f"Tokens(<redacted>, sub={self.sub!r}, expires_at={self.expires_at})"

    def needs_refresh(self, now: float) -> bool:
        return now >= self.expires_at - REFRESH_MARGIN_S


def s256_challenge(code_verifier: str) -> str:
    """RFC 7636 §4.2: ``BASE64URL(SHA256(ASCII(code_verifier)))`` without padding."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcClient:
    """The app's client of one issuer; shared by every session (holds no token)."""

    def __init__(
        self,
        issuer: str,
        redirect_uri: str,
        http: httpx.AsyncClient,
        *,
        client_id: str = WEB_CLIENT_ID,
        clock: Clock = time.time,
    ) -> None:
        require_secure(issuer, "the IdP")
        self.issuer = issuer.rstrip("/")
        self.redirect_uri = redirect_uri
        self.client_id = client_id
        self._http = http
        self._clock = clock
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._keys_fetched_at = float("-inf")

    async def begin(self) -> LoginRequest:
        """A fresh authorization request: the URL to send the browser to."""
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)  # 86 chars, RFC 7636 §4.1: 43-128
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": SCOPE,
            "state": state,
            "nonce": nonce,
            "code_challenge": s256_challenge(verifier),
            "code_challenge_method": "S256",
        }
        endpoint = await self._endpoint("authorization_endpoint")
        url = f"{endpoint}?{urlencode(query)}"
        return LoginRequest(url, state, nonce, verifier)

    async def finish(self, login: LoginRequest, params: Mapping[str, str]) -> Tokens:
        """Redeem the authorization response ``params`` for the clinician's tokens."""
        if not secrets.compare_digest(params.get("state", ""), login.state):
            raise SignInError("the sign-in response does not match this browser")
        issuer = params.get("iss")
        # RFC 9207 §2.4: an issuer that advertises the parameter MUST send it, and
        # the client MUST refuse a response without it.
        required = await self._advertises(
            "authorization_response_iss_parameter_supported"
        )
        if (issuer is None and required) or issuer not in (None, self.issuer):
            raise SignInError("the sign-in response came from another issuer")
        if "error" in params:
            raise SignInError(_authorization_error(params["error"]))
        code = params.get("code")
        if not code:
            raise SignInError("the sign-in response carries no code")

        body = await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "client_id": self.client_id,
                "code_verifier": login.code_verifier,
            },
            refused=SignInError("the identity provider refused the sign-in"),
        )
        return await self._tokens(body, nonce=login.nonce)

    async def refresh(self, tokens: Tokens) -> Tokens:
        """New tokens for the same sign-in (the refresh token rotates)."""
        if tokens.refresh_token is None:
            raise SessionEndedError("no refresh token")
        body = await self._token_request(
            {
                "grant_type": "refresh_token",
                "refresh_token": tokens.refresh_token,
                "client_id": self.client_id,
            },
            refused=SessionEndedError("the identity provider ended the sign-in"),
        )
        return await self._tokens(body, nonce=None, previous=tokens)

    async def sign_out(self, tokens: Tokens) -> None:
        """RFC 7009: revoke the access token (what reaches the tools), then the
        refresh token (ending the sign-in); both are tried whatever the first
        answered, and :class:`IdpUnavailableError` says that one of them failed."""
        endpoint = await self._endpoint("revocation_endpoint")
        pairs: list[tuple[str | None, str]] = [
            (tokens.access_token, "access_token"),
            (tokens.refresh_token, "refresh_token"),
        ]
        failed: list[str] = []
        for token, hint in pairs:
            if token is None:
                continue
            form = {
                "token": token,
                "token_type_hint": hint,
                "client_id": self.client_id,
            }
            try:
                response = await self._send(endpoint, form)
            except IdpUnavailableError:
                failed.append(f"{hint}: unreachable")
                continue
            if response.status_code != 200:
                failed.append(f"{hint}: HTTP {response.status_code}")
        if failed:
            raise IdpUnavailableError("revocation failed (" + ", ".join(failed) + ")")

    # -- token answers ---------------------------------------------------------------

    async def _token_request(
        self, form: dict[str, str], *, refused: OidcError
    ) -> dict[str, Any]:
        endpoint = await self._endpoint("token_endpoint")
        response = await self._send(endpoint, form)
        body = _json(response)
        if response.status_code == 400 and isinstance(body, dict) and "error" in body:
            raise refused  # RFC 6749 §5.2: invalid_grant and its kin
        if response.status_code != 200 or not isinstance(body, dict):
            raise IdpUnavailableError(f"token endpoint answered {response.status_code}")
        return body

    async def _tokens(
        self, body: dict[str, Any], *, nonce: str | None, previous: Tokens | None = None
    ) -> Tokens:
        access, id_token = body.get("access_token"), body.get("id_token")
        expires_in = body.get("expires_in")
        if not isinstance(access, str) or not isinstance(expires_in, int):
            raise IdpUnavailableError("malformed token answer")
        if expires_in <= 0 or not isinstance(id_token, str | None):
            raise IdpUnavailableError("malformed token answer")
        refresh = body.get("refresh_token")
        if not isinstance(refresh, str):
            refresh = previous.refresh_token if previous else None

        if id_token is None:
            # OIDC Core §12.2: a refresh answer may omit the ID token; the sign-in
            # keeps the identity it had. The code flow's answer MUST carry one.
            if previous is None:
                raise IdpUnavailableError("the token answer carries no ID token")
            return replace(
                previous,
                access_token=access,
                refresh_token=refresh,
                expires_at=self._clock() + expires_in,
            )
        claims = await self.validate_id_token(id_token, nonce=nonce)
        if previous is not None and claims["sub"] != previous.sub:
            raise SessionEndedError("the refreshed sign-in names another clinician")
        return Tokens(
            access_token=access,
            refresh_token=refresh,
            id_token=id_token,
            expires_at=self._clock() + expires_in,
            sub=str(claims["sub"]),
            name=str(claims.get("name") or claims["sub"]),
            username=str(claims.get("preferred_username") or claims["sub"]),
        )

    async def validate_id_token(
        self, id_token: str, *, nonce: str | None
    ) -> dict[str, Any]:
        """OIDC Core §3.1.3.7 (and §12.2 after a refresh, when ``nonce`` is None)."""
        keys = await self._key_set()
        try:
            token = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
        except (JoseError, ValueError):
            # An unknown kid may be a rotated key: fetch the JWKS once more.
            keys = await self._key_set(refresh=True)
            try:
                token = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
            except (JoseError, ValueError) as exc:
                raise SignInError("the ID token is not valid") from exc

        claims = dict(token.claims)
        expected: dict[str, Any] = {
            "iss": {"essential": True, "value": self.issuer},
            "sub": {"essential": True},
            "aud": {"essential": True, "value": self.client_id},
            "exp": {"essential": True},
            "iat": {"essential": True},
        }
        if nonce is not None:
            expected["nonce"] = {"essential": True, "value": nonce}
        registry = jwt.JWTClaimsRegistry(now=int(self._clock()), **expected)
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise SignInError("the ID token is not valid") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else []
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise SignInError("the ID token is not valid")
        return claims

    # -- discovery and transport -------------------------------------------------

    async def _advertises(self, name: str) -> bool:
        if self._metadata is None:
            self._metadata = await self._discover()
        return self._metadata.get(name) is True

    async def _endpoint(self, name: str) -> str:
        if self._metadata is None:
            self._metadata = await self._discover()
        url = self._metadata.get(name)
        if not isinstance(url, str):
            raise IdpUnavailableError(f"the IdP does not advertise {name}")
        require_secure(url, "the IdP")
        return url

    async def _discover(self) -> dict[str, Any]:
        try:
            response = await self._http.get(self.issuer + DISCOVERY_PATH)
        except httpx.HTTPError as exc:
            raise IdpUnavailableError("cannot reach the identity provider") from exc
        metadata = _json(response)
        if response.status_code != 200 or not isinstance(metadata, dict):
            raise IdpUnavailableError("cannot read the IdP's discovery document")
        # OIDC Discovery 1.0 §4.3: the issuer MUST be identical to the one we asked.
        if metadata.get("issuer") != self.issuer:
            raise IdpUnavailableError("the discovery document names another issuer")
        return metadata

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        """The IdP's keys: fetched once, refetched on demand at most every
        :data:`MIN_REFETCH_S`; the last good keys stay if a refetch fails."""
        if self._keys is not None:
            recent = self._clock() - self._keys_fetched_at < MIN_REFETCH_S
            if not refresh or recent:
                return self._keys
        try:
            return await self._fetch_keys()
        except IdpUnavailableError:
            if self._keys is None:
                raise
            return self._keys

    async def _fetch_keys(self) -> KeySet:
        uri = await self._endpoint("jwks_uri")
        try:
            response = await self._http.get(uri)
        except httpx.HTTPError as exc:
            raise IdpUnavailableError("cannot reach the identity provider") from exc
        document = _json(response)
        if response.status_code != 200 or not isinstance(document, dict):
            raise IdpUnavailableError("cannot read the IdP's keys")
        try:
            self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError) as exc:
            raise IdpUnavailableError("cannot read the IdP's keys") from exc
        self._keys_fetched_at = self._clock()
        return self._keys

    async def _send(self, url: str, form: dict[str, str]) -> httpx.Response:
        try:
            return await self._http.post(
                url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise IdpUnavailableError("cannot reach the identity provider") from exc


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _authorization_error(error: str) -> str:
    """RFC 6749 §4.1.2.1 codes, said plainly; anything else is not echoed."""
    if error == "access_denied":
        return "the sign-in was declined"
    if error in {"login_required", "interaction_required", "consent_required"}:
        return "the identity provider needs you to sign in again"
    return "the identity provider could not sign you in"
