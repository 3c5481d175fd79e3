"""The SPIRE stand-in, driven by the unmodified py-spiffe client over unix sockets."""

from __future__ import annotations

import json
import stat
from typing import TYPE_CHECKING

import grpc
import httpx
import pytest
from joserfc import jws
from spiffe import JwtSvid, SpiffeId, TrustDomain, WorkloadApiClient
from spiffe._proto import workload_pb2, workload_pb2_grpc
from spiffe.workloadapi.errors import FetchJwtSvidError, ValidateJwtSvidError

from trustloop.devstack.jwtcheck import JwksCache, verify_jwt_svid
from trustloop.devstack.spire import SpireServer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

TRUST_DOMAIN = TrustDomain("trustloop.local")
MCP_ID = "spiffe://trustloop.local/mcp-server"
RUNTIME_ID = "spiffe://trustloop.local/agent-runtime"
HEADER = (("workload.spiffe.io", "true"),)


def _client(spire: SpireServer, workload: str) -> WorkloadApiClient:
    return WorkloadApiClient(f"unix:{spire.socket_path(workload)}", default_timeout=5)


@pytest.fixture
def mcp_client(spire: SpireServer) -> Iterator[WorkloadApiClient]:
    with _client(spire, "mcp-server") as client:
        yield client


@pytest.fixture
def raw_stub(spire: SpireServer) -> Iterator[workload_pb2_grpc.SpiffeWorkloadAPIStub]:
    with grpc.insecure_channel(f"unix:{spire.socket_path('mcp-server')}") as channel:
        yield workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)  # type: ignore[no-untyped-call]


def test_jwt_svid_names_the_socket_workload_and_validates_against_the_bundle(
    mcp_client: WorkloadApiClient,
) -> None:
    svid = mcp_client.fetch_jwt_svid(audience={"trustloop-vault"})
    bundle = mcp_client.fetch_jwt_bundles().get_bundle_for_trust_domain(TRUST_DOMAIN)

    assert bundle is not None
    validated = JwtSvid.parse_and_validate(svid.token, bundle, {"trustloop-vault"})
    assert str(validated.spiffe_id) == MCP_ID
    assert str(svid.spiffe_id) == MCP_ID


def test_jwt_svid_has_kid_typ_list_audience_and_five_minute_lifetime(
    mcp_client: WorkloadApiClient,
) -> None:
    svid = mcp_client.fetch_jwt_svid(audience={"trustloop-vault"})
    compact = jws.extract_compact(svid.token.encode())
    header = compact.headers()
    claims = json.loads(compact.payload)

    assert header["alg"] == "ES256"
    assert header["typ"] == "JWT"
    assert header["kid"]
    assert claims["aud"] == ["trustloop-vault"]
    assert claims["sub"] == MCP_ID
    assert claims["exp"] - claims["iat"] == 300


def test_each_socket_is_its_own_workload(spire: SpireServer) -> None:
    with _client(spire, "agent-runtime") as client:
        svid = client.fetch_jwt_svid(audience={"http://127.0.0.1:9400"})

    assert str(svid.spiffe_id) == RUNTIME_ID


def test_one_socket_cannot_get_another_workloads_id(spire: SpireServer) -> None:
    with (
        _client(spire, "agent-runtime") as client,
        pytest.raises(FetchJwtSvidError, match="PERMISSION_DENIED"),
    ):
        client.fetch_jwt_svid(audience={"trustloop-vault"}, subject=SpiffeId(MCP_ID))


def test_requesting_its_own_id_explicitly_is_allowed(
    mcp_client: WorkloadApiClient,
) -> None:
    svid = mcp_client.fetch_jwt_svid(
        audience={"trustloop-vault"}, subject=SpiffeId(MCP_ID)
    )

    assert str(svid.spiffe_id) == MCP_ID


def test_missing_audience_is_refused(
    raw_stub: workload_pb2_grpc.SpiffeWorkloadAPIStub,
) -> None:
    # py-spiffe refuses an empty audience itself, so ask over the raw stub.
    with pytest.raises(grpc.RpcError) as caught:
        raw_stub.FetchJWTSVID(workload_pb2.JWTSVIDRequest(), metadata=HEADER, timeout=5)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "metadata",
    [(), (("workload.spiffe.io", "false"),)],
    ids=["absent", "not-true"],
)
def test_request_without_the_workload_security_header_is_refused(
    raw_stub: workload_pb2_grpc.SpiffeWorkloadAPIStub,
    metadata: tuple[tuple[str, str], ...],
) -> None:
    request = workload_pb2.JWTSVIDRequest(audience=["trustloop-vault"])

    with pytest.raises(grpc.RpcError) as caught:
        raw_stub.FetchJWTSVID(request, metadata=metadata, timeout=5)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "security header" in caught.value.details()


def test_http_jwks_is_the_same_document_as_the_grpc_bundle(
    spire: SpireServer, raw_stub: workload_pb2_grpc.SpiffeWorkloadAPIStub
) -> None:
    stream = raw_stub.FetchJWTBundles(
        workload_pb2.JWTBundlesRequest(), metadata=HEADER, timeout=5
    )
    grpc_bundle = next(stream).bundles["trustloop.local"]
    stream.cancel()

    response = httpx.get(f"{spire.bundle_url}/keys")

    assert response.status_code == 200
    assert response.content == grpc_bundle
    (key,) = response.json()["keys"]
    assert key["use"] == "jwt-svid"
    assert key["kid"]
    assert "d" not in key


def test_discovery_document_points_at_the_keys(spire: SpireServer) -> None:
    response = httpx.get(f"{spire.bundle_url}/.well-known/openid-configuration")

    assert response.status_code == 200
    assert response.json()["jwks_uri"] == f"{spire.bundle_url}/keys"


def test_validate_jwt_svid_accepts_a_valid_svid_and_refuses_another_audience(
    mcp_client: WorkloadApiClient,
) -> None:
    svid = mcp_client.fetch_jwt_svid(audience={"trustloop-vault"})

    validated = mcp_client.validate_jwt_svid(svid.token, "trustloop-vault")
    assert str(validated.spiffe_id) == MCP_ID
    with pytest.raises(ValidateJwtSvidError, match="INVALID_ARGUMENT"):
        mcp_client.validate_jwt_svid(svid.token, "someone-else")


def test_x509_svid_names_the_socket_workload_and_chains_to_the_bundle(
    mcp_client: WorkloadApiClient,
) -> None:
    svid = mcp_client.fetch_x509_svid()
    bundles = mcp_client.fetch_x509_bundles()
    bundle = bundles.get_bundle_for_trust_domain(TRUST_DOMAIN)

    assert str(svid.spiffe_id) == MCP_ID
    assert bundle is not None
    (authority,) = bundle.x509_authorities
    svid.leaf.verify_directly_issued_by(authority)


def test_workload_sockets_are_private(spire: SpireServer) -> None:
    for workload in ("mcp-server", "agent-runtime"):
        mode = spire.socket_path(workload).stat().st_mode

        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(spire.socket_dir.stat().st_mode) == 0o700


def test_jwtcheck_verifies_svids_with_the_http_bundle(
    spire: SpireServer, mcp_client: WorkloadApiClient
) -> None:
    svid = mcp_client.fetch_jwt_svid(audience={"trustloop-vault"})
    keys = JwksCache(f"{spire.bundle_url}/keys")

    spiffe_id = verify_jwt_svid(
        svid.token, keys, audience="trustloop-vault", trust_domain="trustloop.local"
    )

    assert spiffe_id == MCP_ID
