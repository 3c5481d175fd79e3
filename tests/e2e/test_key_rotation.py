"""A signing-key rotation in the middle of a clinician's session breaks nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest
from joserfc import jws

from trustloop.cli.session import ask, sign_in
from trustloop.devstack.idp.admin import admin_socket
from trustloop.devstack.idp.provision import AdminClient

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e


def on_team_patient(cluster: ClusterInfo) -> str:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        row = conn.execute(
            "select p.name from clinical.patients p "
            "join clinical.care_team_members m on m.patient_id = p.id "
            "where m.clinician_sub = 'clin-achen' and not p.sensitive "
            "order by p.name limit 1"
        ).fetchone()
    assert row is not None
    return str(row[0])


def published_kids(stack: Stack) -> set[str]:
    jwks = httpx.get(f"{stack.settings.idp_issuer}/oauth2/jwks", timeout=10.0).json()
    return {str(key["kid"]) for key in jwks["keys"]}


def test_a_session_survives_a_key_rotation(
    stack: Stack, cluster_of: ClusterInfo
) -> None:
    """The pre-rotation token still introspects active at the MCP server, and the
    OBO token exchanged after the rotation (signed by the new key) works at Vault."""
    name = on_team_patient(cluster_of)
    token = sign_in(stack.settings, "achen")
    old_kid = jws.extract_compact(token.encode()).headers()["kid"]

    with AdminClient(admin_socket(stack.settings.state_dir)) as admin:
        new_kid = admin.rotate_signing_keys()
    answer = ask(stack.settings, token, f"show me {name}'s chart")

    assert new_kid != old_kid
    assert {old_kid, new_kid} <= published_kids(stack)
    reads = [t for t in answer.tools if t.get("name") == "read_patient_record"]
    assert reads, answer.tools
    assert reads[-1]["status"] == "success"
    fresh = sign_in(stack.settings, "achen")
    assert jws.extract_compact(fresh.encode()).headers()["kid"] == new_kid
