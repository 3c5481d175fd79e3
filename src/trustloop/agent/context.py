"""What the conversation so far says about patients (offline planner).

Read from the Strands messages of earlier turns, which the runtime keeps per
session and clinician (:mod:`trustloop.agent.sessions`): the patients the tools
named (id, display name, restricted or not) and the last patient the clinician
talked about, which a pronoun ("her chart", "stop his metformin") refers to.
Only tool calls and tool results count, never the model's own text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trustloop.agent.results import ToolOutcome, read_tool_result


@dataclass(frozen=True)
class KnownPatient:
    id: str
    name: str | None = None
    sensitive: bool = False


@dataclass
class Context:
    """Patients seen in the conversation, and the last one the clinician meant."""

    patients: dict[str, KnownPatient] = field(default_factory=dict)
    last_id: str | None = None

    @property
    def last(self) -> KnownPatient | None:
        if self.last_id is None:
            return None
        return self.patients.get(self.last_id, KnownPatient(self.last_id))

    def name_of(self, patient_id: str) -> str | None:
        known = self.patients.get(patient_id)
        return known.name if known else None

    def is_sensitive(self, patient_id: str) -> bool:
        known = self.patients.get(patient_id)
        return known.sensitive if known else False

    def learn(self, outcome: ToolOutcome) -> None:
        """Patients named by one successful tool result."""
        data = outcome.data
        if not outcome.ok or data is None:
            return
        for key in ("patients", "matches"):
            for entry in _dicts(data.get(key)):
                self._remember(
                    entry.get("id"), entry.get("name"), entry.get("sensitive")
                )
        patient = data.get("patient")
        if isinstance(patient, dict):
            self._remember(patient.get("id"), _fhir_name(patient), None)

    def _remember(self, patient_id: object, name: object, sensitive: object) -> None:
        if not isinstance(patient_id, str) or not patient_id:
            return
        before = self.patients.get(patient_id, KnownPatient(patient_id))
        self.patients[patient_id] = KnownPatient(
            patient_id,
            name if isinstance(name, str) and name else before.name,
            sensitive if isinstance(sensitive, bool) else before.sensitive,
        )


def read_context(messages: Sequence[Mapping[str, Any]]) -> Context:
    """The context of ``messages`` (earlier turns), oldest to newest."""
    context = Context()
    uses: dict[str, tuple[str, dict[str, Any]]] = {}
    for message in messages:
        for block in _dicts(message.get("content")):
            use = block.get("toolUse")
            if isinstance(use, dict):
                arguments = use.get("input")
                arguments = arguments if isinstance(arguments, dict) else {}
                uses[str(use.get("toolUseId"))] = (str(use.get("name")), arguments)
                if isinstance(arguments.get("patient_id"), str):
                    context.last_id = arguments["patient_id"]
            result = block.get("toolResult")
            if isinstance(result, dict):
                name, _ = uses.get(str(result.get("toolUseId")), ("unknown", {}))
                _after_result(context, read_tool_result(name, result))
    return context


def _after_result(context: Context, outcome: ToolOutcome) -> None:
    context.learn(outcome)
    if outcome.name != "find_patient" or outcome.data is None:
        return
    matches = _dicts(outcome.data.get("matches"))
    if len(matches) == 1 and isinstance(matches[0].get("id"), str):
        context.last_id = matches[0]["id"]


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _fhir_name(patient: dict[str, Any]) -> str | None:
    names = _dicts(patient.get("name"))
    if not names:
        return None
    official = next((n for n in names if n.get("use") == "official"), names[0])
    if isinstance(official.get("text"), str):
        return str(official["text"])
    given = [str(g) for g in official.get("given", []) if isinstance(g, str)]
    family = official.get("family")
    parts = [*given, family if isinstance(family, str) else ""]
    return " ".join(p for p in parts if p) or None
