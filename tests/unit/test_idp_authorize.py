"""The authorization code flow at the IdP: login pages, second factor, tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from signin_world import (
    CALLBACK,
    ISSUER,
    NOW,
    SignInWorld,
    claims_of,
    code_of,
    make_world,
    query_of,
)

from trustloop.devstack.idp.id_tokens import at_hash

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SignInWorld]:
    async for world in make_world(tmp_path):
        yield world


async def test_the_login_page_has_the_contract_ids_and_a_strict_csp(
    world: SignInWorld,
) -> None:
    response = await world.authorize()

    csp = response.headers["content-security-policy"]
    assert response.status_code == 200
    for element in ('id="username"', 'id="password"', 'id="sign-in"'):
        assert element in response.text
    assert "<script" not in response.text
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self' http://127.0.0.1:3000" in csp
    assert response.headers["cache-control"] == "no-store"


async def test_the_second_factor_page_offers_a_code_or_a_push(
    world: SignInWorld,
) -> None:
    await world.authorize()
    response = await world.password()

    assert response.status_code == 200
    assert 'id="otp"' in response.text
    assert 'id="verify"' in response.text
    assert 'id="use-push"' in response.text
    assert "Dr. Amelia Chen" in response.text


async def test_password_and_totp_redirect_with_code_state_and_issuer(
    world: SignInWorld,
) -> None:
    location = await world.login()

    params = query_of(location)
    assert location.startswith(CALLBACK + "?")
    assert params["state"] == "st-123"
    assert params["iss"] == ISSUER
    assert len(params["code"]) >= 43


async def test_the_code_buys_rfc9068_access_id_and_refresh_tokens(
    world: SignInWorld,
) -> None:
    body = await world.signed_in()

    access = claims_of(body["access_token"])
    id_token = claims_of(body["id_token"])
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "openid profile"
    assert isinstance(body["refresh_token"], str)
    assert access["sub"] == "clin-achen"
    assert access["client_id"] == "trustloop-web"
    assert access["acr"] == "urn:trustloop:acr:mfa"
    assert access["amr"] == ["pwd", "otp"]
    assert access["auth_time"] == int(world.clock.now)
    assert id_token["aud"] == "trustloop-web"
    assert id_token["nonce"] == "n-456"
    assert id_token["sid"] == access["sid"]
    assert id_token["at_hash"] == at_hash(body["access_token"])
    assert id_token["preferred_username"] == "achen"
    assert id_token["name"] == "Dr. Amelia Chen"


async def test_sign_in_is_audited_with_session_and_factors(world: SignInWorld) -> None:
    body = await world.signed_in()

    signed_in = [e for e in world.audit_events() if e["event"] == "signed_in"]
    assert len(signed_in) == 1
    assert signed_in[0]["sid"] == claims_of(body["access_token"])["sid"]
    assert signed_in[0]["amr"] == ["pwd", "otp"]
    assert signed_in[0]["grant"] == "authorization_code"
    assert (
        body["access_token"] not in (world.settings.audit_dir / "idp.jsonl").read_text()
    )


async def test_a_wrong_password_says_only_that_something_was_wrong(
    world: SignInWorld,
) -> None:
    await world.authorize()
    response = await world.password(password="not-it")

    assert response.status_code == 401
    assert "Wrong username, password or code." in response.text
    assert 'id="username"' in response.text
    failed = [e for e in world.audit_events() if e["event"] == "sign_in_failed"]
    assert failed[-1]["reason"] == "password"
    assert "not-it" not in (world.settings.audit_dir / "idp.jsonl").read_text()


async def test_a_wrong_code_keeps_the_clinician_on_the_second_factor(
    world: SignInWorld,
) -> None:
    await world.authorize()
    await world.password()
    wrong = "000000" if world.otp() != "000000" else "111111"
    response = await world.browser.submit("otp", {"otp": wrong})

    assert response.status_code == 401
    assert 'id="otp"' in response.text
    assert "Wrong username, password or code." in response.text


async def test_five_wrong_passwords_end_the_login_with_access_denied(
    world: SignInWorld,
) -> None:
    await world.authorize()
    for _ in range(4):
        assert (await world.password(password="nope")).status_code == 401
    response = await world.browser.submit(
        "username", {"username": "achen", "password": "nope"}
    )

    params = query_of(response.headers["location"])
    assert response.status_code == 303
    assert params["error"] == "access_denied"
    assert params["state"] == "st-123"


async def test_an_approved_push_finishes_the_login(world: SignInWorld) -> None:
    await world.authorize()
    await world.password()
    waiting = await world.browser.follow(await world.browser.submit("use-push", {}))
    assert waiting.status_code == 200
    assert 'http-equiv="refresh"' in waiting.text

    pushes = world.parts.pushes.pending("clin-achen")
    assert [p.message for p in pushes] == ["Sign in to trustloop on the web?"]
    world.parts.pushes.answer("clin-achen", pushes[0].id, approve=True)
    done = await world.browser.open(world.browser.url)
    body = (await world.redeem(code_of(done.headers["location"]))).json()

    assert claims_of(body["access_token"])["amr"] == ["pwd", "push"]


async def test_a_login_push_shows_on_the_authenticator_page(world: SignInWorld) -> None:
    await world.authorize()
    await world.password()
    await world.browser.submit("use-push", {})
    form = {"username": "achen", "password": "pw-achen-1"}
    await world.http.post(f"{ISSUER}/authenticator", data=form)

    page = await world.http.get(f"{ISSUER}/authenticator")

    assert "Sign in to trustloop on the web?" in page.text


async def test_a_declined_push_ends_the_login_with_access_denied(
    world: SignInWorld,
) -> None:
    await world.authorize()
    await world.password()
    await world.browser.follow(await world.browser.submit("use-push", {}))
    answer = {"username": "achen", "password": "pw-achen-1", "decision": "deny"}
    denied = await world.http.post(f"{ISSUER}/authenticator/answers", json=answer)

    response = await world.browser.open(world.browser.url)

    assert denied.json()["state"] == "VERIFY_FAILED"
    assert query_of(response.headers["location"])["error"] == "access_denied"


async def test_an_unanswered_push_expires_back_to_the_second_factor(
    world: SignInWorld,
) -> None:
    await world.authorize()
    await world.password()
    await world.browser.follow(await world.browser.submit("use-push", {}))
    world.clock.now = NOW + world.settings.step_up_timeout_s + 1

    response = await world.browser.open(world.browser.url)

    assert response.status_code == 200
    assert "The push expired" in response.text
    assert 'id="otp"' in response.text


async def test_userinfo_names_the_clinician_of_the_token(world: SignInWorld) -> None:
    body = await world.signed_in()

    answer = await world.userinfo(body["access_token"])
    refused = await world.userinfo("not-a-token")

    assert answer.json() == {
        "sub": "clin-achen",
        "name": "Dr. Amelia Chen",
        "preferred_username": "achen",
    }
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_discovery_lists_the_sign_in_endpoints(world: SignInWorld) -> None:
    metadata = (await world.http.get("/.well-known/openid-configuration")).json()

    assert metadata["authorization_endpoint"] == f"{ISSUER}/oauth2/authorize"
    assert metadata["userinfo_endpoint"] == f"{ISSUER}/oauth2/userinfo"
    assert (
        metadata["device_authorization_endpoint"]
        == f"{ISSUER}/oauth2/device_authorization"
    )
    assert metadata["end_session_endpoint"] == f"{ISSUER}/oauth2/logout"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["response_types_supported"] == ["code"]
    assert {"authorization_code", "refresh_token"} <= set(
        metadata["grant_types_supported"]
    )
    assert (
        "urn:ietf:params:oauth:grant-type:device_code"
        in (metadata["grant_types_supported"])
    )


async def test_the_stylesheet_is_served_for_the_pages(world: SignInWorld) -> None:
    response = await world.http.get("/oauth2/login.css")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
