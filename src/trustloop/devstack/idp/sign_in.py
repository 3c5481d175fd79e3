"""Wiring of the sign-in parts: one object the app routes to.

The authorization code flow (:mod:`.login`, :mod:`.code_grant`), refresh tokens
(:mod:`.refresh`), the device grant (:mod:`.device`, :mod:`.device_pages`),
UserInfo (:mod:`.userinfo`) and login pushes (:mod:`.login_push`), over one set
of sign-in sessions (:mod:`.sessions`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trustloop.audit.chain import AuditLog
from trustloop.devstack.idp import code_grant, device, refresh
from trustloop.devstack.idp.clients import PublicClients
from trustloop.devstack.idp.codes import AuthorizationCodes
from trustloop.devstack.idp.device_pages import DevicePages, WrongCodeLimiter
from trustloop.devstack.idp.id_tokens import IdTokens
from trustloop.devstack.idp.keys import SigningKeys
from trustloop.devstack.idp.login import LoginFlow
from trustloop.devstack.idp.login_push import AutoAnswer, LoginPushes
from trustloop.devstack.idp.login_state import LoginTransactions
from trustloop.devstack.idp.sessions import SignInSessions
from trustloop.devstack.idp.sign_in_tokens import SignInTokens
from trustloop.devstack.idp.tokens import AccessTokens, TokenIssuer
from trustloop.devstack.idp.totp import TotpVerifier
from trustloop.devstack.idp.userinfo import UserInfo
from trustloop.devstack.idp.users import DemoUsers
from trustloop.devstack.jwtcheck import Clock

Handler = Callable[[Mapping[str, str]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class SignIn:
    """The sign-in parts (``app.state.idp.sign_in`` in tests)."""

    clients: PublicClients
    sessions: SignInSessions
    codes: AuthorizationCodes
    refresh: refresh.RefreshTokens
    totp: TotpVerifier
    pushes: LoginPushes
    login: LoginFlow
    device_codes: device.DeviceCodes
    device_authorization: device.DeviceAuthorizationEndpoint
    device_pages: DevicePages
    userinfo: UserInfo
    grants: Mapping[str, Handler]


def build_sign_in(
    *,
    issuer_url: str,
    app_redirect_uri: str,
    keys: SigningKeys,
    issuer: TokenIssuer,
    access_tokens: AccessTokens,
    users: DemoUsers,
    audit: AuditLog,
    push_timeout_s: float,
    auto: AutoAnswer = "off",
    clock: Clock = time.time,
) -> SignIn:
    clients = PublicClients(app_redirect_uri=app_redirect_uri)
    sessions = SignInSessions(access_tokens, clock=clock)
    codes = AuthorizationCodes(clock=clock)
    refresh_tokens = refresh.RefreshTokens(sessions, audit, clock=clock)
    tokens = SignInTokens(
        issuer=issuer,
        id_tokens=IdTokens(keys, issuer=issuer_url, clock=clock),
        refresh=refresh_tokens,
        audit=audit,
    )
    totp = TotpVerifier(clock=clock)
    pushes = LoginPushes(audit, timeout_s=push_timeout_s, auto=auto, clock=clock)
    login = LoginFlow(
        issuer=issuer_url,
        clients=clients,
        transactions=LoginTransactions(clock=clock),
        users=users,
        totp=totp,
        pushes=pushes,
        sessions=sessions,
        codes=codes,
        audit=audit,
    )
    device_codes = device.DeviceCodes(issuer=issuer_url, audit=audit, clock=clock)
    grants: dict[str, Handler] = {
        code_grant.GRANT_TYPE: code_grant.AuthorizationCodeGrant(
            clients=clients, codes=codes, sessions=sessions, tokens=tokens, audit=audit
        ),
        refresh.GRANT_TYPE: refresh.RefreshGrant(
            clients=clients, refresh=refresh_tokens, tokens=tokens
        ),
        device.GRANT_TYPE: device.DeviceCodeGrant(
            clients=clients, codes=device_codes, tokens=tokens
        ),
    }
    return SignIn(
        clients=clients,
        sessions=sessions,
        codes=codes,
        refresh=refresh_tokens,
        totp=totp,
        pushes=pushes,
        login=login,
        device_codes=device_codes,
        device_authorization=device.DeviceAuthorizationEndpoint(
            clients=clients, codes=device_codes
        ),
        device_pages=DevicePages(
            login=login,
            codes=device_codes,
            sessions=sessions,
            limiter=WrongCodeLimiter(clock=clock),
        ),
        userinfo=UserInfo(access_tokens),
        grants=grants,
    )
