"""A clinician's question through every process of the chain, on the Synthea data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from trustloop.audit.trace import role_name_for
from trustloop.cli.session import Answer, ask

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e

ACHEN = "clin-achen"


def admin_query(
    cluster: ClusterInfo, sql: str, *params: object
) -> list[tuple[Any, ...]]:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        return list(conn.execute(sql, params).fetchall())


def _on_team_patient(cluster: ClusterInfo) -> tuple[str, str, str]:
    rows = admin_query(
        cluster,
        "select p.id, p.name, p.birth_date::text from clinical.patients p "
        "join clinical.care_team_members m on m.patient_id = p.id "
        "where m.clinician_sub = %s and not p.sensitive "
        "and exists (select 1 from clinical.conditions c where c.patient_id = p.id) "
        "order by p.name limit 1",
        ACHEN,
    )
    patient_id, name, birth = rows[0]
    return str(patient_id), str(name), str(birth)


def _off_team_patient(cluster: ClusterInfo) -> str:
    rows = admin_query(
        cluster,
        "select p.id from clinical.patients p where not exists ("
        "select 1 from clinical.care_team_members m "
        "where m.patient_id = p.id and m.clinician_sub = %s) order by p.id limit 1",
        ACHEN,
    )
    return str(rows[0][0])


@pytest.fixture(scope="module")
def chart(stack: Stack, cluster_of: ClusterInfo, achen_token: str) -> dict[str, Any]:
    patient_id, name, birth = _on_team_patient(cluster_of)
    answer = ask(stack.settings, achen_token, f"show me {name}'s chart")
    return {"id": patient_id, "name": name, "birth": birth, "answer": answer}


def _audit(stack: Stack, system: str) -> list[dict[str, Any]]:
    path = stack.settings.audit_dir / f"{system}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _chart_jti(chart: dict[str, Any]) -> str:
    answer: Answer = chart["answer"]
    reads = [t for t in answer.tools if t.get("name") == "read_patient_record"]
    assert reads, f"no chart read happened: {answer.tools}"
    assert reads[-1]["status"] == "success"
    return str(reads[-1]["obo_jti"])


def test_chart_answer_comes_from_the_database(
    chart: dict[str, Any], cluster_of: ClusterInfo
) -> None:
    """Name, birth date, a condition and an observation of the real record appear."""
    text: str = chart["answer"].text
    assert chart["name"] in text
    assert chart["birth"] in text
    conditions = admin_query(
        cluster_of,
        "select resource->'code'->>'text' from clinical.conditions where patient_id = %s",
        chart["id"],
    )
    assert any(str(c[0]) in text for c in conditions)
    observations = admin_query(
        cluster_of,
        "select resource->'code'->>'text' from clinical.observations where patient_id = %s",
        chart["id"],
    )
    assert any(str(o[0]) in text for o in observations)


def test_obo_token_names_the_mcp_server_as_actor_for_vault_for_60_seconds(
    stack: Stack, chart: dict[str, Any]
) -> None:
    jti = _chart_jti(chart)
    issued = [e for e in _audit(stack, "idp") if e.get("event") == "token_exchanged"]
    record = next(e for e in issued if e.get("jti") == jti)
    assert record["act"] == {"sub": stack.settings.mcp_spiffe_id}
    assert record["aud"] == stack.settings.vault_audience
    assert 0 < record["exp"] - record["iat"] <= 60
    assert record["granted"] == [
        {
            "type": "patient_record",
            "actions": ["read"],
            "identifier": f"Patient/{chart['id']}",
        }
    ]


def test_no_ephemeral_role_survives_the_call(
    chart: dict[str, Any], cluster_of: ClusterInfo
) -> None:
    role = role_name_for(_chart_jti(chart))
    assert (
        admin_query(cluster_of, "select 1 from pg_roles where rolname = %s", role) == []
    )
    leftovers = admin_query(
        cluster_of, "select rolname from pg_roles where rolname like 'obo\\_%%'"
    )
    assert leftovers == []


def test_postgres_audit_names_the_ephemeral_role(
    chart: dict[str, Any], cluster_of: ClusterInfo
) -> None:
    role = role_name_for(_chart_jti(chart))
    lines = [
        json.loads(line)
        for path in cluster_of.log_dir().glob("*.json")
        for line in path.read_text(errors="replace").splitlines()
        if line.strip()
    ]
    audited = [
        r for r in lines if r.get("user") == role and "AUDIT:" in r.get("message", "")
    ]
    assert audited, "pgaudit wrote no line for the ephemeral role"


def test_idp_vault_and_mcp_logs_all_carry_the_jti(
    stack: Stack, chart: dict[str, Any]
) -> None:
    jti = _chart_jti(chart)
    for part in ("idp", "vault", "mcp"):
        log = (stack.settings.log_dir / f"{part}.log").read_text()
        assert jti in log, f"{part}.log lacks the jti"
        audit = (stack.settings.audit_dir / f"{part}.jsonl").read_text()
        assert jti in audit, f"{part} audit lacks the jti"


def test_clinician_token_reaches_no_model_input_and_no_log(
    stack: Stack, chart: dict[str, Any], achen_token: str
) -> None:
    transcript = stack.settings.model_transcript
    assert transcript is not None
    assert transcript.exists()
    model_inputs = transcript.read_text()
    assert chart["name"] in model_inputs  # the capture is real: it saw the chart
    signature = achen_token.rsplit(".", 1)[1]
    files = [
        transcript,
        *stack.settings.state_dir.rglob("*.log"),
        *stack.settings.state_dir.rglob("*.json*"),
    ]
    checked = 0
    for path in files:
        if not path.is_file():
            continue
        content = path.read_text(errors="replace")
        assert achen_token not in content, f"token found in {path}"
        assert signature not in content, f"token signature found in {path}"
        checked += 1
    assert checked >= 8


def test_patient_outside_the_care_team_is_refused(
    stack: Stack, cluster_of: ClusterInfo, achen_token: str
) -> None:
    outside = _off_team_patient(cluster_of)
    answer = ask(stack.settings, achen_token, f"show me the chart of Patient/{outside}")
    assert "access_denied" in answer.text
    assert "care team" in answer.text
    assert [t["status"] for t in answer.tools] == ["error"]
    denied = [e for e in _audit(stack, "idp") if e.get("event") == "exchange_denied"]
    assert any(outside in json.dumps(e) for e in denied)


def test_unknown_patient_name_gets_a_clear_answer(
    stack: Stack, achen_token: str
) -> None:
    answer = ask(stack.settings, achen_token, "show me Zebedee Nobody's chart")
    assert "couldn't find a patient named Zebedee Nobody" in answer.text


@pytest.mark.parametrize("header", [None, "Bearer garbage.token.here", "Basic abc"])
def test_mcp_server_refuses_missing_or_garbage_bearer(
    stack: Stack, header: str | None
) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    if header is not None:
        headers["Authorization"] = header
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    response = httpx.post(stack.settings.mcp_url, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "oauth-protected-resource" in response.headers["WWW-Authenticate"]


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = stack.child_env("cli")
    return subprocess.run(
        [sys.executable, "-m", "trustloop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_ask_prints_the_roster_and_the_jti(
    stack: Stack, cluster_of: ClusterInfo
) -> None:
    result = _cli(stack, "ask", "--as", "achen", "list my patients")
    assert result.returncode == 0, result.stderr
    _, name, _ = _on_team_patient(cluster_of)
    assert name in result.stdout
    assert "jti" in result.stdout


def test_cli_ask_refuses_an_empty_question(stack: Stack) -> None:
    result = _cli(stack, "ask", "--as", "achen", "   ")
    assert result.returncode == 1
    assert "question is empty" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_load_rejects_a_non_fhir_file(stack: Stack, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-bundle.json"
    bogus.write_text(json.dumps({"resourceType": "Patient", "id": "x"}))
    result = _cli(stack, "load", str(bogus))
    assert result.returncode == 1
    assert "not-a-bundle.json" in result.stderr
    assert "Bundle" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_every_audit_chain_verifies(stack: Stack, chart: dict[str, Any]) -> None:
    result = _cli(stack, "audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_audit_trace_joins_every_system_on_the_jti(
    stack: Stack, chart: dict[str, Any]
) -> None:
    result = _cli(stack, "audit", "trace", _chart_jti(chart))
    assert result.returncode == 0, result.stderr
    for system in ("idp", "vault", "mcp", "runtime", "postgres"):
        assert system in result.stdout, f"{system} missing from the trace"


def test_audit_trace_of_an_unknown_jti_says_so(stack: Stack) -> None:
    result = _cli(stack, "audit", "trace", "00000000-0000-4000-8000-000000000000")
    assert result.returncode == 1
    assert "no audit record" in result.stderr


@pytest.mark.parametrize("argument", ["-", "Patient", "garbage' or 1=1"])
def test_audit_trace_refuses_what_cannot_be_a_jti(stack: Stack, argument: str) -> None:
    result = _cli(stack, "audit", "trace", argument)
    assert result.returncode == 1
    assert "is not a jti" in result.stderr


def test_cli_ask_exits_non_zero_when_a_tool_call_is_refused(
    stack: Stack, cluster_of: ClusterInfo
) -> None:
    outside = _off_team_patient(cluster_of)
    result = _cli(
        stack, "ask", "--as", "achen", f"show me the chart of Patient/{outside}"
    )
    assert result.returncode == 1
    assert "access_denied" in result.stdout


def test_a_refused_call_prints_the_jti_its_trail_hangs_off(
    stack: Stack, cluster_of: ClusterInfo
) -> None:
    """No OBO token, so no OBO jti: the access token's, which the denial names."""
    outside = _off_team_patient(cluster_of)
    asked = _cli(
        stack, "ask", "--as", "achen", f"show me the chart of Patient/{outside}"
    )
    found = re.search(r"no OBO token; access token jti ([0-9a-f-]{36})", asked.stdout)
    assert found, asked.stdout

    traced = _cli(stack, "audit", "trace", found.group(1), "--json")

    assert traced.returncode == 0, traced.stderr
    denied = [r for r in json.loads(traced.stdout) if r["event"] == "exchange_denied"]
    assert denied, traced.stdout
    assert f"Patient/{outside}" in json.dumps(denied)
