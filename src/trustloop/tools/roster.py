"""``list_my_patients`` and ``find_patient``: the clinician's care-team roster.

Both run on the ``care_team_roster`` detail for ``Practitioner/<sub>``: the IdP
grants only the clinician's own roster and row-level security returns only its
patients, so ``find_patient`` can never find anyone off the care team. Name
matching (docs/contracts.md, "Tools"): case and accents are ignored ("mejia"
finds "Mejía") and every word of the query must start a word of the name
("gus mej" finds "Gustavo Mejía"); several matches come back as a choice.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Any

from trustloop.identity.rar import roster_read
from trustloop.records import queries
from trustloop.tools import summaries

if TYPE_CHECKING:
    from trustloop.identity.step_up import Progress
    from trustloop.tools.caller import Caller
    from trustloop.tools.inputs import FindPatientArguments, NoArguments
    from trustloop.tools.results import Payload

_WORD_SEPARATORS = re.compile(r"[\s'\u2019.\-]+")


async def list_my_patients(
    caller: Caller, arguments: NoArguments, progress: Progress | None = None
) -> Payload:
    """The care-team roster: ``id, name, birth_date, gender, sensitive``."""
    patients, jti = await _roster(caller, "list_my_patients")
    return {"patients": patients, "summary": summaries.roster(patients), "obo_jti": jti}


async def find_patient(
    caller: Caller, arguments: FindPatientArguments, progress: Progress | None = None
) -> Payload:
    """The roster's patients whose name matches ``arguments.name``."""
    patients, jti = await _roster(caller, "find_patient")
    found = [p for p in patients if name_matches(arguments.name, str(p["name"]))]
    return {"matches": found, "summary": summaries.matches(found), "obo_jti": jti}


async def _roster(caller: Caller, tool: str) -> tuple[list[dict[str, Any]], str]:
    """The roster rows and the OBO ``jti`` they were read under."""
    async with caller.rhythm.call(caller.token(), roster_read, tool=tool) as call:
        patients = await call.run(queries.list_roster)
    return patients, call.jti


def name_matches(query: str, name: str) -> bool:
    """Every word of ``query`` starts a word of ``name`` (case, accents ignored)."""
    wanted = _words(query)
    words = _words(name)
    return bool(wanted) and all(
        any(word.startswith(part) for word in words) for part in wanted
    )


def _words(text: str) -> list[str]:
    return [w for w in _WORD_SEPARATORS.split(folded(text)) if w]


def folded(text: str) -> str:
    """``text`` without accents, case-folded: "Mejía" and "MEJIA" fold alike."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return bare.casefold()
