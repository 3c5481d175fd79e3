"""The IdP client: introspection, token exchange, revocation, the CLI's password grant.

A public client's sign-in (authorization code + PKCE, refresh, device grant) is
:mod:`.sign_in`, on top of :meth:`IdpClient.public_token` and
:meth:`IdpClient.public_post`.

Speaks to IBM Verify in production and to :mod:`trustloop.devstack.idp` locally;
the endpoints come from the issuer's discovery document (OIDC Discovery 1.0 §4),
so Verify's ``/oauth2/...`` paths need no configuration. Workloads authenticate
with a JWT-SVID client assertion (RFC 7523 §2.2), never with a secret.

Exceptions::

    IdpError                      anything that went wrong talking to the IdP
    ├── OAuthError                the IdP answered an RFC 6749 §5.2 error;
    │                             ``str()`` is ``"<error>: <description>"``
    ├── MfaChallengeError         the exchange answered ``scope=mfa_challenge``:
    │                             step up first (:mod:`.step_up`)
    └── IdpUnavailableError       no usable answer (network, timeout, 5xx)

httpx's errors become these at one choke point, :meth:`IdpClient._post`. Tokens,
passwords and assertions never appear in a repr, an exception or a log.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from trustloop.identity.rar import AuthorizationDetail, parse_details
from trustloop.identity.transport import require_secure

# RFC 8693 §3 and RFC 7523 §2.2 identifiers (not secrets, whatever S105 thinks).
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 §2.1
MFA_CHALLENGE_SCOPE = "mfa_challenge"
CLI_CLIENT_ID = "trustloop-cli"
DISCOVERY_PATH = "/.well-known/openid-configuration"


class IdpError(Exception):
    """Base of the IdP client's errors."""


class OAuthError(IdpError):
    """An RFC 6749 §5.2 error answer: ``error``, ``error_description``, HTTP status."""

    def __init__(self, error: str, description: str, status: int) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


class IdpUnavailableError(IdpError):
    """The IdP could not be reached or gave no usable answer."""


class MfaChallengeError(IdpError):
    """The exchange needs a fresh second factor (IBM Verify's ``mfa_challenge``).

    ``challenge`` is the bearer token for the factor and verification APIs; it
    never appears in a repr or a message.
    """

    def __init__(self, challenge: str, expires_in: int) -> None:
        super().__init__("step-up required")
        self.challenge = challenge
        self.expires_in = expires_in

    def __repr__(self) -> str:
        return "MfaChallengeError(challenge=<redacted>)"


class Introspection(BaseModel):
    """An RFC 7662 §2.2 answer; every field but ``active`` is absent when inactive."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    active: bool
    sub: str | None = None
    aud: str | list[str] | None = None
    scope: str | None = None
    exp: int | None = None
    jti: str | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    """A token the IdP issued.

    ``jti`` and ``exp`` are read from the token's payload WITHOUT verifying its
    signature: they are for audit and logs only, never for a security decision
    (whoever consumes the token, e.g. Vault, verifies it).
    """

    access_token: str = field(repr=False)
    expires_in: int
    jti: str | None
    exp: int | None
    token_type: str
    issued_token_type: str | None = None
    scope: str | None = None

    def __repr__(self) -> str:
        return (
            f"IssuedToken(access_token=<redacted>, expires_in={self.expires_in}, "
            f"jti={self.jti!r}, exp={self.exp!r}, token_type={self.token_type!r})"
        )

    __str__ = __repr__


class IdpClient:
    """Async client of one issuer; cheap to build, safe to share between requests."""

    def __init__(self, issuer: str, http: httpx.AsyncClient) -> None:
        require_secure(issuer, "the IdP")
        self._issuer = issuer.rstrip("/")
        self._http = http
        self._endpoints: dict[str, str] | None = None

    async def introspect(self, token: str, *, client_assertion: str) -> Introspection:
        """RFC 7662 §2.1, authenticating with a JWT-SVID ``client_assertion``."""
        form = {"token": token, "token_type_hint": "access_token"}
        body = await self._post("introspection_endpoint", form, client_assertion)
        try:
            return Introspection.model_validate(body)
        except ValidationError as exc:
            raise IdpUnavailableError("malformed introspection answer") from exc

    async def exchange(
        self,
        *,
        subject_token: str,
        actor_token: str,
        client_assertion: str,
        audience: str,
        detail: AuthorizationDetail,
    ) -> IssuedToken:
        """RFC 8693 §2.1 token exchange for exactly one RFC 9396 detail.

        Refuses an answer that grants anything other than ``detail``; raises
        :class:`MfaChallengeError` when the IdP asks for a step-up first.
        """
        details = json.dumps([detail.wire()], separators=(",", ":"))
        form = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "actor_token": actor_token,
            "actor_token_type": JWT_TOKEN_TYPE,
            "requested_token_type": JWT_TOKEN_TYPE,
            "audience": audience,
            "authorization_details": details,
        }
        body = await self._post("token_endpoint", form, client_assertion)
        issued = _issued(body)
        if issued.scope == MFA_CHALLENGE_SCOPE:
            raise MfaChallengeError(issued.access_token, issued.expires_in)
        return _obo(body, issued, detail)

    async def redeem_assertion(
        self, assertion: str, *, client_assertion: str, detail: AuthorizationDetail
    ) -> IssuedToken:
        """RFC 7523 §2.1 jwt-bearer grant: an approved step-up assertion for the OBO.

        Re-sends ``authorization_details`` as IBM Verify expects; the answer must
        grant exactly ``detail``.
        """
        details = json.dumps([detail.wire()], separators=(",", ":"))
        form = {
            "grant_type": JWT_BEARER_GRANT,
            "assertion": assertion,
            "authorization_details": details,
        }
        body = await self._post("token_endpoint", form, client_assertion)
        return _obo(body, _issued(body), detail)

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared HTTP client (for :mod:`.step_up`'s Verify REST calls)."""
        return self._http

    @property
    def issuer(self) -> str:
        return self._issuer

    async def revoke(
        self,
        token: str,
        *,
        client_assertion: str | None = None,
        client_id: str = CLI_CLIENT_ID,
        token_type_hint: str = "access_token",  # noqa: S107  (RFC 7009 name)
    ) -> None:
        """RFC 7009 §2.1: revoke an access or refresh token issued to this client.

        A workload authenticates with a JWT-SVID ``client_assertion``; without one
        the request is the public client ``client_id``'s (the CLI). Succeeds for a
        token the IdP no longer knows (RFC 7009 §2.2); raises :class:`OAuthError`
        for a token of another client.
        """
        form = {"token": token, "token_type_hint": token_type_hint}
        if client_assertion is None:
            form["client_id"] = client_id
        # RFC 7009 §2.2: the body of a 200 is ignored (Verify may send none).
        await self._post("revocation_endpoint", form, client_assertion, any_body=True)

    async def public_token(self, form: dict[str, str]) -> dict[str, Any]:
        """POST ``form`` to the token endpoint as a public client (no credential).

        The raw answer, for :mod:`.sign_in` (authorization code, refresh and
        device grants); errors are translated as for every other call.
        """
        return await self._post("token_endpoint", form, None)

    async def public_post(self, endpoint: str, form: dict[str, str]) -> dict[str, Any]:
        """POST ``form`` to the discovered ``endpoint`` as a public client."""
        return await self._post(endpoint, form, None, any_body=False)

    async def endpoint(self, name: str) -> str:
        """A URL from the discovery document, e.g. ``authorization_endpoint``."""
        return await self._endpoint(name)

    async def password_grant(
        self, username: str, password: str, client_id: str = CLI_CLIENT_ID
    ) -> IssuedToken:
        """RFC 6749 §4.3, for the CLI's demo sign-in (local profile)."""
        form = {
            "grant_type": "password",
            "username": username,
            "password": password,
            "client_id": client_id,
        }
        return _issued(await self._post("token_endpoint", form, None))

    async def _endpoint(self, name: str) -> str:
        """An endpoint from the discovery document, fetched once."""
        if self._endpoints is None:
            self._endpoints = await self._discover()
        url = self._endpoints.get(name)
        if url is None:
            raise IdpUnavailableError(f"the IdP does not advertise {name}")
        return url

    async def _discover(self) -> dict[str, str]:
        try:
            response = await self._http.get(self._issuer + DISCOVERY_PATH)
            response.raise_for_status()
            metadata = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IdpUnavailableError(
                "cannot read the IdP's discovery document"
            ) from exc
        # OIDC Discovery 1.0 §4.3: the issuer MUST be identical to the one we asked.
        if not isinstance(metadata, dict) or metadata.get("issuer") != self._issuer:
            raise IdpUnavailableError("the discovery document names another issuer")
        endpoints = {k: v for k, v in metadata.items() if k.endswith("_endpoint")}
        for url in endpoints.values():
            require_secure(url, "the IdP")
        return endpoints

    async def _post(
        self,
        endpoint: str,
        form: dict[str, str],
        client_assertion: str | None,
        *,
        any_body: bool = False,
    ) -> dict[str, Any]:
        """The one choke point: POST a form, translate every failure."""
        if client_assertion is not None:
            form = {
                **form,
                "client_assertion_type": JWT_BEARER_ASSERTION,
                "client_assertion": client_assertion,
            }
        url = await self._endpoint(endpoint)
        try:
            response = await self._http.post(
                url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            name = type(exc).__name__
            raise IdpUnavailableError(f"cannot reach the IdP ({name})") from exc
        if any_body and response.status_code == 200:
            return {}
        return _answer(response)


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and isinstance(body, dict):
        return body
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("error_description")
        if not isinstance(description, str):
            description = "no description"
        raise OAuthError(body["error"], description, response.status_code)
    raise IdpUnavailableError(
        f"unexpected answer from the IdP (HTTP {response.status_code})"
    )


def _issued(body: dict[str, Any]) -> IssuedToken:
    token = body.get("access_token")
    expires_in = body.get("expires_in")
    if not isinstance(token, str) or not isinstance(expires_in, int):
        raise IdpUnavailableError("malformed token answer")
    claims = _unverified_claims(token)
    jti, exp = claims.get("jti"), claims.get("exp")
    return IssuedToken(
        access_token=token,
        expires_in=expires_in,
        jti=jti if isinstance(jti, str) else None,
        exp=exp if isinstance(exp, int) else None,
        token_type=str(body.get("token_type", "")),
        issued_token_type=body.get("issued_token_type"),
        scope=body.get("scope"),
    )


def _obo(
    body: dict[str, Any], issued: IssuedToken, detail: AuthorizationDetail
) -> IssuedToken:
    if issued.issued_token_type != JWT_TOKEN_TYPE:
        raise IdpUnavailableError("the IdP issued an unexpected token type")
    _require_granted(body, detail)
    return issued


def _unverified_claims(token: str) -> dict[str, Any]:
    """The JWT payload, NOT verified: for audit fields only."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _require_granted(body: dict[str, Any], detail: AuthorizationDetail) -> None:
    """RFC 9396 §7: the answer lists what was granted; it must be what we asked."""
    granted = body.get("authorization_details")
    if granted is None:
        return  # Verify may omit it; the OBO token itself carries the grant
    try:
        details = parse_details(granted if isinstance(granted, list) else [granted])
    except ValidationError as exc:
        raise IdpUnavailableError("malformed authorization_details in answer") from exc
    if details != [detail]:
        # A 200 answer we refuse: the IdP must grant exactly what was asked or say no.
        raise OAuthError(
            "invalid_authorization_details", "the IdP granted something else", 200
        )
