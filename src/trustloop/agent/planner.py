"""The offline planner's decisions: what the clinician asked and what to do next.

Pure functions over Strands' ``Messages``: :func:`read_turn` finds the clinician's last
question, the tool results that followed it and what earlier turns said about
patients (:mod:`trustloop.agent.context`); :func:`plan` returns the next step, a tool
call or a final answer. Intents come from :mod:`trustloop.agent.intents`; a name is
resolved with ``find_patient`` (or the roster when that tool is not offered), a
pronoun to the last patient of the conversation. A refused tool call ends the turn:
the refusal is relayed and nothing is retried (DESIGN.md, "A denial is final for that
request").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trustloop.agent import answers, writes
from trustloop.agent.context import Context, read_context
from trustloop.agent.intents import (
    ById,
    ByName,
    ChangeMedication,
    Chart,
    FindPatient,
    Intent,
    Labs,
    Roster,
    Subject,
    WriteNote,
    parse_intent,
)
from trustloop.agent.names import name_tokens
from trustloop.agent.results import ToolOutcome, read_tool_result

LIST_PATIENTS = "list_my_patients"
FIND_PATIENT = "find_patient"
READ_RECORD = "read_patient_record"
LAB_RESULTS = "get_lab_results"
WRITE_NOTE = "write_clinical_note"
UPDATE_MEDICATION = "update_medication"
WRITE_TOOLS = frozenset({WRITE_NOTE, UPDATE_MEDICATION})
MAX_NAME = 100
LAB_LIMIT = 10

__all__ = ["Answer", "CallTool", "Intent", "Step", "Turn", "parse_intent", "plan"]


@dataclass(frozen=True)
class CallTool:
    """A tool call; ``preface`` is said first (e.g. "approve on your device")."""

    name: str
    arguments: dict[str, Any]
    preface: str | None = None


@dataclass(frozen=True)
class Answer:
    text: str


Step = CallTool | Answer


@dataclass(frozen=True)
class Turn:
    """The clinician's last question, the tool results since, and earlier context."""

    question: str
    outcomes: list[ToolOutcome] = field(default_factory=list)
    context: Context = field(default_factory=Context)

    def last(self, tool: str) -> ToolOutcome | None:
        return next((o for o in reversed(self.outcomes) if o.name == tool), None)


@dataclass(frozen=True)
class Resolved:
    patient_id: str
    name: str


def read_turn(messages: Sequence[Mapping[str, Any]]) -> Turn:
    """The last user question, the results of the calls made since, the context."""
    start = _last_question_index(messages)
    if start is None:
        return Turn(question="")

    context = read_context(messages[:start])
    question = " ".join(_texts(messages[start]))
    names: dict[str, str] = {}
    outcomes: list[ToolOutcome] = []
    for message in messages[start + 1 :]:
        for block in _blocks(message):
            if isinstance(block.get("toolUse"), dict):
                use = block["toolUse"]
                names[str(use.get("toolUseId"))] = str(use.get("name"))
            if isinstance(block.get("toolResult"), dict):
                result = block["toolResult"]
                name = names.get(str(result.get("toolUseId")), "unknown")
                outcome = read_tool_result(name, result)
                context.learn(outcome)
                outcomes.append(outcome)
    return Turn(question=question, outcomes=outcomes, context=context)


def plan(turn: Turn, tools: Collection[str]) -> Step:
    """The next step for this turn, given the tools the agent offers."""
    refusal = next((o for o in turn.outcomes if not o.ok), None)
    if refusal is not None:
        return Answer(answers.refused(refusal.text, write=refusal.name in WRITE_TOOLS))

    intent = parse_intent(turn.question)
    if isinstance(intent, Roster):
        return _plan_roster(turn, tools)
    if isinstance(intent, FindPatient):
        return _plan_find(turn, tools, intent.name)
    if isinstance(intent, Chart | Labs | WriteNote | ChangeMedication):
        resolved = _resolve(turn, tools, intent.subject)
        if not isinstance(resolved, Resolved):
            return resolved
        return _plan_for_patient(turn, tools, intent, resolved)
    return Answer(answers.HELP)


def _plan_for_patient(
    turn: Turn,
    tools: Collection[str],
    intent: Chart | Labs | WriteNote | ChangeMedication,
    patient: Resolved,
) -> Step:
    if isinstance(intent, Chart):
        return _plan_chart(turn, tools, patient)
    if isinstance(intent, Labs):
        return _plan_labs(turn, tools, intent, patient)
    if isinstance(intent, WriteNote):
        return _plan_note(turn, tools, intent, patient)
    return _plan_medication(turn, tools, intent, patient)


def match_roster(patients: Sequence[Any], name: str) -> list[dict[str, Any]]:
    """Roster entries that ``name`` names, ignoring case and accents.

    ``name`` may be the full name, the first given name and the family name, the
    family name alone or the given name(s) alone: "agustin fonseca", "Fonseca" and
    "agustin" all match "Agustín Fonseca". Every kind of match counts, so "Carter"
    finds both Alda Carter and Carter Smith; the caller opens a chart only when
    exactly one entry matches.
    """
    wanted = name_tokens(name)
    if not wanted:
        return []
    return [
        entry
        for entry in patients
        if isinstance(entry, dict)
        and _name_matches(name_tokens(entry.get("name")), wanted)
    ]


def _plan_roster(turn: Turn, tools: Collection[str]) -> Step:
    roster = turn.last(LIST_PATIENTS)
    if roster is None:
        return _call(tools, LIST_PATIENTS, {})
    if roster.data is None:
        return Answer(answers.unreadable(LIST_PATIENTS))
    return Answer(answers.roster(roster.data))


def _plan_find(turn: Turn, tools: Collection[str], name: str) -> Step:
    matches = _matches(turn, tools, name)
    if not isinstance(matches, list):
        return matches
    return Answer(answers.found(name, matches))


def _resolve(turn: Turn, tools: Collection[str], subject: Subject) -> Resolved | Step:
    """The patient a subject names, or the step that finds out (or asks which)."""
    if isinstance(subject, ById):
        pid = subject.patient_id
        return Resolved(pid, turn.context.name_of(pid) or f"Patient/{pid}")
    if not isinstance(subject, ByName):
        last = turn.context.last
        if last is None:
            return Answer(answers.WHICH_PATIENT)
        return Resolved(last.id, last.name or f"Patient/{last.id}")

    matches = _matches(turn, tools, subject.name)
    if not isinstance(matches, list):
        return matches
    exact = [
        m for m in matches if name_tokens(m.get("name")) == name_tokens(subject.name)
    ]
    matches = exact if len(exact) == 1 else matches
    if not matches:
        return Answer(answers.not_found(subject.name))
    if len(matches) > 1:
        return Answer(answers.ambiguous(subject.name, matches))
    pid = str(matches[0].get("id"))
    return Resolved(pid, str(matches[0].get("name") or f"Patient/{pid}"))


def _matches(
    turn: Turn, tools: Collection[str], name: str
) -> list[dict[str, Any]] | Step:
    """Care-team patients matching ``name``: ``find_patient``, else the roster."""
    if len(name) > MAX_NAME:
        return Answer(answers.not_found(name[:MAX_NAME]))
    if FIND_PATIENT in tools:
        found = turn.last(FIND_PATIENT)
        if found is None:
            return CallTool(FIND_PATIENT, {"name": name})
        if found.data is None or not isinstance(found.data.get("matches"), list):
            return Answer(answers.unreadable(FIND_PATIENT))
        return [m for m in found.data["matches"] if isinstance(m, dict)]

    roster = turn.last(LIST_PATIENTS)
    if roster is None:
        return _call(tools, LIST_PATIENTS, {})
    if roster.data is None:
        return Answer(answers.unreadable(LIST_PATIENTS))
    return match_roster(roster.data.get("patients", []), name)


def _plan_chart(turn: Turn, tools: Collection[str], patient: Resolved) -> Step:
    record = turn.last(READ_RECORD)
    if record is None:
        return _read_call(turn, tools, READ_RECORD, {"patient_id": patient.patient_id})
    if record.data is None:
        return Answer(answers.unreadable(READ_RECORD))
    return Answer(answers.chart(record.data))


def _plan_labs(
    turn: Turn, tools: Collection[str], intent: Labs, patient: Resolved
) -> Step:
    labs = turn.last(LAB_RESULTS)
    if labs is not None:
        if labs.data is None:
            return Answer(answers.unreadable(LAB_RESULTS))
        return Answer(answers.labs(labs.data, intent, patient.name))

    arguments: dict[str, Any] = {"patient_id": patient.patient_id}
    if intent.query.code is not None:
        arguments |= {"code": intent.query.code, "limit": LAB_LIMIT}
    else:
        arguments["category"] = intent.query.category
    if intent.since:
        arguments["since"] = intent.since
    if intent.until:
        arguments["until"] = intent.until
    return _read_call(turn, tools, LAB_RESULTS, arguments)


def _plan_note(
    turn: Turn, tools: Collection[str], intent: WriteNote, patient: Resolved
) -> Step:
    written = turn.last(WRITE_NOTE)
    if written is not None:
        if written.data is None:
            return Answer(answers.unreadable(WRITE_NOTE))
        return Answer(writes.note_written(written.data, patient.name))

    arguments = {"patient_id": patient.patient_id, "text": intent.text}
    step = _call(tools, WRITE_NOTE, arguments)
    if isinstance(step, CallTool):
        return CallTool(WRITE_NOTE, arguments, writes.consent_note(patient.name))
    return step


def _plan_medication(
    turn: Turn, tools: Collection[str], intent: ChangeMedication, patient: Resolved
) -> Step:
    changed = turn.last(UPDATE_MEDICATION)
    if changed is not None:
        if changed.data is None:
            return Answer(answers.unreadable(UPDATE_MEDICATION))
        return Answer(writes.medication_changed(changed.data, patient.name))

    chart = turn.last(READ_RECORD)
    if chart is None:
        return _read_call(turn, tools, READ_RECORD, {"patient_id": patient.patient_id})
    if chart.data is None:
        return Answer(answers.unreadable(READ_RECORD))

    medications = chart.data.get("medications")
    choice = writes.choose_medication(medications, intent, patient.name)
    if isinstance(choice, str):
        return Answer(choice)
    arguments: dict[str, Any] = {
        "patient_id": patient.patient_id,
        "medication_request_id": str(choice.get("id")),
    }
    if intent.status:
        arguments["status"] = intent.status
    if intent.dosage:
        arguments["dosage"] = intent.dosage
    step = _call(tools, UPDATE_MEDICATION, arguments)
    if isinstance(step, CallTool):
        preface = writes.consent_medication(choice, intent, patient.name)
        return CallTool(UPDATE_MEDICATION, arguments, preface)
    return step


def _read_call(
    turn: Turn, tools: Collection[str], name: str, arguments: dict[str, Any]
) -> Step:
    """A read, announcing the step-up push when the patient is known restricted."""
    step = _call(tools, name, arguments)
    pid = str(arguments["patient_id"])
    if isinstance(step, CallTool) and turn.context.is_sensitive(pid):
        who = turn.context.name_of(pid) or f"Patient/{pid}"
        return CallTool(name, arguments, answers.step_up_notice(who))
    return step


def _call(tools: Collection[str], name: str, arguments: dict[str, Any]) -> Step:
    if name not in tools:
        return Answer(answers.unavailable(name))
    return CallTool(name, arguments)


def _last_question_index(messages: Sequence[Mapping[str, Any]]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        blocks = _blocks(message)
        if message.get("role") != "user" or any("toolResult" in b for b in blocks):
            continue
        if any("text" in b for b in blocks):
            return index
    return None


def _blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return (
        [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
    )


def _texts(message: Mapping[str, Any]) -> list[str]:
    return [b["text"] for b in _blocks(message) if isinstance(b.get("text"), str)]


def _name_matches(full: list[str], wanted: list[str]) -> bool:
    if not full:
        return False
    if wanted == full:
        return True
    # Family name alone (possibly several words), or first given name + family name.
    for start in range(1, len(full)):
        family = full[start:]
        if wanted in (family, [full[0], *family]):
            return True
    # Given name(s) alone: the leading words of the display name.
    return len(wanted) < len(full) and full[: len(wanted)] == wanted
