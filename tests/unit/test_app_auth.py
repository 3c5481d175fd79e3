"""The session's tokens: refreshed once before expiry, and a refused refresh ends it."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

import httpx
import pytest
from fakeclock import FakeClock

from trustloop.app.auth import Auth
from trustloop.app.oidc import LoginRequest, OidcClient, Tokens
from trustloop.app.sessions import LOGIN_TIMEOUT_S, CookiePolicy, SessionStore

ISSUER = "http://127.0.0.1:9400"


class TokenEndpoint:
    """Discovery and a token endpoint that rotates tokens, or refuses them."""

    def __init__(self) -> None:
        self.refreshes: list[str] = []
        self.refuse = False

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(
                200, json={"issuer": ISSUER, "token_endpoint": f"{ISSUER}/token"}
            )
        form = parse_qs(request.content.decode())
        self.refreshes.append(form["refresh_token"][0])
        await asyncio.sleep(0.01)  # a second caller arrives meanwhile
        if self.refuse:
            return httpx.Response(400, json={"error": "invalid_grant"})
        n = len(self.refreshes)
        body = {
            "access_token": f"at-{n}",
            "refresh_token": f"rt-{n}",
            "expires_in": 900,
        }
        return httpx.Response(200, json=body)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def endpoint() -> TokenEndpoint:
    return TokenEndpoint()


@pytest.fixture
def auth(clock: FakeClock, endpoint: TokenEndpoint) -> Auth:
    http = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))
    return Auth(
        oidc=OidcClient(
            ISSUER, "http://127.0.0.1:3000/auth/callback", http, clock=clock
        ),
        store=SessionStore(clock=clock),
        cookies=CookiePolicy.for_url("http://127.0.0.1:3000"),
        app_url="http://127.0.0.1:3000",
        clock=clock,
    )


def tokens(clock: FakeClock, expires_in: float) -> Tokens:
    return Tokens("at-0", "rt-0", "id", clock.now + expires_in, "clin-achen", "A", "a")


async def test_a_token_near_expiry_is_refreshed_once_for_concurrent_requests(
    auth: Auth, clock: FakeClock, endpoint: TokenEndpoint
) -> None:
    session = auth.store.create()
    session.tokens = tokens(clock, expires_in=30)

    first, second = await asyncio.gather(
        auth.tokens_of(session), auth.tokens_of(session)
    )

    assert endpoint.refreshes == ["rt-0"]  # a rotated token is never reused
    assert first is not None
    assert second is not None
    assert first.access_token == second.access_token == "at-1"
    assert session.tokens is not None
    assert session.tokens.refresh_token == "rt-1"


async def test_a_fresh_token_is_used_as_it_is(
    auth: Auth, clock: FakeClock, endpoint: TokenEndpoint
) -> None:
    session = auth.store.create()
    session.tokens = tokens(clock, expires_in=600)

    assert await auth.tokens_of(session) is session.tokens
    assert endpoint.refreshes == []


async def test_a_refused_refresh_ends_the_session(
    auth: Auth, clock: FakeClock, endpoint: TokenEndpoint
) -> None:
    session = auth.store.create()
    session.tokens = tokens(clock, expires_in=30)
    endpoint.refuse = True

    assert await auth.tokens_of(session) is None
    assert auth.store.get(session.id) is None


def test_a_sign_in_left_open_too_long_cannot_finish(
    auth: Auth, clock: FakeClock
) -> None:
    session = auth.store.create()
    auth.store.start_login(session, LoginRequest("u", "s", "n", "v"))

    clock.now += LOGIN_TIMEOUT_S - 1
    assert not auth.store.login_expired(session)
    clock.now += 2
    assert auth.store.login_expired(session)
