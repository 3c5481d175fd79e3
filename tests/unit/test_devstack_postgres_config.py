"""The cluster's configuration files: only the allowed ways in."""

from __future__ import annotations

from pathlib import Path

from trustloop.devstack.postgres import config
from trustloop.devstack.postgres.cluster import ClusterInfo


def _rules(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_pg_hba_allows_peer_with_map_and_loopback_scram_only() -> None:
    assert _rules(config.pg_hba_conf()) == [
        "local all all peer map=trustloop",
        "host all all 127.0.0.1/32 scram-sha-256",
    ]


def test_ident_map_lets_each_os_user_in_as_the_admin_roles_only() -> None:
    rules = _rules(config.pg_ident_conf(("root", "postgres")))

    assert len(rules) == 6
    assert {r.split()[2] for r in rules} == set(config.ADMIN_ROLES)
    assert all(r.split()[0] == "trustloop" for r in rules)


def test_server_settings_name_the_audit_and_logging_contract() -> None:
    text = config.postgresql_conf(54321, Path("/state/postgres/socket"))

    for expected in (
        "listen_addresses = '127.0.0.1'",
        "port = 54321",
        "unix_socket_directories = '/state/postgres/socket'",
        "password_encryption = 'scram-sha-256'",
        "shared_preload_libraries = 'pgaudit'",
        "pgaudit.log = 'read, write, role, ddl'",
        "pgaudit.log_parameter = off",
        "log_timezone = 'UTC'",
        "log_destination = 'jsonlog'",
        "logging_collector = on",
        "log_connections = on",
        "log_disconnections = on",
    ):
        assert expected in text
    assert "%u" in text
    assert "%a" in text


def test_conninfo_uses_the_socket_for_admins_and_tcp_for_ephemeral_roles() -> None:
    info = ClusterInfo(
        "127.0.0.1", 5555, Path("/s/postgres/socket"), "trustloop", Path("/s/data")
    )

    admin = info.admin_conninfo()
    tcp = info.tcp_conninfo("obo_abc", "pw d'x", application_name="jti-1")

    assert "host=/s/postgres/socket" in admin
    assert "user=trustloop_admin" in admin
    assert "password" not in admin
    assert "host=127.0.0.1" in tcp
    assert "application_name=jti-1" in tcp
    assert info.log_dir() == Path("/s/data/log")
