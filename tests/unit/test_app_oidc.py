"""The web app's OIDC client: PKCE, the authorization response and the ID token checks.

The IdP here is an in-process ``httpx.MockTransport`` serving discovery, JWKS and a
token endpoint that answers whatever ID token the test signed: these tests are
about what the client accepts, not about the IdP (the browser tests use the real
one).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fakeclock import FakeClock
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey

from trustloop.app.oidc import (
    IdpUnavailableError,
    LoginRequest,
    OidcClient,
    SessionEndedError,
    SignInError,
    s256_challenge,
)

ISSUER = "http://127.0.0.1:9400"
REDIRECT = "http://127.0.0.1:3000/auth/callback"
NOW = 1_800_000_000.0


class Idp:
    """Discovery, JWKS and a token endpoint whose answer the test chooses."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
        self.token_answer: tuple[int, dict[str, Any]] = (200, {})
        self.forms: list[dict[str, list[str]]] = []
        self.jwks_fetches = 0
        self.jwks_up = True
        self.revoke_status: dict[str, int] = {}  # token_type_hint -> status

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery())
        if path == "/oauth2/jwks":
            self.jwks_fetches += 1
            if not self.jwks_up:
                return httpx.Response(503)
            keys = KeySet([self.key]).as_dict(private=False)
            return httpx.Response(200, json=keys)
        if path in {"/oauth2/token", "/oauth2/revoke"}:
            form = parse_qs(request.content.decode())
            self.forms.append(form)
            if path == "/oauth2/revoke":
                hint = form.get("token_type_hint", [""])[0]
                return httpx.Response(self.revoke_status.get(hint, 200), json={})
            status, body = self.token_answer
            return httpx.Response(status, json=body)
        return httpx.Response(404)

    def discovery(self) -> dict[str, str]:
        return {
            "issuer": ISSUER,
            "authorization_endpoint": f"{ISSUER}/oauth2/authorize",
            "token_endpoint": f"{ISSUER}/oauth2/token",
            "revocation_endpoint": f"{ISSUER}/oauth2/revoke",
            "jwks_uri": f"{ISSUER}/oauth2/jwks",
        }

    def id_token(self, key: Any = None, alg: str = "ES256", **claims: Any) -> str:
        body = {
            "iss": ISSUER,
            "sub": "clin-achen",
            "aud": "trustloop-web",
            "iat": int(NOW),
            "exp": int(NOW) + 600,
            "nonce": "n-1",
            "name": "Dr. Amelia Chen",
            "preferred_username": "achen",
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode({"alg": alg, "kid": "k1"}, body, key or self.key)

    def answers(self, id_token: str, **extra: Any) -> None:
        body = {
            "access_token": "access-secret-1",
            "refresh_token": "refresh-secret-1",
            "id_token": id_token,
            "expires_in": 900,
            "token_type": "Bearer",
        }
        self.token_answer = (200, {**body, **extra})


@pytest.fixture
def idp() -> Idp:
    return Idp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def client(idp: Idp, clock: FakeClock) -> OidcClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
    return OidcClient(ISSUER, REDIRECT, http, clock=clock)


def login(state: str = "s-1", nonce: str = "n-1") -> LoginRequest:
    return LoginRequest("unused", state, nonce, "v" * 43)


def test_s256_challenge_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def test_begin_sends_state_nonce_and_an_s256_challenge_of_its_verifier(
    client: OidcClient,
) -> None:
    request = await client.begin()
    query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}

    assert request.url.startswith(f"{ISSUER}/oauth2/authorize?")
    assert query["response_type"] == "code"
    assert query["client_id"] == "trustloop-web"
    assert query["redirect_uri"] == REDIRECT
    assert query["state"] == request.state
    assert query["nonce"] == request.nonce
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] == s256_challenge(request.code_verifier)
    assert request.code_verifier not in request.url
    assert (await client.begin()).state != request.state


async def test_finish_redeems_the_code_with_the_verifier(
    client: OidcClient, idp: Idp
) -> None:
    idp.answers(idp.id_token())

    tokens = await client.finish(
        login(), {"code": "c-1", "state": "s-1", "iss": ISSUER}
    )

    form = idp.forms[0]
    assert form["grant_type"] == ["authorization_code"]
    assert form["code"] == ["c-1"]
    assert form["code_verifier"] == ["v" * 43]
    assert form["redirect_uri"] == [REDIRECT]
    assert (tokens.sub, tokens.username) == ("clin-achen", "achen")
    assert tokens.expires_at == NOW + 900
    assert "secret" not in repr(tokens)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"code": "c-1", "state": "other"}, "does not match"),
        ({"code": "c-1"}, "does not match"),
        ({"code": "c-1", "state": "s-1", "iss": "http://evil"}, "another issuer"),
        ({"error": "access_denied", "state": "s-1"}, "declined"),
        ({"state": "s-1"}, "no code"),
    ],
)
async def test_a_bad_authorization_response_is_refused_before_any_token_request(
    client: OidcClient, idp: Idp, params: dict[str, str], reason: str
) -> None:
    with pytest.raises(SignInError, match=reason):
        await client.finish(login(), params)
    assert idp.forms == []


@pytest.mark.parametrize(
    "claims",
    [
        {"nonce": "replayed"},
        {"nonce": None},
        {"aud": "trustloop-cli"},
        {"aud": ["trustloop-web", "other"]},
        {"iss": "http://127.0.0.1:9999"},
        {"exp": int(NOW) - 1},
        {"sub": None},
    ],
)
async def test_an_id_token_failing_oidc_core_3_1_3_7_is_refused(
    client: OidcClient, idp: Idp, claims: dict[str, Any]
) -> None:
    idp.answers(idp.id_token(**claims))

    with pytest.raises(SignInError, match="ID token is not valid"):
        await client.finish(login(), {"code": "c", "state": "s-1"})


async def test_an_id_token_signed_by_another_key_or_with_hs256_is_refused(
    client: OidcClient, idp: Idp
) -> None:
    stranger = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    for forged in (
        idp.id_token(key=stranger),
        idp.id_token(key=OctKey.generate_key(256), alg="HS256"),
    ):
        idp.answers(forged)
        with pytest.raises(SignInError):
            await client.finish(login(), {"code": "c", "state": "s-1"})


async def test_a_refused_code_is_a_sign_in_error(client: OidcClient, idp: Idp) -> None:
    idp.token_answer = (400, {"error": "invalid_grant", "error_description": "x"})

    with pytest.raises(SignInError, match="refused"):
        await client.finish(login(), {"code": "c", "state": "s-1"})


async def test_refresh_rotates_the_refresh_token_and_keeps_the_clinician(
    client: OidcClient, idp: Idp, clock: FakeClock
) -> None:
    idp.answers(idp.id_token())
    tokens = await client.finish(login(), {"code": "c", "state": "s-1"})
    clock.now += 850
    assert tokens.needs_refresh(clock())

    now = int(clock.now)
    reissued = idp.id_token(nonce=None, iat=now, exp=now + 900)
    idp.answers(reissued, refresh_token="refresh-secret-2")
    fresh = await client.refresh(tokens)

    assert idp.forms[-1]["refresh_token"] == ["refresh-secret-1"]
    assert fresh.refresh_token == "refresh-secret-2"
    assert fresh.expires_at == clock.now + 900
    assert fresh.sub == tokens.sub


async def test_a_refresh_without_an_id_token_keeps_the_signed_in_identity(
    client: OidcClient, idp: Idp, clock: FakeClock
) -> None:
    idp.answers(idp.id_token())
    tokens = await client.finish(login(), {"code": "c", "state": "s-1"})
    clock.now += 850
    idp.token_answer = (200, {"access_token": "access-secret-2", "expires_in": 900})

    fresh = await client.refresh(tokens)

    assert fresh.access_token == "access-secret-2"
    assert fresh.refresh_token == "refresh-secret-1"
    assert (fresh.sub, fresh.name) == (tokens.sub, tokens.name)


async def test_a_refresh_naming_another_clinician_ends_the_session(
    client: OidcClient, idp: Idp
) -> None:
    idp.answers(idp.id_token())
    tokens = await client.finish(login(), {"code": "c", "state": "s-1"})
    idp.answers(idp.id_token(nonce=None, sub="clin-bokafor"))

    with pytest.raises(SessionEndedError):
        await client.refresh(tokens)


async def test_a_refused_refresh_ends_the_session(client: OidcClient, idp: Idp) -> None:
    idp.answers(idp.id_token())
    tokens = await client.finish(login(), {"code": "c", "state": "s-1"})
    idp.token_answer = (400, {"error": "invalid_grant"})

    with pytest.raises(SessionEndedError):
        await client.refresh(tokens)


async def test_sign_out_revokes_the_access_token_then_the_refresh_token(
    client: OidcClient, idp: Idp
) -> None:
    """The access token first: it is what reaches the tools until it expires."""
    idp.answers(idp.id_token())
    tokens = await client.finish(login(), {"code": "c", "state": "s-1"})
    idp.forms.clear()

    await client.sign_out(tokens)

    revoked = [(f["token"][0], f["token_type_hint"][0]) for f in idp.forms]
    assert revoked == [
        ("access-secret-1", "access_token"),
        ("refresh-secret-1", "refresh_token"),
    ]
    assert all(f["client_id"] == ["trustloop-web"] for f in idp.forms)


@pytest.mark.parametrize("failing", ["access_token", "refresh_token"])
async def test_sign_out_tries_both_tokens_and_says_when_one_failed(
    client: OidcClient, idp: Idp, failing: str
) -> None:
    idp.answers(idp.id_token())
    tokens = await client.finish(login(), {"code": "c", "state": "s-1"})
    idp.forms.clear()
    idp.revoke_status[failing] = 503

    with pytest.raises(IdpUnavailableError, match=f"{failing}: HTTP 503"):
        await client.sign_out(tokens)

    hints = [f["token_type_hint"][0] for f in idp.forms]
    assert hints == ["access_token", "refresh_token"]


async def test_the_jwks_is_refetched_at_most_every_five_seconds(
    client: OidcClient, idp: Idp, clock: FakeClock
) -> None:
    """Forged ID tokens cannot make the app hammer the IdP's JWKS endpoint."""
    stranger = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    for _ in range(3):
        idp.answers(idp.id_token(key=stranger))
        with pytest.raises(SignInError):
            await client.finish(login(), {"code": "c", "state": "s-1"})
    assert idp.jwks_fetches == 1

    clock.now += 6
    idp.answers(idp.id_token(key=stranger))
    with pytest.raises(SignInError):
        await client.finish(login(), {"code": "c", "state": "s-1"})
    assert idp.jwks_fetches == 2


async def test_the_last_good_keys_stay_while_the_jwks_is_down(
    client: OidcClient, idp: Idp, clock: FakeClock
) -> None:
    idp.answers(idp.id_token())
    await client.finish(login(), {"code": "c", "state": "s-1"})
    idp.jwks_up = False
    clock.now += 6

    idp.answers(idp.id_token(key=ECKey.generate_key("P-256", parameters={"kid": "k1"})))
    with pytest.raises(SignInError, match="ID token is not valid"):
        await client.finish(login(), {"code": "c", "state": "s-1"})
    idp.answers(idp.id_token())
    tokens = await client.finish(login(), {"code": "c", "state": "s-1"})

    assert tokens.sub == "clin-achen"
