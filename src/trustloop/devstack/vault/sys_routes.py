"""``sys/leases/revoke``, ``sys/leases/lookup``, ``sys/health``, as Vault answers.

Revoking an unknown or already revoked lease succeeds (204), as in Vault: revoke
is idempotent. A lease may be looked up or revoked only by the SPIFFE ID it was
issued to (Vault would say: by a token whose policy allows it).
"""

from __future__ import annotations

import time
import uuid

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse

from trustloop.devstack.jwtcheck import Clock
from trustloop.devstack.vault.endpoint import Exchange
from trustloop.devstack.vault.errors import (
    VaultApiError,
    bad_request,
    permission_denied,
)
from trustloop.devstack.vault.lease_engine import LeaseEngine, LeaseEngineError
from trustloop.devstack.vault.leases import Lease, LeaseTable

log = structlog.get_logger(__name__)

VERSION = "1.18.0+trustloop-devstack"


class LeaseRoutes:
    """Revoke and lookup, over the lease table and the lease engine."""

    def __init__(self, engine: LeaseEngine, leases: LeaseTable, clock: Clock) -> None:
        self._engine = engine
        self._leases = leases
        self._clock = clock

    def revoke(self, exchange: Exchange) -> None:
        """Revoke now; answer 204 whether or not the lease still existed."""
        lease = self._owned_lease(exchange)
        if lease is not None:
            self._leases.discard(lease.lease_id)
            try:
                self._engine.revoke(lease.role_name)
            except LeaseEngineError as exc:
                # Left without login, sessions or grant; the reaper retries it.
                log.error(
                    "lease_revoke_incomplete", jti=lease.jti, role=lease.role_name
                )
                raise VaultApiError(500, "failed to revoke entry") from exc
            log.info(
                "lease_revoked", reason="revoke", jti=lease.jti, lease_id=lease.lease_id
            )
        exchange.respond(204, None)

    def lookup(self, exchange: Exchange) -> None:
        lease = self._owned_lease(exchange)
        if lease is None:
            raise bad_request("invalid lease")
        ttl = max(0, int(lease.expire_time.timestamp() - self._clock()))
        data = {
            "id": lease.lease_id,
            "issue_time": lease.issue_time.isoformat(),
            "expire_time": lease.expire_time.isoformat(),
            "last_renewal": None,
            "renewable": False,
            "ttl": ttl,
        }
        exchange.respond(200, {"request_id": exchange.record.id, "data": data})

    def _owned_lease(self, exchange: Exchange) -> Lease | None:
        caller = exchange.require_auth()
        lease_id = exchange.data.get("lease_id")
        if not isinstance(lease_id, str) or not lease_id:
            raise bad_request("missing lease_id")
        exchange.record.lease_id = lease_id

        lease = self._leases.get(lease_id)
        if lease is None:
            return None
        exchange.record.jti = lease.jti
        if lease.owner != caller.spiffe_id:
            raise permission_denied()
        return lease


class Health:
    """``GET /v1/sys/health``: an initialized, unsealed, active node."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._cluster_id = str(uuid.uuid4())

    async def endpoint(self, request: Request) -> JSONResponse:
        now = self._clock()
        return JSONResponse(
            {
                "initialized": True,
                "sealed": False,
                "standby": False,
                "performance_standby": False,
                "replication_performance_mode": "disabled",
                "replication_dr_mode": "disabled",
                "server_time_utc": int(now),
                "version": VERSION,
                "enterprise": False,
                "cluster_name": "trustloop-devstack",
                "cluster_id": self._cluster_id,
                "echo_duration_ms": 0,
                "clock_skew_ms": 0,
            }
        )
