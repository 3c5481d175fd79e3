"""The demo clinicians who can sign in to the local IdP (dev-only).

Their passwords and TOTP secrets (RFC 6238, base32) are generated at random on
first start into ``<state>/idp/demo-users.json`` (mode 0600) and read back on later
starts, so the CLI, the demo and tests can sign a demo clinician in
(:func:`demo_password`, :func:`demo_totp`). The file maps each username to
``{"password", "totp_secret"}``; an older file that maps usernames to bare
password strings is still read, and gains TOTP secrets at the IdP's next start.
In memory the IdP keeps only a scrypt hash (RFC 7914) of each password, never the
password itself; the TOTP secrets it must keep to check codes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp

from trustloop.devstack.demo import CLINICIANS, Clinician, by_username

# scrypt cost: N=2**14, r=8, p=1 (RFC 7914 §2's interactive-login figure), 16 MiB.
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
_MAXMEM = 64 * 1024 * 1024


class DemoUsersFileError(RuntimeError):
    """The demo users file is unreadable, malformed or readable by others."""


def users_file(state_dir: Path) -> Path:
    return state_dir / "idp" / "demo-users.json"


@dataclass(frozen=True)
class DemoCredentials:
    """One demo clinician's password and TOTP secret (never in a repr)."""

    password: str = field(repr=False)
    totp_secret: str | None = field(default=None, repr=False)


def demo_password(state_dir: Path, username: str) -> str:
    """The generated password of a demo clinician (local profile only: the CLI).

    Only reads: the IdP creates the file at its first start, so a missing file
    means no stack ever ran with this state directory.
    """
    return _credentials(state_dir, username).password


def demo_totp(state_dir: Path, username: str) -> str:
    """The base32 TOTP secret of a demo clinician (local only: CLI, demo, tests).

    ``pyotp.TOTP(demo_totp(state_dir, "achen")).now()`` is the current code.
    Only reads, like :func:`demo_password`.
    """
    secret = _credentials(state_dir, username).totp_secret
    if secret is None:
        raise DemoUsersFileError(
            "the demo users file has no TOTP secrets yet: restart the stack once"
        )
    return secret


def _credentials(state_dir: Path, username: str) -> DemoCredentials:
    path = users_file(state_dir)
    if not path.exists():
        raise DemoUsersFileError(
            f"no local stack state in {state_dir.resolve()}: run this from the folder "
            "where `trustloop up` runs, or set TRUSTLOOP_STATE_DIR"
        )
    try:
        return _read(path)[username]
    except KeyError:
        raise KeyError(f"no demo clinician named {username!r}") from None


@dataclass(frozen=True)
class _Hash:
    salt: bytes
    digest: bytes = field(repr=False)


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN, maxmem=_MAXMEM
    )


def _hash(password: str) -> _Hash:
    salt = secrets.token_bytes(16)
    return _Hash(salt, _scrypt(password, salt))


class DemoUsers:
    """Checks a demo clinician's password against its scrypt hash.

    ``totp_secrets`` (username to base32 secret) are the second factors
    (:mod:`.totp` checks codes); a user without one cannot finish a login with a
    code, only with a push.
    """

    def __init__(
        self,
        passwords: dict[str, str],
        totp_secrets: dict[str, str] | None = None,
    ) -> None:
        self._hashes = {name: _hash(pw) for name, pw in passwords.items()}
        self._totp = dict(totp_secrets or {})
        # Unknown usernames cost one scrypt too, so timing does not reveal them.
        self._decoy = _hash(secrets.token_urlsafe(16))

    def __repr__(self) -> str:
        return f"DemoUsers(users={sorted(self._hashes)!r})"

    @classmethod
    def from_state_dir(cls, state_dir: Path) -> DemoUsers:
        stored = _load_or_create(users_file(state_dir))
        return cls(
            {name: c.password for name, c in stored.items()},
            {name: c.totp_secret for name, c in stored.items() if c.totp_secret},
        )

    def totp_secret(self, username: str) -> str | None:
        """The clinician's TOTP secret, for checking a code (never shown)."""
        return self._totp.get(username)

    def authenticate(self, username: str, password: str) -> Clinician | None:
        """The clinician if ``password`` is theirs, else None (which part: not said)."""
        clinician = by_username(username)
        stored = self._hashes.get(username) if clinician else None
        check = stored or self._decoy
        matches = hmac.compare_digest(_scrypt(password, check.salt), check.digest)
        if clinician is None or stored is None or not matches:
            return None
        return clinician


def _load_or_create(path: Path) -> dict[str, DemoCredentials]:
    """Read the users file, creating it (or adding clinicians or secrets) as needed."""
    stored = _read(path) if path.exists() else {}
    complete = {c.username: _completed(stored.get(c.username)) for c in CLINICIANS}
    if all(stored.get(name) == creds for name, creds in complete.items()):
        return stored
    merged = {**stored, **complete}
    created = _publish(path, merged, replace=path.exists())
    if not created:
        return _load_or_create(path)  # another process created it first: use theirs
    return merged


def _completed(creds: DemoCredentials | None) -> DemoCredentials:
    """``creds`` with whatever is missing generated (a file from before TOTP)."""
    if creds is None:
        return DemoCredentials(secrets.token_urlsafe(12), pyotp.random_base32())
    if creds.totp_secret is None:
        return DemoCredentials(creds.password, pyotp.random_base32())
    return creds


def _read(path: Path) -> dict[str, DemoCredentials]:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DemoUsersFileError(f"{path} must be readable by its owner only (0600)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DemoUsersFileError(f"cannot read {path}") from exc
    if not isinstance(data, dict):
        raise DemoUsersFileError(f"{path} is not a JSON object")
    try:
        return {name: _entry(value) for name, value in data.items()}
    except ValueError as exc:
        raise DemoUsersFileError(f"{path} has a malformed entry") from exc


def _entry(value: Any) -> DemoCredentials:
    """An entry: a bare password (older files) or ``{"password", "totp_secret"}``."""
    if isinstance(value, str):
        return DemoCredentials(value)
    if not isinstance(value, dict) or not isinstance(value.get("password"), str):
        raise ValueError("an entry needs a password")
    secret = value.get("totp_secret")
    if secret is not None and not isinstance(secret, str):
        raise ValueError("totp_secret must be a string")
    return DemoCredentials(value["password"], secret)


def _publish(path: Path, stored: dict[str, DemoCredentials], *, replace: bool) -> bool:
    """Write atomically, mode 0600 from the first byte; False if it already existed.

    Without ``replace`` the file is published with ``link``, which fails rather than
    overwrite, so two processes starting together agree on one set of passwords.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, json.dumps(_wire(stored), indent=2).encode() + b"\n")
    finally:
        os.close(fd)
    if replace:
        os.replace(tmp, path)
        return True
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def _wire(stored: dict[str, DemoCredentials]) -> dict[str, dict[str, str]]:
    wire: dict[str, dict[str, str]] = {}
    for name, creds in stored.items():
        wire[name] = {"password": creds.password}
        if creds.totp_secret is not None:
            wire[name]["totp_secret"] = creds.totp_secret
    return wire
