"""A revoked access token is refused by the MCP server, through every process."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from trustloop.app.runtime_client import InvocationError, invoke
from trustloop.cli.session import ask, sign_in
from trustloop.identity.oauth import IdpClient

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e

ACHEN = "clin-achen"


def on_team_patient(cluster: ClusterInfo) -> str:
    """The name of a non-sensitive patient on Dr. Chen's care team."""
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        row = conn.execute(
            "select p.name from clinical.patients p "
            "join clinical.care_team_members m on m.patient_id = p.id "
            "where m.clinician_sub = %s and not p.sensitive order by p.name limit 1",
            (ACHEN,),
        ).fetchone()
    assert row is not None
    return str(row[0])


def revoke(stack: Stack, token: str) -> None:
    async def call() -> None:
        async with httpx.AsyncClient(timeout=10.0) as http:
            await IdpClient(stack.settings.idp_issuer, http).revoke(token)

    asyncio.run(call())


def frames_until_refused(stack: Stack, token: str, question: str) -> list[Any]:
    """Every frame the runtime streams, the refusal last as ``{"error": ...}``."""
    frames: list[Any] = []
    stream = invoke(
        stack.settings.runtime_url,
        question,
        access_token=token,
        session_id=str(uuid.uuid4()),
    )
    try:
        frames.extend(stream)
    except InvocationError as refused:
        frames.append({"error": str(refused)})
    return frames


def test_a_revoked_token_is_refused_with_sign_in_again(
    stack: Stack, cluster_of: ClusterInfo
) -> None:
    name = on_team_patient(cluster_of)
    token = sign_in(stack.settings, "achen")
    first = ask(stack.settings, token, f"show me {name}'s chart")
    assert any(t.get("status") == "success" for t in first.tools), first.tools

    revoke(stack, token)
    frames = frames_until_refused(stack, token, f"show me {name}'s chart")

    assert "sign in again" in frames[-1].get("error", ""), frames
    assert not [f for f in frames if f.get("type") == "tool"]
    assert name not in str(frames)


def test_revoking_is_audited_by_jti_only(stack: Stack) -> None:
    token = sign_in(stack.settings, "achen")

    revoke(stack, token)

    audit = (stack.settings.audit_dir / "idp.jsonl").read_text()
    assert '"token_revoked"' in audit
    assert token not in audit
