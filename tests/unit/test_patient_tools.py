"""The clinical tools in process: strict input, contract-shaped results, refusals."""

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
from trustloop.tools import inputs
from trustloop.tools.catalog import ClinicalTools
from trustloop.tools.results import respond
from trustloop.tools.server import build_server

PATIENT = {
    "resourceType": "Patient",
    "id": "p-1",
    "name": [{"use": "official", "family": "Mejía", "given": ["Gustavo"]}],
    "gender": "male",
    "birthDate": "1961-04-12",
}
GLUCOSE = {
    "resourceType": "Observation",
    "id": "o-1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
    "subject": {"reference": "Patient/p-1"},
    "effectiveDateTime": "2020-01-02T03:04:05+00:00",
    "valueQuantity": {"value": 98.5, "unit": "mg/dL"},
}
NOTE_ROW = {
    "id": "n-1",
    "patient_id": "p-1",
    "author_sub": "clin-achen",
    "obo_jti": "j-1",
    "text": "Feeling better.",
    "created_at": "2026-01-01T10:00:00+00:00",
}
CHART: dict[str, Any] = {
    "patient": PATIENT,
    "conditions": [],
    "medications": [],
    "encounters": [],
    "observations": [GLUCOSE],
    "notes": [NOTE_ROW],
}
TOOL_NAMES = {
    "list_my_patients",
    "find_patient",
    "read_patient_record",
    "get_lab_results",
    "write_clinical_note",
    "update_medication",
}


class NoVerifier:
    async def verify_token(self, token: str) -> AccessToken | None:
        return None


def tools_for(stack: Stack, token: str | None = USER_TOKEN) -> ClinicalTools:
    return ClinicalTools(stack.rhythm, bearer=lambda: token)


def text_of(result: Any) -> str:
    (block,) = result.content
    assert isinstance(block, TextContent)
    return block.text


@pytest.fixture
def fake_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    def read_chart(conn: Connection, patient_id: str) -> dict[str, Any] | None:
        return CHART if patient_id == "p-1" else None

    def list_roster(conn: Connection) -> list[dict[str, Any]]:
        return [{"id": "p-1", "name": "Gustavo Mejía", "sensitive": False}]

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
    assert text_of(result) == (
        "invalid_request: patient_id: must be a FHIR id ([A-Za-z0-9-.]{1,64})"
    )
    assert stack.idp.calls == 0
    assert stack.svids.audiences == []
    assert stack.audit_text() == ""


async def test_an_extra_argument_is_refused_through_mcp(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)
    server = build_server(Settings(), rhythm=stack.rhythm, verifier=NoVerifier())

    async with Client(server) as client:
        result = await client.call_tool(
            "read_patient_record", {"patient_id": "p-1", "role": "admin"}
        )

    assert text_of(result) == "invalid_request: role: is not an argument of this tool"
    assert stack.idp.calls == 0


async def test_every_tool_advertises_its_strict_schema(tmp_path: Path) -> None:
    server = build_server(
        Settings(), rhythm=make_stack(tmp_path).rhythm, verifier=NoVerifier()
    )

    async with Client(server) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(listed) == TOOL_NAMES
    assert all(t.input_schema["additionalProperties"] is False for t in listed.values())
    schema = listed["read_patient_record"].input_schema
    assert schema["properties"]["patient_id"]["pattern"] == inputs.FHIR_ID_PATTERN
    assert schema["required"] == ["patient_id"]
    assert listed["read_patient_record"].annotations is not None
    assert listed["read_patient_record"].annotations.read_only_hint is True
    assert listed["update_medication"].annotations is not None
    assert listed["update_medication"].annotations.read_only_hint is False


async def test_without_a_bearer_token_the_call_is_sign_in_again(
    tmp_path: Path,
) -> None:
    stack = make_stack(tmp_path)

    result = await respond(
        lambda: tools_for(stack, token=None).call("list_my_patients")
    )

    assert result.is_error
    assert text_of(result) == "invalid_token: sign in again"
    assert stack.idp.calls == 0


@pytest.mark.usefixtures("fake_queries")
async def test_chart_is_validated_fhir_with_a_summary(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)
    tools = tools_for(stack)

    result = await respond(
        lambda: tools.call("read_patient_record", {"patient_id": "p-1"})
    )

    assert not result.is_error
    payload = result.structured_content
    assert payload is not None
    assert json.loads(text_of(result)) == payload
    assert payload["patient"] == PATIENT
    assert payload["observations"] == [GLUCOSE]
    (note,) = payload["notes"]
    assert note["resourceType"] == "DocumentReference"
    assert note["author"] == [{"reference": "Practitioner/clin-achen"}]
    assert payload["obo_jti"] == OBO_JTI
    assert "Gustavo Mejía, male, born 1961-04-12" in payload["summary"]
    assert "98.5 mg/dL" in payload["summary"]
    assert "Feeling better." in payload["summary"]
    assert stack.vault.revoked != []


@pytest.mark.usefixtures("fake_queries")
async def test_roster_carries_the_patients_a_summary_and_the_obo_jti(
    tmp_path: Path,
) -> None:
    stack = make_stack(tmp_path)

    payload = await tools_for(stack).call("list_my_patients")

    assert payload["patients"][0]["id"] == "p-1"
    assert payload["summary"].startswith("1 patient on your care team: Gustavo")
    assert payload["obo_jti"] == OBO_JTI
    assert stack.idp.exchanges[0]["detail"].identifier == "Practitioner/dr-ada"


@pytest.mark.usefixtures("fake_queries")
async def test_find_patient_uses_the_roster_detail(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)

    payload = await tools_for(stack).call("find_patient", {"name": "MEJIA"})

    assert [p["id"] for p in payload["matches"]] == ["p-1"]
    assert stack.idp.exchanges[0]["detail"].identifier == "Practitioner/dr-ada"
    assert json.loads(stack.audit_text())["tool"] == "find_patient"


@pytest.mark.usefixtures("fake_queries")
async def test_missing_chart_is_not_found_and_audited_as_such(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)

    with pytest.raises(ToolCallError, match=r"^not_found: no record for Patient/p-2$"):
        await tools_for(stack).call("read_patient_record", {"patient_id": "p-2"})

    assert json.loads(stack.audit_text())["error"] == "not_found"
    assert stack.vault.revoked != []


async def test_refusal_is_a_tool_error_whose_text_starts_with_the_code(
    tmp_path: Path,
) -> None:
    refusal = OAuthError("access_denied", "Patient/p-1 is not on your care team", 403)
    stack = make_stack(tmp_path, idp=FakeIdp(exchange_error=refusal))
    tools = tools_for(stack)

    result = await respond(
        lambda: tools.call("read_patient_record", {"patient_id": "p-1"})
    )

    assert result.is_error
    assert result.structured_content is None
    assert text_of(result) == "access_denied: Patient/p-1 is not on your care team"
