"""Assemble the Vault stand-in: routes, audit device, lease engine and reaper.

``build_app`` takes the settings (which name the IdP, the SPIFFE bundle, the
audience and the state directory) and the lease engine's PostgreSQL conninfo.
The lifespan reaps leftovers from a previous run before serving, then starts the
reaper thread; shutdown stops it and closes the connections.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trustloop.audit.chain import AuditLog
from trustloop.body_limit import BodyLimit
from trustloop.devstack.jwtcheck import Clock, JwksCache
from trustloop.devstack.vault.audit import AuditDevice, load_hmac_key
from trustloop.devstack.vault.endpoint import MAX_BODY_BYTES, Gateway
from trustloop.devstack.vault.errors import error_response
from trustloop.devstack.vault.jwt_auth import JwtAuth, JwtRole
from trustloop.devstack.vault.lease_engine import LeaseEngine
from trustloop.devstack.vault.leases import LeaseTable
from trustloop.devstack.vault.pgpool import ConnectionPool
from trustloop.devstack.vault.reaper import REAP_INTERVAL_S, Reaper
from trustloop.devstack.vault.sys_routes import Health, LeaseRoutes
from trustloop.devstack.vault.tokens import TokenStore
from trustloop.devstack.vault.verify_rar import OboVerifier, VerifyRarEngine
from trustloop.settings import Settings

POLICIES = ("verify-rar-clinical",)
# Idle lease-engine connections kept: enough for a mint and a revoke per call of
# 16 concurrent clinicians, so a busy stack does not open (fork) a PostgreSQL
# backend per mint; bench/load.py measured the difference (docs/performance.md).
POOL_IDLE = 16
OBO_KEYS_MIN_REFRESH_S = 1.0


@dataclass(frozen=True)
class VaultParts:
    """The stateful pieces, exposed for tests and the entry point."""

    audit: AuditDevice
    tokens: TokenStore
    leases: LeaseTable
    engine: LeaseEngine
    reaper: Reaper
    pool: ConnectionPool


def build_app(
    settings: Settings,
    *,
    conninfo: str,
    clock: Clock = time.time,
    reap_interval_s: float = REAP_INTERVAL_S,
    idp_jwks_url: str | None = None,
) -> Starlette:
    """The stand-in as an ASGI app; ``app.state.parts`` holds its parts.

    ``idp_jwks_url`` is where the OBO tokens' keys are fetched (Vault's JWT auth
    ``jwks_url``, configured apart from ``bound_issuer``); by default the IdP's
    ``/oauth2/jwks``.
    """
    parts = _parts(settings, conninfo, clock, reap_interval_s)
    gateway = Gateway(parts.audit, parts.tokens)
    auth = _jwt_auth(settings, parts.tokens, clock)
    creds = VerifyRarEngine(
        _obo_verifier(settings, clock, idp_jwks_url),
        parts.engine,
        parts.leases,
        clock=clock,
    )
    leases = LeaseRoutes(parts.engine, parts.leases, clock)
    both = ["POST", "PUT"]
    routes = [
        Route("/v1/auth/jwt/login", gateway.route("update", auth.login), methods=both),
        Route(
            "/v1/verify-rar/creds/{role}",
            gateway.route("update", creds.creds),
            methods=both,
        ),
        Route(
            "/v1/sys/leases/revoke",
            gateway.route("update", leases.revoke),
            methods=["PUT"],
        ),
        Route(
            "/v1/sys/leases/lookup",
            gateway.route("update", leases.lookup),
            methods=["PUT"],
        ),
        Route("/v1/sys/health", Health(clock).endpoint, methods=["GET", "HEAD"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=_lifespan(parts),
        exception_handlers={HTTPException: _http_error},
    )
    # Before any handler reads it: a 200 MB body was read whole, unauthenticated.
    app.add_middleware(
        BodyLimit,
        max_bytes=MAX_BODY_BYTES,
        error=lambda reason: {"errors": [reason]},
        event="vault_request_refused",
    )
    app.state.parts = parts
    return app


def _parts(
    settings: Settings, conninfo: str, clock: Clock, reap_interval_s: float
) -> VaultParts:
    key = load_hmac_key(settings.state_dir / "vault" / "audit-hmac.key")
    audit = AuditDevice(AuditLog(settings.audit_dir / "vault.jsonl", "vault"), key)
    pool = ConnectionPool(conninfo, max_idle=POOL_IDLE)
    engine = LeaseEngine(pool, clock=clock)
    leases = LeaseTable()
    reaper = Reaper(engine, leases, audit, interval_s=reap_interval_s, clock=clock)
    tokens = TokenStore(clock=clock, path=settings.state_dir / "vault" / "tokens.json")
    return VaultParts(audit, tokens, leases, engine, reaper, pool)


def _jwt_auth(settings: Settings, tokens: TokenStore, clock: Clock) -> JwtAuth:
    role = JwtRole(
        name=settings.vault_auth_role,
        bound_subject=settings.mcp_spiffe_id,
        bound_audience=settings.vault_audience,
        policies=POLICIES,
    )
    bundle = JwksCache(settings.spire_bundle_url.rstrip("/") + "/keys")
    return JwtAuth(
        {role.name: role},
        bundle=bundle,
        trust_domain=settings.trust_domain,
        tokens=tokens,
        clock=clock,
    )


def _obo_verifier(
    settings: Settings, clock: Clock, jwks_url: str | None
) -> OboVerifier:
    # An unknown kid refetches at most once a second: a stand-in IdP restarted
    # twice within the default 5 s (faster since docs/performance.md's work) had
    # its new keys refused until the window passed.
    keys = JwksCache(
        jwks_url or settings.idp_url.rstrip("/") + "/oauth2/jwks",
        min_refresh_s=OBO_KEYS_MIN_REFRESH_S,
    )
    return OboVerifier(
        keys,
        issuer=settings.idp_issuer,
        audience=settings.vault_audience,
        clock=clock,
        issued_after=clock() - 5,
    )


def _lifespan(
    parts: VaultParts,
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(parts.reaper.reap_at_start)
        parts.reaper.start()
        try:
            yield
        finally:
            parts.reaper.stop()
            parts.pool.close()

    return lifespan


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing errors in Vault's shape (``{"errors": [...]}``)."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    messages = {404: "unsupported path", 405: "unsupported operation"}
    return error_response(status, messages.get(status, "internal error"))
