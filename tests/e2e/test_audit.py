"""The audit trail of real sessions: trace, tail, verify, /v1.0/events, the SIEM joins."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from trustloop.audit.records import parse_time
from trustloop.cli.session import ask
from trustloop.identity.spiffe import WorkloadIdentity

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
SYSTEMS = {"idp", "vault", "mcp", "runtime", "postgres"}
TRACE_FIELDS = {"time", "system", "event", "outcome", "jti", "detail", "file", "line"}


def _jtis(stack: Stack, token: str, question: str) -> list[str]:
    answer = ask(stack.settings, token, question)
    jtis = [str(t["obo_jti"]) for t in answer.tools if t.get("status") == "success"]
    assert jtis, f"no successful tool call: {answer.tools}"
    return jtis


@pytest.fixture(scope="module")
def session(stack: Stack, achen_token: str) -> list[str]:
    """Two invocations, so every audit file has at least two lines; their jtis."""
    roster = _jtis(stack, achen_token, "list my patients")
    return roster + _jtis(stack, achen_token, "list my patients")


def _cli(
    stack: Stack, *args: str, state: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = stack.child_env("cli")
    if state is not None:
        env["TRUSTLOOP_STATE_DIR"] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "trustloop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _trace(stack: Stack, jti: str) -> list[dict[str, Any]]:
    result = _cli(stack, "audit", "trace", "--json", jti)
    assert result.returncode == 0, result.stderr
    events: list[dict[str, Any]] = json.loads(result.stdout)
    return events


# -- trace ---------------------------------------------------------------------


def test_trace_json_orders_every_systems_records_of_one_call(
    stack: Stack, session: list[str]
) -> None:
    events = _trace(stack, session[0])

    assert {e["system"] for e in events} == SYSTEMS
    assert all(set(e) == TRACE_FIELDS for e in events)
    times = [parse_time(e["time"]) for e in events]
    assert None not in times
    assert times == sorted(times)  # type: ignore[type-var]
    outcomes = {(e["system"], e["outcome"]) for e in events}
    for expected in [
        ("idp", "granted"),
        ("vault", "ok"),
        ("mcp", "ok"),
        ("runtime", "answered"),
        ("postgres", "READ"),
        ("postgres", "ROLE"),
        ("postgres", "connection"),
    ]:
        assert expected in outcomes, f"{expected} missing: {sorted(outcomes)}"


def test_trace_puts_the_exchange_before_the_query_and_the_revoke_after(
    stack: Stack, session: list[str]
) -> None:
    events = _trace(stack, session[0])
    order = [(e["system"], e["event"]) for e in events]

    exchanged = order.index(("idp", "token_exchanged"))
    created = order.index(("postgres", "CREATE ROLE"))
    selected = order.index(("postgres", "SELECT"))
    dropped = order.index(("postgres", "DROP ROLE"))
    call = order.index(("mcp", "tool_call"))
    assert exchanged < created < selected < dropped < call


def test_trace_table_shows_the_outcome_column(stack: Stack, session: list[str]) -> None:
    result = _cli(stack, "audit", "trace", session[0])
    assert result.returncode == 0, result.stderr
    assert "outcome" in result.stdout
    assert "granted" in result.stdout


# -- tail ----------------------------------------------------------------------


def test_tail_prints_the_latest_events_of_every_source(
    stack: Stack, session: list[str]
) -> None:
    result = _cli(stack, "audit", "tail", "-n", "30")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 30
    last_call = [line for line in lines if session[-1] in line]
    assert {line.split()[1] for line in last_call} == SYSTEMS


def _reader(stream: Any) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _lines_until(lines: queue.Queue[str], done: Any, timeout_s: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while not done(seen) and time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.2))
        except queue.Empty:
            continue
    return seen


@pytest.fixture
def following(stack: Stack) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "trustloop.cli", "audit", "tail", "-f", "-n", "1"],
        env=stack.child_env("cli"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_tail_follow_streams_a_new_call_and_stops_on_ctrl_c(
    stack: Stack,
    session: list[str],
    achen_token: str,
    following: subprocess.Popen[str],
) -> None:
    lines = _reader(following.stdout)
    assert _lines_until(lines, lambda seen: seen, 30), "no backlog line"

    jti = _jtis(stack, achen_token, "list my patients")[0]

    def saw_all(seen: list[str]) -> bool:
        systems = {line.split()[1] for line in seen if jti in line}
        return systems >= SYSTEMS

    seen = _lines_until(lines, saw_all, 30)
    assert saw_all(seen), "".join(seen)
    following.send_signal(signal.SIGINT)
    assert following.wait(timeout=10) == 0
    assert following.stderr is not None
    assert "Traceback" not in following.stderr.read()


# -- verify ----------------------------------------------------------------------


def test_verify_names_the_edited_line_of_each_audit_file(
    stack: Stack, session: list[str], tmp_path: Path
) -> None:
    copy = tmp_path / "state"
    shutil.copytree(stack.settings.audit_dir, copy / "audit")
    for name in ("idp", "vault", "mcp", "runtime"):
        path = copy / "audit" / f"{name}.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        assert len(lines) >= 2, f"{name}.jsonl needs two lines"
        edited = len(lines) - 1  # the line before the last, 1-based
        record = json.loads(lines[edited - 1])
        record["event"] = "tampered"
        lines[edited - 1] = json.dumps(record, separators=(",", ":")) + "\n"
        path.write_text("".join(lines))

    result = _cli(stack, "audit", "verify", state=copy)

    assert result.returncode == 1
    for name in ("idp", "vault", "mcp", "runtime"):
        count = len((copy / "audit" / f"{name}.jsonl").read_text().splitlines())
        expected = f"BROKEN  {name}.jsonl line {count}: prev_hash does not match "
        assert expected + f"line {count - 1}" in result.stdout, result.stdout


# -- the IdP's events API ------------------------------------------------------


def _svid(stack: Stack, audience: str, workload: str = "auditor") -> str:
    socket = stack.settings.spiffe_socket_dir / f"{workload}.sock"
    with WorkloadIdentity(f"unix://{socket.resolve()}") as svids:
        return svids.fetch_jwt_svid(audience).token


def test_idp_events_need_the_auditors_jwt_svid(
    stack: Stack, session: list[str]
) -> None:
    url = f"{stack.settings.idp_url}/v1.0/events"
    params = {"all_events": "yes"}
    vault_svid = _svid(stack, stack.settings.vault_audience)
    for headers in ({}, {"Authorization": f"Bearer {vault_svid}"}):
        response = httpx.get(url, params=params, headers=headers)
        assert response.status_code == 401
        assert "invalid_token" in response.headers["WWW-Authenticate"]
    for workload in ("mcp-server", "agent-runtime"):
        svid = _svid(stack, stack.settings.idp_issuer, workload)
        response = httpx.get(
            url, params=params, headers={"Authorization": f"Bearer {svid}"}
        )
        assert response.status_code == 403, workload
        assert "insufficient_scope" in response.headers["WWW-Authenticate"]
        assert session[0] not in response.text


def test_idp_events_page_through_the_real_audit_file(
    stack: Stack, session: list[str]
) -> None:
    url = f"{stack.settings.idp_url}/v1.0/events"
    headers = {"Authorization": f"Bearer {_svid(stack, stack.settings.idp_issuer)}"}
    params = {"all_events": "yes", "size": "3", "sort_order": "asc"}
    seen: list[dict[str, Any]] = []
    for _ in range(1000):
        response = httpx.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()["response"]["events"]
        seen.extend(page["events"])
        if page["search_after"]["max_size_limit"] == "false":
            break
        after = page["search_after"]
        params["after"] = f'"{after["time"]}","{after["id"]}"'

    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids))
    exchanged = [e for e in seen if e["data"]["action"] == "token_exchanged"]
    assert session[0] in {e["correlationid"] for e in exchanged}
    assert all(e["event_type"] == "token" for e in exchanged)


# -- the documented SIEM joins -------------------------------------------------


def _doc_block(marker: str) -> str:
    text = DOC.read_text()
    found = re.search(rf"<!-- {marker}\b[^>]*-->\s*```\w*\n(.*?)```", text, re.S)
    assert found, f"no block marked {marker} in {DOC}"
    return found.group(1)


def test_documented_jq_join_returns_every_system_of_the_jti(
    stack: Stack, session: list[str]
) -> None:
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed (scripts/install-system-deps.sh installs it)")
    env = {
        **os.environ,
        "JTI": session[0],
        "STATE": str(stack.settings.state_dir),
    }
    result = subprocess.run(
        ["bash", "-c", _doc_block("jq-join")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["system"] for r in records} == SYSTEMS
    assert [r["time"] for r in records] == sorted(r["time"] for r in records)


# Words of the query languages and names the queries define themselves.
_SPL_WORDS = {
    "index", "trustloop", "OR", "eval", "coalesce", "sort", "table",
    "when", "_time", "postgres", "JTI", "obo_HEX",
}  # fmt: skip
_KQL_WORDS = {
    "let", "j", "r", "strcat", "replace_string", "union", "TrustloopAudit_CL",
    "PostgresAudit_CL", "where", "or", "set_has_element", "project", "when",
    "todatetime", "tostring", "split", "sort", "by", "asc", "obo_", "JTI",
}  # fmt: skip


def _fields_used(query: str, words: set[str]) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', " ", query)
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", without_strings))
    return names - words


def _real_field_names(stack: Stack) -> set[str]:
    names: set[str] = set()
    for path in stack.settings.audit_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            names.update(json.loads(line))
    assert stack.cluster is not None
    for path in stack.cluster.log_dir().glob("*.json"):
        for line in path.read_text(errors="replace").splitlines():
            names.update(json.loads(line))
    return names


def test_spl_and_kql_joins_use_only_fields_of_real_records(
    stack: Stack, session: list[str]
) -> None:
    """SPL and KQL cannot run here; at least their field names must be real."""
    real = _real_field_names(stack)
    for marker, words in (("spl-join", _SPL_WORDS), ("kql-join", _KQL_WORDS)):
        used = _fields_used(_doc_block(marker), words)
        assert used, marker
        assert used <= real, f"{marker} uses fields no record has: {used - real}"
