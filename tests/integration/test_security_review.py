"""Attacks from the security review, against real PostgreSQL and real HTTP servers.

Each test states a property an attacker would like to break; it failed before
the fix named in its docstring.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from loopback import ServerThread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from trustloop.devstack.vault.lease_engine import (
    GrantSpec,
    LeaseEngine,
    role_name_for,
)
from trustloop.devstack.vault.pgpool import ConnectionPool
from trustloop.identity.vault import VaultError, VaultLeaseClient

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trustloop.devstack.postgres import ClusterInfo

LEASE_ENGINE = "trustloop_lease_engine"
CLIENT_TOKEN = "hvs.client-token-SECRET"
OBO_TOKEN = "obo-token-SECRET"


# -- lease hygiene: nothing an ephemeral role made outlives its lease -------------


@pytest.fixture
def engine(cluster: ClusterInfo) -> Iterator[LeaseEngine]:
    pool = ConnectionPool(cluster.admin_conninfo(LEASE_ENGINE))
    yield LeaseEngine(pool)
    pool.close()


def _non_sensitive_patients(cluster: ClusterInfo) -> list[str]:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        rows = conn.execute(
            "SELECT id FROM clinical.patients WHERE NOT sensitive ORDER BY id LIMIT 2"
        ).fetchall()
    return [str(row[0]) for row in rows]


def _mint(engine: LeaseEngine, patient_id: str, sub: str) -> tuple[str, str]:
    jti = str(uuid.uuid4())
    spec = GrantSpec(
        role_name=role_name_for(jti),
        jti=jti,
        clinician_sub=sub,
        rar_type="patient_record",
        action="read",
        resource_id=patient_id,
        stepped_up=False,
        expires_at=datetime.now(UTC) + timedelta(seconds=60),
        group_roles=("clinical_reader",),
    )
    credential = engine.mint(spec, lambda _: None)
    return credential.username, credential.password


@pytest.mark.integration
def test_large_object_stashed_under_one_lease_is_unreadable_by_the_next(
    cluster: ClusterInfo, engine: LeaseEngine
) -> None:
    """A lease cannot leave a chart behind for a later lease on another patient.

    Any role may create large objects and grant them to PUBLIC. Revoke used to
    ``REASSIGN OWNED`` them to the lease engine, so they survived, readable by
    every later ephemeral role outside row-level security. Fixed in
    ``lease_engine._drop_owned`` (the role's objects are dropped, not kept).
    """
    first, second = _non_sensitive_patients(cluster)
    role, password = _mint(engine, first, "clin-achen")
    with psycopg.connect(cluster.tcp_conninfo(role, password), autocommit=True) as conn:
        row = conn.execute(
            "SELECT lo_from_bytea(0, convert_to(clinical.patient_resource(%s)::text,"
            " 'UTF8'))",
            [first],
        ).fetchone()
        assert row is not None
        stash = int(row[0])
        conn.execute(f"GRANT SELECT ON LARGE OBJECT {stash} TO PUBLIC")
    engine.revoke(role)

    other_role, other_password = _mint(engine, second, "clin-bokafor")
    try:
        with psycopg.connect(
            cluster.tcp_conninfo(other_role, other_password), autocommit=True
        ) as conn:
            try:
                leaked = conn.execute("SELECT lo_get(%s)", [stash]).fetchone()
            except psycopg.Error:
                leaked = None
    finally:
        engine.revoke(other_role)

    assert leaked is None
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = %s", [stash]
        ).fetchone()
    assert left == (0,)


# -- leaks: Vault credentials and OBO tokens go to Vault's address only -----------


@dataclass
class Elsewhere:
    """A server that should never hear from the Vault client: it records requests."""

    received: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def anything(request: Request) -> Response:
            self.received.append(
                {"headers": dict(request.headers), "body": await request.body()}
            )
            return JSONResponse(
                {"auth": {"client_token": CLIENT_TOKEN, "lease_duration": 300}}
            )

        return Starlette(
            routes=[Route("/{path:path}", anything, methods=["GET", "POST", "PUT"])]
        )


def _redirecting_vault(target: str) -> Starlette:
    """Answers the JWT login, then redirects everything else to ``target``."""

    async def login(request: Request) -> Response:
        return JSONResponse(
            {"auth": {"client_token": CLIENT_TOKEN, "lease_duration": 300}}
        )

    async def redirect(request: Request) -> Response:
        return RedirectResponse(target + request.url.path, status_code=307)

    return Starlette(
        routes=[
            Route("/v1/auth/jwt/login", login, methods=["POST", "PUT"]),
            Route("/{path:path}", redirect, methods=["GET", "POST", "PUT"]),
        ]
    )


@pytest.fixture
def elsewhere() -> Iterator[tuple[Elsewhere, str]]:
    sink = Elsewhere()
    server = ServerThread(sink.app()).start()
    yield sink, server.url
    server.stop()


@pytest.mark.integration
def test_vault_client_does_not_follow_a_redirect_with_its_token_and_the_obo(
    elsewhere: tuple[Elsewhere, str],
) -> None:
    """A 307 from Vault's address must not carry ``X-Vault-Token`` and the OBO
    token to another origin (requests keeps custom headers and, for 307/308, the
    body). Fixed in ``identity.vault._explicit_client``: redirects are refused."""
    sink, sink_url = elsewhere
    server = ServerThread(_redirecting_vault(sink_url)).start()
    client = VaultLeaseClient(server.url, auth_role="mcp-server", creds_role="clinical")
    try:
        client.login("svid-" + secrets.token_hex(4))
        with pytest.raises(VaultError):
            client.issue(OBO_TOKEN)
        with pytest.raises(VaultError):
            client.revoke("verify-rar/creds/clinical/abc")
    finally:
        client.close()
        server.stop()

    assert sink.received == []
