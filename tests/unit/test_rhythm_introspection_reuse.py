"""Step 1 of the rhythm reuses the bearer check's introspection of the same request,
once, and introspects at the IdP whenever there is none to reuse."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from rhythm_fakes import (
    ISSUER,
    RESOURCE,
    USER_TOKEN,
    FakeIdp,
    FakeSvids,
    make_stack,
)

from trustloop.identity.oauth import Introspection
from trustloop.identity.rar import patient_read
from trustloop.identity.rhythm import Introspected, ToolCallError
from trustloop.tools.auth import IntrospectionVerifier, VerifiedToken
from trustloop.tools.caller import request_introspection

DETAIL = patient_read("p-1")


def answer(**overrides: object) -> Introspection:
    fields: dict[str, object] = {
        "active": True,
        "sub": "dr-ada",
        "aud": [RESOURCE],
        "exp": int(time.time()) + 900,
        "jti": "user-jti",
        "client_id": "trustloop-cli",
    }
    return Introspection.model_validate(fields | overrides)


class OneShot:
    """An ``introspected`` hook holding one answer, handed out once."""

    def __init__(self, found: Introspection, elapsed_ms: float = 2.5) -> None:
        self.held: Introspected | None = Introspected(found, elapsed_ms)
        self.asked: list[str] = []

    def __call__(self, token: str) -> Introspected | None:
        self.asked.append(token)
        taken, self.held = self.held, None
        return taken


async def test_a_reused_answer_replaces_the_idp_call_and_counts_its_time(
    tmp_path: Path,
) -> None:
    hook = OneShot(answer(), elapsed_ms=2.5)
    stack = make_stack(tmp_path, introspected=hook)

    async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record") as c:
        assert c.sub == "dr-ada"

    assert stack.idp.introspected == []
    assert hook.asked == [USER_TOKEN]
    (line,) = [json.loads(raw) for raw in stack.audit_text().splitlines()]
    assert line["timings_ms"]["introspect"] >= 2.5
    assert line["actor"] is not None


async def test_the_second_call_of_a_request_introspects_at_the_idp(
    tmp_path: Path,
) -> None:
    """Once per tool call: a reused answer is never reused again."""
    stack = make_stack(tmp_path, introspected=OneShot(answer()))

    for _ in range(2):
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pass

    assert stack.idp.introspected == [(USER_TOKEN, f"svid-for-{ISSUER}")]


async def test_without_an_answer_to_reuse_every_call_introspects(
    tmp_path: Path,
) -> None:
    stack = make_stack(tmp_path, introspected=lambda token: None)

    for _ in range(3):
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pass

    assert len(stack.idp.introspected) == 3


@pytest.mark.parametrize(
    "found",
    [
        answer(active=False, sub=None, aud=None),
        answer(aud=["https://another.example/mcp"]),
    ],
    ids=["inactive", "other-audience"],
)
async def test_a_reused_answer_is_checked_like_a_fresh_one(
    tmp_path: Path, found: Introspection
) -> None:
    stack = make_stack(tmp_path, introspected=OneShot(found))

    with pytest.raises(ToolCallError) as refused:
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pytest.fail("a refused token reached the tool")

    assert str(refused.value) == "invalid_token: sign in again"
    assert stack.idp.exchanges == []


async def test_the_verifier_holds_its_answer_for_one_tool_call_of_its_request() -> None:
    idp = FakeIdp(introspection=answer())
    verifier = IntrospectionVerifier(idp, FakeSvids(), issuer=ISSUER, resource=RESOURCE)
    verified = await verifier.verify_token(USER_TOKEN)
    assert isinstance(verified, VerifiedToken)

    reset = auth_context_var.set(AuthenticatedUser(verified))
    try:
        assert request_introspection("another-token") is None
        first = request_introspection(USER_TOKEN)
        second = request_introspection(USER_TOKEN)
    finally:
        auth_context_var.reset(reset)

    assert first is not None
    assert first.answer.sub == "dr-ada"
    assert first.elapsed_ms >= 0
    assert second is None
    assert len(idp.introspected) == 1
    assert request_introspection(USER_TOKEN) is None  # outside the request
