"""The process supervisor behind ``trustloop up``, ``trustloop demo`` and the e2e tests.

Starts PostgreSQL, then the SPIFFE Workload API, the IdP, the Vault stand-in, the MCP
server, the agent runtime and the clinician's web app, each as its own process,
waiting until each answers before starting the next. The supervisor is also the
SPIFFE attestor: it hands each workload its own Workload API socket. Stopping is the
reverse order, SIGTERM first.

Errors: :class:`StackError` (a part did not start; the message names it and quotes
the tail of its log).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from trustloop.devstack.net import free_port
from trustloop.devstack.postgres import ClusterInfo, start_cluster, stop_cluster
from trustloop.devstack.state_marker import ForeignFolderError, mark
from trustloop.settings import (
    URL_FIELD_OF_PART,
    Settings,
    bind_address,
    require_local,
    variable_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable

READY_TIMEOUT_S = 45.0
STOP_TIMEOUT_S = 10.0
# Workloads the SPIFFE stand-in attests by socket, and who runs as which.
WORKLOAD_OF = {"mcp": "mcp-server", "runtime": "agent-runtime"}


class StackError(RuntimeError):
    """A part of the local stack failed to start or answer."""


@dataclass
class Part:
    """One supervised process."""

    name: str
    module: str
    listens: str
    port: int
    ready: Callable[[], bool]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None


@dataclass
class Stack:
    """The local stack for one state directory."""

    settings: Settings
    parts: list[Part] = field(default_factory=list)
    cluster: ClusterInfo | None = None
    _lock: int | None = None

    # -- configuration -----------------------------------------------------------

    @classmethod
    def on_free_ports(cls, state_dir: Path, **overrides: object) -> Stack:
        """A stack whose servers all listen on free loopback ports (tests, demos)."""
        ports = [free_port() for _ in range(6)]
        settings = Settings(
            state_dir=state_dir.resolve(),
            idp_url=f"http://127.0.0.1:{ports[0]}",
            spire_bundle_url=f"http://127.0.0.1:{ports[1]}",
            vault_addr=f"http://127.0.0.1:{ports[2]}",
            mcp_url=f"http://127.0.0.1:{ports[3]}/mcp",
            runtime_url=f"http://127.0.0.1:{ports[4]}",
            app_url=f"http://127.0.0.1:{ports[5]}",
            **overrides,  # type: ignore[arg-type]
        )
        return cls(settings)

    def child_env(self, part: str) -> dict[str, str]:
        """The environment a part runs with: every setting, its SPIFFE socket.

        Every field of :class:`Settings` is passed on (paths made absolute, unset
        ones left out), so a setting the user gave ``up`` (say
        ``TRUSTLOOP_IDP_POLICY``) reaches the part that reads it; nothing else
        named ``TRUSTLOOP_*`` does.
        """
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTLOOP_")}
        env.pop("SPIFFE_ENDPOINT_SOCKET", None)
        for name, value in s.model_dump().items():
            if value is None:
                continue
            if isinstance(value, Path):
                value = value.resolve()
            env[variable_of(name)] = str(value)
        env["TRUSTLOOP_PG_PORT"] = str(self.cluster.port if self.cluster else s.pg_port)
        env["PYTHONUNBUFFERED"] = "1"
        workload = WORKLOAD_OF.get(part)
        if workload is not None:
            sock = (s.spiffe_socket_dir / f"{workload}.sock").resolve()
            env["SPIFFE_ENDPOINT_SOCKET"] = f"unix://{sock}"
        return env

    def _plan(self) -> list[Part]:
        s = self.settings
        sockets = [s.spiffe_socket_dir / f"{w}.sock" for w in WORKLOAD_OF.values()]
        return [
            Part(
                "spire",
                "trustloop.devstack.spire",
                f"{s.spire_bundle_url}/keys and {s.spiffe_socket_dir}/",
                bind_address(s.spire_bundle_url)[1],
                lambda: (
                    all(p.exists() for p in sockets)
                    and http_ok(f"{s.spire_bundle_url}/keys")
                ),
            ),
            Part(
                "idp",
                "trustloop.devstack.idp",
                s.idp_url,
                bind_address(s.idp_url)[1],
                lambda: http_ok(f"{s.idp_url}/.well-known/openid-configuration"),
            ),
            Part(
                "vault",
                "trustloop.devstack.vault",
                s.vault_addr,
                bind_address(s.vault_addr)[1],
                lambda: http_ok(f"{s.vault_addr}/v1/sys/health"),
            ),
            Part(
                "mcp",
                "trustloop.tools",
                s.mcp_url,
                bind_address(s.mcp_url)[1],
                lambda: http_ok(_resource_metadata_url(s.mcp_url)),
            ),
            Part(
                "runtime",
                "trustloop.agent",
                f"{s.runtime_url}/invocations",
                bind_address(s.runtime_url)[1],
                lambda: http_ok(f"{s.runtime_url}/ping"),
            ),
            Part(
                "app",
                "trustloop.app",
                s.app_url,
                bind_address(s.app_url)[1],
                lambda: http_ok(f"{s.app_url}/healthz"),
            ),
        ]

    # -- lifecycle ---------------------------------------------------------------

    def start(self, on_ready: Callable[[str, str], None] | None = None) -> None:
        """Start every part in order; on any failure stop what started and raise.

        ``on_ready(name, where)`` is called as each part starts answering.
        """
        report = on_ready or (lambda name, where: None)
        require_local(self.settings, "the local stack")
        self._take_lock()  # first: it marks the folder, which must be ours
        for directory in (self.settings.log_dir, self.settings.audit_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self.parts = self._plan()
            self._check_ports_free()
            cluster = self._start_postgres()
            report("postgres", f"{cluster.host}:{cluster.port}/{cluster.dbname}")
            for part in self.parts:
                self._start_part(part)
                if part.name == "idp":
                    self._provision_idp(cluster)
                report(part.name, part.listens)
        except BaseException:
            self.stop()
            raise

    def _start_postgres(self) -> ClusterInfo:
        from trustloop.records.schema import apply_schema

        self.cluster = start_cluster(self.settings.state_dir)
        apply_schema(self.cluster.admin_conninfo())
        return self.cluster

    def _provision_idp(self, cluster: ClusterInfo) -> None:
        """Copy the demo care teams stored in PostgreSQL into the IdP's directory."""
        from trustloop.devstack.idp.provision import (
            ProvisionError,
            provision_from_database,
        )

        try:
            provision_from_database(self.settings.state_dir, cluster.admin_conninfo())
        except ProvisionError as exc:
            raise StackError(f"idp: provisioning failed: {exc}") from exc

    def _take_lock(self) -> None:
        """One supervisor per state directory: a second ``up`` is refused, not mixed in."""
        try:
            mark(self.settings.state_dir)
        except ForeignFolderError as exc:
            raise StackError(str(exc)) from None
        path = self.settings.state_dir / "stack.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StackError(
                f"another trustloop stack is running with {self.settings.state_dir}/"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for `trustloop down`
        self._lock = fd

    def _check_ports_free(self) -> None:
        """Refuse to start when something already answers on a part's port.

        Every busy port is named at once, with the setting that moves it.
        """
        busy = [
            f"{part.port} ({part.name}, {variable_of(URL_FIELD_OF_PART[part.name])})"
            for part in self.parts
            if port_answers(part.port)
        ]
        if busy:
            ports = "port " if len(busy) == 1 else "ports "
            raise StackError(
                f"{ports}{', '.join(busy)} already in use: stop what listens there"
                " (another `trustloop up`?) or move each part with its setting"
                " (see README)"
            )

    def _start_part(self, part: Part, env: dict[str, str] | None = None) -> None:
        part.log_path = self.settings.log_dir / f"{part.name}.log"
        log = os.open(part.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            part.process = subprocess.Popen(  # noqa: S603 - our own interpreter
                [sys.executable, "-m", part.module],
                env={**self.child_env(part.name), **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: a terminal's Ctrl-C reaches only the supervisor,
                # which stops the parts in order. If the supervisor dies anyway,
                # the kernel sends each part SIGTERM (PR_SET_PDEATHSIG).
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            os.close(log)
        self._wait_ready(part)

    def _wait_ready(self, part: Part) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if part.process is not None and part.process.poll() is not None:
                raise StackError(f"{part.name} exited early\n{self.log_tail(part)}")
            if part.ready():
                if part.process is not None and part.process.poll() is not None:
                    raise StackError(f"{part.name} exited\n{self.log_tail(part)}")
                return
            time.sleep(0.1)
        raise StackError(
            f"{part.name} not ready in {READY_TIMEOUT_S:.0f} s\n{self.log_tail(part)}"
        )

    def stop(self) -> None:
        """Stop every part, newest first; PostgreSQL last. Safe to call twice."""
        for part in reversed(self.parts):
            _terminate(part.process)
            part.process = None
        if self.cluster is not None:
            stop_cluster(self.settings.state_dir)
            self.cluster = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def part(self, name: str) -> Part:
        """The supervised part called ``name`` (``spire``, ``idp``, ``vault``, ...)."""
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(name)

    def stop_part(self, name: str, *, kill: bool = False) -> None:
        """Stop one part (SIGTERM, or SIGKILL with ``kill``); the rest keep running."""
        part = self.part(name)
        if kill and part.process is not None and part.process.poll() is None:
            os.killpg(part.process.pid, signal.SIGKILL)
            part.process.wait()
        _terminate(part.process)
        part.process = None

    def start_part(self, name: str, *, env: dict[str, str] | None = None) -> None:
        """Start one stopped part again and wait until it answers.

        ``env`` adds variables to its environment for this start only (tests).
        """
        part = self.part(name)
        if part.process is not None and part.process.poll() is None:
            raise StackError(f"{name} is already running")
        self._start_part(part, env)

    def log_tail(self, part: Part, lines: int = 15) -> str:
        if part.log_path is None or not part.log_path.exists():
            return "(no log)"
        text = part.log_path.read_text(errors="replace").splitlines()
        return "\n".join(f"  | {line}" for line in text[-lines:])


def _terminate(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def supervisor_pid(state_dir: Path) -> int | None:
    """The pid of the supervisor running a stack on ``state_dir``, if one is."""
    path = state_dir / "stack.lock"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = path.read_text().strip()
        return int(text) if text.isdigit() else None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _die_with_parent() -> None:
    """In the child, before exec: ask for SIGTERM when the supervisor dies (Linux)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def port_answers(port: int) -> bool:
    """Whether something accepts connections on loopback ``port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _resource_metadata_url(mcp_url: str) -> str:
    """RFC 9728 §3.1: the well-known URI is inserted before the resource's path."""
    scheme, rest = mcp_url.split("://", 1)
    host, _, path = rest.partition("/")
    return f"{scheme}://{host}/.well-known/oauth-protected-resource/{path}"


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
