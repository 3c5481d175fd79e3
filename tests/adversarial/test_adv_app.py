"""The clinician's sign-in and the web app under attack (issues 3 and 5).

The real IdP app in process (tests/support/signin_world.py) with a frozen clock:
an attacker who knows a clinician's password tries TOTP codes login after login;
the web app's own OIDC client, talking to that IdP, meets a mix-up attempt; and
the real app, with that IdP served on loopback, is flooded with sign-ins begun.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn
from joserfc.jwk import ECKey
from signin_world import (
    ISSUER,
    PASSWORDS,
    SECRETS,
    NoFacts,
    SignInWorld,
    make_world,
    query_of,
)
from starlette.testclient import TestClient

from trustloop.app.oidc import OidcClient, SignInError, Tokens
from trustloop.app.server import create_app as create_web_app
from trustloop.app.sessions import SessionStore
from trustloop.devstack.idp.app import build_idp
from trustloop.devstack.idp.app import create_app as create_idp_app
from trustloop.devstack.idp.totp import MAX_WRONG_CODES, WRONG_CODE_WINDOW_S
from trustloop.devstack.idp.users import DemoUsers
from trustloop.devstack.jwtcheck import JwksCache
from trustloop.devstack.net import free_port
from trustloop.settings import Settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

APP = "http://127.0.0.1:3000"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SignInWorld]:
    async for world in make_world(tmp_path):
        yield world


def _a_wrong_code(world: SignInWorld) -> str:
    """A code that none of the three accepted time steps would take."""
    accepted = {world.otp(steps=step) for step in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(1000) if f"{n:06d}" not in accepted)


async def _guess(world: SignInWorld, codes: list[str]) -> list[int]:
    """One new login (the password is known) and these codes; their statuses."""
    await world.authorize()
    await world.password()
    return [(await world.browser.submit("otp", {"otp": c})).status_code for c in codes]


async def test_totp_guessing_across_logins_is_cut_off_per_clinician(
    world: SignInWorld,
) -> None:
    """Each login allows five tries, but a new login must not reset the count:
    with the password alone, 10^6 codes would fall to enough fresh logins."""
    wrong = _a_wrong_code(world)
    for _ in range(MAX_WRONG_CODES // 4 + 1):
        assert await _guess(world, [wrong] * 4) == [401] * 4

    blocked = await _guess(world, [world.otp()])
    world.clock.now += WRONG_CODE_WINDOW_S + 1
    after_the_window = await _guess(world, [world.fresh_otp()])

    assert blocked == [401]
    assert after_the_window == [303]


async def test_totp_guessing_against_one_clinician_leaves_another_alone(
    world: SignInWorld,
) -> None:
    wrong = _a_wrong_code(world)
    for _ in range(MAX_WRONG_CODES // 4 + 1):
        await _guess(world, [wrong] * 4)

    await world.authorize()
    await world.password("bokafor")
    other = await world.browser.submit("otp", {"otp": world.fresh_otp("bokafor")})

    assert other.status_code == 303


async def test_the_authenticator_page_cannot_be_framed(world: SignInWorld) -> None:
    """Approve on the demo authenticator answers consent and step-up pushes: no
    page of the same site (any port of the host) may frame it for a clickjack."""
    signed_out = await world.http.get("/authenticator")
    form = {"username": "achen", "password": PASSWORDS["achen"]}
    signed_in = await world.http.post("/authenticator", data=form)
    pushes = await world.http.get("/authenticator")

    assert signed_in.status_code == 303
    for page in (signed_out, pushes):
        policy = page.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in policy
        assert page.headers.get("x-frame-options") == "DENY"


async def _authorization_response(world: SignInWorld) -> tuple[OidcClient, Any]:
    """The web app's client begins; the clinician signs in at the real IdP."""
    callback = "http://127.0.0.1:3000/auth/callback"
    client = OidcClient(ISSUER, callback, world.http, clock=world.clock)
    login = await client.begin()
    await world.browser.open(login.url)
    await world.password()
    done = await world.browser.submit("otp", {"otp": world.fresh_otp()})
    assert done.status_code == 303
    return client, (login, query_of(done.headers["location"]))


async def test_an_authorization_response_without_iss_is_refused(
    world: SignInWorld,
) -> None:
    """RFC 9207 §2.4: the IdP advertises the iss parameter, so a response that
    lacks it (stripped in a mix-up attack) MUST be refused."""
    client, (login, params) = await _authorization_response(world)
    assert params["iss"] == ISSUER
    stripped = {k: v for k, v in params.items() if k != "iss"}

    with pytest.raises(SignInError):
        await client.finish(login, stripped)
    signed_in = await client.finish(login, params)

    assert signed_in.sub == "clin-achen"


@contextmanager
def _idp_on_loopback(tmp_path: Path) -> Iterator[str]:
    """The real IdP app served from this process on a free loopback port."""
    issuer = f"http://127.0.0.1:{free_port()}"
    config = Settings(state_dir=tmp_path, idp_url=issuer)
    keys = JwksCache(keys=[ECKey.generate_key("P-256", auto_kid=True)])
    idp = build_idp(
        config, svid_keys=keys, facts=NoFacts(), users=DemoUsers(PASSWORDS, SECRETS)
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(issuer.rsplit(":", 1)[1])))
    server = uvicorn.Server(
        uvicorn.Config(create_idp_app(idp), log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        yield issuer
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_sign_ins_begun_by_anyone_do_not_evict_a_signed_in_clinician(
    tmp_path: Path,
) -> None:
    """GET /auth/login needs no credential and makes a session: a flood of them
    must not push the signed-in clinicians out of the bounded session table."""
    cap = 20
    store = SessionStore(max_sessions=cap)
    with _idp_on_loopback(tmp_path) as issuer:
        settings = Settings(
            state_dir=tmp_path,
            app_url=APP,
            idp_url=issuer,
            runtime_url=f"http://127.0.0.1:{free_port()}",
        )
        app = create_web_app(settings, store=store)
        with TestClient(app, base_url=APP, follow_redirects=False) as browser:
            clinician = store.create()
            clinician.tokens = Tokens(
                "at", "rt", "id", time.time() + 900, "s", "n", "u"
            )
            begun = []
            for _ in range(3 * cap):
                browser.cookies.clear()
                begun.append(browser.get("/auth/login").status_code)

    assert begun == [302] * (3 * cap)
    assert len(store) == cap
    assert store.get(clinician.id) is clinician


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_an_app_served_over_https_tells_browsers_to_stay_on_https(
    tmp_path: Path, scheme: str
) -> None:
    """Without HSTS the first request of a clinician's browser can be downgraded
    to HTTP and the page rewritten on the way; a loopback HTTP app sends none."""
    app_url = f"{scheme}://127.0.0.1:3443"
    settings = Settings(
        state_dir=tmp_path,
        app_url=app_url,
        idp_url=f"http://127.0.0.1:{free_port()}",
        runtime_url=f"http://127.0.0.1:{free_port()}",
    )
    with TestClient(create_web_app(settings), base_url=app_url) as browser:
        answers = [browser.get(path) for path in ("/", "/healthz", "/api/session")]

    for answer in answers:
        hsts = answer.headers.get("strict-transport-security")
        if scheme == "https":
            assert hsts is not None
            assert int(hsts.split("max-age=")[1].split(";")[0]) >= 31536000
        else:
            assert hsts is None
