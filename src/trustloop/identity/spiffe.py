"""The workload's own identity from the SPIFFE Workload API (production client).

Wraps the unmodified :class:`spiffe.WorkloadApiClient`, which finds the agent's
socket in ``SPIFFE_ENDPOINT_SOCKET`` (Workload Endpoint standard §4) unless a path
is given. A JWT-SVID is cached per audience until half its lifetime has passed,
the point at which SPIRE's own agent rotates, so most calls cost no round trip;
:meth:`WorkloadIdentity.afetch_fresh_jwt_svid` skips the cache, for a relying party
that accepts each SVID once (the IdP's ``actor_token``). Such an SVID cannot be
reused, but it can be fetched ahead: after each fresh SVID is handed out, one
more is fetched on a worker thread and kept, never shown to anyone, for the next
caller, who takes it if it is still under half its lifetime old. Each fresh SVID
is handed out once, never enters the cache, and a failed fetch ahead only means
the next caller fetches inline (and sees that fetch's error, if any).

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
from concurrent.futures import Future, ThreadPoolExecutor
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


class _DroppedError(Exception):
    """A fetch ahead scheduled before :meth:`WorkloadIdentity.close`."""


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


@dataclass(frozen=True)
class _Ahead:
    """A fresh SVID being fetched (or fetched) ahead, before ``close()`` number
    ``generation``; its SVID is never handed out once that close has run."""

    fetch: Future[_Cached]
    generation: int


class WorkloadIdentity:
    """JWT-SVIDs for this workload, one Workload API connection, cached per audience.

    Thread-safe. The connection is opened on first use and reopened after a
    failure, so a Workload API that starts later (or restarts) is picked up.
    At most one fresh SVID per audience is fetched ahead (in flight or ready).
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
        # Held across Workload API calls (one at a time on the connection).
        self._lock = threading.Lock()
        # Held for a few dict operations only, so the event loop may take it.
        self._ahead_lock = threading.Lock()
        self._ahead: dict[str, _Ahead] = {}
        self._worker: ThreadPoolExecutor | None = None
        self._generation = 0

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
        """A newly minted JWT-SVID (its own ``jti``), handed out once, never again.

        It is the one fetched ahead if that is ready and under half its
        lifetime old; otherwise it is fetched now (waiting for a fetch ahead
        still in flight first, and taking its SVID if that succeeds). Raises
        :class:`WorkloadApiError` only when the fetch made for this call fails.
        """
        if not audience:
            raise ValueError("a JWT-SVID needs an audience")

        ahead = self._take_ahead(audience)
        if ahead is not None and ahead.fetch.done():
            ready = self._usable(ahead)
            if ready is not None:
                self._fetch_ahead(audience)
                return ready
            ahead = None
        svid = await anyio.to_thread.run_sync(self._redeem_or_fetch, ahead, audience)

        self._fetch_ahead(audience)
        return svid

    def _take_ahead(self, audience: str) -> _Ahead | None:
        # Popped under the lock: whoever pops a fetch ahead is its only owner.
        with self._ahead_lock:
            return self._ahead.pop(audience, None)

    def _usable(self, ahead: _Ahead) -> JwtSvidToken | None:
        """The SVID fetched ahead, if it arrived, is under half its lifetime
        and was not dropped by ``close()``."""
        fetch = ahead.fetch
        if not fetch.done() or fetch.cancelled() or fetch.exception() is not None:
            return None
        if ahead.generation != self._generation:
            return None
        fetched = fetch.result()
        return fetched.svid if self._clock() < fetched.refresh_at else None

    def _redeem_or_fetch(self, ahead: _Ahead | None, audience: str) -> JwtSvidToken:
        if ahead is not None:
            with contextlib.suppress(Exception):
                # Any failure ahead (Workload API error, close(), timeout) only
                # means this call fetches its own SVID below.
                ahead.fetch.result(timeout=self._timeout_s)
            ready = self._usable(ahead)
            if ready is not None:
                return ready
        with self._lock:
            return self._mint(audience).svid

    def _fetch_ahead(self, audience: str) -> None:
        """Start fetching the next fresh SVID unless one is already ahead."""
        with self._ahead_lock:
            if audience in self._ahead:
                return
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="svid-ahead")
            generation = self._generation
            fetch = self._worker.submit(self._mint_ahead, audience, generation)
            self._ahead[audience] = _Ahead(fetch, generation)

    def _mint_ahead(self, audience: str, generation: int) -> _Cached:
        with self._lock:
            if generation != self._generation:  # closed since it was scheduled
                raise _DroppedError
            try:
                return self._mint(audience)
            except WorkloadApiError as exc:
                log.warning(
                    "jwt_svid_fetch_ahead_failed", audience=audience, error=str(exc)
                )
                raise

    def _fetch(self, audience: str) -> JwtSvidToken:
        minted = self._mint(audience)
        self._cache[audience] = minted
        return minted.svid

    def _mint(self, audience: str) -> _Cached:
        """A new SVID from the Workload API; the caller holds ``_lock``."""
        fetched_at = self._clock()
        with _translated("fetch a JWT-SVID", self._reset):
            svid = self._connected().fetch_jwt_svid(
                audience={audience}, timeout=self._timeout_s
            )
            token = JwtSvidToken(str(svid.spiffe_id), int(svid.expiry), svid.token)

        # Half the remaining lifetime: SPIRE's agent rotates at the same point.
        refresh_at = fetched_at + (token.expiry - fetched_at) / 2
        log.info(
            "jwt_svid_fetched",
            spiffe_id=token.spiffe_id,
            audience=audience,
            expiry=token.expiry,
        )
        return _Cached(token, refresh_at)

    def _connected(self) -> spiffe.WorkloadApiClient:
        if self._client is None:
            self._client = spiffe.WorkloadApiClient(socket_path=self._socket_path)
        return self._client

    def _reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def close(self) -> None:
        """Close the connection and drop every SVID kept, cached or fetched ahead.

        A fetch ahead still queued is cancelled; one in flight finishes on its
        thread but its SVID is never handed out. The identity may be used
        again: it reconnects on the next call.
        """
        with self._ahead_lock:
            self._generation += 1
            dropped, self._ahead = self._ahead, {}
            worker, self._worker = self._worker, None
        for ahead in dropped.values():
            ahead.fetch.cancel()
        if worker is not None:
            worker.shutdown(wait=False, cancel_futures=True)

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
