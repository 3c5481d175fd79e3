"""trustloop.identity.spiffe against the SPIRE stand-in on a real unix socket."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
import structlog
from fakeclock import FakeClock
from spiffe import JwtSvid, TrustDomain, WorkloadApiClient

from trustloop.devstack.spire import SpireServer, serve_in_background
from trustloop.identity.spiffe import JwtSvidToken, WorkloadApiError, WorkloadIdentity
from trustloop.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

MCP_ID = "spiffe://trustloop.local/mcp-server"
VAULT = "trustloop-vault"


@pytest.fixture
def socket(spire: SpireServer) -> str:
    return f"unix://{spire.socket_path('mcp-server')}"


def test_fetched_svid_names_the_workload_and_verifies_against_the_bundle(
    socket: str,
) -> None:
    with WorkloadIdentity(socket) as identity:
        svid = identity.fetch_jwt_svid(VAULT)
    with WorkloadApiClient(socket) as client:
        bundles = client.fetch_jwt_bundles()
    bundle = bundles.get_bundle_for_trust_domain(TrustDomain("trustloop.local"))

    assert svid.spiffe_id == MCP_ID
    assert bundle is not None
    validated = JwtSvid.parse_and_validate(svid.token, bundle, {VAULT})
    assert validated.expiry == svid.expiry


def test_socket_comes_from_spiffe_endpoint_socket(
    socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPIFFE_ENDPOINT_SOCKET", socket)

    with WorkloadIdentity() as identity:
        svid = identity.fetch_jwt_svid(VAULT)

    assert svid.spiffe_id == MCP_ID


def test_repr_and_str_never_show_the_token(socket: str) -> None:
    with WorkloadIdentity(socket) as identity:
        svid = identity.fetch_jwt_svid(VAULT)

    for shown in (repr(svid), str(svid), f"{svid}", repr([svid])):
        assert svid.token not in shown
        assert svid.token.split(".")[2] not in shown
        assert "redacted" in shown


def test_fetch_logs_no_token(socket: str) -> None:
    with structlog.testing.capture_logs() as logs, WorkloadIdentity(socket) as identity:
        svid = identity.fetch_jwt_svid(VAULT)

    assert [entry["event"] for entry in logs] == ["jwt_svid_fetched"]
    assert svid.token not in repr(logs)


def test_svid_is_cached_per_audience_until_half_its_lifetime(socket: str) -> None:
    start = time.time()
    clock = FakeClock(start)
    with WorkloadIdentity(socket, clock=clock) as identity:
        first = identity.fetch_jwt_svid(VAULT)
        other = identity.fetch_jwt_svid("http://127.0.0.1:9400")
        clock.now = start + 149  # the SVID lives 300 s
        again = identity.fetch_jwt_svid(VAULT)
        clock.now = start + 151
        renewed = identity.fetch_jwt_svid(VAULT)

    assert again is first
    assert other is not first
    assert renewed is not first
    assert renewed.expiry >= first.expiry


async def test_async_fetch_serves_the_cache_without_a_thread(socket: str) -> None:
    with WorkloadIdentity(socket) as identity:
        first = await identity.afetch_jwt_svid(VAULT)
        again = await identity.afetch_jwt_svid(VAULT)

    assert again is first


def test_missing_socket_is_a_workload_api_error(tmp_path: Path) -> None:
    identity = WorkloadIdentity(f"unix://{tmp_path}/nowhere.sock")

    with pytest.raises(WorkloadApiError, match="could not fetch a JWT-SVID"):
        identity.fetch_jwt_svid(VAULT)


def test_unreachable_workload_api_is_an_error_and_a_restart_is_picked_up(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("restart"),
        spire_bundle_url="http://127.0.0.1:0",
    )
    with serve_in_background(settings) as server:
        socket = f"unix://{server.socket_path('mcp-server')}"
        identity = WorkloadIdentity(socket, timeout_s=1.0)
        identity.fetch_jwt_svid(VAULT)

    with pytest.raises(WorkloadApiError, match="could not fetch a JWT-SVID") as caught:
        identity.fetch_jwt_svid("another-audience")
    with serve_in_background(settings):
        svid = identity.fetch_jwt_svid("another-audience")
    identity.close()

    assert "(" in str(caught.value)
    assert svid.spiffe_id == MCP_ID


def test_empty_audience_is_refused_before_any_call() -> None:
    with pytest.raises(ValueError, match="audience"):
        WorkloadIdentity("unix:///nonexistent.sock").fetch_jwt_svid("")


def test_repr_shows_spiffe_id_and_expiry_only() -> None:
    svid = JwtSvidToken(MCP_ID, 123, "a.b.c")

    assert repr(svid) == (
        "JwtSvidToken(spiffe_id='spiffe://trustloop.local/mcp-server', "
        "expiry=123, token=<redacted>)"
    )
