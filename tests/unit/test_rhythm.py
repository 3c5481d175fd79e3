"""The four-step rhythm against counting fakes: order, error mapping, revocation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from rhythm_fakes import (
    ACTOR,
    ISSUER,
    LEASE_ID,
    OBO_JTI,
    OBO_TOKEN,
    RESOURCE,
    SECRETS,
    USER_TOKEN,
    VAULT_AUDIENCE,
    FakeConnector,
    FakeIdp,
    FakeVault,
    Stack,
    make_stack,
)
from structlog.testing import capture_logs

from trustloop.audit.chain import verify_chain
from trustloop.identity.oauth import IdpUnavailableError, Introspection, OAuthError
from trustloop.identity.rar import patient_read, roster_read
from trustloop.identity.rhythm import ToolCallError
from trustloop.identity.types import Connection
from trustloop.identity.vault import VaultError, VaultUnavailableError

DETAIL = patient_read("p-1")


def audit_lines(stack: Stack) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stack.audit_text().splitlines()]


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


async def test_granted_call_yields_connection_and_jti_then_revokes(
    tmp_path: Path,
) -> None:
    stack = make_stack(tmp_path)

    async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record") as c:
        assert c.jti == OBO_JTI
        assert c.sub == "dr-ada"
        assert await c.run(lambda conn: conn) is c.conn

    assert stack.vault.issued == [OBO_TOKEN]
    assert stack.vault.revoked == [LEASE_ID]
    assert stack.connector.connections[0].closed == 1
    assert stack.connector.logins[0]["application_name"] == OBO_JTI


async def test_exchange_sends_subject_actor_and_assertion_as_the_contract_says(
    tmp_path: Path,
) -> None:
    stack = make_stack(tmp_path)

    async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
        pass

    (sent,) = stack.idp.exchanges
    assert sent["subject_token"] == USER_TOKEN
    assert sent["actor_token"] == f"svid-for-{ISSUER}"
    assert sent["client_assertion"] == f"svid-for-{ISSUER}"
    assert sent["audience"] == VAULT_AUDIENCE
    assert sent["detail"] == DETAIL
    assert stack.idp.introspected == [(USER_TOKEN, f"svid-for-{ISSUER}")]
    assert stack.vault.logins == [f"svid-for-{VAULT_AUDIENCE}"]


async def test_each_exchange_gets_a_fresh_actor_svid(tmp_path: Path) -> None:
    """The IdP accepts an actor_token once; the client assertion may be cached."""
    stack = make_stack(tmp_path)

    for _ in range(2):
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pass

    assert stack.svids.fresh == [ISSUER, ISSUER]


async def test_detail_can_be_built_from_the_introspected_sub(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)

    async with stack.rhythm.call(USER_TOKEN, roster_read, tool="list_my_patients"):
        pass

    assert stack.idp.exchanges[0]["detail"] == roster_read("dr-ada")


async def test_one_audit_line_per_call_with_ids_timings_and_no_secret(
    tmp_path: Path,
) -> None:
    stack = make_stack(tmp_path)

    with capture_logs() as logs:
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pass

    (line,) = audit_lines(stack)
    assert line["event"] == "tool_call"
    assert line["system"] == "mcp"
    assert line["jti"] == OBO_JTI
    assert line["sub"] == "dr-ada"
    assert line["actor"] == ACTOR
    assert line["resource"] == "Patient/p-1"
    assert line["action"] == "read"
    assert line["decision"] == "granted"
    assert line["lease_id"] == LEASE_ID
    assert line["role"] == "obo_" + OBO_JTI.replace("-", "")
    assert line["lease_revoked"] is True
    assert line["outcome"] == "ok"
    assert line["error"] is None
    assert set(line["timings_ms"]) >= {
        "introspect",
        "exchange",
        "lease",
        "connect",
        "close",
        "revoke",
    }
    assert verify_chain(stack.audit_path) is None
    (called,) = [e for e in logs if e["event"] == "tool_called"]
    assert called["jti"] == OBO_JTI
    assert_no_secrets(stack.audit_text(), repr(logs))


async def test_query_error_still_closes_and_revokes(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)

    def broken(conn: Connection) -> None:
        raise psycopg.errors.UndefinedTable("relation does not exist")

    with pytest.raises(ToolCallError) as caught:
        async with stack.rhythm.call(
            USER_TOKEN, DETAIL, tool="read_patient_record"
        ) as c:
            await c.run(broken)

    assert str(caught.value) == "server_error: internal error"
    assert stack.vault.revoked == [LEASE_ID]
    assert stack.connector.connections[0].closed == 1
    assert audit_lines(stack)[0]["outcome"] == "error"


async def test_cancelled_query_still_closes_and_revokes(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)

    with anyio.move_on_after(0.05) as scope:
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            await anyio.sleep_forever()

    assert scope.cancelled_caught
    assert stack.vault.revoked == [LEASE_ID]
    assert stack.connector.connections[0].closed == 1
    (line,) = audit_lines(stack)
    assert line["outcome"] == "cancelled"
    assert line["lease_revoked"] is True


async def test_cancelled_while_lease_is_issued_still_revokes(tmp_path: Path) -> None:
    """The lease Vault issued after the cancellation is revoked, not leaked."""
    stack = make_stack(tmp_path, vault=FakeVault(issue_delay_s=0.3))

    with anyio.move_on_after(0.1):
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pytest.fail("the body must not run after cancellation")

    assert stack.vault.issued == [OBO_TOKEN]
    assert stack.vault.revoked == [LEASE_ID]
    assert stack.connector.logins == []


async def test_connect_failure_revokes_and_is_temporarily_unavailable(
    tmp_path: Path,
) -> None:
    connector = FakeConnector(error=psycopg.OperationalError("connection refused"))
    stack = make_stack(tmp_path, connector=connector)

    with pytest.raises(ToolCallError) as caught:
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pytest.fail("the body must not run without a connection")

    assert str(caught.value) == "temporarily_unavailable: database"
    assert stack.vault.revoked == [LEASE_ID]


async def test_failed_revoke_is_logged_with_lease_id_and_the_result_stands(
    tmp_path: Path,
) -> None:
    vault = FakeVault(revoke_error=VaultUnavailableError(503, "sealed"))
    stack = make_stack(tmp_path, vault=vault)

    with capture_logs() as logs:
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pass

    (failed,) = [e for e in logs if e["event"] == "lease_revoke_failed"]
    assert failed["lease_id"] == LEASE_ID
    # The class only, no traceback: a renderer could print the keys in its locals.
    assert failed["error"] == "VaultUnavailableError"
    assert "exc_info" not in failed
    (line,) = audit_lines(stack)
    assert line["outcome"] == "ok"
    assert line["lease_revoked"] is False


@pytest.mark.parametrize(
    "introspection",
    [
        Introspection(active=False),
        Introspection(active=True, sub="dr-ada", aud=["http://elsewhere/mcp"]),
        Introspection(active=True, sub=None, aud=[RESOURCE]),
    ],
    ids=["inactive", "other-audience", "no-sub"],
)
async def test_token_not_for_us_is_sign_in_again_before_any_exchange(
    tmp_path: Path, introspection: Introspection
) -> None:
    stack = make_stack(tmp_path, idp=FakeIdp(introspection=introspection))

    with pytest.raises(ToolCallError) as caught:
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pytest.fail("the body must not run")

    assert str(caught.value) == "invalid_token: sign in again"
    assert stack.idp.exchanges == []
    assert stack.vault.issued == []
    assert audit_lines(stack)[0]["error"] == "invalid_token"


async def test_policy_refusal_carries_the_idp_description_and_leases_nothing(
    tmp_path: Path,
) -> None:
    refusal = OAuthError("access_denied", "Patient/p-1 is not on your care team", 403)
    stack = make_stack(tmp_path, idp=FakeIdp(exchange_error=refusal))

    with pytest.raises(ToolCallError) as caught:
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pytest.fail("the body must not run")

    assert str(caught.value) == "access_denied: Patient/p-1 is not on your care team"
    assert stack.vault.issued == []
    (line,) = audit_lines(stack)
    assert line["decision"] == "denied"
    assert line["error"] == "access_denied"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OAuthError("invalid_grant", "subject_token expired", 400), "invalid_token: sign in again"),
        (OAuthError("invalid_client", "bad assertion", 401), "server_error: identity provider refused the call"),
        (IdpUnavailableError("cannot reach the IdP"), "temporarily_unavailable: identity provider"),
        (VaultUnavailableError(503, "sealed"), "temporarily_unavailable: credential service"),
        (VaultError(403, "permission denied"), "server_error: database credential refused"),
        (RuntimeError(USER_TOKEN), "server_error: internal error"),
    ],
)  # fmt: skip
async def test_outside_errors_map_to_codes_that_say_no_more_than_the_spec(
    tmp_path: Path, error: Exception, expected: str
) -> None:
    stack = make_stack(tmp_path, idp=FakeIdp(exchange_error=error))

    with pytest.raises(ToolCallError) as caught:
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pytest.fail("the body must not run")

    assert str(caught.value) == expected
    assert_no_secrets(str(caught.value), stack.audit_text())


async def test_vault_refusal_after_exchange_leases_nothing_to_revoke(
    tmp_path: Path,
) -> None:
    class RefusingVault(FakeVault):
        def issue(self, obo_token: str) -> Any:
            raise VaultError(403, "jti already used")

    stack = make_stack(tmp_path, vault=RefusingVault())

    with pytest.raises(ToolCallError, match=r"^server_error: "):
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pytest.fail("the body must not run")

    assert stack.vault.revoked == []
    assert audit_lines(stack)[0]["lease_revoked"] is False


async def test_tool_errors_raised_in_the_body_pass_through_unchanged(
    tmp_path: Path,
) -> None:
    stack = make_stack(tmp_path)
    raised = ToolCallError("not_found", "no record for Patient/p-1")

    with pytest.raises(ToolCallError) as caught:
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            raise raised

    assert caught.value is raised
    assert stack.vault.revoked == [LEASE_ID]
    assert audit_lines(stack)[0]["error"] == "not_found"
