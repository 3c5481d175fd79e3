"""The Vault stand-in under 32 simultaneous ``creds`` requests, end to end over HTTP."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import psycopg
import pytest
from vault_support import LEASE_ENGINE, Tokens, VaultUnderTest

from trustloop.identity.rar import patient_read

if TYPE_CHECKING:
    from trustloop.identity.vault import Lease

pytestmark = pytest.mark.integration

CONCURRENT = 32


def _roles(vault: VaultUnderTest) -> set[str]:
    with psycopg.connect(vault.cluster.admin_conninfo(LEASE_ENGINE)) as conn:
        rows = conn.execute("SELECT rolname FROM pg_roles").fetchall()
    return {str(row[0]) for row in rows}


def test_32_concurrent_creds_requests_all_succeed_and_leave_pg_roles_as_it_was(
    vault: VaultUnderTest, tokens: Tokens, patient_ids: list[str]
) -> None:
    before = _roles(vault)
    barrier = threading.Barrier(CONCURRENT)

    def issue(index: int) -> Lease:
        client = vault.client()
        client.login(tokens.svid())
        obo = tokens.obo(patient_read(patient_ids[index % 2]))
        barrier.wait()
        try:
            return client.issue(obo)
        finally:
            client.close()

    with ThreadPoolExecutor(CONCURRENT) as pool:
        leases = list(pool.map(issue, range(CONCURRENT)))
    during = _roles(vault)
    revoker = vault.client()
    revoker.login(tokens.svid())
    with ThreadPoolExecutor(CONCURRENT) as pool:
        list(pool.map(lambda lease: revoker.revoke(lease.lease_id), leases))
    revoker.close()

    assert len({lease.username for lease in leases}) == CONCURRENT
    assert during - before == {lease.username for lease in leases}
    assert _roles(vault) == before
