"""Fixtures for the Vault stand-in: JWKS server, stand-ins, a logged-in client."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pytest
from loopback import ServerThread
from vault_support import (
    AUDIENCE,
    LEASE_ENGINE,
    TRUST_DOMAIN,
    Signers,
    Tokens,
    VaultUnderTest,
    new_key,
)

from trustloop.devstack.vault.app import build_app
from trustloop.identity.rar import AuthorizationDetail, patient_read
from trustloop.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.identity.vault import VaultLeaseClient


@pytest.fixture(scope="session")
def signers() -> Signers:
    return Signers(
        spiffe=new_key("spiffe-1"), idp=new_key("idp-1"), rogue=new_key("spiffe-1")
    )


@pytest.fixture(scope="session")
def jwks_url(signers: Signers) -> Iterator[str]:
    server = ServerThread(signers.jwks_app()).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def tokens(signers: Signers, jwks_url: str) -> Tokens:
    return Tokens(signers, issuer=jwks_url)


@pytest.fixture(scope="session")
def start_vault(
    cluster: ClusterInfo, jwks_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], VaultUnderTest]]:
    """Start stand-ins (each with its own state dir); all stopped at session end."""
    servers: list[ServerThread] = []

    def start() -> VaultUnderTest:
        settings = Settings(
            state_dir=tmp_path_factory.mktemp("vault-state"),
            idp_url=jwks_url,
            spire_bundle_url=jwks_url,
            trust_domain=TRUST_DOMAIN,
            vault_audience=AUDIENCE,
        )
        app = build_app(
            settings,
            conninfo=cluster.admin_conninfo(LEASE_ENGINE),
            reap_interval_s=0.2,
        )
        server = ServerThread(app).start()
        servers.append(server)
        return VaultUnderTest(server.url, app.state.parts, settings, cluster)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def vault(start_vault: Callable[[], VaultUnderTest]) -> VaultUnderTest:
    return start_vault()


@pytest.fixture
def client(vault: VaultUnderTest, tokens: Tokens) -> Iterator[VaultLeaseClient]:
    """A logged-in production client."""
    lease_client = vault.client()
    lease_client.login(tokens.svid())
    yield lease_client
    lease_client.close()


@pytest.fixture(scope="session")
def patient_ids(cluster: ClusterInfo) -> list[str]:
    """Two non-sensitive patients of the demo data."""
    with psycopg.connect(cluster.admin_conninfo("trustloop_idp")) as conn:
        rows = conn.execute(
            "SELECT id FROM clinical.patients WHERE NOT sensitive ORDER BY id LIMIT 2"
        ).fetchall()
    ids = [str(row[0]) for row in rows]
    assert len(ids) == 2
    return ids


@pytest.fixture
def first_patient(patient_ids: list[str]) -> AuthorizationDetail:
    return patient_read(patient_ids[0])
