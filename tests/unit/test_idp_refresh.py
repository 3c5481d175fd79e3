"""Rotating refresh tokens: each use answers a new one; a reuse ends the session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from signin_world import CLI, ISSUER, WEB, SignInWorld, claims_of, make_world

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import httpx


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SignInWorld]:
    async for world in make_world(tmp_path):
        yield world


async def _refresh(
    world: SignInWorld, token: str, client_id: str = WEB
) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    return await world.token(**form, client_id=client_id)


async def _refreshed(world: SignInWorld, token: str) -> dict[str, Any]:
    response = await _refresh(world, token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_refresh_answers_new_tokens_of_the_same_session(
    world: SignInWorld,
) -> None:
    first = await world.signed_in()
    world.clock.now += 600

    second = await _refreshed(world, first["refresh_token"])

    old, new = claims_of(first["access_token"]), claims_of(second["access_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert new["jti"] != old["jti"]
    assert new["sid"] == old["sid"]
    assert new["auth_time"] == old["auth_time"]
    assert new["iat"] == old["iat"] + 600
    assert new["amr"] == ["pwd", "otp"]
    assert "id_token" not in second


async def test_a_reused_refresh_token_ends_the_whole_session(
    world: SignInWorld,
) -> None:
    first = await world.signed_in()
    second = await _refreshed(world, first["refresh_token"])

    reused = await _refresh(world, first["refresh_token"])
    newest = await _refresh(world, second["refresh_token"])

    assert reused.json()["error"] == "invalid_grant"
    assert newest.json()["error"] == "invalid_grant"
    assert not world.active(first["access_token"])
    assert not world.active(second["access_token"])
    events = [e["event"] for e in world.audit_events()]
    assert "refresh_token_reused" in events


async def test_a_reuse_leaves_other_sessions_alone(world: SignInWorld) -> None:
    mine = await world.signed_in()
    other = await world.signed_in()
    await _refreshed(world, mine["refresh_token"])

    await _refresh(world, mine["refresh_token"])

    assert world.active(other["access_token"])
    assert (await _refresh(world, other["refresh_token"])).status_code == 200


async def test_a_refresh_token_of_another_client_is_refused(
    world: SignInWorld,
) -> None:
    body = await world.signed_in()

    response = await _refresh(world, body["refresh_token"], client_id=CLI)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_an_unknown_refresh_token_is_invalid_grant(world: SignInWorld) -> None:
    response = await _refresh(world, "made-up")

    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "the refresh token is invalid",
    }


async def test_revoking_a_refresh_token_ends_its_session(world: SignInWorld) -> None:
    body = await world.signed_in()
    form = {
        "token": body["refresh_token"],
        "token_type_hint": "refresh_token",
        "client_id": WEB,
    }

    revoked = await world.http.post(f"{ISSUER}/oauth2/revoke", data=form)

    assert revoked.status_code == 200
    assert not world.active(body["access_token"])
    assert (await _refresh(world, body["refresh_token"])).status_code == 400


async def test_logging_out_ends_the_refresh_tokens_too(world: SignInWorld) -> None:
    body = await world.signed_in()
    form = {"token": body["access_token"], "client_id": WEB}

    await world.http.post(f"{ISSUER}/oauth2/logout", data=form)

    assert (await _refresh(world, body["refresh_token"])).status_code == 400


async def test_a_session_ends_after_eight_hours_whatever_the_refreshes(
    world: SignInWorld,
) -> None:
    body = await world.signed_in()
    world.clock.now += 8 * 60 * 60

    response = await _refresh(world, body["refresh_token"])

    assert response.json()["error"] == "invalid_grant"
