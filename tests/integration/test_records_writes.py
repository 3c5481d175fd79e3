"""Writes the database itself enforces: one consented change, the true author.

Roles are minted by the real lease engine (group roles as ``verify-rar`` maps
them); the writes run as those roles over SCRAM, exactly as a tool runs them.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from lease_support import admin_rows, grant_spec, lease_engine, leased
from psycopg.types.json import Jsonb

from trustloop.records import changes, samples_path, writes
from trustloop.records.fhir_import import load_bundles
from trustloop.records.schema import apply_schema

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.vault.lease_engine import LeaseEngine

pytestmark = pytest.mark.integration

Refused = psycopg.errors.InsufficientPrivilege


@pytest.fixture(scope="module")
def engine(cluster: ClusterInfo) -> Iterator[LeaseEngine]:
    with lease_engine(cluster) as made:
        yield made


@pytest.fixture
def clean_writes(cluster: ClusterInfo) -> Iterator[list[str]]:
    """Put back what a test wrote (as a superuser): the cluster is shared.

    Yields the ids of the notes that existed before the test.
    """
    meds = admin_rows(
        cluster, "SELECT id, status, resource FROM clinical.medication_requests"
    )
    notes = [r[0] for r in admin_rows(cluster, "SELECT id FROM clinical.notes")]
    history = [
        r[0] for r in admin_rows(cluster, "SELECT id FROM clinical.medication_changes")
    ]
    yield notes
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        conn.execute("DELETE FROM clinical.notes WHERE NOT id = ANY(%s)", (notes,))
        conn.execute(
            "DELETE FROM clinical.medication_changes WHERE NOT id = ANY(%s)",
            (history,),
        )
        for med_id, status, resource in meds:
            conn.execute(
                "UPDATE clinical.medication_requests SET status = %s, resource = %s"
                " WHERE id = %s AND resource IS DISTINCT FROM %s",
                (status, Jsonb(resource), med_id, Jsonb(resource)),
            )


def _patients(cluster: ClusterInfo, *, sensitive: bool) -> list[str]:
    rows = admin_rows(
        cluster,
        "SELECT p.id FROM clinical.patients p WHERE p.sensitive = %s AND EXISTS"
        " (SELECT 1 FROM clinical.medication_requests m WHERE m.patient_id = p.id)"
        " ORDER BY p.id LIMIT 2",
        sensitive,
    )
    return [str(r[0]) for r in rows]


def _medication_of(cluster: ClusterInfo, patient_id: str) -> str:
    rows = admin_rows(
        cluster,
        "SELECT id FROM clinical.medication_requests WHERE patient_id = %s"
        " ORDER BY authored_on DESC, id LIMIT 1",
        patient_id,
    )
    return str(rows[0][0])


def _note_grant(patient_id: str, text: str, **kwargs: Any) -> Any:
    digest = changes.sha256_hex(changes.note_text(text))
    return grant_spec(patient_id, "write_note", change_sha256=digest, **kwargs)


def _med_grant(
    med_id: str, patient_id: str, status: str | None, dosage: str | None, **kw: Any
) -> Any:
    text = changes.medication_change_text(med_id, status, dosage)
    return grant_spec(
        patient_id, "update_medication", change_sha256=changes.sha256_hex(text), **kw
    )


def _stored_notes(
    cluster: ClusterInfo, patient_id: str, existing: list[str]
) -> list[tuple[Any, ...]]:
    """``(author_sub, obo_jti, text)`` of the notes written since ``existing``."""
    rows = admin_rows(
        cluster,
        "SELECT author_sub, obo_jti, text FROM clinical.notes"
        " WHERE patient_id = %s AND NOT id = ANY(%s) ORDER BY created_at",
        patient_id,
        existing,
    )
    return [tuple(r) for r in rows]


def test_add_note_stores_the_consented_text_under_the_grants_author(
    cluster: ClusterInfo, engine: LeaseEngine, clean_writes: list[str]
) -> None:
    patient = _patients(cluster, sensitive=False)[0]
    raw = unicodedata.normalize("NFD", "  Seen today: café, BP 128/82.  ")

    with (
        leased(engine, _note_grant(patient, raw, sub="clin-bokafor")) as role,
        role.connect(cluster) as conn,
    ):
        note = writes.add_note(conn, patient, raw)

    assert note["author_sub"] == "clin-bokafor"
    assert note["obo_jti"] == role.jti
    assert note["patient_id"] == patient
    assert note["text"] == "Seen today: café, BP 128/82."
    assert _stored_notes(cluster, patient, clean_writes) == [
        ("clin-bokafor", role.jti, note["text"])
    ]


def test_note_with_a_forged_author_and_jti_is_stored_with_the_true_ones(
    cluster: ClusterInfo, engine: LeaseEngine, clean_writes: list[str]
) -> None:
    patient = _patients(cluster, sensitive=False)[0]
    text = "Follow-up in two weeks."

    with (
        leased(engine, _note_grant(patient, text)) as role,
        role.connect(cluster) as conn,
    ):
        conn.execute(
            "INSERT INTO clinical.notes (patient_id, author_sub, obo_jti, text)"
            " VALUES (%s, 'clin-chief-of-medicine', 'forged-jti', %s)",
            (patient, text),
        )

    assert _stored_notes(cluster, patient, clean_writes) == [
        ("clin-achen", role.jti, text)
    ]


def test_note_whose_text_differs_from_the_consented_digest_is_refused(
    cluster: ClusterInfo, engine: LeaseEngine, clean_writes: list[str]
) -> None:
    patient = _patients(cluster, sensitive=False)[0]

    with (
        leased(engine, _note_grant(patient, "Metformin continued.")) as role,
        role.connect(cluster) as conn,
        pytest.raises(Refused, match="the database refused the write"),
    ):
        writes.add_note(conn, patient, "Metformin stopped.")

    assert _stored_notes(cluster, patient, clean_writes) == []


def test_note_grant_cannot_write_another_patient_or_twice(
    cluster: ClusterInfo, engine: LeaseEngine, clean_writes: list[str]
) -> None:
    patient, other = _patients(cluster, sensitive=False)
    text = "Discussed diet."

    with leased(engine, _note_grant(patient, text)) as role:
        with role.connect(cluster) as conn, pytest.raises(Refused):
            writes.add_note(conn, other, text)
        with role.connect(cluster) as conn:
            writes.add_note(conn, patient, text)
            with pytest.raises(Refused):
                writes.add_note(conn, patient, text)

    assert _stored_notes(cluster, other, clean_writes) == []
    assert len(_stored_notes(cluster, patient, clean_writes)) == 1


def test_expired_note_grant_cannot_write(
    cluster: ClusterInfo, engine: LeaseEngine, clean_writes: list[str]
) -> None:
    from datetime import timedelta

    patient = _patients(cluster, sensitive=False)[0]
    text = "Too late."
    spec = _note_grant(patient, text, ttl=timedelta(seconds=3))

    with leased(engine, spec) as role, role.connect(cluster) as conn:
        with psycopg.connect(cluster.admin_conninfo(), autocommit=True) as admin:
            admin.execute(
                "UPDATE access.grants SET expires_at = now() WHERE role_name = %s",
                (role.role,),
            )
        with pytest.raises(Refused):
            writes.add_note(conn, patient, text)


def test_sensitive_patient_note_needs_a_stepped_up_grant(
    cluster: ClusterInfo, engine: LeaseEngine, clean_writes: list[str]
) -> None:
    patient = _patients(cluster, sensitive=True)[0]
    text = "Restricted chart note."

    with (
        leased(engine, _note_grant(patient, text)) as plain,
        plain.connect(cluster) as conn,
        pytest.raises(Refused),
    ):
        writes.add_note(conn, patient, text)
    stepped_up = _note_grant(patient, text, stepped_up=True)
    with leased(engine, stepped_up) as stepped, stepped.connect(cluster) as conn:
        note = writes.add_note(conn, patient, text)

    assert note["obo_jti"] == stepped.jti


def test_note_writer_reads_back_only_its_own_note(
    cluster: ClusterInfo, engine: LeaseEngine, clean_writes: list[str]
) -> None:
    patient = _patients(cluster, sensitive=False)[0]
    with (
        leased(engine, _note_grant(patient, "First.")) as first,
        first.connect(cluster) as conn,
    ):
        writes.add_note(conn, patient, "First.")

    with (
        leased(engine, _note_grant(patient, "Second.")) as second,
        second.connect(cluster) as conn,
    ):
        before = conn.execute("SELECT text FROM clinical.notes").fetchall()
        writes.add_note(conn, patient, "Second.")
        after = conn.execute("SELECT text FROM clinical.notes").fetchall()
        with pytest.raises(Refused):
            conn.execute("SELECT id FROM clinical.observations")

    assert before == []
    assert after == [("Second.",)]


def test_medication_change_keeps_history_and_records_the_true_author(
    cluster: ClusterInfo, engine: LeaseEngine, clean_writes: list[str]
) -> None:
    patient = _patients(cluster, sensitive=False)[0]
    med = _medication_of(cluster, patient)
    original = admin_rows(
        cluster, "SELECT resource FROM clinical.medication_requests WHERE id = %s", med
    )[0][0]

    first_spec = _med_grant(med, patient, "stopped", None, sub="clin-bokafor")
    with leased(engine, first_spec) as first, first.connect(cluster) as conn:
        stopped = writes.change_medication(conn, med, "stopped", None)
    second_spec = _med_grant(med, patient, "active", " 1 tablet daily ")
    with leased(engine, second_spec) as second, second.connect(cluster) as conn:
        resumed = writes.change_medication(conn, med, "active", " 1 tablet daily ")

    history = admin_rows(
        cluster,
        "SELECT previous, resource, changed_by, obo_jti FROM clinical.medication_changes"
        " WHERE medication_request_id = %s ORDER BY changed_at",
        med,
    )
    stored = admin_rows(
        cluster,
        "SELECT status, resource FROM clinical.medication_requests WHERE id = %s",
        med,
    )[0]

    assert stopped["previous"] == original
    assert stopped["medication_request"]["status"] == "stopped"
    assert (stopped["changed_by"], stopped["obo_jti"]) == ("clin-bokafor", first.jti)
    assert resumed["previous"]["status"] == "stopped"
    assert resumed["medication_request"]["dosageInstruction"][0]["text"] == (
        "1 tablet daily"
    )
    assert [(h[2], h[3]) for h in history] == [
        ("clin-bokafor", first.jti),
        ("clin-achen", second.jti),
    ]
    assert history[0][0] == original
    assert history[1][0] == stopped["medication_request"]
    assert stored == ("active", resumed["medication_request"])


def test_medication_change_other_than_the_consented_one_is_refused(
    cluster: ClusterInfo, engine: LeaseEngine, clean_writes: list[str]
) -> None:
    patient, other = _patients(cluster, sensitive=False)
    med, others_med = _medication_of(cluster, patient), _medication_of(cluster, other)

    spec = _med_grant(med, patient, "stopped", None)
    with leased(engine, spec) as role:
        with role.connect(cluster) as conn, pytest.raises(Refused):
            writes.change_medication(conn, med, "on-hold", None)
        with role.connect(cluster) as conn, pytest.raises(Refused):
            writes.change_medication(conn, others_med, "stopped", None)
        with role.connect(cluster) as conn, pytest.raises(Refused):
            conn.execute(
                "UPDATE clinical.medication_requests SET status = 'stopped'"
                " WHERE id = %s",
                (med,),
            )

    assert admin_rows(
        cluster,
        "SELECT count(*) FROM clinical.medication_changes"
        " WHERE medication_request_id IN (%s, %s)",
        med,
        others_med,
    ) == [(0,)]


@pytest.mark.parametrize("action", ["read", "write_note"])
def test_grant_without_update_medication_cannot_call_change_medication(
    cluster: ClusterInfo, engine: LeaseEngine, clean_writes: list[str], action: str
) -> None:
    """A nurse's grants (read, note): no EXECUTE on the function at all."""
    patient = _patients(cluster, sensitive=False)[0]
    med = _medication_of(cluster, patient)
    digest = changes.sha256_hex(changes.medication_change_text(med, "stopped", None))
    spec = grant_spec(
        patient, action, change_sha256=digest if action != "read" else None
    )

    with (
        leased(engine, spec) as role,
        role.connect(cluster) as conn,
        pytest.raises(Refused),
    ):
        writes.change_medication(conn, med, "stopped", None)


def test_medication_writer_membership_without_the_grant_action_is_refused(
    cluster: ClusterInfo, engine: LeaseEngine, clean_writes: list[str]
) -> None:
    """Defence in depth: the function checks the grant row, not only EXECUTE."""
    patient = _patients(cluster, sensitive=False)[0]
    med = _medication_of(cluster, patient)
    digest = changes.sha256_hex(changes.medication_change_text(med, "stopped", None))
    spec = grant_spec(
        patient,
        "write_note",
        change_sha256=digest,
        groups=("clinical_medication_writer",),
    )

    with (
        leased(engine, spec) as role,
        role.connect(cluster) as conn,
        pytest.raises(Refused, match="the database refused the write"),
    ):
        writes.change_medication(conn, med, "stopped", None)


@pytest.mark.parametrize(
    ("med_id", "status", "dosage"),
    [
        ("abc-1", "stopped", None),
        ("abc-2", None, "2 tablets at night"),
        ("abc-3", "on-hold", "½ tablet — with food"),
    ],
)
def test_sql_computes_the_same_change_digest_as_python(
    cluster: ClusterInfo, med_id: str, status: str | None, dosage: str | None
) -> None:
    python = changes.sha256_hex(changes.medication_change_text(med_id, status, dosage))
    sql_digest = admin_rows(
        cluster,
        "SELECT clinical.change_digest(clinical.medication_change_text(%s, %s, %s)),"
        " clinical.change_digest(%s)",
        med_id,
        status,
        dosage,
        dosage,
    )[0]
    assert sql_digest[0] == python
    if dosage:
        assert sql_digest[1] == changes.sha256_hex(changes.note_text(dosage))


def test_applying_the_schema_again_keeps_notes_and_the_write_checks(
    cluster: ClusterInfo, engine: LeaseEngine, clean_writes: list[str]
) -> None:
    patient = _patients(cluster, sensitive=False)[0]
    text = "Written before the schema was applied again."
    with (
        leased(engine, _note_grant(patient, text)) as first,
        first.connect(cluster) as c,
    ):
        writes.add_note(c, patient, text)

    apply_schema(cluster.admin_conninfo())

    with (
        leased(engine, _note_grant(patient, "Consented.")) as second,
        second.connect(cluster) as conn,
        pytest.raises(Refused),
    ):
        writes.add_note(conn, patient, "Not consented.")
    assert _stored_notes(cluster, patient, clean_writes) == [
        ("clin-achen", first.jti, text)
    ]


def test_reloading_the_samples_keeps_a_committed_medication_change(
    cluster: ClusterInfo, engine: LeaseEngine, clean_writes: list[str]
) -> None:
    """``trustloop load`` again must not put the imported status back."""
    patient = _patients(cluster, sensitive=False)[0]
    med = _medication_of(cluster, patient)
    spec = _med_grant(med, patient, "on-hold", None)
    with leased(engine, spec) as lease, lease.connect(cluster) as conn:
        changed = writes.change_medication(conn, med, "on-hold", None)

    load_bundles(cluster.admin_conninfo(), samples_path())

    stored = admin_rows(
        cluster,
        "SELECT status, resource FROM clinical.medication_requests WHERE id = %s",
        med,
    )[0]
    assert stored == ("on-hold", changed["medication_request"])
