"""The patient tools: strict input, contract-shaped results and refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.server.auth.provider import AccessToken
from mcp.types import TextContent
from rhythm_fakes import OBO_JTI, USER_TOKEN, FakeIdp, Stack, make_stack

from trustloop.identity.oauth import OAuthError
from trustloop.identity.rhythm import ToolCallError
from trustloop.identity.types import Connection
from trustloop.records import queries
from trustloop.settings import Settings
from trustloop.tools import patients
from trustloop.tools.patients import PatientTools, respond
from trustloop.tools.server import build_server

CHART: dict[str, Any] = {
    "patient": {"resourceType": "Patient", "id": "p-1"},
    "conditions": [],
    "medications": [],
    "observations": [],
}


class NoVerifier:
    async def verify_token(self, token: str) -> AccessToken | None:
        return None


def tools_for(stack: Stack, token: str | None = USER_TOKEN) -> PatientTools:
    return PatientTools(stack.rhythm, bearer=lambda: token)


def text_of(result: Any) -> str:
    (block,) = result.content
    assert isinstance(block, TextContent)
    return block.text


@pytest.fixture
def fake_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    def read_chart(conn: Connection, patient_id: str) -> dict[str, Any] | None:
        return CHART if patient_id == "p-1" else None

    def list_roster(conn: Connection) -> list[dict[str, Any]]:
        return [{"id": "p-1", "name": "Alda Carter", "sensitive": False}]

    monkeypatch.setattr(queries, "read_chart", read_chart)
    monkeypatch.setattr(queries, "list_roster", list_roster)


@pytest.mark.parametrize("bad", ["", "p 1", "../etc", "Patient/p-1", "x" * 65, "é"])
async def test_bad_patient_id_is_refused_before_any_identity_call(
    tmp_path: Path, bad: str
) -> None:
    stack = make_stack(tmp_path)
    server = build_server(Settings(), rhythm=stack.rhythm, verifier=NoVerifier())

    async with Client(server) as client:
        result = await client.call_tool("read_patient_record", {"patient_id": bad})

    assert result.is_error
    assert text_of(result).startswith("invalid_request: patient_id must be a FHIR id")
    assert stack.idp.calls == 0
    assert stack.svids.audiences == []
    assert stack.audit_text() == ""


async def test_tools_advertise_the_fhir_id_pattern(tmp_path: Path) -> None:
    server = build_server(
        Settings(), rhythm=make_stack(tmp_path).rhythm, verifier=NoVerifier()
    )

    async with Client(server) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(listed) == {"list_my_patients", "read_patient_record"}
    schema = listed["read_patient_record"].input_schema
    assert schema["properties"]["patient_id"]["pattern"] == patients.FHIR_ID_PATTERN
    assert schema["required"] == ["patient_id"]


async def test_without_a_bearer_token_the_call_is_sign_in_again(
    tmp_path: Path,
) -> None:
    stack = make_stack(tmp_path)

    result = await respond(tools_for(stack, token=None).list_my_patients)

    assert result.is_error
    assert text_of(result) == "invalid_token: sign in again"
    assert stack.idp.calls == 0


@pytest.mark.usefixtures("fake_queries")
async def test_chart_is_json_as_structured_content_and_text(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)

    result = await respond(lambda: tools_for(stack).read_patient_record("p-1"))

    assert not result.is_error
    assert result.structured_content == {**CHART, "obo_jti": OBO_JTI}
    assert json.loads(text_of(result)) == result.structured_content
    assert stack.vault.revoked != []


@pytest.mark.usefixtures("fake_queries")
async def test_roster_carries_the_patients_and_the_obo_jti(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)

    payload = await tools_for(stack).list_my_patients()

    assert payload["patients"][0]["id"] == "p-1"
    assert payload["obo_jti"] == OBO_JTI
    assert stack.idp.exchanges[0]["detail"].identifier == "Practitioner/dr-ada"


@pytest.mark.usefixtures("fake_queries")
async def test_missing_chart_is_not_found_and_audited_as_such(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)

    with pytest.raises(ToolCallError, match=r"^not_found: no record for Patient/p-2$"):
        await tools_for(stack).read_patient_record("p-2")

    assert json.loads(stack.audit_text())["error"] == "not_found"
    assert stack.vault.revoked != []


async def test_refusal_is_a_tool_error_whose_text_starts_with_the_code(
    tmp_path: Path,
) -> None:
    refusal = OAuthError("access_denied", "Patient/p-1 is not on your care team", 403)
    stack = make_stack(tmp_path, idp=FakeIdp(exchange_error=refusal))

    result = await respond(lambda: tools_for(stack).read_patient_record("p-1"))

    assert result.is_error
    assert result.structured_content is None
    assert text_of(result) == "access_denied: Patient/p-1 is not on your care team"
