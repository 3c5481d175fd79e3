"""The FHIR importer against the real schema: counts, idempotence, atomicity."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from trustloop.records import samples_path
from trustloop.records.fhir_import import (
    BundleError,
    bundle_files,
    import_path,
    load_bundles,
)

if TYPE_CHECKING:
    from pathlib import Path

    from trustloop.devstack.postgres import ClusterInfo

TABLE_OF = {
    "Patient": "patients",
    "Practitioner": "practitioners",
    "Encounter": "encounters",
    "Condition": "conditions",
    "Observation": "observations",
    "MedicationRequest": "medication_requests",
}


def _sample_ids() -> dict[str, set[str]]:
    ids: dict[str, set[str]] = defaultdict(set)
    for path in bundle_files(samples_path()):
        for entry in json.loads(gzip.decompress(path.read_bytes()))["entry"]:
            ids[entry["resource"]["resourceType"]].add(entry["resource"]["id"])
    return ids


def _table_counts(cluster: ClusterInfo) -> dict[str, int]:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        return {
            kind: _count(
                conn,
                sql.SQL("SELECT count(*) FROM clinical.{}").format(
                    sql.Identifier(table)
                ),
            )
            for kind, table in TABLE_OF.items()
        }


def _count(conn: psycopg.Connection[Any], query: str | sql.Composed) -> int:
    row = conn.execute(query.encode() if isinstance(query, str) else query).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.integration
def test_import_stores_every_resource_of_the_bundles(cluster: ClusterInfo) -> None:
    expected = {kind: len(ids) for kind, ids in _sample_ids().items()}

    counts = _table_counts(cluster)

    assert counts == {kind: expected[kind] for kind in TABLE_OF}
    assert counts["Patient"] == 40


@pytest.mark.integration
def test_reloading_the_samples_is_idempotent(cluster: ClusterInfo) -> None:
    before = _table_counts(cluster)
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        sensitive_before = _count(
            conn, "SELECT count(*) FROM clinical.patients WHERE sensitive"
        )

    first = load_bundles(cluster.admin_conninfo(), samples_path())
    second = load_bundles(cluster.admin_conninfo(), samples_path())

    assert first == second
    assert first.files == 42
    assert first.skipped["Claim"] > 0
    assert _table_counts(cluster) == before
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        sensitive_after = _count(
            conn, "SELECT count(*) FROM clinical.patients WHERE sensitive"
        )
    assert sensitive_after == sensitive_before > 0


@pytest.mark.integration
def test_import_path_reports_progress_per_file_and_stored_counts(
    cluster: ClusterInfo,
) -> None:
    calls: list[tuple[int, int]] = []

    counts = import_path(
        cluster.admin_conninfo(),
        samples_path(),
        progress=lambda done, total: calls.append((done, total)),
    )

    assert [c[0] for c in calls] == list(range(1, 43))
    assert {c[1] for c in calls} == {42}
    assert counts["Patient"] == 40
    assert "Claim" not in counts


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


@pytest.mark.integration
def test_a_bad_file_writes_nothing(cluster: ClusterInfo, tmp_path: Path) -> None:
    """The patient before the bad entry is rolled back with the rest of the file."""
    patient = {"resourceType": "Patient", "id": "atomic-p1", "name": []}
    orphan = {
        "resourceType": "Condition",
        "id": "atomic-c1",
        "subject": {"reference": "Patient/never-loaded"},
    }
    path = tmp_path / "orphan.json"
    path.write_text(json.dumps(_bundle(patient, orphan)))

    with pytest.raises(BundleError, match="patient that is neither") as caught:
        load_bundles(cluster.admin_conninfo(), path)

    assert str(path) in str(caught.value)
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        assert (
            _count(
                conn, "SELECT count(*) FROM clinical.patients WHERE id = 'atomic-p1'"
            )
            == 0
        )


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("garbage.json", b"\x00not json at all", "not JSON"),
        ("garbage.json.gz", b"not gzip", "not gzip-compressed"),
        ("patient.json", b'{"resourceType": "Patient", "id": "x1"}', "not a FHIR"),
    ],
)
def test_files_that_are_not_bundles_are_rejected_naming_the_file(
    cluster: ClusterInfo, tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    before = _table_counts(cluster)

    with pytest.raises(BundleError, match=reason) as caught:
        load_bundles(cluster.admin_conninfo(), tmp_path)

    assert caught.value.path == path
    assert str(path) in str(caught.value)
    assert _table_counts(cluster) == before


@pytest.mark.integration
def test_a_failed_directory_load_says_how_many_files_before_it_were_loaded(
    cluster: ClusterInfo, tmp_path: Path
) -> None:
    """The files before the bad one are committed, and the error says so."""
    for sample in bundle_files(samples_path())[:2]:
        shutil.copy(sample, tmp_path / sample.name)
    bad = tmp_path / "zz-broken.json"
    bad.write_text("[]")
    before = _table_counts(cluster)

    with pytest.raises(BundleError) as caught:
        load_bundles(cluster.admin_conninfo(), tmp_path)

    assert caught.value.path == bad
    assert caught.value.loaded_before == 2
    assert str(caught.value) == (
        f"{bad}: not a FHIR resource (a JSON array) (2 files before it were loaded)"
    )
    assert _table_counts(cluster) == before  # the samples were already there


@pytest.mark.integration
def test_loading_an_empty_directory_is_refused(
    cluster: ClusterInfo, tmp_path: Path
) -> None:
    with pytest.raises(BundleError, match="no FHIR bundle files"):
        load_bundles(cluster.admin_conninfo(), tmp_path)
