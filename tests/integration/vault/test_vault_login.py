"""JWT auth: a JWT-SVID of the bound workload logs in, nothing else does."""

from __future__ import annotations

import hvac
import pytest
import requests
from vault_support import AUDIENCE, Tokens, VaultUnderTest

from trustloop.identity.vault import VaultError, VaultLeaseClient

pytestmark = pytest.mark.integration


def test_login_with_valid_svid_yields_a_client_token(
    vault: VaultUnderTest, tokens: Tokens
) -> None:
    client = vault.client()
    client.login(tokens.svid())
    assert not client.needs_login()


@pytest.mark.parametrize(
    ("label", "svid_args"),
    [
        ("wrong audience", {"aud": "someone-else"}),
        ("other workload", {"sub": "spiffe://trustloop.local/agent-runtime"}),
        ("other trust domain", {"sub": "spiffe://evil.example/mcp-server"}),
        ("expired", {"ttl": -60}),
    ],
)
def test_login_refuses_svid_not_bound_to_the_role(
    vault: VaultUnderTest, tokens: Tokens, label: str, svid_args: dict[str, str]
) -> None:
    client = vault.client()
    with pytest.raises(VaultError) as refused:
        client.login(tokens.svid(**svid_args))  # type: ignore[arg-type]
    assert refused.value.status == 400, label
    assert client.needs_login()


def test_login_refuses_svid_signed_by_an_unpublished_key(
    vault: VaultUnderTest, tokens: Tokens
) -> None:
    """Same ``kid`` as the real SPIFFE key, different key: the signature fails."""
    client = vault.client()
    with pytest.raises(VaultError) as refused:
        client.login(tokens.svid(key=tokens.signers.rogue))
    assert refused.value.status == 400


def test_login_refuses_unknown_role(vault: VaultUnderTest, tokens: Tokens) -> None:
    client = VaultLeaseClient(vault.url, auth_role="admin", creds_role="clinical")
    with pytest.raises(VaultError) as refused:
        client.login(tokens.svid(aud=AUDIENCE))
    assert refused.value.status == 400


def test_health_answers_like_vault(vault: VaultUnderTest) -> None:
    health = hvac.Client(url=vault.url, token="").sys.read_health_status(method="GET")
    assert health["initialized"] is True
    assert health["sealed"] is False
    assert health["standby"] is False


def test_unknown_path_answers_vault_errors(vault: VaultUnderTest) -> None:
    answer = requests.get(f"{vault.url}/v1/secret/data/x", timeout=5)
    wrong_method = requests.get(f"{vault.url}/v1/sys/leases/revoke", timeout=5)
    assert answer.status_code == 404
    assert answer.json() == {"errors": ["unsupported path"]}
    assert wrong_method.status_code == 405
    assert "errors" in wrong_method.json()


def test_login_response_is_audited_with_the_new_token_hmacd(
    vault: VaultUnderTest, tokens: Tokens
) -> None:
    login = hvac.Client(url=vault.url, token="").auth.jwt.jwt_login(
        role="mcp-server", jwt=tokens.svid()
    )
    token = login["auth"]["client_token"]
    text = vault.audit_path.read_text()
    assert token not in text
    assert vault.parts.audit.hash(token) in text
