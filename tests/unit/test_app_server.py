"""The app's routes in-process: clear refusals, security headers, no token to the page.

The IdP and the runtime are absent here (closed loopback ports): these tests are
about what the app itself answers. The browser tests run it against the real stack.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest
from fakeclock import FakeClock
from starlette.testclient import TestClient

from trustloop.app import chat
from trustloop.app.auth import SESSION_EXPIRED, SIGN_IN_REQUIRED
from trustloop.app.oidc import LoginRequest, Tokens
from trustloop.app.server import STATIC, authenticator_url, create_app
from trustloop.app.sessions import SessionStore
from trustloop.devstack.net import free_port
from trustloop.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trustloop.app.sessions import Session

APP = "http://127.0.0.1:3000"
ORIGIN = {"Origin": APP}
COOKIE = "trustloop_session"
ACCESS = "access-token-value-1"
REFRESH = "refresh-token-value-1"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def store(clock: FakeClock) -> SessionStore:
    return SessionStore(clock=clock)


@pytest.fixture
def client(store: SessionStore, clock: FakeClock) -> Iterator[TestClient]:
    settings = Settings(
        app_url=APP,
        idp_url=f"http://127.0.0.1:{free_port()}",
        runtime_url=f"http://127.0.0.1:{free_port()}",
    )
    app = create_app(settings, store=store, clock=clock)
    with TestClient(app, base_url=APP, follow_redirects=False) as test_client:
        yield test_client


def signed_in(store: SessionStore, clock: FakeClock, client: TestClient) -> Session:
    session = store.create()
    session.tokens = Tokens(
        access_token=ACCESS,
        refresh_token=REFRESH,
        id_token="id-token-value",
        expires_at=clock.now + 900,
        sub="clin-achen",
        name="Dr. Amelia Chen",
        username="achen",
    )
    session.new_conversation()
    client.cookies.set(COOKIE, session.id)
    return session


def ask(client: TestClient, conversation_id: str | None = "c") -> dict[str, object]:
    body = {"conversation_id": conversation_id, "message": "list my patients"}
    response = client.post("/api/chat", json=body, headers=ORIGIN)
    return {"status": response.status_code, **response.json()}


def test_a_question_before_signing_in_is_answered_sign_in_first(
    client: TestClient,
) -> None:
    assert ask(client, None) == {
        "status": 401,
        "error": "sign_in_required",
        "message": SIGN_IN_REQUIRED,
    }


def test_a_question_with_a_session_that_expired_says_so(
    client: TestClient, store: SessionStore, clock: FakeClock
) -> None:
    signed_in(store, clock, client)
    clock.now += 31 * 60  # past the idle timeout

    assert ask(client) == {
        "status": 401,
        "error": "session_expired",
        "message": SESSION_EXPIRED,
    }
    session = client.get("/api/session").json()
    assert session["signed_in"] is False
    assert session["expired"] is True


def test_a_session_whose_token_expired_and_cannot_refresh_is_expired(
    client: TestClient, store: SessionStore, clock: FakeClock
) -> None:
    session = signed_in(store, clock, client)
    clock.now += 901  # the access token is dead and the IdP does not answer

    answer = ask(client, next(iter(session.conversations)))

    assert (answer["status"], answer["error"]) == (401, "session_expired")


def test_a_post_from_another_origin_is_refused(
    client: TestClient, store: SessionStore, clock: FakeClock
) -> None:
    session = signed_in(store, clock, client)
    conversation = next(iter(session.conversations))
    body = {"conversation_id": conversation, "message": "hi"}

    for headers in ({"Origin": "http://evil.example"}, {}):
        response = client.post("/api/chat", json=body, headers=headers)
        assert response.status_code == 403
    assert client.post("/auth/logout").status_code == 403


def test_an_oversized_body_is_refused_before_it_is_read_whole(
    client: TestClient, store: SessionStore, clock: FakeClock
) -> None:
    session = signed_in(store, clock, client)
    body = {
        "conversation_id": next(iter(session.conversations)),
        "message": "x" * 10**6,
    }

    response = client.post("/api/chat", json=body, headers=ORIGIN)

    assert response.status_code == 413


def test_another_sessions_conversation_is_not_known(
    client: TestClient, store: SessionStore, clock: FakeClock
) -> None:
    theirs = store.create().new_conversation()
    signed_in(store, clock, client)

    answer = ask(client, theirs.id)

    assert (answer["status"], answer["error"]) == (404, "unknown_conversation")


def test_a_runtime_that_is_down_is_a_clear_message_in_the_stream(
    client: TestClient, store: SessionStore, clock: FakeClock
) -> None:
    session = signed_in(store, clock, client)
    body = {"conversation_id": next(iter(session.conversations)), "message": "hi"}

    response = client.post("/api/chat", json=body, headers=ORIGIN)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = [json.loads(line[5:]) for line in response.text.split("\n\n") if line]
    assert frames == [
        {"type": "error", "code": "runtime_unavailable", "message": chat.RUNTIME_DOWN}
    ]


def test_the_session_api_shows_names_and_ids_never_a_token(
    client: TestClient, store: SessionStore, clock: FakeClock
) -> None:
    session = signed_in(store, clock, client)

    response = client.get("/api/session")

    body = response.json()
    assert body["signed_in"] is True
    assert body["username"] == "achen"
    assert body["conversation_id"] in session.conversations
    assert body["authenticator_url"].endswith("/authenticator")
    for secret in (ACCESS, REFRESH, "id-token-value", session.id):
        assert secret not in response.text
    assert response.headers["cache-control"] == "no-store"


def test_the_authenticator_link_is_the_demo_page_locally_only() -> None:
    local = Settings(idp_url="http://127.0.0.1:9400")
    aws = Settings(profile="aws", idp_url="https://tenant.verify.ibm.com")

    assert authenticator_url(local) == "http://127.0.0.1:9400/authenticator"
    assert authenticator_url(aws) == ""


def test_sign_out_ends_the_session_even_when_the_idp_cannot_be_reached(
    client: TestClient, store: SessionStore, clock: FakeClock
) -> None:
    session = signed_in(store, clock, client)

    response = client.post("/auth/logout", headers=ORIGIN)

    assert response.status_code == 303
    # Not "revoked at the identity provider": the page must not claim it.
    assert response.headers["location"] == "/?notice=signed_out_not_revoked"
    assert store.get(session.id) is None
    assert 'trustloop_session=""' in response.headers["set-cookie"]


def test_login_while_the_idp_is_down_is_a_notice_not_an_error_page(
    client: TestClient,
) -> None:
    response = client.get("/auth/login")

    assert response.status_code == 303
    assert response.headers["location"] == "/?notice=idp_unavailable"


def test_a_callback_without_a_sign_in_in_flight_is_refused(client: TestClient) -> None:
    response = client.get("/auth/callback", params={"code": "c", "state": "s"})

    assert response.headers["location"] == "/?notice=signin_expired"


def test_a_callback_with_another_state_leaves_the_sign_in_in_flight(
    client: TestClient, store: SessionStore
) -> None:
    """A cross-site link to /auth/callback must not cancel the clinician's sign-in."""
    session = store.create()
    login = LoginRequest(
        url="http://idp/authorize", state="s-real", nonce="n", code_verifier="v"
    )
    store.start_login(session, login)
    client.cookies.set(COOKIE, session.id)

    forged = client.get("/auth/callback", params={"code": "c", "state": "junk"})

    assert forged.headers["location"] == "/?notice=signin_failed"
    assert session.login is login
    assert not store.login_expired(session)


def test_every_answer_carries_a_strict_content_security_policy(
    client: TestClient,
) -> None:
    for path in ("/", "/static/app.js", "/api/session", "/healthz"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "default-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"


def test_the_page_has_no_inline_script_style_or_third_party_asset() -> None:
    html = (STATIC / "index.html").read_text()

    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts
    assert all('src="/static/' in attrs for attrs in scripts)
    assert " style=" not in html
    assert "<style" not in html
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    assert not re.search(r'(src|href)="(https?:)?//', html)
