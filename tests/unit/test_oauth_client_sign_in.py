"""The public client's side of sign-in (trustloop.identity.sign_in), in process."""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest
from signin_world import CALLBACK, CLI, ISSUER, WEB, SignInWorld, claims_of, make_world

from trustloop.identity.oauth import IdpClient, OAuthError
from trustloop.identity.sign_in import (
    DeviceAuthorization,
    SignInClient,
    Sleep,
    new_pkce,
    new_state,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SignInWorld]:
    async for world in make_world(tmp_path):
        yield world


def _client(
    world: SignInWorld, client_id: str = WEB, sleep: Sleep | None = None
) -> SignInClient:
    idp = IdpClient(ISSUER, world.http)
    if sleep is None:
        return SignInClient(idp, client_id)
    return SignInClient(idp, client_id, sleep=sleep, clock=world.clock)


def test_a_pkce_pair_is_s256_of_a_long_verifier() -> None:
    pkce = new_pkce()

    digest = hashlib.sha256(pkce.verifier.encode()).digest()
    assert 43 <= len(pkce.verifier) <= 128
    assert pkce.challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert pkce.method == "S256"
    assert pkce.verifier not in repr(pkce)
    assert new_pkce().verifier != pkce.verifier


async def test_the_authorization_url_carries_pkce_state_and_nonce(
    world: SignInWorld,
) -> None:
    pkce, state = new_pkce(), new_state()

    url = await _client(world).authorization_url(
        redirect_uri=CALLBACK, state=state, pkce=pkce, nonce="n1"
    )

    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(f"{ISSUER}/oauth2/authorize?")
    assert params["code_challenge"] == pkce.challenge
    assert params["code_challenge_method"] == "S256"
    assert params["state"] == state
    assert params["nonce"] == "n1"
    assert pkce.verifier not in url


async def test_the_client_signs_in_refreshes_and_revokes(world: SignInWorld) -> None:
    client, pkce = _client(world), new_pkce()
    url = await client.authorization_url(
        redirect_uri=CALLBACK, state="s", pkce=pkce, nonce="n"
    )
    await world.browser.open(url)
    await world.password()
    done = await world.browser.submit("otp", {"otp": world.fresh_otp()})
    code = parse_qs(urlsplit(done.headers["location"]).query)["code"][0]

    tokens = await client.exchange_code(code, redirect_uri=CALLBACK, pkce=pkce)
    assert tokens.refresh_token is not None
    renewed = await client.refresh(tokens.refresh_token)
    assert renewed.refresh_token is not None
    await client.revoke_refresh(renewed.refresh_token)

    assert (
        claims_of(renewed.access_token)["sid"] == claims_of(tokens.access_token)["sid"]
    )
    assert not world.active(renewed.access_token)
    assert "access_token" not in repr(tokens).replace("access_token=", "")
    assert tokens.access_token not in repr(tokens)


async def test_waiting_for_the_device_obeys_slow_down(world: SignInWorld) -> None:
    """A client polling every second slows down by 5 s per slow_down (§3.5)."""
    sleeps: list[float] = []
    user_code = ""

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        world.clock.now += seconds
        if len(sleeps) == 4:  # the clinician denies on the device page
            await world.browser.open(f"{ISSUER}/device?user_code={user_code}")
            await world.password()
            otp = await world.browser.submit("otp", {"otp": world.fresh_otp()})
            await world.browser.follow(otp)
            await world.browser.submit("approve", {"decision": "deny"})

    client = _client(world, CLI, sleep)
    device = await client.start_device()
    user_code = device.user_code
    hasty = DeviceAuthorization(
        device.device_code, device.user_code, device.verification_uri, None, 600, 1
    )

    with pytest.raises(OAuthError) as denied:
        await client.wait_for_device(hasty)

    assert denied.value.error == "access_denied"
    assert sleeps == [1, 1, 6, 11]  # pending, then slow_down, slow_down, denied


async def test_waiting_stops_when_the_device_code_expires(world: SignInWorld) -> None:
    async def sleep(seconds: float) -> None:
        world.clock.now += seconds

    client = _client(world, CLI, sleep)
    device = await client.start_device()

    with pytest.raises(OAuthError) as expired:
        await client.wait_for_device(device)

    assert expired.value.error == "expired_token"
