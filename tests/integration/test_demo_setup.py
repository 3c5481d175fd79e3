"""The demo set-up: stable care teams and restrictions, and a usable demo roster."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from trustloop.devstack.demo import (
    CLINICIANS,
    Clinician,
    care_team_for,
    is_sensitive,
)
from trustloop.devstack.demo_setup import apply_demo_setup
from trustloop.devstack.postgres import start_cluster, stop_cluster
from trustloop.records import samples_path
from trustloop.records.fhir_import import load_bundles
from trustloop.records.schema import apply_schema

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from trustloop.devstack.postgres import ClusterInfo

Assignment = dict[str, tuple[bool, frozenset[str]]]
"""Patient id -> (sensitive, subs of its care team)."""

# Sorts before every sample id, so an assignment by position would shift everyone.
NEW_PATIENT = "0000-new-patient"


@pytest.fixture
def fresh_cluster(
    pg_state_dir_factory: Callable[[str], Path],
) -> Iterator[ClusterInfo]:
    """A cluster of its own with the samples loaded and the demo set up once."""
    state_dir = pg_state_dir_factory("pgdemo")
    info = start_cluster(state_dir)
    try:
        apply_schema(info.admin_conninfo())
        load_bundles(info.admin_conninfo(), samples_path())
        apply_demo_setup(info.admin_conninfo())
        yield info
    finally:
        stop_cluster(state_dir)


def _assignment(cluster: ClusterInfo) -> Assignment:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        rows = conn.execute(
            "SELECT p.id, p.sensitive, coalesce(array_agg(m.clinician_sub)"
            "       FILTER (WHERE m.clinician_sub IS NOT NULL), '{}')"
            "  FROM clinical.patients AS p"
            "  LEFT JOIN clinical.care_team_members AS m ON m.patient_id = p.id"
            " GROUP BY p.id, p.sensitive"
        ).fetchall()
    return {str(pid): (bool(flag), frozenset(subs)) for pid, flag, subs in rows}


def _one_patient_bundle(tmp_path: Path) -> Path:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": NEW_PATIENT}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"fullUrl": f"urn:uuid:{NEW_PATIENT}", "resource": patient}],
    }
    path = tmp_path / "new.json"
    path.write_text(json.dumps(bundle))
    return path


@pytest.mark.integration
def test_loading_another_bundle_keeps_every_existing_care_team_and_flag(
    fresh_cluster: ClusterInfo, tmp_path: Path
) -> None:
    before = _assignment(fresh_cluster)

    load_bundles(fresh_cluster.admin_conninfo(), _one_patient_bundle(tmp_path))
    summary = apply_demo_setup(fresh_cluster.admin_conninfo())

    after = _assignment(fresh_cluster)
    assert {pid: after[pid] for pid in before} == before
    assert summary.patients == 1
    assert after[NEW_PATIENT] == (
        is_sensitive(NEW_PATIENT),
        frozenset(c.sub for c in care_team_for(NEW_PATIENT)),
    )


@pytest.mark.integration
def test_demo_setup_never_changes_a_patient_that_already_has_a_care_team(
    fresh_cluster: ClusterInfo,
) -> None:
    """A restriction or team set by hand survives the next set-up run."""
    pid = min(_assignment(fresh_cluster))
    with psycopg.connect(fresh_cluster.admin_conninfo()) as conn:
        conn.execute(
            "DELETE FROM clinical.care_team_members WHERE patient_id = %s", (pid,)
        )
        conn.execute(
            "INSERT INTO clinical.care_team_members (clinician_sub, patient_id, role)"
            " VALUES ('clin-someone-else', %s, 'physician')",
            (pid,),
        )
        conn.execute(
            "UPDATE clinical.patients SET sensitive = NOT sensitive WHERE id = %s",
            (pid,),
        )
    before = _assignment(fresh_cluster)

    summary = apply_demo_setup(fresh_cluster.admin_conninfo())

    assert summary.patients == 0
    assert _assignment(fresh_cluster) == before


def _roster(cluster: ClusterInfo, sub: str, *, sensitive: bool) -> list[str]:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        rows = conn.execute(
            "SELECT p.id FROM clinical.patients AS p"
            "  JOIN clinical.care_team_members AS m ON m.patient_id = p.id"
            " WHERE m.clinician_sub = %s AND p.sensitive = %s"
            "   AND EXISTS (SELECT 1 FROM clinical.conditions AS c"
            "                WHERE c.patient_id = p.id)",
            (sub, sensitive),
        ).fetchall()
    return [str(r[0]) for r in rows]


@pytest.mark.integration
@pytest.mark.parametrize("clinician", CLINICIANS, ids=lambda c: c.username)
def test_every_demo_clinician_has_several_open_charts_with_conditions(
    cluster: ClusterInfo, clinician: Clinician
) -> None:
    assert len(_roster(cluster, clinician.sub, sensitive=False)) >= 5


@pytest.mark.integration
def test_achen_has_a_restricted_patient_and_some_patients_are_not_hers(
    cluster: ClusterInfo,
) -> None:
    """The demo needs a step-up case and a not-on-the-care-team case for achen."""
    assignment = _assignment(cluster)

    mine_sensitive = [
        pid for pid, (flag, subs) in assignment.items() if flag and "clin-achen" in subs
    ]
    not_mine = [
        pid for pid, (_, subs) in assignment.items() if "clin-achen" not in subs
    ]

    assert mine_sensitive
    assert not_mine
