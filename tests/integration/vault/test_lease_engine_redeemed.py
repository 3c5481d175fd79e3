"""``access.redeemed_jtis``: an OBO ``jti`` mints one role, ever, restarts included."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from lease_support import admin_rows, grant_spec, lease_engine, leased

from trustloop.devstack.vault.lease_engine import AlreadyRedeemedError

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo

pytestmark = pytest.mark.integration


def _ledger(cluster: ClusterInfo, jti: str) -> list[tuple[object, ...]]:
    return admin_rows(
        cluster, "SELECT expires_at FROM access.redeemed_jtis WHERE jti = %s", jti
    )


def _patient(cluster: ClusterInfo) -> str:
    return str(admin_rows(cluster, "SELECT id FROM clinical.patients LIMIT 1")[0][0])


def test_a_jti_mints_once_even_through_a_new_engine_after_its_revoke(
    cluster: ClusterInfo,
) -> None:
    """A second engine stands for Vault restarted: its in-memory ledger is empty."""
    spec = grant_spec(_patient(cluster), "read")
    token_exp = datetime.now(UTC) + timedelta(seconds=45)
    spec = dataclasses.replace(spec, token_expires_at=token_exp)
    with lease_engine(cluster) as engine, leased(engine, spec):
        pass  # minted, used, revoked

    with lease_engine(cluster) as restarted, pytest.raises(AlreadyRedeemedError):
        restarted.mint(spec, lambda _: None)

    assert _ledger(cluster, spec.jti) == [(token_exp,)]
    assert (
        admin_rows(cluster, "SELECT 1 FROM pg_roles WHERE rolname = %s", spec.role_name)
        == []
    )
    assert (
        admin_rows(cluster, "SELECT 1 FROM access.grants WHERE jti = %s", spec.jti)
        == []
    )


def test_a_mint_that_fails_leaves_no_ledger_row(cluster: ClusterInfo) -> None:
    """One transaction: a refused mint does not use up its token either."""
    bad_group = grant_spec(_patient(cluster), "read", groups=("no_such_group_role",))
    audit_down = grant_spec(_patient(cluster), "read")

    def unwritable_audit(_: object) -> None:
        raise RuntimeError("audit down")

    with lease_engine(cluster) as engine:
        with pytest.raises(Exception, match="no_such_group_role"):
            engine.mint(bad_group, lambda _: None)
        with pytest.raises(RuntimeError, match="audit down"):
            engine.mint(audit_down, unwritable_audit)
        with leased(engine, audit_down):  # the token was not used up
            pass

    assert _ledger(cluster, bad_group.jti) == []
    assert len(_ledger(cluster, audit_down.jti)) == 1


def test_forgetting_drops_only_tokens_expired_past_the_grace(
    cluster: ClusterInfo,
) -> None:
    now = datetime.now(UTC)
    expired = dataclasses.replace(
        grant_spec(_patient(cluster), "read"),
        token_expires_at=now - timedelta(seconds=30),
    )
    recent = dataclasses.replace(
        grant_spec(_patient(cluster), "read"),
        token_expires_at=now - timedelta(seconds=2),
    )
    live = grant_spec(_patient(cluster), "read")
    with lease_engine(cluster) as engine:
        for spec in (expired, recent, live):
            with leased(engine, spec):
                pass
        forgotten = engine.forget_redeemed(grace_s=5)

    assert forgotten >= 1
    assert _ledger(cluster, expired.jti) == []
    assert len(_ledger(cluster, recent.jti)) == 1
    assert len(_ledger(cluster, live.jti)) == 1
