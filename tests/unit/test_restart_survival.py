"""What the dev stand-ins keep across a restart, so a restart costs no failed call."""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

from fakeclock import FakeClock
from joserfc import jws

from trustloop.devstack.net import port_is_free
from trustloop.devstack.spire.keys import RETIRED_KEEP_S, JwtAuthority
from trustloop.devstack.vault.tokens import TokenStore

if TYPE_CHECKING:
    from pathlib import Path

MCP_ID = "spiffe://trustloop.local/mcp-server"


def kids(authority: JwtAuthority) -> set[str]:
    return {str(k["kid"]) for k in json.loads(authority.jwks)["keys"]}


def test_a_restarted_spire_authority_publishes_the_previous_key_until_it_expires(
    tmp_path: Path,
) -> None:
    clock = FakeClock(1_800_000_000)
    keys_file = tmp_path / "jwt-keys.json"
    before = JwtAuthority("trustloop.local", clock=clock, keys_file=keys_file)
    svid = before.mint(MCP_ID, ["aud"])

    after = JwtAuthority("trustloop.local", clock=clock, keys_file=keys_file)

    assert kids(after) == {before.kid, after.kid}
    assert after.validate(svid, "aud")[0] == MCP_ID
    clock.now += RETIRED_KEEP_S + 1
    assert kids(after) == {after.kid}


def test_the_spire_keys_file_holds_no_private_key(tmp_path: Path) -> None:
    keys_file = tmp_path / "jwt-keys.json"
    authority = JwtAuthority("trustloop.local", keys_file=keys_file)

    stored = json.loads(keys_file.read_text())

    assert [e["jwk"]["kid"] for e in stored["keys"]] == [authority.kid]
    assert all("d" not in e["jwk"] for e in stored["keys"])
    assert keys_file.stat().st_mode & 0o777 == 0o600
    header = jws.extract_compact(authority.mint(MCP_ID, ["a"]).encode()).headers()
    assert header["kid"] == authority.kid


def test_a_restarted_vault_token_store_honours_its_tokens_and_keeps_no_token(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tokens.json"
    store = TokenStore(path=path)
    issued = store.mint(MCP_ID, ("verify-rar-clinical",))
    store.keep(issued)

    restarted = TokenStore(path=path)

    found = restarted.lookup(issued.token)
    assert found is not None
    assert found.spiffe_id == MCP_ID
    assert issued.token not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_vault_token_store_forgets_expired_tokens_across_a_restart(
    tmp_path: Path,
) -> None:
    clock = FakeClock(1_800_000_000)
    path = tmp_path / "tokens.json"
    store = TokenStore(path=path, clock=clock, ttl_s=10)
    issued = store.mint(MCP_ID, ())
    store.keep(issued)
    clock.now += 11

    assert TokenStore(path=path, clock=clock).lookup(issued.token) is None


def test_a_port_in_time_wait_counts_as_free_but_a_listening_one_does_not() -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not port_is_free(port)
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end goes to TIME_WAIT
        client.close()
    assert port_is_free(port)
