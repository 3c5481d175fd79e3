"""The demo clinicians who can sign in to the local IdP (dev-only).

Their passwords are generated at random on first start into
``<state>/idp/demo-users.json`` (mode 0600) and read back on later starts, so the CLI
can sign a demo clinician in (:func:`demo_password`). In memory the IdP keeps only a
scrypt hash (RFC 7914) of each password, never the password itself.
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

from trustloop.devstack.demo import CLINICIANS, Clinician, by_username

# scrypt cost: N=2**14, r=8, p=1 (RFC 7914 §2's interactive-login figure), 16 MiB.
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
_MAXMEM = 64 * 1024 * 1024


class DemoUsersFileError(RuntimeError):
    """The demo users file is unreadable, malformed or readable by others."""


def users_file(state_dir: Path) -> Path:
    return state_dir / "idp" / "demo-users.json"


def demo_password(state_dir: Path, username: str) -> str:
    """The generated password of a demo clinician (local profile only: the CLI).

    Only reads: the IdP creates the file at its first start, so a missing file
    means no stack ever ran with this state directory.
    """
    path = users_file(state_dir)
    if not path.exists():
        raise DemoUsersFileError(
            f"no local stack state in {state_dir.resolve()}: run this from the folder "
            "where `trustloop up` runs, or set TRUSTLOOP_STATE_DIR"
        )
    passwords = _read(path)
    try:
        return passwords[username]
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
    """Checks a demo clinician's password against its scrypt hash."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self._hashes = {name: _hash(pw) for name, pw in passwords.items()}
        # Unknown usernames cost one scrypt too, so timing does not reveal them.
        self._decoy = _hash(secrets.token_urlsafe(16))

    @classmethod
    def from_state_dir(cls, state_dir: Path) -> DemoUsers:
        return cls(_load_or_create(users_file(state_dir)))

    def authenticate(self, username: str, password: str) -> Clinician | None:
        """The clinician if ``password`` is theirs, else None (which part: not said)."""
        clinician = by_username(username)
        stored = self._hashes.get(username) if clinician else None
        check = stored or self._decoy
        matches = hmac.compare_digest(_scrypt(password, check.salt), check.digest)
        if clinician is None or stored is None or not matches:
            return None
        return clinician


def _load_or_create(path: Path) -> dict[str, str]:
    """Read the passwords file, creating it (or adding new clinicians) as needed."""
    passwords = _read(path) if path.exists() else {}
    missing = [c.username for c in CLINICIANS if c.username not in passwords]
    if not missing:
        return passwords
    passwords.update({name: secrets.token_urlsafe(12) for name in missing})
    created = _publish(path, passwords, replace=path.exists())
    if not created:
        return _load_or_create(path)  # another process created it first: use theirs
    return passwords


def _read(path: Path) -> dict[str, str]:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DemoUsersFileError(f"{path} must be readable by its owner only (0600)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DemoUsersFileError(f"cannot read {path}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise DemoUsersFileError(f"{path} is not a JSON object of strings")
    return data


def _publish(path: Path, passwords: dict[str, str], *, replace: bool) -> bool:
    """Write atomically, mode 0600 from the first byte; False if it already existed.

    Without ``replace`` the file is published with ``link``, which fails rather than
    overwrite, so two processes starting together agree on one set of passwords.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, json.dumps(passwords, indent=2).encode() + b"\n")
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
