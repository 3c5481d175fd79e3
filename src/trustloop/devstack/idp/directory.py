"""The IdP's own directory: clinicians' roles and care teams, patients' sensitivity.

Provisioned through the admin API (:mod:`.admin`), never read from the clinical
database. Kept in ``<state>/idp/directory.json`` (mode 0600, written atomically:
a temporary file in the same folder, then ``os.replace``), so a restarted IdP keeps
what was provisioned. A file that is unreadable, malformed or readable by others
raises :class:`DirectoryFileError` at start: the IdP does not guess.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trustloop.devstack.idp.policy import PatientFacts, Role

# FHIR ids (FHIR R4 datatypes, "id") and our clinicians' subs.
ID_PATTERN = r"^[A-Za-z0-9\-.]{1,64}$"


class DirectoryFileError(RuntimeError):
    """The directory file is unreadable, malformed or readable by others."""


class PatientEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    sensitive: bool


class CareTeamEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    role: Role
    patients: list[str] = Field(max_length=100_000)


class DirectoryDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    patients: dict[str, PatientEntry] = Field(default_factory=dict)
    care_teams: dict[str, CareTeamEntry] = Field(default_factory=dict)


def directory_file(state_dir: Path) -> Path:
    return state_dir / "idp" / "directory.json"


class Directory:
    """The facts the policy reads (:class:`~.policy.CareTeamFacts`), and their store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._doc = _read(path) if path.exists() else DirectoryDocument()

    # -- the policy's facts ------------------------------------------------------

    async def role(self, clinician_sub: str) -> str | None:
        entry = self._doc.care_teams.get(clinician_sub)
        return None if entry is None else entry.role

    async def patient(self, clinician_sub: str, patient_id: str) -> PatientFacts | None:
        entry = self._doc.patients.get(patient_id)
        if entry is None:
            return None
        team = self._doc.care_teams.get(clinician_sub)
        on_team = team is not None and patient_id in team.patients
        return PatientFacts(sensitive=entry.sensitive, on_care_team=on_team)

    # -- provisioning --------------------------------------------------------------

    def get_patient(self, patient_id: str) -> PatientEntry | None:
        return self._doc.patients.get(patient_id)

    def get_care_team(self, clinician_sub: str) -> CareTeamEntry | None:
        return self._doc.care_teams.get(clinician_sub)

    def put_patient(self, patient_id: str, entry: PatientEntry) -> None:
        with self._lock:
            doc = self._doc.model_copy(deep=True)
            doc.patients[patient_id] = entry
            self._save(doc)

    def put_care_team(self, clinician_sub: str, entry: CareTeamEntry) -> None:
        with self._lock:
            doc = self._doc.model_copy(deep=True)
            doc.care_teams[clinician_sub] = entry
            self._save(doc)

    def _save(self, doc: DirectoryDocument) -> None:
        _write_atomically(self.path, doc.model_dump(mode="json"))
        self._doc = doc  # only once it is on disk


def _read(path: Path) -> DirectoryDocument:
    try:
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise DirectoryFileError(
                f"{path} must be readable by its owner only (0600)"
            )
        return DirectoryDocument.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise DirectoryFileError(f"{path}: cannot read the directory") from exc
    except ValidationError as exc:
        raise DirectoryFileError(f"{path}: not a valid IdP directory") from exc


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(json.dumps(data, indent=1, sort_keys=True).encode())
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
