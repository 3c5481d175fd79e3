"""The runtime's denial guard: a refused call never runs twice in one request."""

from __future__ import annotations

from typing import Any

from strands.hooks import AfterToolCallEvent, BeforeToolCallEvent

from trustloop.agent.denials import DenialGuard

NO_AGENT: Any = None  # the guard never looks at the agent


def _use(patient: str, tool: str = "read_patient_record", **more: Any) -> Any:
    return {
        "toolUseId": "t1",
        "name": tool,
        "input": {"patient_id": patient, **more},
    }


def _before(
    guard: DenialGuard, patient: str, tool: str = "read_patient_record", **more: Any
) -> BeforeToolCallEvent:
    event = BeforeToolCallEvent(
        agent=NO_AGENT,
        selected_tool=None,
        tool_use=_use(patient, tool, **more),
        invocation_state={},
    )
    guard._before(event)
    return event


def _after(
    guard: DenialGuard,
    patient: str,
    text: str,
    status: str = "error",
    tool: str = "read_patient_record",
    **more: Any,
) -> None:
    event = AfterToolCallEvent(
        agent=NO_AGENT,
        selected_tool=None,
        tool_use=_use(patient, tool, **more),
        invocation_state={},
        result={"toolUseId": "t1", "status": status, "content": [{"text": text}]},  # type: ignore[typeddict-item]
    )
    guard._after(event)


def test_a_refused_call_is_cancelled_when_repeated() -> None:
    guard = DenialGuard()
    assert _before(guard, "p1").cancel_tool is False
    _after(guard, "p1", "access_denied: Patient/p1: not on your care team")

    again = _before(guard, "p1")

    assert isinstance(again.cancel_tool, str)
    assert again.cancel_tool.startswith("access_denied")


def test_other_failures_and_other_patients_may_be_called() -> None:
    guard = DenialGuard()
    _after(guard, "p1", "temporarily_unavailable: database")
    _after(guard, "p2", "access_denied: Patient/p2: not on your care team")

    assert _before(guard, "p1").cancel_tool is False
    assert _before(guard, "p3").cancel_tool is False


def test_tool_calls_of_one_request_are_bounded() -> None:
    guard = DenialGuard(max_tool_calls=3)
    allowed = [_before(guard, f"p{n}").cancel_tool for n in range(3)]
    fourth = _before(guard, "p9").cancel_tool

    assert allowed == [False, False, False]
    assert isinstance(fourth, str)
    assert "too many tool calls" in fourth


def test_a_declined_note_is_not_asked_for_again_in_other_words() -> None:
    guard = DenialGuard()
    declined = "access_denied: the clinician declined the step-up"
    _after(guard, "p1", declined, tool="write_clinical_note", note="first wording")

    again = _before(guard, "p1", "write_clinical_note", note="second wording")
    other_patient = _before(guard, "p2", "write_clinical_note", note="first wording")
    other_action = _before(guard, "p1", "update_medication", status="stopped")

    assert isinstance(again.cancel_tool, str)
    assert other_patient.cancel_tool is False
    assert other_action.cancel_tool is False


def test_a_refused_read_also_stops_that_patients_lab_results() -> None:
    guard = DenialGuard()
    _after(guard, "p1", "access_denied: Patient/p1: not on your care team")

    labs = _before(guard, "p1", "get_lab_results", code="4548-4")

    assert isinstance(labs.cancel_tool, str)
    assert labs.cancel_tool.startswith("access_denied")
