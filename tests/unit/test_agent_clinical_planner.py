"""The offline planner drives every clinical tool through a real Strands agent loop.

One ``Agent`` per test keeps its messages between questions, as the runtime's
conversation memory does, so a pronoun in a follow-up resolves to the last patient.
"""

from __future__ import annotations

import base64
import json

import pytest
from clinic_fakes import (
    ALDA_ID,
    DECLINED,
    GUSTAVO_ID,
    LISINOPRIL_ID,
    METFORMIN_ID,
    Clinic,
    medication,
)
from strands import Agent

from trustloop.agent import planner
from trustloop.agent.offline_model import OfflineModel
from trustloop.agent.results import read_tool_result


def converse(clinic: Clinic) -> Agent:
    return Agent(model=OfflineModel(), tools=clinic.tools(), callback_handler=None)


def said(agent: Agent, question: str) -> str:
    """Everything the assistant said in answer to ``question`` (all its messages)."""
    before = len(agent.messages)
    agent(question)
    texts = [
        block["text"]
        for message in agent.messages[before:]
        if message["role"] == "assistant"
        for block in message["content"]
        if "text" in block
    ]
    return "".join(texts)


def test_issue_conversation_labs_then_note_then_stop_her_metformin() -> None:
    clinic = Clinic()
    agent = converse(clinic)

    labs = str(agent("what were Alda Carter's last HbA1c results?"))
    note = said(
        agent, "add a note to her chart: Discussed diet; recheck HbA1c in 3 months."
    )
    stop = said(agent, "stop her metformin")

    assert clinic.calls == [
        ("find_patient", {"name": "Alda Carter"}),
        ("get_lab_results", {"patient_id": ALDA_ID, "code": "4548-4",
                             "category": None, "since": None, "until": None,
                             "limit": 10}),
        ("write_clinical_note", {"patient_id": ALDA_ID,
                                 "text": "Discussed diet; recheck HbA1c in 3 months."}),
        ("read_patient_record", {"patient_id": ALDA_ID}),
        ("update_medication", {"patient_id": ALDA_ID,
                               "medication_request_id": METFORMIN_ID,
                               "status": "stopped", "dosage": None}),
    ]  # fmt: skip
    assert "HbA1c results for Alda Carter, newest first:" in labs
    assert "- 2024-03-01: 7.4 %\n- 2023-09-01: 6.9 %" in labs
    assert "approve the change on your device" in note
    assert "Added a note to Alda Carter's chart (DocumentReference/note-1)" in note
    assert "Note: Discussed diet; recheck HbA1c in 3 months." in note
    assert f"(MedicationRequest/{METFORMIN_ID})" in stop
    assert "- status: active -> stopped" in stop
    assert "previous version is kept" in stop
    assert "Changing Metformin hydrochloride 500 MG Oral Tablet for Alda Carter" in stop


def test_a_pronoun_with_no_patient_in_the_conversation_asks_which() -> None:
    clinic = Clinic()

    answer = str(converse(clinic)("stop her metformin"))

    assert clinic.calls == []
    assert answer.startswith("Which patient do you mean?")


def test_a_pronoun_means_the_last_patient_not_the_first() -> None:
    clinic = Clinic()
    agent = converse(clinic)
    agent("show me Gustavo Mejia's chart")
    agent("find Alda Carter")

    agent("show me her blood pressure")

    assert clinic.calls[-1][0] == "get_lab_results"
    assert clinic.calls[-1][1]["patient_id"] == ALDA_ID
    assert clinic.calls[-1][1]["code"] == "55284-4"


def test_find_patient_ignores_accents_and_names_the_single_match() -> None:
    clinic = Clinic()

    answer = str(converse(clinic)("find Gustavo Mejia"))

    assert clinic.calls == [("find_patient", {"name": "Gustavo Mejia"})]
    assert answer.strip() == (
        f"Found Gustavo Mejía, born 1958-01-20 (restricted) (Patient/{GUSTAVO_ID})."
    )


def test_several_matches_are_a_choice_named_not_a_guess() -> None:
    clinic = Clinic()

    answer = str(converse(clinic)("what were Carter's last HbA1c results?"))

    assert [name for name, _ in clinic.calls] == ["find_patient"]
    assert "More than one patient on your care team matches Carter" in answer
    assert "Alda Carter, born 1961-04-12" in answer
    assert "Carter Smith, born 1970-09-30" in answer
    assert "Which one do you mean?" in answer


def test_no_match_says_so_and_calls_nothing_else() -> None:
    clinic = Clinic()

    answer = str(converse(clinic)("add a note to Zed Quinn's chart: hello"))

    assert clinic.names() == ["find_patient"]
    assert (
        answer.strip() == "I couldn't find a patient named Zed Quinn on your care team."
    )


def test_labs_by_category_since_a_date() -> None:
    clinic = Clinic()

    answer = str(converse(clinic)("labs for Alda Carter since 2024-01-01"))

    arguments = clinic.calls[-1][1]
    assert (arguments["category"], arguments["since"], arguments["code"]) == (
        "laboratory",
        "2024-01-01",
        None,
    )
    assert "Lab results for Alda Carter since 2024-01-01, newest first:" in answer
    assert "Hemoglobin A1c/Hemoglobin.total in Blood: 7.4 %" in answer
    assert "6.9" not in answer


def test_a_restricted_patient_is_announced_before_the_step_up() -> None:
    clinic = Clinic()

    answer = said(converse(clinic), "what were Gustavo Mejía's last HbA1c results?")

    assert clinic.names() == ["find_patient", "get_lab_results"]
    assert answer.startswith(
        "Gustavo Mejía's chart is restricted: approve the request on your device."
    )


def test_a_declined_note_is_relayed_and_nothing_is_written() -> None:
    clinic = Clinic(refuse={("write_clinical_note", ALDA_ID): DECLINED})
    agent = converse(clinic)
    agent("find Alda Carter")

    answer = str(agent("add a note to her chart: started on insulin"))

    assert clinic.names() == ["find_patient", "write_clinical_note"]
    assert "You declined the change on your device, so nothing was changed" in answer
    assert DECLINED in answer
    assert clinic.notes == []


def test_a_refused_medication_change_is_not_retried() -> None:
    refusal = "access_denied: Patient/x: nurses may not change medications"
    clinic = Clinic(refuse={("update_medication", ALDA_ID): refusal})

    answer = str(converse(clinic)("put Alda Carter's metformin on hold"))

    assert clinic.names() == [
        "find_patient",
        "read_patient_record",
        "update_medication",
    ]
    assert clinic.calls[-1][1]["status"] == "on-hold"
    assert answer.strip() == f"Nothing was changed. The records service said: {refusal}"


def test_a_dose_change_sends_the_dosage_and_reports_old_and_new() -> None:
    clinic = Clinic()

    answer = str(
        converse(clinic)("change Alda Carter's lisinopril dose to 20 mg daily")
    )

    assert clinic.calls[-1] == (
        "update_medication",
        {"patient_id": ALDA_ID, "medication_request_id": LISINOPRIL_ID,
         "status": None, "dosage": "20 mg daily"},
    )  # fmt: skip
    assert "- dosage: 500 mg twice daily -> 20 mg daily" in answer
    assert "status:" not in answer


def test_two_matching_active_medications_ask_which() -> None:
    clinic = Clinic()
    clinic.medications.append(medication("medreq-m2", "Metformin 1000 MG", "active"))

    answer = str(converse(clinic)("stop Alda Carter's metformin"))

    assert clinic.names() == ["find_patient", "read_patient_record"]
    assert f"MedicationRequest/{METFORMIN_ID}" in answer
    assert "MedicationRequest/medreq-m2" in answer
    assert "MedicationRequest/medreq-metformin-0" not in answer  # already stopped


def test_a_medication_not_on_the_chart_is_named_and_nothing_changes() -> None:
    clinic = Clinic()

    answer = str(converse(clinic)("stop Alda Carter's warfarin"))

    assert clinic.names() == ["find_patient", "read_patient_record"]
    assert answer.strip() == "I couldn't find warfarin among Alda Carter's medications."


def test_a_written_note_is_read_back_in_the_chart() -> None:
    clinic = Clinic()
    agent = converse(clinic)
    agent("add a note to Alda Carter's chart: Foot exam normal.")

    chart = str(agent("show me her chart"))

    assert "Notes:\n- 2026-12-03 by Practitioner/clin-achen: Foot exam normal." in chart
    assert (
        "Metformin hydrochloride 500 MG Oral Tablet (prescribed 2019-05-02), "
        f"MedicationRequest/{METFORMIN_ID}"
    ) in chart


def test_note_text_is_decoded_from_the_attachment_only_when_valid() -> None:
    from trustloop.agent.answers import note_text

    good = {"content": [{"attachment": {"data": base64.b64encode(b"ok").decode()}}]}
    bad = {"content": [{"attachment": {"data": "%%%"}}], "description": "fallback"}

    assert note_text(good) == "ok"
    assert note_text(bad) == "fallback"


@pytest.mark.parametrize("tool", ["write_clinical_note", "find_patient"])
def test_a_missing_tool_is_reported_not_called(tool: str) -> None:
    clinic = Clinic()
    tools = [t for t in clinic.tools() if t.tool_name != tool]
    agent = Agent(model=OfflineModel(), tools=tools, callback_handler=None)

    answer = str(agent("add a note to Alda Carter's chart: hi"))

    if tool == "write_clinical_note":
        assert "write_clinical_note tool is not available" in answer
    else:  # without find_patient the roster is searched instead
        assert clinic.names() == ["list_my_patients", "write_clinical_note"]


def test_an_exact_full_name_wins_over_longer_names_it_starts() -> None:
    matches = [
        {"id": "p-1", "name": "Carter Smith"},
        {"id": "p-2", "name": "Carter Smithson"},
    ]
    found = read_tool_result(
        "find_patient",
        {"status": "success", "content": [{"text": json.dumps({"matches": matches})}]},
    )

    step = planner.plan(
        planner.Turn("show me Carter Smith's chart", [found]),
        {"find_patient", "read_patient_record"},
    )

    assert step == planner.CallTool("read_patient_record", {"patient_id": "p-1"})


def test_no_results_in_the_window_says_so() -> None:
    clinic = Clinic()

    answer = str(converse(clinic)("labs for Alda Carter since 2025-01-01"))

    assert (
        answer.strip() == "No lab results on record for Alda Carter since 2025-01-01."
    )
