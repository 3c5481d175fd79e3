"""A private PostgreSQL cluster with pgaudit under ``<state>/postgres/`` (dev-only).

Layout (docs/contracts.md, "State directory")::

    <state>/postgres/data/          PGDATA; jsonlog files under data/log/
    <state>/postgres/socket/        the unix socket directory
    <state>/postgres/cluster.json   {"host", "port", "socket_dir", "dbname", "data_dir"}

The cluster is created with the installed ``initdb`` and run with ``pg_ctl``. A free
loopback port is chosen at creation and kept; if it is taken at the next start,
another one is chosen. Admin connections use the unix socket with peer
authentication (no password exists); ephemeral roles use SCRAM over TCP.

Every failure the developer must fix raises :class:`ClusterError`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import structlog
from psycopg import sql
from psycopg.conninfo import make_conninfo

from trustloop.devstack.net import free_port, port_is_free
from trustloop.devstack.postgres import config
from trustloop.devstack.postgres.tooling import (
    ClusterError,
    ServerUser,
    can_reach,
    check_reachable,
    chown_to,
    current_os_user,
    find_bindir,
    give_to,
    run,
    server_user,
)
from trustloop.devstack.state_marker import ForeignFolderError, mark

HOST = "127.0.0.1"
DBNAME = "trustloop"
_SOCKET_PATH_MAX = 107  # sockaddr_un.sun_path on Linux, minus the NUL
_READY_TIMEOUT_S = 30.0

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ClusterInfo:
    """Where the cluster listens; enough to build every connection string."""

    host: str
    port: int
    socket_dir: Path
    dbname: str
    data_dir: Path

    def admin_conninfo(self, role: str = config.SUPERUSER) -> str:
        """Unix socket, peer authentication (``trustloop`` map), no password."""
        return make_conninfo(
            host=str(self.socket_dir), port=self.port, dbname=self.dbname, user=role
        )

    def tcp_conninfo(self, user: str, password: str, application_name: str = "") -> str:
        """Loopback TCP with SCRAM, how ephemeral roles connect. Never log it."""
        extra = {"application_name": application_name} if application_name else {}
        return make_conninfo(
            host=self.host,
            port=self.port,
            dbname=self.dbname,
            user=user,
            password=password,
            **extra,
        )

    def log_dir(self) -> Path:
        """Where the server writes its ``jsonlog`` files (``*.json``)."""
        return self.data_dir / config.LOG_SUBDIR


@dataclass(frozen=True)
class _Layout:
    root: Path  # <state>/postgres: cluster.json, and usually the server's files too
    server_root: Path  # where PGDATA and the socket live

    @classmethod
    def of(cls, state_dir: Path) -> _Layout:
        root = state_dir.resolve() / "postgres"
        return cls(root, _server_root(root))

    @property
    def data(self) -> Path:
        return self.server_root / "data"

    @property
    def socket(self) -> Path:
        return self.server_root / "socket"

    @property
    def info_file(self) -> Path:
        return self.root / "cluster.json"


def ensure_cluster(state_dir: Path) -> ClusterInfo:
    """Create the cluster if it does not exist yet (``initdb``); idempotent.

    Rewrites the configuration files each time, so a changed port or OS user takes
    effect at the next start. Does not start the server.
    """
    layout = _Layout.of(state_dir)
    bindir = find_bindir()
    user = server_user()
    try:
        mark(state_dir)
    except ForeignFolderError as exc:
        raise ClusterError(str(exc)) from None
    _prepare_dirs(layout, user)

    if not (layout.data / "PG_VERSION").is_file():
        _initdb(bindir, layout, user)
        log.info("postgres_initialised", data_dir=str(layout.data))

    port = _stored_port(layout) or free_port()
    info = _info(layout, port)
    _write_config(layout, user, info)
    return info


def start_cluster(state_dir: Path) -> ClusterInfo:
    """Ensure the cluster, start it unless running, wait until it accepts connections.

    Creates database ``trustloop`` with extension ``pgaudit`` if missing and writes
    ``cluster.json``. Returns the running cluster's info.
    """
    started = time.monotonic()
    info = ensure_cluster(state_dir)
    layout = _Layout.of(state_dir)
    bindir = find_bindir()
    user = server_user()

    if not _is_running(bindir, layout, user):
        info = _start(bindir, layout, user, info)
    _wait_ready(info)
    _bootstrap_database(info)

    elapsed = round(time.monotonic() - started, 3)
    log.info("postgres_started", port=info.port, seconds=elapsed)
    return info


def stop_cluster(state_dir: Path) -> bool:
    """Fast shutdown (``pg_ctl stop -m fast``); False (nothing done) if not running."""
    layout = _Layout.of(state_dir)
    if not (layout.data / "PG_VERSION").is_file():
        return False
    bindir = find_bindir()
    user = server_user()
    if not _is_running(bindir, layout, user):
        return False

    pg_ctl = str(bindir / "pg_ctl")
    run(
        user,
        [pg_ctl, "stop", "-D", str(layout.data), "-m", "fast", "-w", "-s"],
        cwd=layout.server_root,
    )
    log.info("postgres_stopped")
    return True


def destroy_cluster(state_dir: Path) -> None:
    """Stop the cluster and delete its files, wherever they were placed."""
    stop_cluster(state_dir)
    layout = _Layout.of(state_dir)
    shutil.rmtree(layout.server_root, ignore_errors=True)
    shutil.rmtree(layout.root, ignore_errors=True)
    log.info("postgres_destroyed")


def load_info(state_dir: Path) -> ClusterInfo:
    """Read ``cluster.json``; :class:`ClusterError` if the cluster was never created."""
    layout = _Layout.of(state_dir)
    try:
        raw = json.loads(layout.info_file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ClusterError(
            f"no PostgreSQL cluster at {layout.root}: start the stack first"
        ) from exc
    except ValueError as exc:
        raise ClusterError(f"{layout.info_file} is not valid JSON") from exc

    return ClusterInfo(
        host=str(raw["host"]),
        port=int(raw["port"]),
        socket_dir=Path(raw["socket_dir"]),
        dbname=str(raw["dbname"]),
        data_dir=Path(raw.get("data_dir", layout.data)),
    )


def _prepare_dirs(layout: _Layout, user: ServerUser) -> None:
    socket_file = layout.socket / ".s.PGSQL.65535"
    if len(str(socket_file)) > _SOCKET_PATH_MAX:
        raise ClusterError(
            f"state directory path too long for a unix socket: {layout.socket}"
        )
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.server_root.mkdir(mode=0o755, parents=True, exist_ok=True)
    layout.socket.mkdir(mode=0o700, exist_ok=True)
    layout.server_root.chmod(0o755)
    layout.socket.chmod(0o700)
    give_to(user, layout.server_root, layout.socket)


@functools.lru_cache(maxsize=16)
def _server_root(root: Path) -> Path:
    """``root``, unless the server user (``postgres``, as root) cannot reach it.

    A clone under ``/root`` (mode 0700) is the usual case: there the server's
    files go to ``/var/lib/trustloop/<hash of root>/`` instead, and ``cluster.json``
    (which stays under ``root``) says where.
    """
    user = server_user()
    if not user.via_runuser or can_reach(user, _nearest_existing(root)):
        return root
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    fallback_parent = Path("/var/lib/trustloop")
    fallback_parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fallback_parent.chmod(0o755)
    log.info("postgres_dir_relocated", state=str(root), server_root=digest)
    return fallback_parent / digest


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _initdb(bindir: Path, layout: _Layout, user: ServerUser) -> None:
    argv = [
        str(bindir / "initdb"),
        "--pgdata",
        str(layout.data),
        "--username",
        config.SUPERUSER,
        "--encoding",
        "UTF8",
        "--locale",
        "C.UTF-8",
        "--auth-local",
        "peer",
        "--auth-host",
        "scram-sha-256",
        "--no-instructions",
    ]
    run(user, argv, cwd=layout.server_root)
    with (layout.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write(config.include_line())


def _write_config(layout: _Layout, user: ServerUser, info: ClusterInfo) -> None:
    os_users: tuple[str, ...] = (current_os_user(),)
    if user.via_runuser:
        os_users = (*os_users, user.name)
    files = {
        config.INCLUDE_FILE: config.postgresql_conf(info.port, info.socket_dir),
        "pg_hba.conf": config.pg_hba_conf(),
        "pg_ident.conf": config.pg_ident_conf(os_users),
    }
    for name, text in files.items():
        path = layout.data / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        chown_to(user, path)

    _write_info(layout, info)


def _write_info(layout: _Layout, info: ClusterInfo) -> None:
    doc = {
        "host": info.host,
        "port": info.port,
        "socket_dir": str(info.socket_dir),
        "dbname": info.dbname,
        "data_dir": str(info.data_dir),
    }
    tmp = layout.info_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.replace(layout.info_file)


def _info(layout: _Layout, port: int) -> ClusterInfo:
    return ClusterInfo(HOST, port, layout.socket, DBNAME, layout.data)


def _stored_port(layout: _Layout) -> int | None:
    if not layout.info_file.is_file():
        return None
    return load_info(layout.root.parent).port


def _is_running(bindir: Path, layout: _Layout, user: ServerUser) -> bool:
    argv = [str(bindir / "pg_ctl"), "status", "-D", str(layout.data)]
    status = subprocess.run(  # noqa: S603 - fixed argv, no shell
        user.command(argv), cwd=layout.server_root, capture_output=True, check=False
    )
    return status.returncode == 0


def _start(
    bindir: Path, layout: _Layout, user: ServerUser, info: ClusterInfo
) -> ClusterInfo:
    if not port_is_free(info.port):
        log.info("postgres_port_taken", port=info.port)
        info = _info(layout, free_port())
        _write_config(layout, user, info)

    check_reachable(user, layout.data)
    argv = [
        str(bindir / "pg_ctl"),
        "start",
        "-D",
        str(layout.data),
        "-l",
        str(layout.server_root / "pg_ctl.log"),
        "-w",
        "-t",
        str(int(_READY_TIMEOUT_S)),
        "-s",
    ]
    try:
        run(user, argv, cwd=layout.server_root, timeout=_READY_TIMEOUT_S + 10)
    except ClusterError as exc:
        logs = f"{layout.server_root / 'pg_ctl.log'} and {layout.data / config.LOG_SUBDIR}/"
        raise ClusterError(f"{exc} (server logs: {logs})") from exc
    return info


def _wait_ready(info: ClusterInfo) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    conninfo = make_conninfo(info.admin_conninfo(), dbname="postgres")
    while True:
        try:
            with psycopg.connect(conninfo, connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise ClusterError(f"PostgreSQL did not become ready: {exc}") from exc
            time.sleep(0.1)


def _bootstrap_database(info: ClusterInfo) -> None:
    server = make_conninfo(info.admin_conninfo(), dbname="postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (info.dbname,)
        ).fetchone()
        if exists is None:
            conn.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(info.dbname))
            )
            log.info("postgres_database_created", dbname=info.dbname)
        # Only the trustloop database is for the stack's roles (the schema grants
        # CONNECT there); ephemeral roles must not make objects anywhere else.
        conn.execute(
            "REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC"
        )

    with psycopg.connect(info.admin_conninfo(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgaudit")
