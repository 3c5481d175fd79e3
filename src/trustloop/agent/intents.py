"""What the clinician asked for, read from the words of one question (offline planner).

Fixed rules, no language model: :func:`parse_intent` maps a question to one intent
and the patient it is about (:data:`Subject`): a name, a FHIR id, or a pronoun
("her", "his", "their", "this patient") that the planner resolves to the last
patient of the conversation. The README section "The offline model" lists the
sentences understood; anything else is :class:`Unrecognised`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trustloop.agent.lexicon import LabQuery, find_lab


@dataclass(frozen=True)
class ByName:
    name: str


@dataclass(frozen=True)
class ById:
    patient_id: str


@dataclass(frozen=True)
class Current:
    """A pronoun: the last patient of this conversation."""


Subject = ByName | ById | Current


@dataclass(frozen=True)
class Roster:
    """The clinician's roster: "list my patients", "who are my patients"."""


@dataclass(frozen=True)
class FindPatient:
    name: str


@dataclass(frozen=True)
class Chart:
    subject: Subject


@dataclass(frozen=True)
class Labs:
    subject: Subject
    query: LabQuery
    since: str | None = None
    until: str | None = None


@dataclass(frozen=True)
class WriteNote:
    subject: Subject
    text: str


@dataclass(frozen=True)
class ChangeMedication:
    """``drug`` is words of the medication's name or ``MedicationRequest/<id>``."""

    subject: Subject
    drug: str
    status: str | None = None
    dosage: str | None = None


@dataclass(frozen=True)
class Unrecognised:
    """An empty question, or one the planner cannot serve."""


Intent = (
    Roster | FindPatient | Chart | Labs | WriteNote | ChangeMedication | Unrecognised
)

_APOS = r"['\u2019]"
_PRONOUN = r"(?:her|his|their|this\s+patient['\u2019]s|the\s+patient['\u2019]s)"
_PRONOUN_WORD = re.compile(
    r"\b(?:her|him|his|their|them|this\s+patient|the\s+patient|she|he)\b", re.I
)
# "her", "Alda Carter's", "this patient's": whose chart or medication.
_OWNER = rf"(?P<who>{_PRONOUN}|[^:?!.,;]+?{_APOS}s?)"

_PATIENT_REF = re.compile(r"\bPatient/([A-Za-z0-9.-]{1,64})\b")
_MED_REF = re.compile(r"\bMedicationRequest/([A-Za-z0-9.-]{1,64})\b")
_UUID = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE
)
_DATE = r"(\d{4}-\d{2}-\d{2})"
_SINCE = re.compile(rf"\b(?:since|from|after)\s+{_DATE}", re.I)
_UNTIL = re.compile(rf"\b(?:until|till|to|before)\s+{_DATE}", re.I)

_NOTE = re.compile(
    r"^\W*(?:please\s+)?(?:add|write|put|record)\s+(?:a\s+|this\s+)?note\s+"
    r"(?:to|on|in|for)\s+(?P<where>[^:]+?)\s*:\s*(?P<text>\S.*)$",
    re.I | re.S,
)
_NOTE_PLACE = re.compile(
    rf"^(?:the\s+)?(?:(?P<owner>{_PRONOUN}|.+?{_APOS}s?)\s+)?"
    r"(?:medical\s+)?(?:chart|record|file)"
    r"(?:\s+(?:of|for)\s+(?P<of>.+))?$",
    re.I,
)
_STATUS_VERBS = (
    (re.compile(r"^(?:stop|discontinue|cancel)\s+", re.I), "stopped"),
    (re.compile(r"^(?:resume|restart|reactivate)\s+", re.I), "active"),
)
_HOLD = re.compile(rf"^(?:put|place)\s+{_OWNER}\s+(?P<drug>.+?)\s+on\s+hold$", re.I)
_DOSE = re.compile(
    rf"^(?:change|set|adjust|make)\s+{_OWNER}\s+(?P<drug>.+?)\s+"
    r"(?:dose|dosage)\s+(?:to|at)\s+(?P<dosage>.+)$",
    re.I | re.S,
)
_OWNED_DRUG = re.compile(rf"^{_OWNER}\s+(?P<drug>.+)$", re.I)
_FIND = re.compile(
    r"^(?:please\s+)?(?:find|search\s+for|search|look\s+up|lookup|locate)\s+"
    r"(?:the\s+)?(?:patients?\s+)?(?:named\s+|called\s+)?(?P<name>.+)$",
    re.I,
)
_ROSTER = re.compile(
    r"\b(?:list|show|see|view|who are|which are|give me)\b.*\bpatients\b"
    r"|^\s*my patients\W*$",
    re.IGNORECASE,
)
_RECORD_WORDS = r"(?:medical\s+)?(?:chart|record|file|summary)"
_POSSESSIVE = re.compile(
    rf"(?P<name>[^?!.,;:]+?){_APOS}s?\s+{_RECORD_WORDS}\b", re.IGNORECASE
)
_OF_NAME = re.compile(
    rf"\b{_RECORD_WORDS}\s+(?:of|for)\s+(?P<name>[^?!.,;:]+)", re.IGNORECASE
)
_LAB_POSSESSIVE = re.compile(r"(?P<name>[^?!.,;:'\u2019]+)['\u2019]s?\s", re.I)
_PRONOUN_CHART = re.compile(rf"\b{_PRONOUN}\s+{_RECORD_WORDS}\b", re.I)
_FOR_NAME = re.compile(r"\b(?:for|of|on)\s+(?P<name>[^?!.,;:]+)", re.I)
_DATE_TAIL = re.compile(
    r"\s+(?:since|from|after|until|till|to|before|between|in|during)\b.*$", re.I
)
# Words around a name in "please show me X's chart" / "the chart of X please".
_FILLER = frozenset(
    (
        *("a", "all", "are", "at", "bring", "can", "could", "display", "fetch"),
        *("for", "get", "give", "i", "is", "let", "list", "look", "me", "now"),
        *("open", "patient", "please", "pull", "read", "see", "show", "the", "to"),
        *("up", "view", "want", "was", "were", "what", "what's", "whats", "would"),
        *("you", "tell", "about", "of", "on", "check"),
    )
)
_FHIR_ID = re.compile(r"^[A-Za-z0-9.-]{1,64}$")


def parse_intent(question: str) -> Intent:
    """What the clinician asked for, from the words of the question alone."""
    text = " ".join(question.split())
    if not text:
        return Unrecognised()

    for parse in (_note, _medication, _labs, _find):
        intent = parse(text)
        if intent is not None:
            return intent
    return _chart_or_roster(text)


def _note(text: str) -> Intent | None:
    found = _NOTE.match(" ".join(text.split(" ")))
    if found is None:
        return None
    place = _NOTE_PLACE.match(found.group("where").strip())
    if place is None:
        return None
    who = place.group("of") or place.group("owner") or ""
    subject = _subject_words(who)
    return WriteNote(subject, found.group("text").strip()) if subject else None


def _medication(text: str) -> Intent | None:
    plain = text.strip().rstrip(".!?").strip()
    plain = re.sub(r"^please\s+", "", plain, flags=re.I)
    dose = _DOSE.match(plain)
    if dose is not None:
        return _med_intent(dose.group("who"), dose.group("drug"), None, dose["dosage"])
    hold = _HOLD.match(plain)
    if hold is not None:
        return _med_intent(hold.group("who"), hold.group("drug"), "on-hold", None)

    for verb, status in _STATUS_VERBS:
        rest = verb.sub("", plain, count=1)
        if rest == plain:
            continue
        owned = _OWNED_DRUG.match(rest)
        if owned is not None:
            return _med_intent(owned.group("who"), owned.group("drug"), status, None)
    return None


def _med_intent(
    who: str, drug: str, status: str | None, dosage: str | None
) -> Intent | None:
    subject = _subject_words(re.sub(rf"{_APOS}s?$", "", who.strip()))
    drug = drug.strip()
    if subject is None or not drug:
        return None
    reference = _MED_REF.search(drug)
    if reference:
        drug = reference.group(0)
    dosage = dosage.strip().rstrip(".") if dosage else None
    return ChangeMedication(subject, drug, status=status, dosage=dosage)


def _labs(text: str) -> Intent | None:
    found = find_lab(text)
    if found is None:
        return None
    query, start, end = found
    subject = _lab_subject(text, start, end)
    if subject is None:
        return None
    since = _SINCE.search(text)
    until = _UNTIL.search(text)
    return Labs(
        subject,
        query,
        since=since.group(1) if since else None,
        until=until.group(1) if until else None,
    )


def _lab_subject(text: str, start: int, end: int) -> Subject | None:
    """Whose results: a reference, "<name>'s <test>", "<test> for <name>", a pronoun."""
    reference = _PATIENT_REF.search(text) or _UUID.search(text)
    if reference:
        return ById(reference.group(reference.lastindex or 0))

    for before in reversed(list(_LAB_POSSESSIVE.finditer(text[:start]))):
        subject = _subject_words(before.group("name"))
        if subject is not None:
            return subject
    after = _FOR_NAME.search(text, end)
    if after is not None:
        subject = _subject_words(_DATE_TAIL.sub("", after.group("name")))
        if subject is not None:
            return subject
    return Current() if _PRONOUN_WORD.search(text) else None


def _find(text: str) -> Intent | None:
    found = _FIND.match(text.strip())
    if found is None:
        return None
    name = _trim(found.group("name").strip().rstrip(".!?"))
    return FindPatient(name) if name else None


def _chart_or_roster(text: str) -> Intent:
    reference = _PATIENT_REF.search(text)
    if reference:
        return Chart(ById(reference.group(1)))
    if _ROSTER.search(text):
        return Roster()
    if _PRONOUN_CHART.search(text):
        return Chart(Current())

    found = _POSSESSIVE.search(text) or _OF_NAME.search(text)
    if found is not None:
        subject = _subject_words(found.group("name"))
        if subject is not None:
            return Chart(subject)

    bare = _UUID.search(text)
    return Chart(ById(bare.group(0))) if bare else Unrecognised()


def _subject_words(words: str) -> Subject | None:
    """A pronoun, an id or a name, from the words that name the patient."""
    words = re.sub(rf"{_APOS}s?$", "", words.strip())
    reference = _PATIENT_REF.search(words)
    if reference:
        return ById(reference.group(1))
    if _PRONOUN_WORD.fullmatch(words.strip()):
        return Current()
    name = _trim(words)
    if not name:
        return None
    if _PRONOUN_WORD.fullmatch(name):
        return Current()
    if _looks_like_id(name):
        return ById(name)
    return ByName(name)


def _trim(words: str) -> str:
    tokens = words.split()
    while tokens and tokens[0].lower() in _FILLER:
        tokens.pop(0)
    while tokens and tokens[-1].lower() in _FILLER:
        tokens.pop()
    return " ".join(tokens)


def _looks_like_id(name: str) -> bool:
    return (
        " " not in name
        and bool(_FHIR_ID.match(name))
        and any(c.isdigit() for c in name)
    )
