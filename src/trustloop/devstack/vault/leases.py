"""Lease ids and the in-memory lease table.

A lease id is ``<mount>/creds/<role>/<random>`` as Vault names them. The table is
only an index from lease id to database role: the database is the source of
truth, and the reaper revokes from it. A role with no lease here when the
stand-in starts belongs to a lease nobody can revoke any more (a restart lost
it): the reaper removes it at once rather than at its expiry.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import datetime


def new_lease_id(mount: str, role: str) -> str:
    return f"{mount}/creds/{role}/{secrets.token_urlsafe(18)}"


@dataclass(frozen=True)
class Lease:
    """A credential lease: the database role it stands for and who owns it."""

    lease_id: str
    role_name: str
    jti: str
    owner: str
    issue_time: datetime
    expire_time: datetime


class LeaseTable:
    """Leases by id; safe to share between request threads and the reaper."""

    def __init__(self) -> None:
        self._by_id: dict[str, Lease] = {}
        self._lock = threading.Lock()

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._by_id[lease.lease_id] = lease

    def get(self, lease_id: str) -> Lease | None:
        with self._lock:
            return self._by_id.get(lease_id)

    def discard(self, lease_id: str) -> None:
        with self._lock:
            self._by_id.pop(lease_id, None)

    def pop_role(self, role_name: str) -> Lease | None:
        """Forget the lease of ``role_name`` (the reaper removed the role)."""
        with self._lock:
            for lease_id, lease in self._by_id.items():
                if lease.role_name == role_name:
                    return self._by_id.pop(lease_id)
        return None

    def live_roles(self, now: datetime) -> set[str]:
        """The roles of leases that have not ended at ``now``."""
        with self._lock:
            return {v.role_name for v in self._by_id.values() if v.expire_time > now}

    def drop_expired(self, now: datetime) -> None:
        with self._lock:
            for lease_id in [k for k, v in self._by_id.items() if v.expire_time <= now]:
                del self._by_id[lease_id]

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_id)
