"""Hostile clients and browsers against the IdP's sign-in (docs/security.md).

The real IdP app in process (tests/support/signin_world.py): an attacker who
holds a stolen code, refresh token or user code, or who crafts the
authorization request, gets nothing the spec does not allow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from signin_world import (
    CALLBACK,
    CHALLENGE,
    CLI,
    ISSUER,
    VERIFIER,
    WEB,
    SignInWorld,
    code_of,
    make_world,
    query_of,
    s256,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SignInWorld]:
    async for world in make_world(tmp_path):
        yield world


async def test_pkce_plain_is_refused(world: SignInWorld) -> None:
    plain = await world.authorize(
        code_challenge=VERIFIER, code_challenge_method="plain"
    )
    missing = await world.authorize(code_challenge_method=None)
    no_challenge = await world.authorize(code_challenge=None)

    for response in (plain, missing, no_challenge):
        params = query_of(response.headers["location"])
        assert response.status_code == 303
        assert params["error"] == "invalid_request"
        assert params["iss"] == ISSUER


async def test_a_wrong_verifier_gets_nothing_and_spends_the_code(
    world: SignInWorld,
) -> None:
    code = code_of(await world.login())
    other = "x" * 43

    wrong = await world.redeem(code, code_verifier=other)
    right_after = await world.redeem(code)

    assert s256(other) != CHALLENGE
    assert wrong.json()["error"] == "invalid_grant"
    assert right_after.status_code == 400


async def test_a_malformed_verifier_is_refused(world: SignInWorld) -> None:
    code = code_of(await world.login())

    response = await world.redeem(code, code_verifier=CHALLENGE[:42])

    assert response.json()["error"] == "invalid_grant"


async def test_a_replayed_code_is_refused_and_revokes_what_it_bought(
    world: SignInWorld,
) -> None:
    """RFC 6749 §4.1.2: deny the replay and revoke the tokens of the first use."""
    code = code_of(await world.login())
    first = (await world.redeem(code)).json()

    replay = await world.redeem(code)
    refresh = await world.token(
        grant_type="refresh_token",
        refresh_token=first["refresh_token"],
        client_id=WEB,
    )

    assert replay.json()["error"] == "invalid_grant"
    assert not world.active(first["access_token"])
    assert refresh.json()["error"] == "invalid_grant"
    assert "code_replayed" in [e["event"] for e in world.audit_events()]


async def test_a_code_is_bound_to_its_client_and_redirect_uri(
    world: SignInWorld,
) -> None:
    code = code_of(await world.login())

    other_uri = await world.redeem(code, redirect_uri=CALLBACK + "x")
    other_client = await world.redeem(code, client_id=CLI)

    assert other_uri.json()["error"] == "invalid_grant"
    assert other_client.json()["error"] == "invalid_grant"


async def test_a_code_expires_after_a_minute(world: SignInWorld) -> None:
    code = code_of(await world.login())
    world.clock.now += 61

    assert (await world.redeem(code)).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/auth/callback",
        "http://127.0.0.1:3000/auth/callback/../../evil",
        "http://127.0.0.1:3000/auth/callback?next=https://evil.example",
        "http://127.0.0.1:3000.evil.example/auth/callback",
        "http://127.0.0.1:3000@evil.example/auth/callback",
        "http://127.0.0.1:3001/auth/callback",
        "HTTP://127.0.0.1:3000/auth/callback",
        "//evil.example/auth/callback",
        "",
    ],
)
async def test_an_unregistered_redirect_uri_is_an_error_page_never_a_redirect(
    world: SignInWorld, redirect_uri: str
) -> None:
    response = await world.authorize(redirect_uri=redirect_uri)

    assert response.status_code == 400
    assert "location" not in response.headers
    assert "evil" not in response.text


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://localhost:53682/callback",
        "http://127.0.0.1:53682/callback/../x",
        "http://127.0.0.1:53682/other",
        "http://127.0.0.1:53682@evil.example/callback",
        "http://127.0.0.1/callback",
        "https://127.0.0.1:53682/callback#frag",
    ],
)
async def test_the_cli_loopback_redirect_is_strict(
    world: SignInWorld, redirect_uri: str
) -> None:
    response = await world.authorize(client_id=CLI, redirect_uri=redirect_uri)

    assert response.status_code == 400
    assert "location" not in response.headers


async def test_an_unknown_client_is_an_error_page(world: SignInWorld) -> None:
    response = await world.authorize(client_id="evil-app")

    assert response.status_code == 400
    assert "location" not in response.headers


async def test_a_missing_state_is_refused_back_to_the_client(
    world: SignInWorld,
) -> None:
    response = await world.authorize(state=None)

    params = query_of(response.headers["location"])
    assert response.headers["location"].startswith(CALLBACK + "?")
    assert params["error"] == "invalid_request"
    assert "state" not in params


async def test_a_repeated_parameter_is_refused(world: SignInWorld) -> None:
    url = (
        f"{ISSUER}/oauth2/authorize?response_type=code&client_id={WEB}"
        f"&redirect_uri={CALLBACK}&state=a&state=b&code_challenge={CHALLENGE}"
        "&code_challenge_method=S256"
    )
    response = await world.http.get(url)

    assert query_of(response.headers["location"])["error"] == "invalid_request"


async def test_a_used_totp_code_is_refused_in_the_next_login(
    world: SignInWorld,
) -> None:
    """RFC 6238 §5.2: the same OTP is not accepted twice."""
    code = world.otp()
    await world.authorize()
    await world.password()
    first = await world.browser.submit("otp", {"otp": code})
    await world.authorize()
    await world.password()
    replay = await world.browser.submit("otp", {"otp": code})

    assert first.status_code == 303
    assert replay.status_code == 401


async def test_a_totp_code_two_steps_off_is_refused_one_step_accepted(
    world: SignInWorld,
) -> None:
    await world.authorize()
    await world.password()
    late = await world.browser.submit("otp", {"otp": world.otp(steps=-2)})
    early = await world.browser.submit("otp", {"otp": world.otp(steps=2)})
    drifted = await world.browser.submit("otp", {"otp": world.otp(steps=1)})

    assert late.status_code == 401
    assert early.status_code == 401
    assert drifted.status_code == 303


async def test_another_clinicians_code_does_not_pass(world: SignInWorld) -> None:
    await world.authorize()
    await world.password("achen")

    response = await world.browser.submit("otp", {"otp": world.otp("bokafor")})

    assert response.status_code == 401


async def test_a_form_without_its_csrf_token_is_refused(world: SignInWorld) -> None:
    await world.authorize()
    form = {"username": "achen", "password": "pw-achen-1", "csrf": "guess"}
    tx = world.browser.page.split('name="tx" value="')[1].split('"')[0]

    response = await world.http.post(f"{ISSUER}/oauth2/login", data={**form, "tx": tx})

    assert response.status_code == 400
    assert 'id="otp"' not in response.text


async def test_a_login_cannot_be_continued_from_another_browser(
    world: SignInWorld,
) -> None:
    await world.authorize()
    await world.password()
    factor_url = world.browser.url
    world.http.cookies.clear()

    response = await world.http.get(factor_url)

    assert response.status_code == 400
    assert 'id="otp"' not in response.text


async def test_a_stolen_refresh_token_used_after_the_clinician_ends_the_session(
    world: SignInWorld,
) -> None:
    """The thief and the clinician both hold the token: the first reuse ends it all."""
    body = await world.signed_in()
    stolen = body["refresh_token"]
    clinician = await world.token(
        grant_type="refresh_token", refresh_token=stolen, client_id=WEB
    )

    thief = await world.token(
        grant_type="refresh_token", refresh_token=stolen, client_id=WEB
    )

    assert clinician.status_code == 200
    assert thief.json()["error"] == "invalid_grant"
    assert not world.active(clinician.json()["access_token"])


async def test_polling_the_device_code_too_fast_gets_slow_down(
    world: SignInWorld,
) -> None:
    form = {"client_id": CLI}
    device = (await world.http.post("/oauth2/device_authorization", data=form)).json()
    grant = "urn:ietf:params:oauth:grant-type:device_code"
    poll = {"grant_type": grant, "device_code": device["device_code"], "client_id": CLI}

    answers = [(await world.token(**poll)).json()["error"] for _ in range(3)]

    assert answers == ["authorization_pending", "slow_down", "slow_down"]


async def test_guessing_user_codes_is_cut_off_after_ten_wrong_ones(
    world: SignInWorld,
) -> None:
    form = {"client_id": CLI}
    device = (await world.http.post("/oauth2/device_authorization", data=form)).json()
    wrong = ["BBBB-BBB" + c for c in "CDFGHJKLMN"]
    wrong = [w for w in wrong if w != device["user_code"]][:10]

    statuses = [
        (await world.http.get("/device", params={"user_code": w})).status_code
        for w in wrong
    ]
    right = await world.http.get("/device", params={"user_code": device["user_code"]})

    assert statuses == [400] * 10
    assert right.status_code == 429
    assert 'id="username"' not in right.text
