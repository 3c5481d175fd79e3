"""The runtime refuses oversized and over-nested bodies before the SDK reads them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import pytest

from trustloop.agent.runtime import create_app
from trustloop.body_limit import MAX_BODY_BYTES
from trustloop.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path


def _client(tmp_path: Path) -> httpx.AsyncClient:
    app = create_app(Settings(state_dir=tmp_path))
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://runtime")


async def test_a_declared_oversized_body_is_413(tmp_path: Path) -> None:
    body = json.dumps({"prompt": "x" * (MAX_BODY_BYTES + 1)})
    async with _client(tmp_path) as client:
        answer = await client.post("/invocations", content=body)

    assert answer.status_code == 413
    assert answer.json() == {
        "error": "invalid request: the body is larger than allowed"
    }


async def test_a_streamed_oversized_body_is_413_without_a_length(
    tmp_path: Path,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(96):  # 96 KiB in all, 1 KiB at a time, no Content-Length
            yield b" " * 1024

    async with _client(tmp_path) as client:
        answer = await client.post("/invocations", content=chunks())

    assert answer.status_code == 413


@pytest.mark.parametrize("depth", [2_000, 200_000])
async def test_a_body_nested_past_the_parser_is_400(tmp_path: Path, depth: int) -> None:
    body = "[" * depth
    async with _client(tmp_path) as client:
        answer = await client.post("/invocations", content=body)

    assert answer.status_code == (400 if depth < MAX_BODY_BYTES else 413)
    assert answer.json()["error"].startswith("invalid request: ")


async def test_a_body_within_the_limit_reaches_the_runtime(tmp_path: Path) -> None:
    """No token here: the runtime's own refusal shows the body got through."""
    body = json.dumps({"prompt": "\U0001f600" * 4000}, ensure_ascii=True)  # 48 KB
    async with _client(tmp_path) as client:
        answer = await client.post("/invocations", content=body)

    assert answer.status_code == 200
    assert "sign in required" in answer.text
