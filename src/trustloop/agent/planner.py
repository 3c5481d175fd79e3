"""The offline planner's decisions: what the clinician asked and what to do next.

Pure functions over Strands' ``Messages``: :func:`read_turn` finds the clinician's last
question and the tool results that followed it; :func:`plan` returns the next step, a
tool call or a final answer. A refused tool call ends the turn: the refusal is relayed
and nothing is retried (DESIGN.md, "A denial is final for that request").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trustloop.agent import answers
from trustloop.agent.results import ToolOutcome, read_tool_result

LIST_PATIENTS = "list_my_patients"
READ_RECORD = "read_patient_record"


@dataclass(frozen=True)
class Roster:
    """The clinician's roster: "list my patients", "who are my patients"."""


@dataclass(frozen=True)
class ChartByName:
    name: str


@dataclass(frozen=True)
class ChartById:
    patient_id: str


@dataclass(frozen=True)
class Unrecognised:
    """An empty question, or one the planner cannot serve."""


Intent = Roster | ChartByName | ChartById | Unrecognised


@dataclass(frozen=True)
class CallTool:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    text: str


Step = CallTool | Answer


@dataclass(frozen=True)
class Turn:
    """The clinician's last question and the tool results since, oldest first."""

    question: str
    outcomes: list[ToolOutcome] = field(default_factory=list)

    def last(self, tool: str) -> ToolOutcome | None:
        return next((o for o in reversed(self.outcomes) if o.name == tool), None)


_PATIENT_REF = re.compile(r"\bPatient/([A-Za-z0-9.-]{1,64})\b")
_UUID = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE
)
_ROSTER = re.compile(
    r"\b(?:list|show|see|view|who are|which are|give me)\b.*\bpatients\b"
    r"|^\s*my patients\W*$",
    re.IGNORECASE,
)
_RECORD_WORDS = r"(?:medical\s+)?(?:chart|record|file|summary)"
_POSSESSIVE = re.compile(
    rf"(?P<name>[^?!.,;:]+?)['\u2019]s?\s+{_RECORD_WORDS}\b", re.IGNORECASE
)
_OF_NAME = re.compile(
    rf"\b{_RECORD_WORDS}\s+(?:of|for)\s+(?P<name>[^?!.,;:]+)", re.IGNORECASE
)
# Words around a name in "please show me X's chart" / "the chart of X please".
_FILLER = frozenset(
    (
        *("a", "at", "bring", "can", "could", "display", "fetch", "for", "get"),
        *("give", "i", "is", "let", "look", "me", "now", "open", "patient"),
        *("please", "pull", "read", "see", "show", "the", "to", "up", "view"),
        *("want", "what", "would", "you"),
    )
)
_FHIR_ID = re.compile(r"^[A-Za-z0-9.-]{1,64}$")


def read_turn(messages: Sequence[Mapping[str, Any]]) -> Turn:
    """The last user question and the tool results that answer the calls made since."""
    start = _last_question_index(messages)
    if start is None:
        return Turn(question="")

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
                outcomes.append(read_tool_result(name, result))
    return Turn(question=question, outcomes=outcomes)


def parse_intent(question: str) -> Intent:
    """What the clinician asked for, from the words of the question alone."""
    text = " ".join(question.split())
    if not text:
        return Unrecognised()

    reference = _PATIENT_REF.search(text)
    if reference:
        return ChartById(reference.group(1))
    if _ROSTER.search(text):
        return Roster()

    name = _named_patient(text)
    if name is not None:
        return ChartById(name) if _looks_like_id(name) else ChartByName(name)

    bare = _UUID.search(text)
    return ChartById(bare.group(0)) if bare else Unrecognised()


def plan(turn: Turn, tools: Collection[str]) -> Step:
    """The next step for this turn, given the tools the agent offers."""
    refusal = next((o for o in turn.outcomes if not o.ok), None)
    if refusal is not None:
        return Answer(answers.refused(refusal.text))

    intent = parse_intent(turn.question)
    if isinstance(intent, Roster):
        return _plan_roster(turn, tools)
    if isinstance(intent, ChartByName):
        return _plan_chart_by_name(turn, tools, intent.name)
    if isinstance(intent, ChartById):
        return _plan_chart(turn, tools, intent.patient_id)
    return Answer(answers.HELP)


def match_roster(patients: Sequence[Any], name: str) -> list[dict[str, Any]]:
    """Roster entries that ``name`` names, ignoring case and accents.

    ``name`` may be the full name, the first given name and the family name, the
    family name alone or the given name(s) alone: "agustin fonseca", "Fonseca" and
    "agustin" all match "Agustín Fonseca". Every kind of match counts, so "Carter"
    finds both Alda Carter and Carter Smith; the caller opens a chart only when
    exactly one entry matches.
    """
    wanted = _name_tokens(name)
    if not wanted:
        return []
    return [
        entry
        for entry in patients
        if isinstance(entry, dict)
        and _name_matches(_name_tokens(entry.get("name")), wanted)
    ]


def _plan_roster(turn: Turn, tools: Collection[str]) -> Step:
    roster = turn.last(LIST_PATIENTS)
    if roster is None:
        return _call(tools, LIST_PATIENTS, {})
    if roster.data is None:
        return Answer(answers.unreadable(LIST_PATIENTS))
    return Answer(answers.roster(roster.data))


def _plan_chart_by_name(turn: Turn, tools: Collection[str], name: str) -> Step:
    roster = turn.last(LIST_PATIENTS)
    if roster is None:
        return _call(tools, LIST_PATIENTS, {})
    if roster.data is None:
        return Answer(answers.unreadable(LIST_PATIENTS))

    matches = match_roster(roster.data.get("patients", []), name)
    if not matches:
        return Answer(answers.not_found(name))
    if len(matches) > 1:
        return Answer(answers.ambiguous(name, matches))
    return _plan_chart(turn, tools, str(matches[0].get("id")))


def _plan_chart(turn: Turn, tools: Collection[str], patient_id: str) -> Step:
    record = turn.last(READ_RECORD)
    if record is None:
        return _call(tools, READ_RECORD, {"patient_id": patient_id})
    if record.data is None:
        return Answer(answers.unreadable(READ_RECORD))
    return Answer(answers.chart(record.data))


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


def _named_patient(text: str) -> str | None:
    found = _POSSESSIVE.search(text) or _OF_NAME.search(text)
    if found is None:
        return None

    words = found.group("name").split()
    while words and words[0].lower() in _FILLER:
        words.pop(0)
    while words and words[-1].lower() in _FILLER:
        words.pop()
    return " ".join(words) or None


def _looks_like_id(name: str) -> bool:
    return (
        " " not in name
        and bool(_FHIR_ID.match(name))
        and any(c.isdigit() for c in name)
    )


def _name_tokens(name: object) -> list[str]:
    if not isinstance(name, str):
        return []
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return re.sub(r"[^\w\s]|_", " ", plain).split()


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
