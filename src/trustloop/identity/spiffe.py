"""The workload's own identity from the SPIFFE Workload API (production client).

Wraps the unmodified :class:`spiffe.WorkloadApiClient`, which finds the agent's
socket in ``SPIFFE_ENDPOINT_SOCKET`` (Workload Endpoint standard §4) unless a path
is given. A JWT-SVID is cached per audience until half its lifetime has passed,
the point at which SPIRE's own agent rotates, so most calls cost no round trip;
:meth:`WorkloadIdentity.afetch_fresh_jwt_svid` skips the cache, for a relying party
that accepts each SVID once (the IdP's ``actor_token``).

Exceptions::

    WorkloadApiError    every failure to reach the Workload API or to read its
                        answer; the message names the operation and the gRPC
                        status, never a token
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

import anyio.to_thread
import grpc
import spiffe
import structlog
from spiffe.errors import PySpiffeError

if TYPE_CHECKING:
    from types import TracebackType

Clock = Callable[[], float]
DEFAULT_TIMEOUT_S = 5.0

log = structlog.get_logger(__name__)


class WorkloadApiError(Exception):
    """The Workload API could not give this workload what it asked for."""


@dataclass(frozen=True, repr=False)
class JwtSvidToken:
    """A JWT-SVID: who it names, when it expires (epoch seconds) and the token.

    ``repr()`` and ``str()`` never show the token; read ``.token`` to send it.
    """

    spiffe_id: str
    expiry: int
    token: str = field(compare=False)

    def __repr__(self) -> str:
        return (
            f"JwtSvidToken(spiffe_id={self.spiffe_id!r}, expiry={self.expiry}, "
            "token=<redacted>)"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class _Cached:
    svid: JwtSvidToken
    refresh_at: float


class WorkloadIdentity:
    """JWT-SVIDs for this workload, one Workload API connection, cached per audience.

    Thread-safe. The connection is opened on first use and reopened after a
    failure, so a Workload API that starts later (or restarts) is picked up.
    """

    def __init__(
        self,
        socket_path: str | None = None,
        *,
        clock: Clock = time.time,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._socket_path = socket_path
        self._clock = clock
        self._timeout_s = timeout_s
        self._client: spiffe.WorkloadApiClient | None = None
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def fetch_jwt_svid(self, audience: str) -> JwtSvidToken:
        """A JWT-SVID with ``aud`` = [``audience``], at most half its lifetime old."""
        if not audience:
            raise ValueError("a JWT-SVID needs an audience")

        with self._lock:
            cached = self._cache.get(audience)
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.svid
            svid = self._fetch(audience)
        return svid

    async def afetch_jwt_svid(self, audience: str) -> JwtSvidToken:
        """:meth:`fetch_jwt_svid` for async callers: a cache miss runs on a thread."""
        cached = self._cache.get(audience)
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.svid
        return await anyio.to_thread.run_sync(self.fetch_jwt_svid, audience)

    async def afetch_fresh_jwt_svid(self, audience: str) -> JwtSvidToken:
        """A newly minted JWT-SVID (its own ``jti``), never one served before."""
        if not audience:
            raise ValueError("a JWT-SVID needs an audience")
        return await anyio.to_thread.run_sync(self._fetch_locked, audience)

    def _fetch_locked(self, audience: str) -> JwtSvidToken:
        with self._lock:
            return self._fetch(audience)

    def _fetch(self, audience: str) -> JwtSvidToken:
        fetched_at = self._clock()
        with _translated("fetch a JWT-SVID", self._reset):
            svid = self._connected().fetch_jwt_svid(
                audience={audience}, timeout=self._timeout_s
            )
            token = JwtSvidToken(str(svid.spiffe_id), int(svid.expiry), svid.token)

        # Half the remaining lifetime: SPIRE's agent rotates at the same point.
        refresh_at = fetched_at + (token.expiry - fetched_at) / 2
        self._cache[audience] = _Cached(token, refresh_at)
        log.info(
            "jwt_svid_fetched",
            spiffe_id=token.spiffe_id,
            audience=audience,
            expiry=token.expiry,
        )
        return token

    def _connected(self) -> spiffe.WorkloadApiClient:
        if self._client is None:
            self._client = spiffe.WorkloadApiClient(socket_path=self._socket_path)
        return self._client

    def _reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def close(self) -> None:
        with self._lock:
            self._reset()
            self._cache.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def _translated(operation: str, on_error: Callable[[], None]) -> Iterator[None]:
    """The one choke point where py-spiffe and gRPC errors become ours."""
    try:
        yield
    except (PySpiffeError, grpc.RpcError) as exc:
        on_error()
        # py-spiffe's messages quote server details and parser output: name only
        # the operation and the gRPC status code.
        raise WorkloadApiError(
            f"could not {operation} from the Workload API ({_status_of(exc)})"
        ) from exc


def _status_of(exc: BaseException) -> str:
    for link in (exc, exc.__cause__, exc.__context__):
        if isinstance(link, grpc.Call):
            code = link.code()
            return str(getattr(code, "name", code))
    return type(exc).__name__
