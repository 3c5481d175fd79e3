"""The offline planner reads the sentences the README lists as the intents it names."""

from __future__ import annotations

import pytest

from trustloop.agent.intents import (
    ById,
    ByName,
    ChangeMedication,
    Chart,
    Current,
    FindPatient,
    Intent,
    Labs,
    Unrecognised,
    WriteNote,
    parse_intent,
)
from trustloop.agent.lexicon import LabQuery

HBA1C = LabQuery("HbA1c", "4548-4", "laboratory")
BLOOD_PRESSURE = LabQuery("blood pressure", "55284-4", "vital-signs")
LABS = LabQuery("lab results", category="laboratory")


@pytest.mark.parametrize(
    ("question", "intent"),
    [
        ("find Gustavo Mejia", FindPatient("Gustavo Mejia")),
        ("Look up patient Mejía.", FindPatient("Mejía")),
        ("what were Alda Carter's last HbA1c results?",
         Labs(ByName("Alda Carter"), HBA1C)),
        ("what's Alda Carter\u2019s A1c?", Labs(ByName("Alda Carter"), HBA1C)),
        ("what were her last HbA1c results?", Labs(Current(), HBA1C)),
        ("show Alda Carter's blood pressure",
         Labs(ByName("Alda Carter"), BLOOD_PRESSURE)),
        ("show his blood pressure", Labs(Current(), BLOOD_PRESSURE)),
        ("labs for Alda Carter since 2020-01-01",
         Labs(ByName("Alda Carter"), LABS, since="2020-01-01")),
        ("vitals of Patient/p-1 until 2021-06-30",
         Labs(ById("p-1"), LabQuery("vital signs", category="vital-signs"),
              until="2021-06-30")),
        ("results for LOINC 2345-7 for Alda Carter",
         Labs(ByName("Alda Carter"), LabQuery("LOINC 2345-7", code="2345-7"))),
        ("add a note to her chart: Discussed diet: less sugar.",
         WriteNote(Current(), "Discussed diet: less sugar.")),
        ("Add a note to Alda Carter's chart: BP fine",
         WriteNote(ByName("Alda Carter"), "BP fine")),
        ("add a note to the chart of Patient/p-1: seen",
         WriteNote(ById("p-1"), "seen")),
        ("add a note to this patient's chart: seen", WriteNote(Current(), "seen")),
        ("stop her metformin", ChangeMedication(Current(), "metformin", "stopped")),
        ("Please discontinue Alda Carter's metformin.",
         ChangeMedication(ByName("Alda Carter"), "metformin", "stopped")),
        ("put Alda Carter's metformin on hold",
         ChangeMedication(ByName("Alda Carter"), "metformin", "on-hold")),
        ("resume their lisinopril",
         ChangeMedication(Current(), "lisinopril", "active")),
        ("change her metformin dose to 1000 mg twice daily",
         ChangeMedication(Current(), "metformin", dosage="1000 mg twice daily")),
        ("stop his MedicationRequest/m-1",
         ChangeMedication(Current(), "MedicationRequest/m-1", "stopped")),
        ("show me this patient's chart", Chart(Current())),
        ("what is the weather?", Unrecognised()),
    ],
)  # fmt: skip
def test_sentences_map_to_intents(question: str, intent: Intent) -> None:
    assert parse_intent(question) == intent


def test_a_note_keeps_its_text_verbatim_even_when_it_names_a_lab() -> None:
    intent = parse_intent("add a note to her chart: HbA1c 7.4%, stop metformin? no")

    assert intent == WriteNote(Current(), "HbA1c 7.4%, stop metformin? no")


def test_a_lab_question_without_any_patient_is_not_understood() -> None:
    assert parse_intent("what is a normal HbA1c?") == Unrecognised()
