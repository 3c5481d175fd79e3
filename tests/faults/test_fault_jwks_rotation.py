"""The IdP's JWKS endpoint down across a signing-key rotation.

The Vault stand-in is restarted to fetch the IdP's keys through a switchable proxy
(its JWT auth ``jwks_url``). Because the IdP publishes its *next* key before it
signs with it, one rotation while the endpoint is down breaks nothing; a second
one (a key Vault never saw) fails closed until the endpoint is back.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, ClassVar

import httpx
import pytest
from faultkit import (
    ask,
    ask_until_answered,
    assert_clear_failure,
    chart_question,
    obo_roles,
    wait_until_no_obo_roles,
)

from trustloop.devstack.idp.admin import admin_socket
from trustloop.devstack.idp.provision import AdminClient

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e


class JwksProxy(BaseHTTPRequestHandler):
    """Serves the IdP's JWKS while ``up``; answers 503 otherwise."""

    upstream: ClassVar[str] = ""
    up: ClassVar[bool] = True

    def do_GET(self) -> None:
        if not JwksProxy.up:
            self.send_error(503)
            return
        body = httpx.get(JwksProxy.upstream, timeout=5.0).content
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def jwks_proxy(stack: Stack) -> Iterator[type[JwksProxy]]:
    """The proxy, and the Vault stand-in restarted to read the IdP's keys from it
    (and restarted as usual afterwards)."""
    JwksProxy.upstream = f"{stack.settings.idp_issuer}/oauth2/jwks"
    JwksProxy.up = True
    server = ThreadingHTTPServer(("127.0.0.1", 0), JwksProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/oauth2/jwks"
    stack.stop_part("vault")
    stack.start_part("vault", env={"TRUSTLOOP_VAULT_IDP_JWKS_URL": url})
    try:
        yield JwksProxy
    finally:
        stack.stop_part("vault")
        stack.start_part("vault")
        server.shutdown()
        server.server_close()


def rotate(stack: Stack) -> str:
    with AdminClient(admin_socket(stack.settings.state_dir)) as admin:
        return admin.rotate_signing_keys()


def test_rotation_while_the_jwks_is_down_uses_the_prepublished_key(
    stack: Stack, cluster_of: ClusterInfo, token: str, jwks_proxy: type[JwksProxy]
) -> None:
    question = chart_question(cluster_of)
    assert ask(stack, token, question).succeeded  # Vault caches active + next

    jwks_proxy.up = False
    try:
        rotate(stack)
        during = ask(stack, token, question)
    finally:
        jwks_proxy.up = True

    assert during.succeeded, during
    wait_until_no_obo_roles(cluster_of)


def test_an_unseen_key_fails_closed_until_the_jwks_is_back(
    stack: Stack, cluster_of: ClusterInfo, token: str, jwks_proxy: type[JwksProxy]
) -> None:
    question = chart_question(cluster_of)
    assert ask(stack, token, question).succeeded

    jwks_proxy.up = False
    try:
        rotate(stack)
        rotate(stack)  # signs with a key published only while the JWKS was down
        down = ask(stack, token, question)
        assert_clear_failure(down, "database credential refused")
        assert obo_roles(cluster_of) == []
    finally:
        jwks_proxy.up = True

    after = ask_until_answered(stack, token, question)

    assert after.succeeded, after
    wait_until_no_obo_roles(cluster_of)
