"""The importer's pure parts: bundle reading, reference resolution, row building."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import ValidationError

from trustloop.records import fhir_import, samples_path
from trustloop.records.fhir_import import BundleError, bundle_files
from trustloop.records.fhir_rows import OBSERVATIONS, PATIENTS, to_row

if TYPE_CHECKING:
    from pathlib import Path


def _observation(subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "obs-1",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": "2011-12-13T22:28:27+00:00",
    }


def test_samples_are_the_42_synthea_bundles_with_their_readme() -> None:
    files = bundle_files(samples_path())

    assert len(files) == 42
    assert all(f.name.endswith(".json.gz") for f in files)
    assert "Boston Children's Hospital" in (samples_path() / "README.md").read_text()


def test_bundle_files_lists_json_and_gzip_sorted(tmp_path: Path) -> None:
    for name in ("b.json", "a.json.gz", "notes.txt"):
        (tmp_path / name).write_bytes(b"{}")

    assert [p.name for p in bundle_files(tmp_path)] == ["a.json.gz", "b.json"]


def test_observation_row_takes_loinc_code_category_and_time() -> None:
    row = to_row(_observation("Patient/p-1"))

    assert row is not None
    assert row.table is OBSERVATIONS
    assert row.params["patient_id"] == "p-1"
    assert row.params["code"] == "8302-2"
    assert row.params["category"] == "vital-signs"
    assert row.params["effective"] == datetime(2011, 12, 13, 22, 28, 27, tzinfo=UTC)


def test_patient_row_uses_the_official_name() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p-1",
        "name": [
            {"use": "maiden", "family": "Old", "given": ["Alda"]},
            {"use": "official", "family": "Carter", "given": ["Alda", "May"]},
        ],
        "birthDate": "1970-01-02",
        "gender": "female",
    }

    row = to_row(patient)

    assert row is not None
    assert row.table is PATIENTS
    assert row.params["name"] == "Alda May Carter"
    assert row.params["family"] == "Carter"


def test_unstored_resource_types_give_no_row() -> None:
    assert to_row({"resourceType": "Claim", "id": "c-1"}) is None


def test_subject_that_is_not_a_patient_is_refused() -> None:
    with pytest.raises(ValueError, match="subject is not a Patient"):
        to_row(_observation("urn:uuid:not-in-this-bundle"))


def test_resource_without_id_is_refused() -> None:
    with pytest.raises(ValidationError):
        to_row({"resourceType": "Patient", "name": []})


def test_partial_fhir_datetimes_are_accepted() -> None:
    obs = _observation("Patient/p-1") | {"effectiveDateTime": "2011-12"}

    row = to_row(obs)

    assert row is not None
    assert str(row.params["effective"]).startswith("2011-12-01")


def test_urn_uuid_references_resolve_through_full_url(tmp_path: Path) -> None:
    """Synthea's ``urn:uuid:`` references become ``Patient/<id>`` when stored."""
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:p-1",
                "resource": {"resourceType": "Patient", "id": "p-1"},
            },
            {
                "fullUrl": "urn:uuid:obs-1",
                "resource": _observation("urn:uuid:p-1"),
            },
        ],
    }
    path = tmp_path / "b.json.gz"
    path.write_bytes(gzip.compress(json.dumps(bundle).encode()))

    parsed = fhir_import._read_bundle(path)
    rows, report = fhir_import._rows_of(path, parsed)

    assert report.imported == {"Patient": 1, "Observation": 1}
    obs = rows[1].params
    assert obs["patient_id"] == "p-1"
    assert obs["resource"].obj["subject"] == {"reference": "Patient/p-1"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"this is not json", "not JSON"),
        (b'{"resourceType": "Patient", "id": "p-1"}', "not a FHIR Bundle"),
        (b"[1, 2]", "not a FHIR resource"),
        (b'{"resourceType": "Bundle", "type": "searchset"}', "invalid Bundle"),
    ],
)
def test_unreadable_files_are_refused_naming_the_file(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content)

    with pytest.raises(BundleError, match=reason) as caught:
        fhir_import._read_bundle(path)

    assert str(path) in str(caught.value)


def test_an_empty_directory_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no bundles here")

    with pytest.raises(BundleError) as caught:
        bundle_files(tmp_path)

    assert caught.value.path == tmp_path
    assert str(caught.value) == (
        f"no FHIR bundle files (*.json, *.json.gz) in {tmp_path}"
    )


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"[1, 2]", "a JSON array"),
        (b'"Bundle"', "a JSON string"),
        (b"42", "a JSON number"),
        (b"true", "a JSON boolean"),
        (b"null", "JSON null"),
        (b'{"id": "b-1"}', "no resourceType"),
    ],
)
def test_json_that_is_not_a_resource_is_named_in_json_terms(
    tmp_path: Path, content: bytes, kind: str
) -> None:
    path = tmp_path / "odd.json"
    path.write_bytes(content)

    with pytest.raises(BundleError) as caught:
        fhir_import._read_bundle(path)

    assert caught.value.reason == f"not a FHIR resource ({kind})"


def test_malformed_json_is_refused_with_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "trailing-comma.json"
    path.write_text('{\n  "resourceType": "Bundle",\n}\n')

    with pytest.raises(BundleError) as caught:
        fhir_import._read_bundle(path)

    assert caught.value.reason == (
        "not JSON (line 3, column 1: Expecting property name enclosed in double quotes)"
    )
    assert str(caught.value) == f"{path}: {caught.value.reason}"


def test_a_file_that_is_not_gzip_says_so(tmp_path: Path) -> None:
    path = tmp_path / "plain.json.gz"
    path.write_bytes(b'{"resourceType": "Bundle"}')

    with pytest.raises(BundleError, match="not gzip-compressed"):
        fhir_import._read_bundle(path)


@pytest.mark.parametrize(
    ("loaded_before", "suffix"),
    [
        (None, ""),
        (0, " (0 files before it were loaded)"),
        (1, " (1 file before it was loaded)"),
        (12, " (12 files before it were loaded)"),
    ],
)
def test_bundle_error_says_how_many_files_before_it_were_loaded(
    tmp_path: Path, loaded_before: int | None, suffix: str
) -> None:
    path = tmp_path / "bad.json"

    error = BundleError(path, "not JSON", loaded_before=loaded_before)

    assert str(error) == f"{path}: not JSON{suffix}"
    assert (error.path, error.reason) == (path, "not JSON")
