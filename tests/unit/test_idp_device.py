"""The device authorization grant (RFC 8628) and the IdP's /device page."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from signin_world import CLI, ISSUER, WEB, SignInWorld, claims_of, make_world

from trustloop.devstack.idp.device import normalise_user_code

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import httpx

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SignInWorld]:
    async for world in make_world(tmp_path):
        yield world


async def _start(world: SignInWorld, client_id: str = CLI) -> httpx.Response:
    form = {"client_id": client_id, "scope": "openid profile"}
    return await world.http.post(f"{ISSUER}/oauth2/device_authorization", data=form)


async def _device(world: SignInWorld) -> dict[str, Any]:
    body: dict[str, Any] = (await _start(world)).json()
    return body


async def _poll(world: SignInWorld, device_code: str) -> httpx.Response:
    return await world.token(
        grant_type=DEVICE_GRANT, device_code=device_code, client_id=CLI
    )


async def _approve_on_the_page(
    world: SignInWorld, user_code: str, decision: str = "approve"
) -> httpx.Response:
    page = await world.browser.open(f"{ISSUER}/device?user_code={user_code}")
    assert page.status_code == 200
    await world.password()
    done = await world.browser.follow(
        await world.browser.submit("otp", {"otp": world.fresh_otp()})
    )
    assert world.browser.has("approve"), done.text
    return await world.browser.submit("approve", {"decision": decision})


async def test_the_device_authorization_answer_follows_rfc_8628(
    world: SignInWorld,
) -> None:
    body = await _device(world)

    assert re.fullmatch(
        r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", body["user_code"]
    )
    assert body["verification_uri"] == f"{ISSUER}/device"
    assert body["verification_uri_complete"] == (
        f"{ISSUER}/device?user_code={body['user_code']}"
    )
    assert body["expires_in"] == 600
    assert body["interval"] == 5
    assert len(body["device_code"]) >= 43


async def test_only_the_cli_may_start_a_device_authorization(
    world: SignInWorld,
) -> None:
    response = await _start(world, client_id=WEB)

    assert response.json()["error"] == "unauthorized_client"


async def test_polling_before_approval_is_authorization_pending(
    world: SignInWorld,
) -> None:
    device = await _device(world)

    response = await _poll(world, device["device_code"])

    assert response.status_code == 400
    assert response.json()["error"] == "authorization_pending"


async def test_polling_faster_than_the_interval_is_slow_down_and_widens_it(
    world: SignInWorld,
) -> None:
    device = await _device(world)
    await _poll(world, device["device_code"])
    world.clock.now += 1
    fast = await _poll(world, device["device_code"])
    world.clock.now += 6  # enough for 5 s, not for the widened 10 s
    still_fast = await _poll(world, device["device_code"])
    world.clock.now += 16
    patient = await _poll(world, device["device_code"])

    assert fast.json()["error"] == "slow_down"
    assert still_fast.json()["error"] == "slow_down"
    assert patient.json()["error"] == "authorization_pending"


async def test_an_approved_device_gets_tokens_once(world: SignInWorld) -> None:
    device = await _device(world)
    approved = await _approve_on_the_page(world, device["user_code"])
    world.clock.now += 5

    first = await _poll(world, device["device_code"])
    world.clock.now += 5
    again = await _poll(world, device["device_code"])

    claims = claims_of(first.json()["access_token"])
    assert "Approved" in approved.text
    assert claims["client_id"] == CLI
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["sub"] == "clin-achen"
    assert "refresh_token" in first.json()
    assert again.json()["error"] == "invalid_grant"
    events = [e["event"] for e in world.audit_events()]
    assert "device_authorized" in events


async def test_a_denied_device_is_access_denied(world: SignInWorld) -> None:
    device = await _device(world)
    await _approve_on_the_page(world, device["user_code"], decision="deny")

    response = await _poll(world, device["device_code"])

    assert response.json()["error"] == "access_denied"


async def test_an_expired_device_code_is_expired_token(world: SignInWorld) -> None:
    device = await _device(world)
    world.clock.now += 601

    response = await _poll(world, device["device_code"])
    page = await world.browser.open(f"{ISSUER}/device?user_code={device['user_code']}")

    assert response.json()["error"] == "expired_token"
    assert page.status_code == 400


async def test_the_user_code_is_read_case_and_dash_insensitively() -> None:
    assert normalise_user_code("bcdf-ghjk") == "BCDFGHJK"
    assert normalise_user_code("BCDF GHJK") == "BCDFGHJK"
    assert normalise_user_code("ABCD-EFGH") is None  # vowels are never issued
    assert normalise_user_code("BCDF-GHJ") is None


async def test_the_device_page_asks_for_the_code_when_none_is_given(
    world: SignInWorld,
) -> None:
    page = await world.browser.open(f"{ISSUER}/device")

    assert page.status_code == 200
    assert 'id="user-code"' in page.text
    assert 'id="continue"' in page.text
    assert "<script" not in page.text


async def test_a_device_login_can_pass_with_a_push(world: SignInWorld) -> None:
    device = await _device(world)
    await world.browser.open(f"{ISSUER}/device?user_code={device['user_code']}")
    await world.password()
    await world.browser.follow(await world.browser.submit("use-push", {}))
    pushes = world.parts.pushes.pending("clin-achen")
    world.parts.pushes.answer("clin-achen", pushes[0].id, approve=True)

    await world.browser.follow(await world.browser.open(world.browser.url))
    await world.browser.submit("approve", {"decision": "approve"})
    tokens = (await _poll(world, device["device_code"])).json()

    assert pushes[0].message == "Sign in to the trustloop command line?"
    assert claims_of(tokens["access_token"])["amr"] == ["pwd", "push"]


async def test_five_wrong_passwords_on_the_device_page_end_that_login(
    world: SignInWorld,
) -> None:
    device = await _device(world)
    await world.browser.open(f"{ISSUER}/device?user_code={device['user_code']}")
    for _ in range(4):
        assert (await world.password(password="nope")).status_code == 401

    last = await world.password(password="nope")
    pending = await _poll(world, device["device_code"])

    assert last.status_code == 403
    assert "Too many attempts" in last.text
    assert pending.json()["error"] == "authorization_pending"
