"""The read tools through the real MCP server over HTTP, on the real stack.

Every part runs as its own process (IdP, Vault and SPIFFE stand-ins, PostgreSQL
with the 40 Synthea patients, the MCP server). Restricted patients' step-up
pushes are approved by the IdP's dev-only auto-answer. Expected values come from
the database (as admin), never from the tool under test.
"""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from mcp_tools_kit import (
    APPROVE_ON_DEVICE,
    EXCHANGE_EVENTS,
    admin_query,
    assert_r4b,
    audit,
    call_tool,
    list_tools,
    payload_of,
    roster_of,
    text_of,
)
from stackkit import running_stack

from trustloop.cli.session import sign_in
from trustloop.devstack.demo import CLINICIANS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.integration

STORED = {
    "Patient": "select resource from clinical.patients",
    "Condition": "select resource from clinical.conditions",
    "MedicationRequest": "select resource from clinical.medication_requests",
    "Observation": "select resource from clinical.observations",
    "Encounter": "select resource from clinical.encounters",
}


@pytest.fixture(scope="module")
def stack(pg_state_dir_factory: Callable[[str], Path]) -> Iterator[Stack]:
    state = pg_state_dir_factory("mcp-tools-reads")
    with running_stack(state, step_up_auto="approve") as running:
        yield running


@pytest.fixture(scope="module")
def tokens(stack: Stack) -> dict[str, str]:
    """Each demo clinician's access token, by ``sub``."""
    return {c.sub: sign_in(stack.settings, c.username) for c in CLINICIANS}


def _bare(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _accented_patient(stack: Stack) -> tuple[str, str, str]:
    """(clinician sub, patient id, name) of a patient whose name has an accent."""
    rows = admin_query(
        stack,
        "select m.clinician_sub, p.id, p.name from clinical.patients p "
        "join clinical.care_team_members m on m.patient_id = p.id order by p.name",
    )
    for sub, pid, name in rows:
        if _bare(name) != name:
            return str(sub), str(pid), str(name)
    raise AssertionError("the samples have no accented name")


def _observation_codes(stack: Stack, patient_id: str) -> list[tuple[str, int]]:
    rows = admin_query(
        stack,
        "select code, count(*) from clinical.observations where patient_id = %s "
        "group by code having count(*) > 2 order by count(*) desc, code",
        patient_id,
    )
    return [(str(code), int(count)) for code, count in rows]


def _non_sensitive_with_labs(stack: Stack, sub: str) -> str:
    for pid, _, sensitive in roster_of(stack, sub):
        if not sensitive and _observation_codes(stack, pid):
            return pid
    raise AssertionError(f"no patient of {sub} has repeated observations")


# -- the stored data -------------------------------------------------------------------


def test_every_stored_resource_of_the_samples_validates_as_r4b(stack: Stack) -> None:
    """All 40 patients' imported resources, as they are stored, are valid R4B."""
    checked: dict[str, int] = {}
    for kind, query in STORED.items():
        model = get_fhir_model_class(kind)
        rows = admin_query(stack, query)
        for (resource,) in rows:
            model.model_validate(resource)
        checked[kind] = len(rows)

    assert checked["Patient"] == 40
    assert all(count > 0 for count in checked.values())


# -- roster and find_patient ----------------------------------------------------------


async def test_the_roster_is_the_care_team_with_a_summary(
    stack: Stack, tokens: dict[str, str]
) -> None:
    sub = CLINICIANS[0].sub

    payload = payload_of(await call_tool(stack, tokens[sub], "list_my_patients"))

    expected = [(pid, name) for pid, name, _ in roster_of(stack, sub)]
    assert [(p["id"], p["name"]) for p in payload["patients"]] == expected
    assert payload["summary"].startswith(f"{len(expected)} patients on your care team")


async def test_find_patient_ignores_accents_and_case(
    stack: Stack, tokens: dict[str, str]
) -> None:
    sub, patient_id, name = _accented_patient(stack)
    family = name.split()[-1]
    query = _bare(family).upper()

    payload = payload_of(
        await call_tool(stack, tokens[sub], "find_patient", {"name": query})
    )

    assert query != family
    assert patient_id in [m["id"] for m in payload["matches"]]
    assert {"id", "name", "birth_date", "gender", "sensitive"} == set(
        payload["matches"][0]
    )


async def test_several_matches_come_back_as_a_choice(
    stack: Stack, tokens: dict[str, str]
) -> None:
    sub = CLINICIANS[0].sub
    roster = roster_of(stack, sub)
    initials: dict[str, list[str]] = {}
    for pid, name, _ in roster:
        initials.setdefault(_bare(name)[0].lower(), []).append(pid)
    letter, expected = max(initials.items(), key=lambda item: len(item[1]))

    payload = payload_of(
        await call_tool(stack, tokens[sub], "find_patient", {"name": letter})
    )

    found = {m["id"] for m in payload["matches"]}
    assert len(expected) >= 2
    assert set(expected) <= found <= {pid for pid, _, _ in roster}
    assert "Ask the clinician which one they mean." in payload["summary"]


async def test_find_patient_never_finds_anyone_off_the_care_team(
    stack: Stack, tokens: dict[str, str]
) -> None:
    sub = CLINICIANS[0].sub
    mine = {pid for pid, _, _ in roster_of(stack, sub)}
    (stranger,) = admin_query(
        stack,
        "select p.name from clinical.patients p where not exists (select 1 from "
        "clinical.care_team_members m where m.patient_id = p.id "
        "and m.clinician_sub = %s) order by p.name limit 1",
        sub,
    )

    payload = payload_of(
        await call_tool(stack, tokens[sub], "find_patient", {"name": stranger[0]})
    )

    assert {m["id"] for m in payload["matches"]} <= mine
    assert stranger[0] not in [m["name"] for m in payload["matches"]]


# -- read_patient_record -------------------------------------------------------------


async def test_every_chart_of_every_clinician_validates_as_r4b(
    stack: Stack, tokens: dict[str, str]
) -> None:
    """All 40 patients' charts, read through the tool, restricted ones included."""
    read: set[str] = set()
    for clinician in CLINICIANS:
        for pid, _, sensitive in roster_of(stack, clinician.sub):
            if pid in read:
                continue
            heard: list[str] = []
            payload = payload_of(
                await call_tool(
                    stack,
                    tokens[clinician.sub],
                    "read_patient_record",
                    {"patient_id": pid},
                    heard,
                )
            )
            _assert_chart(payload, pid)
            assert (APPROVE_ON_DEVICE in heard) == sensitive
            read.add(pid)

    assert len(read) == 40


def _assert_chart(payload: dict[str, Any], patient_id: str) -> None:
    assert payload["patient"]["id"] == patient_id
    resources = [
        payload["patient"],
        *payload["conditions"],
        *payload["medications"],
        *payload["encounters"],
        *payload["observations"],
        *payload["notes"],
    ]
    for resource in resources:
        assert_r4b(resource)
    assert len(payload["encounters"]) <= 5
    starts = [e["period"]["start"] for e in payload["encounters"]]
    assert starts == sorted(starts, reverse=True)
    assert f"(Patient/{patient_id})" in payload["summary"]


# -- get_lab_results ------------------------------------------------------------------


async def test_labs_by_code_are_that_code_only_newest_first(
    stack: Stack, tokens: dict[str, str]
) -> None:
    sub = CLINICIANS[0].sub
    patient_id = _non_sensitive_with_labs(stack, sub)
    code, count = _observation_codes(stack, patient_id)[0]

    payload = payload_of(
        await call_tool(
            stack,
            tokens[sub],
            "get_lab_results",
            {"patient_id": patient_id, "code": code, "limit": 100},
        )
    )

    observations = payload["observations"]
    assert len(observations) == min(count, 100)
    assert {o["code"]["coding"][0]["code"] for o in observations} == {code}
    times = [o["effectiveDateTime"] for o in observations]
    assert times == sorted(times, reverse=True)
    for observation in observations:
        assert_r4b(observation)
    assert payload["summary"].startswith(f"{len(observations)} observation")


async def test_labs_in_a_date_range_include_both_days(
    stack: Stack, tokens: dict[str, str]
) -> None:
    sub = CLINICIANS[0].sub
    patient_id = _non_sensitive_with_labs(stack, sub)
    code, _ = _observation_codes(stack, patient_id)[0]
    days = admin_query(
        stack,
        "select distinct (effective at time zone 'UTC')::date from "
        "clinical.observations where patient_id = %s and code = %s order by 1",
        patient_id,
        code,
    )
    since, until = days[0][0], days[-2][0] if len(days) > 1 else days[0][0]
    (expected,) = admin_query(
        stack,
        "select count(*) from clinical.observations where patient_id = %s and "
        "code = %s and effective >= %s::date and effective < %s::date + 1",
        patient_id,
        code,
        since,
        until,
    )

    payload = payload_of(
        await call_tool(
            stack,
            tokens[sub],
            "get_lab_results",
            {
                "patient_id": patient_id,
                "code": code,
                "since": since.isoformat(),
                "until": until.isoformat(),
                "limit": 100,
            },
        )
    )

    dates = {
        date.fromisoformat(o["effectiveDateTime"][:10]) for o in payload["observations"]
    }
    assert len(payload["observations"]) == expected[0]
    assert all(
        since - timedelta(days=1) <= d <= until + timedelta(days=1) for d in dates
    )


async def test_labs_by_category_and_limit(stack: Stack, tokens: dict[str, str]) -> None:
    sub = CLINICIANS[0].sub
    patient_id = _non_sensitive_with_labs(stack, sub)

    payload = payload_of(
        await call_tool(
            stack,
            tokens[sub],
            "get_lab_results",
            {"patient_id": patient_id, "category": "vital-signs", "limit": 3},
        )
    )

    observations = payload["observations"]
    assert 0 < len(observations) <= 3
    for observation in observations:
        codes = {c["code"] for cat in observation["category"] for c in cat["coding"]}
        assert "vital-signs" in codes


async def test_labs_of_a_patient_off_the_care_team_are_access_denied(
    stack: Stack, tokens: dict[str, str]
) -> None:
    sub = CLINICIANS[0].sub
    mine = {pid for pid, _, _ in roster_of(stack, sub)}
    (stranger,) = admin_query(
        stack,
        "select id from clinical.patients where not (id = any(%s)) order by id limit 1",
        list(mine),
    )

    result = await call_tool(
        stack, tokens[sub], "get_lab_results", {"patient_id": stranger[0]}
    )

    assert result.is_error
    assert text_of(result).startswith("access_denied: ")


# -- inputs refused before any identity call -------------------------------------------


BAD_INPUTS = {
    "find-sql": ("find_patient", {"name": "x' OR '1'='1"}),
    "find-empty": ("find_patient", {"name": ""}),
    "labs-bad-code": ("get_lab_results", {"patient_id": "p-1", "code": "4548"}),
    "labs-bad-date": ("get_lab_results", {"patient_id": "p-1", "since": "yesterday"}),
    "labs-extra": ("get_lab_results", {"patient_id": "p-1", "sql": "1=1"}),
    "note-too-long": ("write_clinical_note", {"patient_id": "p-1", "text": "a" * 4001}),
    "med-bad-status": (
        "update_medication",
        {"patient_id": "p-1", "medication_request_id": "m", "status": "paused"},
    ),
    "roster-extra": ("list_my_patients", {"sub": "clin-bokafor"}),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_bad_inputs_are_refused_before_any_identity_call(
    stack: Stack, tokens: dict[str, str], case: str
) -> None:
    """The IdP hears only the server's bearer check, never the tool's own calls."""
    token = tokens[CLINICIANS[0].sub]
    name, arguments = BAD_INPUTS[case]
    await list_tools(stack, token)  # the bearer checks of one MCP session
    before = len(audit(stack, "idp"))
    await list_tools(stack, token)
    per_session = len(audit(stack, "idp")) - before
    tool_calls = len(audit(stack, "mcp"))

    result = await call_tool(stack, token, name, arguments)

    after = audit(stack, "idp")[before + per_session :]
    assert result.is_error
    assert text_of(result).startswith("invalid_request: ")
    assert [e["event"] for e in after] == ["token_introspected"] * per_session
    assert not EXCHANGE_EVENTS & {e["event"] for e in after}
    assert len(audit(stack, "mcp")) == tool_calls
