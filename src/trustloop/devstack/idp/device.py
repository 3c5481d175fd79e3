"""The device authorization grant (RFC 8628) for the command line.

``POST /oauth2/device_authorization`` (§3.1, ``client_id=trustloop-cli``) answers
a ``device_code`` (256 random bits; the IdP keeps its SHA-256), a ``user_code``
of 8 letters shown as ``XXXX-XXXX`` from a 20-consonant alphabet (§6.1: no
vowels, so no words; 20^8 ≈ 2.6e10 codes, with attempts limited on the device
page, :mod:`.device_pages`), ``verification_uri`` (``<issuer>/device``),
``verification_uri_complete``, ``expires_in`` (600) and ``interval`` (5).

The clinician signs in on ``/device`` (password and a second factor) and
approves or denies; the CLI polls the token endpoint with
``grant_type=urn:ietf:params:oauth:grant-type:device_code`` (§3.4) and gets, per
§3.5: ``authorization_pending``; ``slow_down`` when it polls sooner than the
interval ("the interval MUST be increased by 5 seconds for this and all
subsequent requests"); ``access_denied``; ``expired_token``; or, once, the
tokens of a new sign-in session. A device code already redeemed is
``invalid_grant``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from trustloop.audit.chain import AuditLog
from trustloop.devstack.idp.authorize import ALLOWED_SCOPES, DEFAULT_SCOPE
from trustloop.devstack.idp.clients import PublicClients
from trustloop.devstack.idp.errors import OAuthProblem, invalid_request
from trustloop.devstack.idp.sessions import SignInSession
from trustloop.devstack.idp.sign_in_tokens import SignInTokens
from trustloop.devstack.jwtcheck import Clock
from trustloop.identity.oauth import CLI_CLIENT_ID

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
DEVICE_CODE_TTL_S = 600
INTERVAL_S = 5
SLOW_DOWN_STEP_S = 5

State = Literal["pending", "approved", "denied", "redeemed"]

log = structlog.get_logger("trustloop.devstack.idp")


@dataclass
class DeviceAuthorization:
    """One device authorization request and how far it got."""

    user_code: str
    client_id: str
    scope: str
    expires: float
    interval: int = INTERVAL_S
    last_poll: float | None = None
    state: State = "pending"
    session: SignInSession | None = None


class DeviceCodes:
    """Device authorizations by device code hash and by user code."""

    def __init__(
        self, *, issuer: str, audit: AuditLog, clock: Clock = time.time
    ) -> None:
        self._issuer = issuer
        self._audit = audit
        self._clock = clock
        self._lock = threading.Lock()
        self._by_device: dict[str, DeviceAuthorization] = {}
        self._by_user: dict[str, DeviceAuthorization] = {}

    def start(self, client_id: str, scope: str) -> dict[str, Any]:
        """§3.2: the device authorization response."""
        device_code = secrets.token_urlsafe(32)
        with self._lock:
            self._forget_expired()
            user_code = self._new_user_code()
            entry = DeviceAuthorization(
                user_code, client_id, scope, self._clock() + DEVICE_CODE_TTL_S
            )
            self._by_device[_digest(device_code)] = entry
            self._by_user[user_code] = entry
        shown = display_user_code(user_code)
        uri = f"{self._issuer}/device"
        return {
            "device_code": device_code,
            "user_code": shown,
            "verification_uri": uri,
            "verification_uri_complete": f"{uri}?user_code={shown}",
            "expires_in": DEVICE_CODE_TTL_S,
            "interval": INTERVAL_S,
        }

    def pending(self, user_code: str) -> DeviceAuthorization | None:
        """The pending, unexpired request with this user code (any format)."""
        with self._lock:
            entry = self._by_user.get(normalise_user_code(user_code) or "")
        if entry is None or entry.state != "pending":
            return None
        if entry.expires <= self._clock():
            return None
        return entry

    def answer(self, entry: DeviceAuthorization, session: SignInSession | None) -> None:
        """Approve with the new ``session``, or deny (``None``)."""
        with self._lock:
            if entry.state != "pending":
                return
            entry.state = "approved" if session else "denied"
            entry.session = session
        if session is None:
            self._audit.append("device_denied", client_id=entry.client_id)
            return
        self._audit.append(
            "device_authorized",
            sub=session.clinician.sub,
            sid=session.sid,
            client_id=entry.client_id,
        )
        log.info("device_authorized", sub=session.clinician.sub, sid=session.sid)

    def poll(self, device_code: str, client_id: str) -> DeviceAuthorization:
        """§3.5: the approved request (once), else the error the CLI must see."""
        now = self._clock()
        with self._lock:
            entry = self._by_device.get(_digest(device_code))
            if entry is None or entry.client_id != client_id:
                raise OAuthProblem("invalid_grant", "the device code is invalid")
            if entry.expires <= now:
                raise OAuthProblem("expired_token", "the device code has expired")
            too_soon = (
                entry.last_poll is not None and now - entry.last_poll < entry.interval
            )
            entry.last_poll = now
            if entry.state == "redeemed":
                raise OAuthProblem("invalid_grant", "the device code was used")
            if entry.state == "denied":
                raise OAuthProblem("access_denied", "the clinician denied the request")
            if too_soon:
                entry.interval += SLOW_DOWN_STEP_S
                raise OAuthProblem("slow_down", "poll less often")
            if entry.state == "pending":
                raise OAuthProblem("authorization_pending", "not yet approved")
            entry.state = "redeemed"
        return entry

    def _new_user_code(self) -> str:
        while True:
            code = "".join(
                secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH)
            )
            if code not in self._by_user:
                return code

    def _forget_expired(self) -> None:
        now = self._clock()
        for table in (self._by_device, self._by_user):
            for key in [k for k, e in table.items() if e.expires <= now]:
                del table[key]


def normalise_user_code(text: str) -> str | None:
    """§6.1: case-insensitive, the dash and spaces ignored; None if malformed."""
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != USER_CODE_LENGTH or not set(code) <= set(USER_CODE_ALPHABET):
        return None
    return code


def display_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


class DeviceAuthorizationEndpoint:
    """``POST /oauth2/device_authorization`` (§3.1): the CLI only."""

    def __init__(self, *, clients: PublicClients, codes: DeviceCodes) -> None:
        self._clients = clients
        self._codes = codes

    async def __call__(self, form: Mapping[str, str]) -> dict[str, Any]:
        client = self._clients.authenticate(form)
        if client.client_id != CLI_CLIENT_ID:
            raise OAuthProblem("unauthorized_client", "this client may not use it")
        return self._codes.start(client.client_id, _scope(form.get("scope")))


class DeviceCodeGrant:
    """``grant_type=urn:ietf:params:oauth:grant-type:device_code`` (§3.4)."""

    def __init__(
        self, *, clients: PublicClients, codes: DeviceCodes, tokens: SignInTokens
    ) -> None:
        self._clients = clients
        self._codes = codes
        self._tokens = tokens

    async def __call__(self, form: Mapping[str, str]) -> dict[str, Any]:
        client = self._clients.authenticate(form)
        device_code = form.get("device_code")
        if not device_code:
            raise invalid_request("device_code is required")
        entry = self._codes.poll(device_code, client.client_id)
        if entry.session is None:  # approved always carries one
            raise OAuthProblem("invalid_grant", "the device code is invalid")
        return self._tokens.issue(
            entry.session,
            scope=entry.scope,
            nonce=None,
            event="signed_in",
            grant=GRANT_TYPE,
        )


def _scope(requested: str | None) -> str:
    if requested is None:
        return DEFAULT_SCOPE
    scopes = requested.split()
    if not scopes or not set(scopes) <= ALLOWED_SCOPES:
        raise OAuthProblem("invalid_scope", "the requested scope is not offered")
    return " ".join(dict.fromkeys(scopes))


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
