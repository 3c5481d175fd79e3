"""The cluster's configuration files, rendered from a few inputs.

``pg_hba.conf`` allows exactly two paths in: SCRAM over loopback TCP (ephemeral
roles) and peer authentication on the unix socket through the ``trustloop`` ident
map, which lets only the OS user running the stack (and ``postgres`` when that user
is root) log in, and only as the admin roles. No admin role has a password.
"""

from __future__ import annotations

from pathlib import Path

SUPERUSER = "trustloop_admin"
ADMIN_ROLES = (SUPERUSER, "trustloop_lease_engine", "trustloop_idp")
INCLUDE_FILE = "trustloop.conf"
LOG_SUBDIR = "log"


def postgresql_conf(port: int, socket_dir: Path) -> str:
    """Settings the stack relies on (written to ``trustloop.conf``, included last)."""
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": _quote(str(socket_dir)),
        "unix_socket_permissions": "0700",
        "password_encryption": "'scram-sha-256'",
        "shared_preload_libraries": "'pgaudit'",
        "pgaudit.log": "'read, write, role, ddl'",
        # on would copy patient identifiers from bind parameters into the log.
        "pgaudit.log_parameter": "off",
        # Audit tools read the log times as UTC; pin the zone, whatever the host has.
        "log_timezone": "'UTC'",
        "log_destination": "'jsonlog'",
        "logging_collector": "on",
        "log_directory": _quote(LOG_SUBDIR),
        "log_line_prefix": "'%m [%p] user=%u db=%d app=%a '",
        "log_connections": "on",
        "log_disconnections": "on",
        "max_connections": "100",
        # A development cluster: losing the last commits on a crash is acceptable.
        "synchronous_commit": "off",
    }
    lines = [f"{name} = {value}" for name, value in settings.items()]
    return "# Written by trustloop.devstack.postgres; rewritten at start.\n" + (
        "\n".join(lines) + "\n"
    )


def pg_hba_conf() -> str:
    return (
        "# Written by trustloop.devstack.postgres. Nothing else is allowed.\n"
        "local all all peer map=trustloop\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
    )


def pg_ident_conf(os_users: tuple[str, ...]) -> str:
    """Map each allowed OS user to each admin role, and nothing else."""
    lines = [
        f"trustloop {os_user} {role}" for os_user in os_users for role in ADMIN_ROLES
    ]
    return "# MAPNAME SYSTEM-USERNAME PG-USERNAME\n" + "\n".join(lines) + "\n"


def include_line() -> str:
    return f"\ninclude '{INCLUDE_FILE}'\n"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
