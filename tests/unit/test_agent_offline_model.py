"""The offline planner drives a real Strands agent loop with plain Python tools."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from strands import Agent, tool

from trustloop.agent import intents, planner
from trustloop.agent.offline_model import OfflineModel, OfflineModelError
from trustloop.agent.results import read_tool_result

ALDA_ID = "6f1c2d9e-1b7a-4c55-9a51-3c0e8f2b7d10"
AGUSTIN_ID = "27de96c6-6910-4f0f-8f10-00ce6090f447"

ROSTER = {
    "patients": [
        {
            "id": ALDA_ID,
            "name": "Alda Carter",
            "birth_date": "1961-04-12",
            "gender": "female",
            "sensitive": False,
        },
        {
            "id": AGUSTIN_ID,
            "name": "Agustín Fonseca",
            "birth_date": "1994-02-01",
            "gender": "male",
            "sensitive": True,
        },
    ],
    "obo_jti": "jti-roster",
}


def chart_for(patient_id: str) -> dict[str, Any]:
    """A contract-shaped ``read_patient_record`` result (FHIR R4 resources)."""
    return {
        "patient": {
            "resourceType": "Patient",
            "id": patient_id,
            "name": [{"use": "official", "family": "Carter", "given": ["Alda"]}],
            "gender": "female",
            "birthDate": "1961-04-12",
        },
        "conditions": [
            {
                "resourceType": "Condition",
                "clinicalStatus": {"coding": [{"code": "active"}]},
                "code": {"text": "Essential hypertension"},
                "onsetDateTime": "2010-03-01T09:00:00+00:00",
            },
            {
                "resourceType": "Condition",
                "clinicalStatus": {"coding": [{"code": "resolved"}]},
                "code": {"text": "Sprain of wrist"},
            },
        ],
        "medications": [
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "medicationCodeableConcept": {"text": "Lisinopril 10 MG Oral Tablet"},
            },
            {
                "resourceType": "MedicationRequest",
                "status": "stopped",
                "medicationCodeableConcept": {"text": "Ibuprofen 200 MG Oral Tablet"},
            },
        ],
        "observations": [
            {
                "resourceType": "Observation",
                "code": {"coding": [{"code": "29463-7", "display": "Body Weight"}]},
                "valueQuantity": {"value": 78.6865809811209, "unit": "kg"},
                "effectiveDateTime": "2024-11-02T10:00:00+00:00",
            }
        ],
        "obo_jti": "jti-chart",
    }


@dataclass
class FakeRecords:
    """Plain Strands tools named as the MCP server's, counting their calls."""

    denied: set[str] = field(default_factory=set)
    calls: list[tuple[str, str | None]] = field(default_factory=list)

    def tools(self) -> list[Any]:
        @tool
        def list_my_patients() -> str:
            """List the patients on the signed-in clinician's care team."""
            self.calls.append(("list_my_patients", None))
            return json.dumps(ROSTER)

        @tool
        def read_patient_record(patient_id: str) -> dict[str, Any]:
            """Read one patient's chart.

            Args:
                patient_id: The patient's FHIR id.
            """
            self.calls.append(("read_patient_record", patient_id))
            if patient_id in self.denied:
                text = f"access_denied: Patient/{patient_id} is not on your care team"
                return {"status": "error", "content": [{"text": text}]}
            return {
                "status": "success",
                "content": [{"text": json.dumps(chart_for(patient_id))}],
            }

        return [list_my_patients, read_patient_record]


AgentFactory = Callable[..., tuple[Agent, FakeRecords]]


@pytest.fixture
def make_agent() -> AgentFactory:
    def build(
        denied: set[str] | None = None, transcript: Path | None = None
    ) -> tuple[Agent, FakeRecords]:
        records = FakeRecords(denied=denied or set())
        model = OfflineModel(transcript_path=transcript)
        agent = Agent(model=model, tools=records.tools(), callback_handler=None)
        return agent, records

    return build


def test_chart_question_reads_the_roster_then_the_record(
    make_agent: AgentFactory,
) -> None:
    agent, records = make_agent()

    answer = str(agent("show me Alda Carter's chart"))

    assert records.calls == [
        ("list_my_patients", None),
        ("read_patient_record", ALDA_ID),
    ]
    assert "Chart for Alda Carter" in answer
    assert "Born: 1961-04-12" in answer
    assert "Gender: female" in answer
    assert "Essential hypertension (since 2010-03-01)" in answer
    assert "Sprain of wrist" not in answer
    assert "Lisinopril 10 MG Oral Tablet" in answer
    assert "Ibuprofen" not in answer
    assert "Body Weight: 78.69 kg (2024-11-02)" in answer


def test_name_match_ignores_case_and_accents(make_agent: AgentFactory) -> None:
    agent, records = make_agent()

    agent("please pull up the chart of agustin FONSECA")

    assert records.calls[-1] == ("read_patient_record", AGUSTIN_ID)


def test_family_name_alone_finds_the_patient(make_agent: AgentFactory) -> None:
    agent, records = make_agent()

    agent("Carter's record")

    assert records.calls[-1] == ("read_patient_record", ALDA_ID)


def test_unknown_name_is_answered_after_the_roster_only(
    make_agent: AgentFactory,
) -> None:
    agent, records = make_agent()

    answer = str(agent("show me Zed Quinn's chart"))

    assert records.calls == [("list_my_patients", None)]
    assert (
        answer.strip() == "I couldn't find a patient named Zed Quinn on your care team."
    )


def test_patient_reference_reads_the_record_directly(make_agent: AgentFactory) -> None:
    agent, records = make_agent()

    answer = str(agent(f"open Patient/{ALDA_ID}"))

    assert records.calls == [("read_patient_record", ALDA_ID)]
    assert "Chart for Alda Carter" in answer


def test_bare_fhir_id_reads_the_record_directly(make_agent: AgentFactory) -> None:
    agent, records = make_agent()

    agent(f"what is in {AGUSTIN_ID}?")

    assert records.calls == [("read_patient_record", AGUSTIN_ID)]


def test_denial_is_relayed_and_not_retried(make_agent: AgentFactory) -> None:
    agent, records = make_agent(denied={ALDA_ID})

    answer = str(agent("show me Alda Carter's chart"))

    assert records.calls == [
        ("list_my_patients", None),
        ("read_patient_record", ALDA_ID),
    ]
    assert "access_denied: Patient/" in answer
    assert "not on your care team" in answer


def test_roster_lists_names_birth_dates_and_restricted_marker(
    make_agent: AgentFactory,
) -> None:
    agent, records = make_agent()

    answer = str(agent("who are my patients?"))

    assert records.calls == [("list_my_patients", None)]
    assert "- Alda Carter, born 1961-04-12\n" in answer
    assert "- Agustín Fonseca, born 1994-02-01 (restricted)" in answer


@pytest.mark.parametrize("question", ["", "   \n", "what's the weather like?"])
def test_unanswerable_question_says_what_it_can_do(
    make_agent: AgentFactory, question: str
) -> None:
    agent, records = make_agent()

    answer = str(agent(question))

    assert records.calls == []
    assert "list my patients" in answer
    assert "chart" in answer


def test_each_question_in_a_conversation_is_planned_on_its_own(
    make_agent: AgentFactory,
) -> None:
    agent, records = make_agent()

    agent("list my patients")
    answer = str(agent("show me Fonseca's chart"))

    assert records.calls[-1] == ("read_patient_record", AGUSTIN_ID)
    assert "Chart for Alda Carter" in answer  # the fake returns Alda's chart for any id


def test_transcript_holds_every_model_input(
    make_agent: AgentFactory, tmp_path: Path
) -> None:
    transcript = tmp_path / "model.jsonl"
    agent, _ = make_agent(transcript=transcript)

    agent("show me Alda Carter's chart")

    lines = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert len(lines) == 3  # roster call, record call, answer
    assert {spec["name"] for spec in lines[0]["tool_specs"]} == {
        "list_my_patients",
        "read_patient_record",
    }
    assert (
        lines[0]["messages"][0]["content"][0]["text"] == "show me Alda Carter's chart"
    )
    assert "toolResult" in lines[2]["messages"][-1]["content"][0]
    assert transcript.stat().st_mode & 0o077 == 0


def test_missing_tool_is_reported_not_called() -> None:
    agent = Agent(model=OfflineModel(), tools=[], callback_handler=None)

    answer = str(agent("list my patients"))

    assert "list_my_patients tool is not available" in answer


def test_structured_output_is_refused() -> None:
    with pytest.raises(OfflineModelError, match="structured output"):
        OfflineModel().structured_output(OfflineModelError, [])  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("question", "intent"),
    [
        ("list my patients", intents.Roster()),
        ("Who are my patients?", intents.Roster()),
        ("show me Alda Carter's chart", intents.Chart(intents.ByName("Alda Carter"))),
        (
            "Alda Carter\u2019s medical record please",
            intents.Chart(intents.ByName("Alda Carter")),
        ),
        ("chart of Alda Carter.", intents.Chart(intents.ByName("Alda Carter"))),
        ("record for p-001", intents.Chart(intents.ById("p-001"))),
        ("Patient/abc-123", intents.Chart(intents.ById("abc-123"))),
        ("show me her chart", intents.Chart(intents.Current())),
        ("hello", intents.Unrecognised()),
    ],
)
def test_questions_map_to_intents(question: str, intent: intents.Intent) -> None:
    assert intents.parse_intent(question) == intent


def test_two_roster_matches_ask_for_an_id() -> None:
    roster = {"patients": [*ROSTER["patients"], {"id": "x-2", "name": "Ann Carter"}]}
    outcome = read_tool_result(
        "list_my_patients",
        {"status": "success", "content": [{"text": json.dumps(roster)}]},
    )

    step = planner.plan(planner.Turn("Carter's chart", [outcome]), {"list_my_patients"})

    assert isinstance(step, planner.Answer)
    assert step.text.startswith(
        "More than one patient on your care team matches Carter"
    )


@pytest.mark.parametrize(
    ("question", "patient_id"),
    [
        ("show me Alda's chart", ALDA_ID),
        ("ALDA\u2019s record", ALDA_ID),
        ("the chart of agustin please", AGUSTIN_ID),
    ],
)
def test_given_name_alone_finds_the_only_patient_with_it(
    make_agent: AgentFactory, question: str, patient_id: str
) -> None:
    agent, records = make_agent()

    agent(question)

    assert records.calls == [
        ("list_my_patients", None),
        ("read_patient_record", patient_id),
    ]


def _plan_with_roster(question: str, *extra: dict[str, Any]) -> planner.Step:
    roster = {"patients": [*ROSTER["patients"], *extra]}
    outcome = read_tool_result(
        "list_my_patients",
        {"status": "success", "content": [{"text": json.dumps(roster)}]},
    )
    tools = {"list_my_patients", "read_patient_record"}
    return planner.plan(planner.Turn(question, [outcome]), tools)


@pytest.mark.parametrize(
    ("question", "other"),
    [
        ("show me Alda's chart", "Alda Reyes"),
        ("show me Carter's chart", "Carter Smith"),
    ],
)
def test_a_given_name_that_names_two_patients_asks_which(
    question: str, other: str
) -> None:
    """Shared given names, or one's given name as another's family name."""
    step = _plan_with_roster(question, {"id": "x-2", "name": other})

    assert isinstance(step, planner.Answer)
    assert step.text.startswith("More than one patient on your care team matches")
    assert f"Patient/{ALDA_ID}" in step.text
    assert "Patient/x-2" in step.text


def test_help_suggests_a_placeholder_not_a_patient_name() -> None:
    step = _plan_with_roster("what's the weather like?")

    assert isinstance(step, planner.Answer)
    assert "show me <patient name>'s chart" in step.text
    assert "Alda" not in step.text
    assert "Carter" not in step.text


def test_roster_says_restricted_charts_need_approval_on_the_device(
    make_agent: AgentFactory,
) -> None:
    agent, _ = make_agent()

    answer = str(agent("list my patients"))

    assert answer.strip().endswith(
        "Restricted charts need your approval on your device (step-up) when I "
        "open them."
    )
