"""Fresh JWT-SVIDs fetched ahead, against the SPIRE stand-in on a real unix socket.

A spy on the py-spiffe client counts every Workload API fetch, records the SVID
each one minted, and can make a chosen fetch fail or wait, so the tests can
tell which fetch an SVID handed out came from.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from fakeclock import FakeClock
from spiffe import WorkloadApiClient
from spiffe.errors import PySpiffeError

from trustloop.identity.spiffe import WorkloadApiError, WorkloadIdentity

if TYPE_CHECKING:
    from spiffe import JwtSvid

    from trustloop.devstack.spire import SpireServer

pytestmark = pytest.mark.integration

ISSUER = "http://127.0.0.1:9400"


class WorkloadApiSpy:
    """Every JWT-SVID fetch through py-spiffe, numbered from 0 in call order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.finished = 0
        self.minted: dict[int, str] = {}
        self.failing: set[int] = set()
        self.held: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        real = WorkloadApiClient.fetch_jwt_svid

        def fetch(
            client: WorkloadApiClient,
            audience: set[str],
            subject: Any = None,
            timeout: float | None = None,
        ) -> JwtSvid:
            with self._lock:
                number, self.calls = self.calls, self.calls + 1
            try:
                if number in self.held:
                    self.held[number].wait(10)
                if number in self.failing:
                    raise PySpiffeError("stand-in failure")
                svid = real(client, audience, subject, timeout)
                with self._lock:
                    self.minted[number] = svid.token
                return svid
            finally:
                with self._lock:
                    self.finished += 1

        monkeypatch.setattr(WorkloadApiClient, "fetch_jwt_svid", fetch)

    def wait_for(self, calls: int) -> None:
        """Until ``calls`` fetches have finished (or failed), then a moment more."""
        deadline = time.monotonic() + 10
        while self.finished < calls and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)  # time for one more fetch to start, if one wrongly would


@pytest.fixture
def socket(spire: SpireServer) -> str:
    return f"unix://{spire.socket_path('mcp-server')}"


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> WorkloadApiSpy:
    return WorkloadApiSpy(monkeypatch)


def jti_of(token: str) -> str:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])


async def test_the_next_call_gets_the_svid_fetched_ahead(
    socket: str, spy: WorkloadApiSpy
) -> None:
    with WorkloadIdentity(socket) as identity:
        first = await identity.afetch_fresh_jwt_svid(ISSUER)
        spy.wait_for(2)
        second = await identity.afetch_fresh_jwt_svid(ISSUER)
        spy.wait_for(3)

    assert first.token == spy.minted[0]
    assert second.token == spy.minted[1]
    assert spy.calls == 3  # two calls and one ahead


async def test_each_fresh_svid_is_handed_out_once_under_concurrency(
    socket: str, spy: WorkloadApiSpy
) -> None:
    """Many concurrent calls: distinct SVIDs, and fetches = calls + at most one."""
    calls = 40
    got: list[str] = []

    async def one(identity: WorkloadIdentity) -> None:
        got.append((await identity.afetch_fresh_jwt_svid(ISSUER)).token)

    with WorkloadIdentity(socket) as identity:
        await identity.afetch_fresh_jwt_svid(ISSUER)
        spy.wait_for(2)
        async with anyio.create_task_group() as tasks:
            for _ in range(calls):
                tasks.start_soon(one, identity)
        spy.wait_for(calls + 2)
        fetched = spy.calls

    assert len(got) == calls
    assert len({jti_of(token) for token in got}) == calls
    assert set(got) <= set(spy.minted.values())
    assert fetched == calls + 2  # the first call, the calls, and one ahead


async def test_a_fresh_svid_never_enters_the_cache(
    socket: str, spy: WorkloadApiSpy
) -> None:
    with WorkloadIdentity(socket) as identity:
        fresh = await identity.afetch_fresh_jwt_svid(ISSUER)
        spy.wait_for(2)
        cached = await identity.afetch_jwt_svid(ISSUER)

    assert cached.token not in {fresh.token, spy.minted[1]}


async def test_an_svid_ahead_past_half_its_lifetime_is_not_used(
    socket: str, spy: WorkloadApiSpy
) -> None:
    start = time.time()
    clock = FakeClock(start)
    with WorkloadIdentity(socket, clock=clock) as identity:
        await identity.afetch_fresh_jwt_svid(ISSUER)
        spy.wait_for(2)
        clock.now = start + 151  # the SVID lives 300 s
        late = await identity.afetch_fresh_jwt_svid(ISSUER)
        spy.wait_for(4)

    assert late.token != spy.minted[1]
    assert late.token == spy.minted[2]


async def test_an_svid_ahead_under_half_its_lifetime_is_used(
    socket: str, spy: WorkloadApiSpy
) -> None:
    start = time.time()
    clock = FakeClock(start)
    with WorkloadIdentity(socket, clock=clock) as identity:
        await identity.afetch_fresh_jwt_svid(ISSUER)
        spy.wait_for(2)
        clock.now = start + 149
        later = await identity.afetch_fresh_jwt_svid(ISSUER)

    assert later.token == spy.minted[1]


async def test_a_failed_fetch_ahead_is_not_an_error_when_the_inline_fetch_works(
    socket: str, spy: WorkloadApiSpy
) -> None:
    spy.failing = {1}
    with WorkloadIdentity(socket) as identity:
        await identity.afetch_fresh_jwt_svid(ISSUER)
        spy.wait_for(2)
        after = await identity.afetch_fresh_jwt_svid(ISSUER)
        spy.wait_for(4)
        again = await identity.afetch_fresh_jwt_svid(ISSUER)

    assert after.token == spy.minted[2]
    assert again.token == spy.minted[3]


async def test_a_failed_fetch_ahead_surfaces_only_with_a_failed_inline_fetch(
    socket: str, spy: WorkloadApiSpy
) -> None:
    spy.failing = {1, 2}
    with WorkloadIdentity(socket) as identity:
        await identity.afetch_fresh_jwt_svid(ISSUER)
        spy.wait_for(2)
        with pytest.raises(WorkloadApiError, match="could not fetch a JWT-SVID"):
            await identity.afetch_fresh_jwt_svid(ISSUER)
        spy.wait_for(3)
        recovered = await identity.afetch_fresh_jwt_svid(ISSUER)

    assert spy.calls >= 4  # no fetch ahead after the failure: fetched inline
    assert recovered.token == spy.minted[3]


async def test_a_call_waits_for_the_fetch_ahead_in_flight_and_takes_it(
    socket: str, spy: WorkloadApiSpy
) -> None:
    spy.held = {1: threading.Event()}
    with WorkloadIdentity(socket) as identity:
        await identity.afetch_fresh_jwt_svid(ISSUER)
        threading.Timer(0.1, spy.held[1].set).start()
        second = await identity.afetch_fresh_jwt_svid(ISSUER)
        spy.wait_for(3)

    assert second.token == spy.minted[1]
    assert spy.calls == 3


async def test_close_drops_the_fetch_ahead_in_flight(
    socket: str, spy: WorkloadApiSpy
) -> None:
    """An SVID fetched ahead before close() is never handed out after it."""
    spy.held = {1: threading.Event()}
    identity = WorkloadIdentity(socket)
    await identity.afetch_fresh_jwt_svid(ISSUER)
    threading.Timer(0.1, spy.held[1].set).start()
    identity.close()  # waits for the connection, which the fetch ahead holds
    spy.wait_for(2)

    after = await identity.afetch_fresh_jwt_svid(ISSUER)
    identity.close()

    assert after.token != spy.minted.get(1)
    assert after.token == spy.minted[2]


async def test_close_while_a_call_waits_for_the_fetch_ahead_drops_it(
    socket: str, spy: WorkloadApiSpy
) -> None:
    """A call already waiting for the SVID ahead when close() runs fetches its own."""
    spy.held = {1: threading.Event()}
    identity = WorkloadIdentity(socket)
    await identity.afetch_fresh_jwt_svid(ISSUER)  # fetch 0; fetch 1 ahead, held
    got: list[str] = []

    async def call() -> None:
        got.append((await identity.afetch_fresh_jwt_svid(ISSUER)).token)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(call)
        await anyio.sleep(0.05)  # the call now waits for fetch 1
        threading.Timer(0.1, spy.held[1].set).start()
        await anyio.to_thread.run_sync(identity.close)
    identity.close()

    assert got == [spy.minted[2]]
    assert spy.minted[1] not in got


async def test_a_fetch_ahead_scheduled_before_close_never_reaches_the_api(
    socket: str, spy: WorkloadApiSpy
) -> None:
    """A fetch ahead still waiting for the connection when close() runs is dropped."""
    identity = WorkloadIdentity(socket)
    await identity.afetch_fresh_jwt_svid(ISSUER)  # fetch 0; fetch 1 ahead
    spy.wait_for(2)
    spy.held = {2: threading.Event()}
    other = threading.Thread(target=identity.fetch_jwt_svid, args=("trustloop-vault",))
    other.start()  # fetch 2 holds the connection
    while spy.calls < 3:
        time.sleep(0.005)

    await identity.afetch_fresh_jwt_svid(ISSUER)  # takes fetch 1; schedules one ahead
    threading.Timer(0.1, spy.held[2].set).start()
    identity.close()  # waits for fetch 2 to let go of the connection
    other.join()
    spy.wait_for(3)

    assert spy.calls == 3
