"""The installed PostgreSQL tooling (``initdb``, ``pg_ctl``) and who runs it.

``initdb`` and ``postgres`` refuse to run as root. When this process is root, every
server command runs as the ``postgres`` OS user (``runuser -u postgres --``) and the
cluster's directories belong to that user; otherwise they run as ourselves.

Errors: :class:`ClusterError` for anything the developer must fix (a missing package,
a directory the server user cannot reach, a command that failed).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PACKAGES = "postgresql-15 postgresql-15-pgaudit"
_DEBIAN_BINDIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
_SERVER_USER_WHEN_ROOT = "postgres"


class ClusterError(RuntimeError):
    """The private PostgreSQL cluster cannot be created, started or reached."""


@dataclass(frozen=True)
class ServerUser:
    """The OS user that owns the data directory and runs ``postgres``."""

    name: str
    uid: int
    gid: int
    via_runuser: bool

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` wrapped so that it runs as this user."""
        if not self.via_runuser:
            return argv
        return ["runuser", "-u", self.name, "--", *argv]


def current_os_user() -> str:
    """The OS user running the stack (the one peer authentication sees)."""
    return pwd.getpwuid(os.geteuid()).pw_name


def server_user() -> ServerUser:
    """Ourselves, or ``postgres`` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid, via_runuser=False)

    try:
        entry = pwd.getpwnam(_SERVER_USER_WHEN_ROOT)
    except KeyError as exc:
        raise ClusterError(
            "running as root needs the 'postgres' OS user to run the server; "
            f"install {PACKAGES} (it creates that user)"
        ) from exc
    if shutil.which("runuser") is None:
        raise ClusterError("running as root needs 'runuser' (util-linux)")
    return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid, via_runuser=True)


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres`` (15 or newer).

    Debian's versioned directories come first (``pg_config`` on PATH may belong to a
    client-only package); ``pg_config --bindir`` is the fallback.
    """
    for candidate in [*_DEBIAN_BINDIRS, _pg_config_bindir()]:
        if candidate is not None and (candidate / "initdb").is_file():
            _require_pgaudit(candidate)
            return candidate
    raise ClusterError(f"PostgreSQL server binaries not found: install {PACKAGES}")


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [pg_config, "--bindir"], capture_output=True, text=True, check=False
    )
    return Path(result.stdout.strip()) if result.returncode == 0 else None


def _require_pgaudit(bindir: Path) -> None:
    pg_config = bindir / "pg_config"
    libdir = bindir.parent / "lib"
    if pg_config.is_file():
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            libdir = Path(result.stdout.strip())
    if not (libdir / "pgaudit.so").is_file():
        raise ClusterError(
            f"pgaudit is not installed for the server in {bindir}: install {PACKAGES}"
        )


def run(
    user: ServerUser, argv: list[str], cwd: Path, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run a server command as ``user``; :class:`ClusterError` if it fails."""
    result = subprocess.run(  # noqa: S603 - argv built from fixed tool paths
        user.command(argv),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=_server_env(),
    )
    if result.returncode != 0:
        tool = Path(argv[0]).name
        detail = (result.stderr or result.stdout).strip()
        raise ClusterError(f"{tool} failed (exit {result.returncode}): {detail}")
    return result


def _server_env() -> dict[str, str]:
    # Keep PG* variables of the caller's shell out of the server commands.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


def chown_to(user: ServerUser, path: Path) -> None:
    """Give ``path`` to the server user when we run as root; a no-op otherwise."""
    if user.via_runuser:
        os.chown(path, user.uid, user.gid)


def give_to(user: ServerUser, *dirs: Path) -> None:
    """Make ``dirs`` belong to the server user and check it can use them."""
    for path in dirs:
        chown_to(user, path)
        check_reachable(user, path)


def can_reach(user: ServerUser, path: Path, *, write: bool = False) -> bool:
    """Whether the server user can enter ``path`` (and write it, if asked)."""
    if not user.via_runuser:
        return True
    test = ["test", "-x", str(path)] + (["-a", "-w", str(path)] if write else [])
    probe = subprocess.run(  # noqa: S603 - fixed argv, no shell
        user.command(test), capture_output=True, check=False
    )
    return probe.returncode == 0


def check_reachable(user: ServerUser, path: Path) -> None:
    """Fail clearly when the server user cannot enter and write ``path``."""
    if not can_reach(user, path, write=True):
        raise ClusterError(
            f"the '{user.name}' OS user cannot reach {path}: give it search "
            "permission (x) on every parent directory, or choose a state directory "
            "it can reach"
        )
