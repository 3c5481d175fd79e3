"""Provision the IdP's directory from the demo care teams (``trustloop load``/``up``).

The demo set-up (:mod:`trustloop.devstack.demo_setup`) stores care teams and
sensitivity in PostgreSQL, where row-level security reads them; this module copies
them into the IdP over its admin socket (:mod:`.admin`), which is where the policy
reads them. Every demo clinician is provisioned with their role, even one with no
patients, so the roster rule knows their role.

Errors: :class:`ProvisionError` (the admin API refused a change), and its subclass
:class:`AdminUnreachableError` (nothing answers on the admin socket: no IdP runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from trustloop.devstack.demo import CLINICIANS
from trustloop.devstack.idp.admin import admin_socket

_PATIENTS = "SELECT id, sensitive FROM clinical.patients ORDER BY id"
_MEMBERS = (
    "SELECT clinician_sub, patient_id FROM clinical.care_team_members "
    "ORDER BY clinician_sub, patient_id"
)


class ProvisionError(RuntimeError):
    """The IdP's admin API could not be reached or refused a change."""


class AdminUnreachableError(ProvisionError):
    """Nothing answers on the admin socket (missing, or left by a stopped IdP)."""


@dataclass(frozen=True)
class ProvisionSummary:
    patients: int
    care_teams: int


class AdminClient:
    """The admin API over ``<state>/idp/admin.sock`` (httpx's UDS transport)."""

    def __init__(self, socket_path: Path, *, timeout_s: float = 10.0) -> None:
        transport = httpx.HTTPTransport(uds=str(socket_path))
        self._http = httpx.Client(
            transport=transport, base_url="http://idp-admin", timeout=timeout_s
        )

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def put_patient(self, patient_id: str, *, sensitive: bool) -> None:
        self._call("PUT", f"/admin/v1/patients/{patient_id}", {"sensitive": sensitive})

    def put_care_team(self, clinician_sub: str, role: str, patients: list[str]) -> None:
        body = {"role": role, "patients": patients}
        self._call("PUT", f"/admin/v1/care-teams/{clinician_sub}", body)

    def get_patient(self, patient_id: str) -> dict[str, object] | None:
        return self._call("GET", f"/admin/v1/patients/{patient_id}")

    def get_care_team(self, clinician_sub: str) -> dict[str, object] | None:
        return self._call("GET", f"/admin/v1/care-teams/{clinician_sub}")

    def rotate_signing_keys(self) -> str:
        """Rotate the IdP's signing keys; the new active ``kid``."""
        answer = self._call("POST", "/admin/v1/signing-keys/rotate")
        if answer is None:
            raise ProvisionError("the IdP admin API did not rotate its keys")
        return str(answer["kid"])

    def _call(
        self, method: str, path: str, body: object = None
    ) -> dict[str, object] | None:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.ConnectError as exc:
            raise AdminUnreachableError("the IdP admin API is not running") from exc
        except httpx.HTTPError as exc:
            raise ProvisionError(f"the IdP admin API did not answer: {exc}") from exc
        if response.status_code == 404 and method == "GET":
            return None
        if response.status_code != 200:
            raise ProvisionError(
                f"the IdP admin API refused {method} {path}: {response.text}"
            )
        answer: dict[str, object] = response.json()
        return answer


def provision_from_database(state_dir: Path, conninfo: str) -> ProvisionSummary:
    """Copy patients' sensitivity and every demo clinician's care team to the IdP."""
    with psycopg.connect(conninfo) as conn:
        patients = [(str(r[0]), bool(r[1])) for r in conn.execute(_PATIENTS)]
        members = [(str(r[0]), str(r[1])) for r in conn.execute(_MEMBERS)]

    with AdminClient(admin_socket(state_dir)) as admin:
        for patient_id, sensitive in patients:
            admin.put_patient(patient_id, sensitive=sensitive)
        for clinician in CLINICIANS:
            team = [pid for sub, pid in members if sub == clinician.sub]
            admin.put_care_team(clinician.sub, clinician.role, team)
    return ProvisionSummary(len(patients), len(CLINICIANS))
