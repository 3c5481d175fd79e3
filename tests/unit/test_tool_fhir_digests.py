"""Resources that validated are remembered by content digest, and only by content."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation

from trustloop.identity.rhythm import ToolCallError
from trustloop.tools import fhir_results
from trustloop.tools.fhir_results import forget_validated, validated


def _observation(**changes: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o-1",
        "status": "final",
        "code": {"text": "Glucose"},
        "effectiveDateTime": "2026-01-02T03:04:05+00:00",
        **changes,
    }


class CountingObservation:
    """Stands in the model table for Observation: the real model, counted."""

    calls = 0

    @classmethod
    def model_validate(cls, obj: Any) -> Observation:
        cls.calls += 1
        return Observation.model_validate(obj)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[CountingObservation]]:
    forget_validated()
    CountingObservation.calls = 0
    monkeypatch.setitem(fhir_results._MODELS, "Observation", CountingObservation)
    yield CountingObservation
    forget_validated()


def test_the_same_content_is_validated_once(
    counted: type[CountingObservation],
) -> None:
    first, again = _observation(), _observation()

    assert validated(first, "Observation") is first
    assert validated(again, "Observation") is again
    assert counted.calls == 1


def test_changed_content_is_validated_again_and_can_fail(
    counted: type[CountingObservation],
) -> None:
    validated(_observation(), "Observation")

    with pytest.raises(ToolCallError, match="failed FHIR R4B validation"):
        validated(_observation(effectiveDateTime="not-a-date"), "Observation")
    assert counted.calls == 2


def test_a_resource_that_failed_is_never_remembered(
    counted: type[CountingObservation],
) -> None:
    broken = _observation(effectiveDateTime="not-a-date")

    for _ in range(2):
        with pytest.raises(ToolCallError):
            validated(broken, "Observation")
    assert counted.calls == 2


def test_a_remembered_digest_does_not_pass_another_resource_type(
    counted: type[CountingObservation],
) -> None:
    validated(_observation(), "Observation")

    with pytest.raises(ToolCallError, match=r"\(Condition\) is malformed"):
        validated(_observation(), "Condition")
