"""Every clinical tool end to end: runtime, planner, MCP server, IdP, Vault, SQL.

Alda Carter comes from a hand-written bundle (tests/data/fhir/alda-carter.json, on
Dr. Chen's care team, not restricted), imported into the shared stack with the real
importer, which also provisions her care team to the IdP. Consent pushes are
answered on the IdP's authenticator API, as the clinician's device would.
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from trustloop.cli.approve_cmd import answer_push
from trustloop.cli.load_cmd import load_into
from trustloop.cli.session import Answer, ask, sign_in

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trustloop.devstack.stack import Stack
    from trustloop.settings import Settings

pytestmark = pytest.mark.e2e

BUNDLE = Path(__file__).parents[1] / "data" / "fhir" / "alda-carter.json"
ALDA = "bc370dee-4ef4-5351-a5c9-7878f77c9965"
METFORMIN = "e5165e9b-dcc7-5252-86dd-243221e1ae83"
ACHEN = "clin-achen"
NOTE = "Discussed diet; recheck HbA1c in 3 months."


@pytest.fixture(scope="module")
def alda(stack: Stack) -> Stack:
    assert stack.cluster is not None
    load_into(stack.cluster, BUNDLE, stack.settings.state_dir)
    return stack


@contextmanager
def device(
    settings: Settings, username: str, decisions: list[bool]
) -> Iterator[list[dict[str, Any]]]:
    """The clinician's phone: answers pushes in order; yields what it answered."""
    answered: list[dict[str, Any]] = []
    done = threading.Event()

    def run() -> None:
        deadline = time.monotonic() + 60
        while len(answered) < len(decisions) and not done.is_set():
            if time.monotonic() > deadline:
                return
            push = answer_push(settings, username, approve=decisions[len(answered)])
            if push is None:
                time.sleep(0.1)
                continue
            answered.append(push)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield answered
    finally:
        done.set()
        thread.join(timeout=10)


def tools(answer: Answer) -> list[tuple[object, object]]:
    return [(t.get("name"), t.get("status")) for t in answer.tools]


def jti_of(answer: Answer, tool: str) -> str:
    [jti] = [str(t["obo_jti"]) for t in answer.tools if t.get("name") == tool]
    return jti


def query(stack: Stack, sql: str, *params: object) -> list[tuple[Any, ...]]:
    assert stack.cluster is not None
    with psycopg.connect(stack.cluster.admin_conninfo()) as conn:
        return conn.execute(sql, params).fetchall()


def test_labs_then_a_note_then_stop_her_metformin_in_one_session(
    alda: Stack, achen_token: str
) -> None:
    settings, session = alda.settings, str(uuid.uuid4())

    def say(question: str) -> Answer:
        return ask(settings, achen_token, question, session_id=session)

    with device(settings, "achen", [True, True]) as pushes:
        labs = say("what were Alda Carter's last HbA1c results?")
        note = say(f"add a note to her chart: {NOTE}")
        stop = say("stop her metformin")
    chart = say("show me her chart")

    assert tools(labs) == [("find_patient", "success"), ("get_lab_results", "success")]
    assert "- 2024-03-01: 6.8 %\n- 2023-09-05: 7.4 %\n- 2023-03-02: 7.9 %" in labs.text
    assert tools(note) == [("write_clinical_note", "success")]
    assert "approve the change on your device" in note.text
    assert f"Note: {NOTE}" in note.text
    assert tools(stop) == [
        ("read_patient_record", "success"),
        ("update_medication", "success"),
    ]
    assert f"MedicationRequest/{METFORMIN}" in stop.text
    assert "- status: active -> stopped" in stop.text
    assert NOTE in chart.text
    assert NOTE in str(pushes[0].get("message"))
    assert "stopped" in str(pushes[1].get("message"))

    [(author, note_jti)] = query(
        alda, "select author_sub, obo_jti from clinical.notes where text = %s", NOTE
    )
    assert (author, note_jti) == (ACHEN, jti_of(note, "write_clinical_note"))
    assert f"DocumentReference/{_note_id(alda)}" in note.text
    [(now_status,)] = query(
        alda,
        "select resource->>'status' from clinical.medication_requests where id = %s",
        METFORMIN,
    )
    [(before, after, by, change_jti)] = query(
        alda,
        "select previous->>'status', resource->>'status', changed_by, obo_jti "
        "from clinical.medication_changes where medication_request_id = %s",
        METFORMIN,
    )
    assert (now_status, before, after, by) == ("stopped", "active", "stopped", ACHEN)
    assert change_jti == jti_of(stop, "update_medication")


def _note_id(stack: Stack) -> str:
    [(note_id,)] = query(stack, "select id from clinical.notes where text = %s", NOTE)
    return str(note_id)


def test_a_declined_note_is_relayed_written_nowhere_and_not_retried(
    alda: Stack, achen_token: str
) -> None:
    text = f"Declined note {uuid.uuid4()}"
    question = f"add a note to Alda Carter's chart: {text}"

    with device(alda.settings, "achen", [False]):
        answer = ask(alda.settings, achen_token, question)

    assert tools(answer) == [
        ("find_patient", "success"),
        ("write_clinical_note", "error"),
    ]
    assert "You declined the change on your device, so nothing was changed" in (
        answer.text
    )
    assert query(alda, "select id from clinical.notes where text = %s", text) == []


def test_another_clinician_with_the_same_session_id_starts_afresh(
    alda: Stack, achen_token: str
) -> None:
    session = str(uuid.uuid4())
    ask(alda.settings, achen_token, "find Alda Carter", session_id=session)
    bokafor = sign_in(alda.settings, "bokafor")

    answer = ask(alda.settings, bokafor, "show me her chart", session_id=session)

    assert answer.tools == []
    assert answer.text.startswith("Which patient do you mean?")


def test_find_patient_tolerates_missing_accents(alda: Stack) -> None:
    bokafor = sign_in(alda.settings, "bokafor")

    answer = ask(alda.settings, bokafor, "find Gustavo Mejia")

    assert tools(answer) == [("find_patient", "success")]
    assert "Found Gustavo Mejía" in answer.text


def test_blood_pressure_and_labs_since_a_date_of_a_synthea_patient(
    alda: Stack, achen_token: str
) -> None:
    session = str(uuid.uuid4())
    pressure = ask(
        alda.settings,
        achen_token,
        "show Joaquin Rodriguez's blood pressure",
        session_id=session,
    )
    labs = ask(
        alda.settings, achen_token, "labs for him since 2018-01-01", session_id=session
    )

    assert tools(pressure) == [
        ("find_patient", "success"),
        ("get_lab_results", "success"),
    ]
    assert "Blood pressure results for Joaquin Rodriguez, newest first:" in (
        pressure.text
    )
    assert "Systolic Blood Pressure" in pressure.text
    assert tools(labs) == [("get_lab_results", "success")]
    dates = [line[2:12] for line in labs.text.splitlines() if line.startswith("- ")]
    assert dates
    assert all(d >= "2018-01-01" for d in dates)
    assert dates == sorted(dates, reverse=True)
