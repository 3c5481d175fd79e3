"""The IdP's admin API: provisioning care teams, roles and patient sensitivity.

Served only on the unix socket ``<state>/idp/admin.sock`` (mode 0600, in a 0700
folder): the OS user who runs the stack is the authentication, and no credential
exists. Nothing answers these paths on the IdP's TCP port.

- ``PUT /admin/v1/patients/{id}`` ``{"sensitive": bool}``; ``GET`` answers it back.
- ``PUT /admin/v1/care-teams/{clinician_sub}`` ``{"role": "physician"|"nurse",
  "patients": [<patient id>, ...]}`` replaces that clinician's care team; ``GET``.
- ``POST /admin/v1/signing-keys/rotate`` rotates the signing keys
  (:meth:`.SigningKeys.rotate`) and answers ``{"kid": <the new active kid>}``.
  It was a TCP route once: any web page a clinician opened could post to it 17
  times and retire the key of every live token, signing everyone out.

Errors: ``{"error": ...}`` with 400 (bad id or body) or 404 (not provisioned).
Each change is one INFO log line (``patient_provisioned``, ``care_team_provisioned``);
not an audit record: the IdP's audit chain has one writer, the OAuth surface.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from pathlib import Path
from typing import TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from trustloop.devstack.idp.directory import (
    ID_PATTERN,
    CareTeamEntry,
    Directory,
    PatientEntry,
)
from trustloop.devstack.idp.keys import SigningKeys

_ID = re.compile(ID_PATTERN)
_Entry = TypeVar("_Entry", bound=BaseModel)

log = structlog.get_logger("trustloop.devstack.idp")


def admin_socket(state_dir: Path) -> Path:
    return state_dir / "idp" / "admin.sock"


def create_admin_app(directory: Directory, keys: SigningKeys) -> Starlette:
    """The admin API over ``directory`` and ``keys``; serve it only with
    :func:`bind_admin_socket`."""

    async def rotate_keys(request: Request) -> Response:
        kid = keys.rotate()
        log.info("signing_keys_rotated", kid=kid)
        return JSONResponse({"kid": kid})

    async def patient(request: Request) -> Response:
        patient_id = _path_id(request, "patient_id")
        if request.method == "PUT":
            entry = await _body(request, PatientEntry)
            directory.put_patient(patient_id, entry)
            log.info("patient_provisioned", patient_id=patient_id)
        found = directory.get_patient(patient_id)
        if found is None:
            return _error(404, "no such patient")
        return JSONResponse({"id": patient_id, **found.model_dump()})

    async def care_team(request: Request) -> Response:
        sub = _path_id(request, "clinician_sub")
        if request.method == "PUT":
            entry = await _body(request, CareTeamEntry)
            directory.put_care_team(sub, entry)
            log.info("care_team_provisioned", clinician_sub=sub, role=entry.role)
        found = directory.get_care_team(sub)
        if found is None:
            return _error(404, "no such care team")
        return JSONResponse({"clinician_sub": sub, **found.model_dump()})

    app = Starlette(
        routes=[
            Route("/admin/v1/patients/{patient_id}", patient, methods=["GET", "PUT"]),
            Route(
                "/admin/v1/care-teams/{clinician_sub}",
                care_team,
                methods=["GET", "PUT"],
            ),
            Route("/admin/v1/signing-keys/rotate", rotate_keys, methods=["POST"]),
        ],
        exception_handlers={_BadRequestError: _bad_request},
    )
    return app


class _BadRequestError(Exception):
    pass


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _error(400, str(exc))


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _path_id(request: Request, name: str) -> str:
    value = str(request.path_params[name])
    if not _ID.fullmatch(value):
        raise _BadRequestError(f"{name} is not a valid id")
    return value


async def _body(request: Request, model: type[_Entry]) -> _Entry:
    try:
        entry = model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _BadRequestError(f"invalid body for {model.__name__}") from exc
    if isinstance(entry, CareTeamEntry) and not all(
        _ID.fullmatch(p) for p in entry.patients
    ):
        raise _BadRequestError("patients must be patient ids")
    return entry


def bind_admin_socket(path: Path) -> socket.socket:
    """A listening unix socket at ``path``, mode 0600 from the start, in a 0700 folder."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a stale socket from an IdP that died
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(64)
    return sock
