"""GET /v1.0/events: the IdP's audit file as Verify events, for JWT-SVIDs only."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey

from trustloop.audit.chain import AuditLog
from trustloop.devstack.idp.app import build_idp, create_app
from trustloop.devstack.idp.policy import PatientFacts
from trustloop.devstack.idp.users import DemoUsers
from trustloop.devstack.jwtcheck import JwksCache
from trustloop.devstack.spire.keys import JwtAuthority
from trustloop.settings import Settings

NOW = time.time()
ISSUER = "http://127.0.0.1:9400"
MCP_ID = "spiffe://trustloop.local/mcp-server"
AUDITOR_ID = "spiffe://trustloop.local/auditor"


class NoFacts:
    """The events API reads no care teams."""

    async def role(self, clinician_sub: str) -> str | None:
        return None

    async def patient(self, clinician_sub: str, patient_id: str) -> PatientFacts | None:
        return None


@dataclass
class World:
    spire: JwtAuthority
    audit: AuditLog
    http: httpx.AsyncClient

    def svid(self, spiffe_id: str = AUDITOR_ID, aud: str = ISSUER) -> str:
        return self.spire.mint(spiffe_id, [aud])

    async def get(self, token: str | None, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.get("/v1.0/events", params=params, headers=headers)

    async def page(self, **params: str) -> dict[str, Any]:
        response = await self.get(self.svid(), **params)
        assert response.status_code == 200, response.text
        events: dict[str, Any] = response.json()["response"]["events"]
        return events


def _public_key(jwk: dict[str, Any]) -> ECKey:
    return ECKey.import_key({k: v for k, v in jwk.items() if k != "use"})


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(state_dir=tmp_path, idp_url=ISSUER)
    clock = time.time  # the records carry real time; the default window ends now
    spire = JwtAuthority(settings.trust_domain, clock=clock)
    keys = JwksCache(keys=[_public_key(jwk) for jwk in json.loads(spire.jwks)["keys"]])
    idp = build_idp(
        settings, svid_keys=keys, facts=NoFacts(), users=DemoUsers({}), clock=clock
    )
    audit = AuditLog(settings.audit_dir / "idp.jsonl", "idp")
    transport = httpx.ASGITransport(app=create_app(idp))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        yield World(spire, audit, http)


def _write(world: World, path: Path, records: list[tuple[str, dict[str, Any]]]) -> None:
    lines = [
        json.dumps(
            {"time": when, "system": "idp", "event": event, **fields, "prev_hash": "x"}
        )
        for when, (event, fields) in zip(_times(len(records)), records, strict=True)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def _times(n: int) -> list[str]:
    # Pairs share a millisecond, so paging must break ties by id.
    base = NOW - 3600
    return [_iso(base + (i // 2) * 0.001) for i in range(n)]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer garbage.token.here", "Basic abc", "Bearer "],
)
async def test_events_are_refused_without_a_jwt_svid(
    world: World, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await world.http.get("/v1.0/events", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer error="invalid_token"'
    )
    assert "events" not in response.text


async def test_an_svid_for_another_audience_or_trust_domain_is_refused(
    world: World,
) -> None:
    wrong_aud = await world.get(world.svid(aud="trustloop-vault"))
    foreign = await world.get(world.svid("spiffe://elsewhere.example/auditor"))
    assert (wrong_aud.status_code, foreign.status_code) == (401, 401)


@pytest.mark.parametrize(
    "workload",
    [
        MCP_ID,
        "spiffe://trustloop.local/agent-runtime",
        "spiffe://trustloop.local/auditor/extra",
        "spiffe://trustloop.local/Auditor",
    ],
)
async def test_only_the_auditor_workload_reads_events(
    world: World, workload: str
) -> None:
    """Events name restricted patients (step-up rules): not for the MCP server or runtime."""
    world.audit.append("token_exchanged", jti="obo-1", sub="clin-achen", rule="step_up")

    refused = await world.get(world.svid(workload), all_events="yes")
    allowed = await world.get(world.svid(), all_events="yes")

    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    assert refused.headers["WWW-Authenticate"].startswith(
        'Bearer error="insufficient_scope"'
    )
    assert "obo-1" not in refused.text
    assert allowed.status_code == 200
    assert "obo-1" in allowed.text


async def test_events_have_the_verify_shape_and_default_types(world: World) -> None:
    world.audit.append("signed_in", sub="clin-achen", jti="a1")
    world.audit.append("token_exchanged", jti="obo-1", sub="clin-achen")
    world.audit.append("exchange_denied", sub="clin-achen", error="access_denied")

    default = await world.page()
    tokens = await world.page(event_type='"token"', sort_order="asc")

    assert [e["data"]["action"] for e in default["events"]] == ["signed_in"]
    assert [(e["data"]["action"], e["data"]["result"]) for e in tokens["events"]] == [
        ("token_exchanged", "success"),
        ("exchange_denied", "failure"),
    ]
    event = tokens["events"][0]
    assert event["event_type"] == "token"
    assert event["correlationid"] == "obo-1"
    assert {"id", "time", "servicename", "year", "month", "day"} <= set(event)
    assert "prev_hash" not in event["data"]
    assert tokens["search_after"]["total_events"] == 2


async def test_paging_with_after_is_stable_while_events_are_appended(
    world: World, tmp_path: Path
) -> None:
    """Every event once, none twice, though new events arrive between pages."""
    records = [
        ("token_introspected", {"jti": f"j{i}", "active": True}) for i in range(9)
    ]
    _write(world, tmp_path / "audit" / "idp.jsonl", records)
    seen: list[str] = []
    later = str(int(time.time() * 1000) + 86_400_000)  # the late events are in it
    params = {"all_events": "yes", "size": "2", "from": "0", "to": later}
    while True:
        page = await world.page(**params)
        seen.extend(e["data"]["jti"] for e in page["events"])
        if page["search_after"]["max_size_limit"] == "false":
            break
        after = page["search_after"]
        params["after"] = f'"{after["time"]}","{after["id"]}"'
        world.audit.append("token_introspected", jti="late", active=True)

    assert sorted(seen) == sorted(f"j{i}" for i in range(9))  # newest first: "late"
    # events sort before the position already passed, so no later page shows them
    assert len(seen) == len(set(seen))


async def test_window_and_bad_parameters(world: World) -> None:
    world.audit.append("signed_in", jti="now")
    soon_ms = int(time.time() * 1000) + 60_000
    future = await world.page(**{"from": str(soon_ms), "to": str(soon_ms + 1)})
    assert future["events"] == []
    assert future["search_after"]["total_events"] == 0
    for bad in ({"size": "0"}, {"size": "x"}, {"sort_order": "up"}, {"after": "1"}):
        response = await world.get(world.svid(), **bad)
        assert response.status_code == 400, bad
        assert response.json()["error"] == "invalid_request"
