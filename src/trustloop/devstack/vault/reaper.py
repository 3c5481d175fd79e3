"""The reaper: revokes every expired lease, so a dead client never leaves a role behind.

It works from the database, not from memory: every ``obo_`` role whose grant row
has expired or is missing, and every expired grant row, is revoked every
``interval_s``. At start-up (:meth:`Reaper.reap_at_start`) it revokes every
``obo_`` role and grant row with no live lease in this process's lease table,
expired or not: leases a previous run issued can no longer be revoked by lease
id, so their roles go now instead of at their expiry.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import structlog

from trustloop.audit.chain import AuditWriteError
from trustloop.devstack.jwtcheck import LEEWAY_S, Clock
from trustloop.devstack.vault.audit import AuditDevice
from trustloop.devstack.vault.lease_engine import (
    LeaseEngine,
    LeaseEngineError,
    RevokeFailedError,
)
from trustloop.devstack.vault.leases import LeaseTable

log = structlog.get_logger(__name__)

REAP_INTERVAL_S = 2.0
STUCK_RETRY_ROUNDS = 30  # a role that cannot be dropped is retried every 30 rounds


class Reaper:
    """A daemon thread calling :meth:`reap_once` every ``interval_s`` seconds."""

    def __init__(
        self,
        engine: LeaseEngine,
        leases: LeaseTable,
        audit: AuditDevice,
        *,
        interval_s: float = REAP_INTERVAL_S,
        clock: Clock = time.time,
    ) -> None:
        self._engine = engine
        self._leases = leases
        self._audit = audit
        self._interval_s = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stuck: dict[str, float] = {}  # role -> when to try it again

    def reap_once(self) -> list[str]:
        """Revoke every expired or orphaned role now; answer the roles removed.

        Then end any session still running as a dropped role
        (:meth:`LeaseEngine.end_orphaned_sessions`).
        """
        removed = self._reap_all(self._engine.expired_roles())
        self._engine.end_orphaned_sessions()
        self._engine.forget_redeemed(grace_s=LEEWAY_S)
        return removed

    def reap_at_start(self) -> list[str]:
        """Revoke every role without a live lease here; answer the roles removed."""
        live = self._leases.live_roles(datetime.fromtimestamp(self._clock(), UTC))
        removed = self._reap_all(
            [r for r in self._engine.every_role() if r not in live]
        )
        self._engine.end_orphaned_sessions()
        return removed

    def _reap_all(self, candidates: list[str]) -> list[str]:
        now = self._clock()
        due = [r for r in candidates if self._stuck.get(r, 0) <= now]
        removed = [role for role in due if self._reap(role)]
        self._leases.drop_expired(datetime.fromtimestamp(self._clock(), UTC))
        return removed

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="vault-lease-reaper", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.reap_once()
            except Exception:
                log.exception("lease_reaper_failed")

    def _reap(self, role_name: str) -> bool:
        try:
            self._engine.revoke(role_name)
        except RevokeFailedError:
            log.warning("lease_reap_failed", role=role_name)  # next round retries
            return False
        except LeaseEngineError:
            # Already without login; needs an operator. Retry now and then, quietly.
            if role_name not in self._stuck:
                log.error("lease_revoke_incomplete", role=role_name)
            retry_s = self._interval_s * STUCK_RETRY_ROUNDS
            self._stuck[role_name] = self._clock() + retry_s
            return False
        except Exception:
            log.exception("lease_reap_failed", role=role_name)
            return False
        self._stuck.pop(role_name, None)

        lease = self._leases.pop_role(role_name)
        jti = lease.jti if lease else str(uuid.UUID(hex=role_name.removeprefix("obo_")))
        lease_id = lease.lease_id if lease else ""
        log.info("lease_revoked", reason="expired", jti=jti, lease_id=lease_id)
        try:
            self._audit.log_event(
                "lease_expired", role=role_name, jti=jti, lease_id=lease_id
            )
        except AuditWriteError:
            log.error("audit_write_failed", path="lease_expired")
        return True
