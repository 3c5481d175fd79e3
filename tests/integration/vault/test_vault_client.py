"""The production client (hvac): explicit token only, errors translated."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from vault_support import Tokens, VaultUnderTest

from trustloop.identity.vault import (
    VaultError,
    VaultLeaseClient,
    VaultUnavailableError,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from trustloop.identity.rar import AuthorizationDetail

pytestmark = pytest.mark.integration

POISON = "hvs.poisoned-token-from-the-environment"


def test_client_ignores_vault_token_and_token_file(
    vault: VaultUnderTest,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """hvac would send VAULT_TOKEN or ~/.vault-token; the audit shows none was sent."""
    monkeypatch.setenv("VAULT_TOKEN", POISON)
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:1")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".vault-token").write_text(POISON + "-file")
    client = vault.client()

    with pytest.raises(VaultError) as before_login:
        client.revoke("verify-rar/creds/clinical/anything")
    client.login(tokens.svid())
    lease = client.issue(tokens.obo(first_patient))
    client.revoke(lease.lease_id)

    audit = vault.audit_path.read_text()
    assert before_login.value.status == 403
    assert vault.parts.audit.hash(POISON) not in audit
    assert vault.parts.audit.hash(POISON + "-file") not in audit


def test_issue_before_login_is_refused_without_a_request(
    vault: VaultUnderTest, tokens: Tokens, first_patient: AuthorizationDetail
) -> None:
    with pytest.raises(VaultError, match="login"):
        vault.client().issue(tokens.obo(first_patient))


def test_unreachable_vault_raises_unavailable(tokens: Tokens) -> None:
    client = VaultLeaseClient(
        "http://127.0.0.1:1", auth_role="mcp-server", creds_role="clinical"
    )
    with pytest.raises(VaultUnavailableError):
        client.login(tokens.svid())


def test_lease_repr_never_shows_the_password(
    vault: VaultUnderTest, tokens: Tokens, first_patient: AuthorizationDetail
) -> None:
    client = vault.client()
    client.login(tokens.svid())
    lease = client.issue(tokens.obo(first_patient))
    client.revoke(lease.lease_id)
    assert lease.password not in repr(lease)
    assert lease.jti in repr(lease)


def test_token_vault_no_longer_knows_asks_for_a_new_login(
    start_vault: Callable[[], VaultUnderTest],
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    """Client tokens live in the stand-in's memory: a fresh instance knows none."""
    first, second = start_vault(), start_vault()
    client = first.client()
    client.login(tokens.svid())
    client._client.url = second.url  # the same address, restarted

    with pytest.raises(VaultError) as refused:
        client.issue(tokens.obo(first_patient))
    assert refused.value.status == 403
    assert client.needs_login()
    client.login(tokens.svid())
    client.revoke(client.issue(tokens.obo(first_patient)).lease_id)
