"""Conversation memory: bounded, keyed by session and a validated clinician identity."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fakeclock import FakeClock
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from trustloop.agent.clinician import ClinicianId, ClinicianVerifier
from trustloop.agent.sessions import (
    ConversationKey,
    ConversationMemory,
    ConversationStore,
)

ISSUER = "http://idp.test"
AUDIENCE = "http://mcp.test/mcp"


class Idp:
    """An in-process IdP: discovery and JWKS over httpx's MockTransport."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
        self.fetches = 0
        self.up = True

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            return httpx.Response(503)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"jwks_uri": f"{ISSUER}/oauth2/jwks"})
        self.fetches += 1
        public = self.key.as_dict(private=False)
        return httpx.Response(200, json={"keys": [{**public, "use": "sig"}]})

    def token(self, key: ECKey | None = None, alg: str = "ES256", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "sub": "clin-achen", "aud": [AUDIENCE],
                "iat": now, "exp": now + 900, "jti": "j1", **claims}  # fmt: skip
        signer = key or self.key
        header = {"alg": alg, "kid": signer.kid or "k1", "typ": "at+jwt"}
        return jwt.encode(header, body, signer)


@pytest.fixture
def idp() -> Idp:
    return Idp()


def verifier(idp: Idp, **kwargs: Any) -> ClinicianVerifier:
    return ClinicianVerifier(ISSUER, AUDIENCE, transport=idp.transport(), **kwargs)


async def test_a_valid_token_names_its_clinician(idp: Idp) -> None:
    assert await verifier(idp).identify(idp.token()) == ClinicianId(
        ISSUER, "clin-achen"
    )


@pytest.mark.parametrize(
    "claims",
    [
        lambda now: {"iss": "http://other.test"},
        lambda now: {"aud": ["http://vault.test"]},
        lambda now: {"exp": now - 60},
        lambda now: {"nbf": now + 600},
        lambda now: {"sub": ""},
    ],
    ids=["iss", "aud", "exp", "nbf", "sub"],
)
async def test_a_token_failing_a_claim_check_has_no_identity(
    idp: Idp, claims: Callable[[int], dict[str, Any]]
) -> None:
    """Times are taken when the test runs, not when it is collected."""
    token = idp.token(**claims(int(time.time())))
    assert await verifier(idp).identify(token) is None


async def test_a_token_signed_by_another_key_has_no_identity(idp: Idp) -> None:
    stranger = ECKey.generate_key("P-256", parameters={"kid": "k1"})

    assert await verifier(idp).identify(idp.token(key=stranger)) is None


async def test_a_token_in_another_algorithm_is_refused(idp: Idp) -> None:
    """The algorithm is pinned, never taken from the token header (RFC 8725 §3.1)."""
    secret = OctKey.generate_key(256, parameters={"kid": "k1"})

    forged = idp.token(key=secret, alg="HS256")  # type: ignore[arg-type]

    assert await verifier(idp).identify(forged) is None


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 9000])
async def test_garbage_has_no_identity_and_fetches_nothing(
    idp: Idp, token: str
) -> None:
    assert await verifier(idp).identify(token) is None
    assert idp.fetches == 0


async def test_the_jwks_is_cached_and_refetched_at_most_every_5_s(idp: Idp) -> None:
    clock = FakeClock()
    check = verifier(idp, monotonic=clock)
    unknown = ECKey.generate_key("P-256", parameters={"kid": "k9"})

    await check.identify(idp.token())
    await check.identify(idp.token())
    await check.identify(idp.token(key=unknown))
    clock.now += 5
    await check.identify(idp.token(key=unknown))

    assert idp.fetches == 2


async def test_the_last_good_keys_are_kept_while_the_idp_is_down(idp: Idp) -> None:
    clock = FakeClock()
    check = verifier(idp, monotonic=clock)
    await check.identify(idp.token())
    idp.up = False
    clock.now += 301  # stale: refetch attempted, fails

    assert await check.identify(idp.token()) == ClinicianId(ISSUER, "clin-achen")


async def test_memory_is_keyed_by_session_and_clinician(idp: Idp) -> None:
    memory = ConversationMemory(verifier(idp), ConversationStore())
    a = await memory.key_for("s1", idp.token(sub="clin-achen"))
    b = await memory.key_for("s1", idp.token(sub="clin-bokafor"))
    assert a is not None
    assert b is not None
    memory.store.keep(a, [question("about Alda")])

    assert memory.store.recall(b) == []
    assert memory.store.recall(a) == [question("about Alda")]
    assert await memory.key_for("s1", "not-a-token") is None
    assert await memory.key_for(None, idp.token()) is None


def question(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def tool_turn(text: str) -> list[dict[str, Any]]:
    use = {"toolUse": {"toolUseId": text, "name": "t", "input": {}}}
    result = {"toolResult": {"toolUseId": text, "status": "success", "content": []}}
    return [
        question(text),
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
        {"role": "assistant", "content": [{"text": "answer"}]},
    ]


KEY = ConversationKey("s1", ISSUER, "clin-achen")


def test_old_turns_are_dropped_whole() -> None:
    store = ConversationStore(max_messages=6)

    store.keep(KEY, [*tool_turn("first"), *tool_turn("second")])

    kept = store.recall(KEY)
    assert kept == tool_turn("second")  # never a tool result without its call


def test_the_least_recently_used_conversation_goes_first() -> None:
    store = ConversationStore(max_sessions=2)
    keys = [ConversationKey(f"s{n}", ISSUER, "clin-achen") for n in range(3)]
    store.keep(keys[0], [question("0")])
    store.keep(keys[1], [question("1")])
    store.recall(keys[0])

    store.keep(keys[2], [question("2")])

    assert store.recall(keys[1]) == []
    assert store.recall(keys[0]) == [question("0")]
    assert len(store) == 2


def test_an_idle_conversation_is_forgotten() -> None:
    clock = FakeClock()
    store = ConversationStore(idle_ttl_s=60, clock=clock)
    store.keep(KEY, [question("hi")])
    clock.now += 61

    assert store.recall(KEY) == []
    assert len(store) == 0


def test_recalled_messages_are_a_copy() -> None:
    store = ConversationStore()
    store.keep(KEY, [question("hi")])

    store.recall(KEY)[0]["content"].append({"text": "injected"})

    assert store.recall(KEY) == [question("hi")]
