"""Hostile bundles at the importer: a clear BundleError, nothing written or moved.

Found by attacking the importer (docs/security.md, fourth round): a copied bundle
with a new Patient id moved the original patient's records to the new one, and
deep, long or non-Unicode JSON escaped as a traceback.
"""

from __future__ import annotations

import gzip
import json
import threading
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from trustloop.records import fhir_import, samples_path
from trustloop.records.fhir_import import BundleError, bundle_files, load_bundles

if TYPE_CHECKING:
    from pathlib import Path

    from trustloop.devstack.postgres import ClusterInfo

pytestmark = pytest.mark.integration

_TABLES = (
    "patients",
    "practitioners",
    "encounters",
    "conditions",
    "observations",
    "medication_requests",
)


def _snapshot(cluster: ClusterInfo) -> dict[str, tuple[int, str]]:
    """Every stored table's row count and a digest of its rows."""
    found: dict[str, tuple[int, str]] = {}
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        for table in _TABLES:
            row = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|'"  # noqa: S608
                f" ORDER BY t.id), '')) FROM clinical.{table} AS t"
            ).fetchone()
            assert row is not None
            found[table] = (int(row[0]), str(row[1]))
    return found


def _a_sample() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        gzip.decompress(bundle_files(samples_path())[0].read_bytes())
    )
    return doc


def _patient_of(bundle: dict[str, Any]) -> dict[str, Any]:
    return next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Patient"
    )


def _refused(cluster: ClusterInfo, path: Path, reason: str) -> BundleError:
    before = _snapshot(cluster)
    with pytest.raises(BundleError, match=reason) as caught:
        load_bundles(cluster.admin_conninfo(), path)
    assert _snapshot(cluster) == before
    assert caught.value.path == path
    return caught.value


def test_a_copied_bundle_under_a_new_patient_id_moves_nothing(
    cluster: ClusterInfo, tmp_path: Path
) -> None:
    bundle = _a_sample()
    original = _patient_of(bundle)["id"]
    _patient_of(bundle)["id"] = "copy-for-a-test"
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(bundle))

    error = _refused(cluster, path, "already stored for another patient")

    assert "a load never moves a resource" in str(error)
    assert original not in str(error)  # the resource's id, not the patient's
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        row = conn.execute(
            "SELECT count(*) FROM clinical.patients WHERE id = 'copy-for-a-test'"
        ).fetchone()
    assert row == (0,)


def test_a_bundle_naming_one_resource_twice_is_refused(
    cluster: ClusterInfo, tmp_path: Path
) -> None:
    bundle = _a_sample()
    bundle["entry"].append(json.loads(json.dumps(bundle["entry"][0])))
    path = tmp_path / "twice.json"
    path.write_text(json.dumps(bundle))

    error = _refused(cluster, path, "names Patient .* twice")

    assert _patient_of(bundle)["id"] in str(error)


def _with_patient_field(tmp_path: Path, **fields: Any) -> Path:
    bundle = _a_sample()
    _patient_of(bundle).update(fields)
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(bundle))
    return path


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 64 levels"),
        (b'{"a":' * 900 + b"1" + b"}" * 900, "nested deeper than 64 levels"),
        (b'{"resourceType": "Bundle", "n": ' + b"9" * 5000 + b"}", "number too long"),
    ],
    ids=["past-the-parser", "past-our-limit", "5000-digit-number"],
)
def test_json_the_parser_cannot_take_is_refused(
    cluster: ClusterInfo, tmp_path: Path, raw: bytes, reason: str
) -> None:
    path = tmp_path / "hostile.json"
    path.write_bytes(raw)

    _refused(cluster, path, reason)


@pytest.mark.parametrize("where", ["family", "city"])
def test_text_that_is_not_unicode_is_refused(
    cluster: ClusterInfo, tmp_path: Path, where: str
) -> None:
    """A lone surrogate is valid JSON; as text PostgreSQL would refuse it later."""
    bundle = _a_sample()
    patient = _patient_of(bundle)
    patient["name"][0]["family"] = "SURROGATE"
    patient["address"] = [{"city": "SURROGATE"}]
    path = tmp_path / "surrogate.json"
    text = json.dumps(bundle).replace('"SURROGATE"', '"Fine"')
    text = text.replace(f'"{where}": "Fine"', f'"{where}": "\\ud800"')
    path.write_text(text)

    _refused(cluster, path, "holds text that is not valid Unicode")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"name": [{"family": "x" * 201, "given": ["A"]}]}, "at most 200 characters"),
        ({"name": [{"family": "X", "given": ["A"] * 11}]}, "at most 10 items"),
        ({"gender": "f" * 201}, "at most 200 characters"),
        ({"address": [{"line": ["x" * (1024 * 1024)]}]}, "larger than 1024 KiB"),
    ],
    ids=["long-family-name", "eleven-given-names", "long-code", "1-MiB-patient"],
)
def test_fields_past_their_limits_are_refused(
    cluster: ClusterInfo, tmp_path: Path, fields: dict[str, Any], reason: str
) -> None:
    _refused(cluster, _with_patient_field(tmp_path, **fields), reason)


@pytest.mark.parametrize("name", ["big.json", "bomb.json.gz"])
def test_a_file_past_the_size_limit_is_refused_unread(
    cluster: ClusterInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    """A gzip is decompressed only up to the limit, never whole into memory."""
    raw = json.dumps(_a_sample()).encode()
    monkeypatch.setattr(fhir_import, "MAX_FILE_BYTES", len(raw) - 1)
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)

    _refused(cluster, path, "larger than 0 MiB")


def test_the_same_bundle_loaded_again_still_loads(
    cluster: ClusterInfo, tmp_path: Path
) -> None:
    """Control: the checks refuse a move, not a reload of the same patient.

    (Practitioners are shared by bundles, each with its own copy: the last file
    loaded writes theirs, so they are left out of the comparison.)
    """
    path = tmp_path / "same.json"
    path.write_text(json.dumps(_a_sample()))
    before = _snapshot(cluster)

    report = load_bundles(cluster.admin_conninfo(), path)

    assert report.imported["Patient"] == 1
    after = _snapshot(cluster)
    assert after.pop("practitioners")[0] == before.pop("practitioners")[0]
    assert after == before


def test_a_concurrent_load_cannot_slip_past_the_ownership_check(
    cluster: ClusterInfo, tmp_path: Path
) -> None:
    """Another load holds an uncommitted Observation for patient P; this file
    has the same Observation for Q. Without the import lock the check missed the
    uncommitted row, the upsert then waited, skipped it, and the file 'loaded'."""
    patient = {"resourceType": "Patient", "id": "race-q", "name": []}
    observation = {
        "resourceType": "Observation",
        "id": "race-obs",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/race-q"},
    }
    path = tmp_path / "race.json"
    path.write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"resource": patient}, {"resource": observation}],
            }
        )
    )
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_bundles(cluster.admin_conninfo(), path)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)
        else:
            outcome.append(None)

    try:
        with psycopg.connect(cluster.admin_conninfo()) as other:  # the other load
            other.execute(
                "SELECT pg_advisory_xact_lock(%s)", (fhir_import.IMPORT_LOCK,)
            )
            other.execute(
                "INSERT INTO clinical.patients (id, name, resource)"
                " VALUES ('race-p', 'P', '{}')"
            )
            other.execute(
                "INSERT INTO clinical.observations (id, patient_id, code, resource)"
                " VALUES ('race-obs', 'race-p', 'x', '{}')"
            )
            racer = threading.Thread(target=load)
            racer.start()
            racer.join(timeout=1.0)
            assert racer.is_alive()  # waiting for the other load to finish
        racer.join(timeout=30)

        assert len(outcome) == 1
        assert isinstance(outcome[0], BundleError)
        assert "already stored for another patient" in str(outcome[0])
        with psycopg.connect(cluster.admin_conninfo()) as conn:
            owner = conn.execute(
                "SELECT patient_id FROM clinical.observations WHERE id = 'race-obs'"
            ).fetchone()
            q = conn.execute(
                "SELECT count(*) FROM clinical.patients WHERE id = 'race-q'"
            ).fetchone()
        assert owner == ("race-p",)
        assert q == (0,)
    finally:
        with psycopg.connect(cluster.admin_conninfo()) as conn:
            conn.execute(
                "DELETE FROM clinical.patients WHERE id IN ('race-p', 'race-q')"
            )
