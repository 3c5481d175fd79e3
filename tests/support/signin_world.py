"""An in-process IdP for the sign-in tests, driven over HTTP like a browser.

The real Starlette app (:func:`build_idp` / :func:`create_app`) behind
``httpx.ASGITransport``, with a frozen clock, known demo credentials and a
cookie-keeping client: the tests walk the real login pages and token endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pyotp
from fakeclock import FakeClock
from joserfc.jwk import ECKey

from trustloop.cli.browser import Browser
from trustloop.devstack.idp.app import Idp, build_idp, create_app
from trustloop.devstack.idp.policy import PatientFacts
from trustloop.devstack.idp.sign_in import SignIn
from trustloop.devstack.idp.users import DemoUsers
from trustloop.devstack.jwtcheck import JwksCache
from trustloop.settings import Settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

NOW = 1_800_000_000.0
ISSUER = "http://127.0.0.1:9400"
WEB = "trustloop-web"
CLI = "trustloop-cli"
CALLBACK = "http://127.0.0.1:3000/auth/callback"
CLI_CALLBACK = "http://127.0.0.1:53682/callback"
PASSWORDS = {"achen": "pw-achen-1", "bokafor": "pw-bokafor-1"}
SECRETS = {"achen": pyotp.random_base32(), "bokafor": pyotp.random_base32()}
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 Appendix B
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


class NoFacts:
    async def role(self, clinician_sub: str) -> str | None:
        return None

    async def patient(self, clinician_sub: str, patient_id: str) -> PatientFacts | None:
        return None


@dataclass
class SignInWorld:
    settings: Settings
    clock: FakeClock
    idp: Idp
    http: httpx.AsyncClient
    browser: Browser = field(init=False)
    _used: set[tuple[str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.browser = Browser(self.http)

    @property
    def parts(self) -> SignIn:
        """The IdP's sign-in parts (always built in the local profile)."""
        if self.idp.sign_in is None:
            raise RuntimeError("the IdP was built without sign-in")
        return self.idp.sign_in

    def fresh_otp(self, username: str = "achen") -> str:
        """The current code, after moving the clock on if this world used it."""
        step = int(self.clock.now // 30)
        if (username, step) in self._used:
            self.clock.now += 30
            step += 1
        self._used.add((username, step))
        return self.otp(username)

    def otp(self, username: str = "achen", steps: int = 0) -> str:
        """The TOTP code ``steps`` time steps from now."""
        totp = pyotp.TOTP(SECRETS[username])
        return totp.at(self.clock.now + steps * 30)

    async def authorize(self, **overrides: str | None) -> httpx.Response:
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": WEB,
            "redirect_uri": CALLBACK,
            "scope": "openid profile",
            "state": "st-123",
            "nonce": "n-456",
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
            **overrides,
        }
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return await self.browser.open(f"{ISSUER}/oauth2/authorize?{query}")

    async def password(
        self, username: str = "achen", password: str = ""
    ) -> httpx.Response:
        typed = {"username": username, "password": password or PASSWORDS[username]}
        response = await self.browser.submit("username", typed)
        if response.status_code == 303:
            return await self.browser.follow(response)
        return response

    async def login(self, username: str = "achen", **overrides: str | None) -> str:
        """Authorize, password and TOTP: the redirect's ``Location``."""
        await self.authorize(**overrides)
        await self.password(username)
        response = await self.browser.submit("otp", {"otp": self.fresh_otp(username)})
        assert response.status_code == 303
        return response.headers["location"]

    async def token(self, **form: str) -> httpx.Response:
        return await self.http.post(f"{ISSUER}/oauth2/token", data=form)

    async def redeem(self, code: str, **overrides: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "client_id": WEB,
            "code_verifier": VERIFIER,
            **overrides,
        }
        return await self.token(**form)

    async def signed_in(self, username: str = "achen") -> dict[str, Any]:
        """A whole sign-in: the token endpoint's answer."""
        response = await self.redeem(code_of(await self.login(username)))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def userinfo(self, token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return await self.http.get(f"{ISSUER}/oauth2/userinfo", headers=headers)

    def active(self, token: str) -> bool:
        return self.idp.access_tokens.active_claims(token) is not None

    def audit_events(self) -> list[dict[str, Any]]:
        text = (self.settings.audit_dir / "idp.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def code_of(location: str) -> str:
    return query_of(location)["code"]


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def make_world(tmp_path: Path, **settings: Any) -> AsyncIterator[SignInWorld]:
    """The world over ``tmp_path``; use with ``async for`` in a fixture."""
    config = Settings(state_dir=tmp_path, idp_url=ISSUER, **settings)
    clock = FakeClock(NOW)
    svid_keys = JwksCache(keys=[ECKey.generate_key("P-256", auto_kid=True)])
    idp = build_idp(
        config,
        svid_keys=svid_keys,
        facts=NoFacts(),
        users=DemoUsers(PASSWORDS, SECRETS),
        clock=clock,
    )
    transport = httpx.ASGITransport(app=create_app(idp))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        yield SignInWorld(config, clock, idp, http)
