"""The fourth round's surfaces: endpoints no clinician's flow uses, but anyone on
loopback (or any web page a clinician opens) can reach.

Each finding's test failed before its fix (docs/security.md, fourth round).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx
import pytest

from trustloop.identity.oauth import JWT_BEARER_ASSERTION
from trustloop.identity.spiffe import WorkloadIdentity

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


def _audit(stack: Stack) -> list[dict[str, object]]:
    lines = (stack.settings.audit_dir / "idp.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _kids(stack: Stack) -> set[str]:
    jwks = httpx.get(f"{stack.settings.idp_issuer}/oauth2/jwks", trust_env=False)
    return {str(key["kid"]) for key in jwks.json()["keys"]}


def test_no_page_can_rotate_the_keys_and_sign_everyone_out(adv_stack: Stack) -> None:
    """17 cross-site POSTs retired the key of every live token (MAX_RETIRED 16)."""
    s = adv_stack.settings
    before = _kids(adv_stack)
    cross_site = {"Origin": "https://attacker.example"}

    answers = {
        httpx.post(f"{s.idp_issuer}{path}", headers=cross_site, trust_env=False)
        for path in ("/dev/rotate-keys", "/admin/v1/signing-keys/rotate")
        for _ in range(17)
    }

    assert {a.status_code for a in answers} == {404}
    assert _kids(adv_stack) == before


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "OPTIONS"])
def test_the_mcp_endpoint_takes_post_only(
    adv_stack: Stack, achen: str, method: str
) -> None:
    """GET opened an event stream that outlived the revoked token that opened it."""
    answer = httpx.request(
        method,
        adv_stack.settings.mcp_url,
        headers={"Authorization": f"Bearer {achen}", "Accept": "text/event-stream"},
        trust_env=False,
        timeout=10.0,
    )

    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert "text/event-stream" not in answer.headers.get("content-type", "")


@pytest.mark.parametrize(
    ("part", "path", "error"),
    [
        ("vault", "/v1/auth/jwt/login", "errors"),
        ("vault", "/v1/verify-rar/creds/clinical", "errors"),
        ("idp", "/oauth2/token", "error_description"),
        ("idp", "/v1.0/authenticators/x/verifications", "error_description"),
    ],
)
@pytest.mark.parametrize("filler", [b"a", b" "], ids=["text", "whitespace"])
def test_a_body_past_64_kib_is_refused_before_it_is_read(
    adv_stack: Stack, part: str, path: str, error: str, filler: bytes
) -> None:
    """Both stand-ins read 200 MB whole before refusing it; whitespace even passed."""
    base = (
        adv_stack.settings.vault_addr
        if part == "vault"
        else adv_stack.settings.idp_issuer
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts bytes
        yield filler * (64 * 1024)
        yield filler

    answer = httpx.post(
        f"{base}{path}",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        trust_env=False,
        timeout=30.0,
    )

    assert answer.status_code == 413
    assert error in answer.json()


def _deep_but_parseable(depth: int) -> bytes:
    """Below the parser's limit, deep enough to break a recursive walk after it."""
    return (
        b'{"role": "clinical", "jwt": "x", "deep": '
        + (b'{"a": ' * depth + b"1" + b"}" * depth)
        + b"}"
    )


@pytest.mark.parametrize(
    "path",
    ["/v1/auth/jwt/login", "/v1/verify-rar/creds/clinical", "/v1/sys/leases/revoke"],
)
@pytest.mark.parametrize(
    "body",
    [b"[" * 60_000, _deep_but_parseable(600), _deep_but_parseable(800)],
    ids=["past-the-parser", "600-deep", "800-deep"],
)
def test_deep_json_at_vault_is_a_vault_400_not_a_crash(
    adv_stack: Stack, path: str, body: bytes
) -> None:
    """600 levels parsed, then broke the audit device's walk: an unaudited 500."""
    method = "PUT" if "leases" in path else "POST"
    answer = httpx.request(
        method, f"{adv_stack.settings.vault_addr}{path}", content=body, trust_env=False
    )

    assert answer.status_code == 400
    assert answer.json()["errors"]


def test_deep_json_at_the_authenticator_is_a_400(adv_stack: Stack) -> None:
    answer = httpx.post(
        f"{adv_stack.settings.idp_issuer}/authenticator/answers",
        content=b"[" * 5000,
        trust_env=False,
    )

    assert answer.status_code == 400


async def test_deep_authorization_details_are_refused_and_audited(
    adv_stack: Stack, achen: str, mcp_identity: WorkloadIdentity
) -> None:
    """A 500 with no exchange_denied line, after the actor's jti was spent."""
    s = adv_stack.settings
    assertion = (await mcp_identity.afetch_jwt_svid(s.idp_issuer)).token
    actor = (await mcp_identity.afetch_fresh_jwt_svid(s.idp_issuer)).token
    before = len(_audit(adv_stack))
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": achen,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "actor_token": actor,
        "actor_token_type": JWT_TYPE,
        "audience": s.vault_audience,
        "authorization_details": "[" * 5000,
        "client_assertion_type": JWT_BEARER_ASSERTION,
        "client_assertion": assertion,
    }

    async with httpx.AsyncClient(trust_env=False) as http:
        answer = await http.post(f"{s.idp_issuer}/oauth2/token", data=form)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_authorization_details"
    added = _audit(adv_stack)[before:]
    assert [e["event"] for e in added] == ["exchange_denied"]
    assert achen not in json.dumps(added)


@pytest.mark.parametrize("workload", ["agent-runtime", "auditor"])
def test_only_the_tokens_resource_server_learns_it_is_active(
    adv_stack: Stack, achen: str, mcp_identity: WorkloadIdentity, workload: str
) -> None:
    """Any workload of the trust domain got a clinician's token's claims."""
    s = adv_stack.settings
    socket = s.spiffe_socket_dir / f"{workload}.sock"

    def introspect(identity: WorkloadIdentity) -> dict[str, object]:
        form = {
            "token": achen,
            "client_assertion_type": JWT_BEARER_ASSERTION,
            "client_assertion": identity.fetch_jwt_svid(s.idp_issuer).token,
        }
        answer = httpx.post(f"{s.idp_issuer}/oauth2/introspect", data=form)
        assert answer.status_code == 200
        body: dict[str, object] = answer.json()
        return body

    with WorkloadIdentity(f"unix://{socket.resolve()}") as other:
        before = len(_audit(adv_stack))
        hidden = introspect(other)
        audited = _audit(adv_stack)[before:]
    shown = introspect(mcp_identity)  # control: the token's audience

    assert hidden == {"active": False}
    assert audited[-1]["audience_mismatch"] is True
    assert audited[-1]["active"] is False
    assert shown["active"] is True
