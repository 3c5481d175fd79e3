"""Per-call cost of the four-step rhythm, step by step, against its floor (issue 7).

Starts the whole local stack (separate processes, loopback), asks N chart questions
as a demo clinician (one tool call each) and reads the step timings from the MCP
server's audit lines and the CPU time from the runtime's. Then makes N more chart
reads as direct MCP tool calls (one MCP session, as the runtime's client calls),
timed by the client: the full read call, HTTP and MCP included. In the same run,
on the same chart: the floor, phase by phase, and the pooled baseline
(bench/baselines.py), one request to the IdP and one to Vault that do no work,
the cost of one audit line, and the time from starting a runtime process to a
healthy ``/ping``. Prints figures and where each target of issue 7 stands; it
never fails on them.

    .venv/bin/python bench/rhythm.py [N]      # N >= 1, default 200

Bounded: N questions, loopback only; stops the stack and removes its state
directory at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import hvac
import psycopg
import requests
from baselines import FLOOR_PHASES, audit_append, floor, floor_libpq, pooled
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from trustloop.cli.load_cmd import load_into
from trustloop.cli.session import ask, sign_in
from trustloop.devstack.net import free_port
from trustloop.devstack.postgres import ClusterInfo
from trustloop.devstack.stack import Stack
from trustloop.identity.idp_http import idp_http_client
from trustloop.records.samples import samples_path

STEPS = ("introspect", "exchange", "lease", "connect", "query", "close", "revoke")
# Parts of steps (docs/audit.md): shown, never added to the steps.
PARTS = {"svid": "exchange", "vault_login": "lease", "mint": "lease"}
IDENTITY_STEPS = ("introspect", "exchange", "lease", "revoke")
PING_STARTS = 3
# Issue 7's targets.
FLOOR_MEDIAN_X, FLOOR_P99_X, CPU_S_PER_TURN, PING_S = 1.5, 3.0, 0.05, 2.5


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, values: list[float], unit: str = "ms") -> str:
    med, p99 = statistics.median(values), percentile(values, 0.99)
    return f"  {name:<34} median {med:8.2f} {unit}   p99 {p99:8.2f} {unit}"


def _cluster(stack: Stack) -> ClusterInfo:
    if stack.cluster is None:
        raise SystemExit("PostgreSQL did not start")
    return stack.cluster


def _patient(stack: Stack) -> str:
    with psycopg.connect(_cluster(stack).admin_conninfo()) as conn:
        found = conn.execute(
            "select p.id from clinical.patients p join clinical.care_team_members m"
            " on m.patient_id = p.id where m.clinician_sub = 'clin-achen'"
            " and not p.sensitive order by p.name limit 1"
        ).fetchone()
    if found is None:
        raise SystemExit("no patient on achen's care team")
    return str(found[0])


def _questions(stack: Stack, patient_id: str, n: int) -> list[float]:
    token = sign_in(stack.settings, "achen")
    question = f"show me the chart of Patient/{patient_id}"
    for _ in range(3):  # warm-up: imports, first connections, cached SVIDs
        ask(stack.settings, token, question)
    wall = []
    for _ in range(n):
        started = time.perf_counter()
        answer = ask(stack.settings, token, question)
        wall.append((time.perf_counter() - started) * 1000)
        if not answer.tools or answer.tools[-1]["status"] != "success":
            raise SystemExit(f"a chart read failed: {answer.tools}")
    return wall


async def _direct_calls(stack: Stack, patient_id: str, n: int) -> list[float]:
    """Milliseconds per ``read_patient_record`` over MCP, as the client sees it."""
    token = await anyio.to_thread.run_sync(sign_in, stack.settings, "achen")
    headers = {"Authorization": f"Bearer {token}"}
    wall = []
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(stack.settings.mcp_url, http_client=http)) as c,
    ):
        for i in range(n + 3):  # the first three warm up
            started = time.perf_counter()
            result = await c.call_tool(
                "read_patient_record", {"patient_id": patient_id}
            )
            if result.is_error:
                raise SystemExit("a direct chart read failed")
            if i >= 3:
                wall.append((time.perf_counter() - started) * 1000)
    return wall


async def _idle_idp_requests(stack: Stack, n: int) -> list[float]:
    """Milliseconds per IdP request that does no work (its JWKS, already built),
    over the MCP server's own client: the least any IdP step can cost."""
    url = f"{stack.settings.idp_issuer}/oauth2/jwks"
    wall = []
    async with idp_http_client(timeout_s=5.0, connections=1) as http:
        for i in range(n + 3):
            started = time.perf_counter()
            (await http.get(url)).raise_for_status()
            if i >= 3:
                wall.append((time.perf_counter() - started) * 1000)
    return wall


def _idle_vault_requests(stack: Stack, n: int) -> list[float]:
    """Milliseconds per Vault request that does no work (``sys/health``), over
    hvac and requests as the lease client uses them."""
    session = requests.Session()
    session.trust_env = False  # no proxy between two loopback processes
    vault = hvac.Client(url=stack.settings.vault_addr, token="", session=session)
    wall = []
    try:
        for i in range(n + 3):
            started = time.perf_counter()
            vault.sys.read_health_status(method="GET")
            if i >= 3:
                wall.append((time.perf_counter() - started) * 1000)
    finally:
        vault.adapter.close()
    return wall


def _audit(stack: Stack, name: str, event: str, n: int) -> list[dict[str, Any]]:
    lines = (stack.settings.audit_dir / f"{name}.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line]
    return [r for r in records if r.get("event") == event][-n:]


def _time_to_ping(stack: Stack, patient_id: str) -> tuple[list[float], list[float]]:
    """Seconds from spawning ``python -m trustloop.agent`` to a healthy ``/ping``,
    and to its first answered chart question (the agent stack imports in the
    background after ``/ping`` answers, so the first question may wait for it)."""
    token = sign_in(stack.settings, "achen")
    question = f"show me the chart of Patient/{patient_id}"
    to_ping, to_answer = [], []
    for _ in range(PING_STARTS):
        port = free_port()
        env = stack.child_env("runtime")
        env["TRUSTLOOP_RUNTIME_URL"] = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "trustloop.agent"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            to_ping.append(_wait_healthy(port, started))
            settings = stack.settings.model_copy(
                update={"runtime_url": env["TRUSTLOOP_RUNTIME_URL"]}
            )
            ask(settings, token, question)
            to_answer.append(time.perf_counter() - started)
        finally:
            child.terminate()
            child.wait(timeout=10)
    return to_ping, to_answer


def _wait_healthy(port: int, started: float) -> float:
    deadline = started + 30
    with httpx.Client(timeout=1.0, trust_env=False) as http:
        while time.perf_counter() < deadline:
            try:
                answer = http.get(f"http://127.0.0.1:{port}/ping")
                if answer.json().get("status") == "Healthy":
                    return time.perf_counter() - started
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.01)
    raise SystemExit("the runtime did not answer /ping within 30 s")


def _target(name: str, value: float, limit: float, unit: str) -> str:
    verdict = "met" if value <= limit else "NOT met"
    return f"  {name:<44} {value:8.3f} {unit} (target <= {limit} {unit}): {verdict}"


def main(n: int) -> None:
    state = Path(tempfile.mkdtemp(prefix="trustloop-bench-"))
    state.chmod(0o711)
    stack = Stack.on_free_ports(state)
    stack.start()
    try:
        cluster = _cluster(stack)
        load_into(cluster, samples_path(), state)
        patient_id = _patient(stack)
        wall = _questions(stack, patient_id, n)
        calls = _audit(stack, "mcp", "tool_call", n)
        turns = _audit(stack, "runtime", "invocation", n)
        direct = anyio.run(_direct_calls, stack, patient_id, n)
        idle_idp = anyio.run(_idle_idp_requests, stack, n)
        idle_vault = _idle_vault_requests(stack, n)
        floor_cycles = floor(cluster, patient_id, n)
        floor_libpq_ms = floor_libpq(cluster, patient_id, n).totals
        pooled_ms = pooled(cluster, patient_id, n)
        audit_ms = audit_append(state / "bench-audit", n)
        ping_s, first_s = _time_to_ping(stack, patient_id)
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)
    measured = {
        "floor": floor_cycles.totals,
        **{f"floor_{phase}": ms for phase, ms in floor_cycles.phases.items()},
        "floor_libpq": floor_libpq_ms,
        "pooled": pooled_ms,
        "audit": audit_ms,
        "idle_idp": idle_idp,
        "idle_vault": idle_vault,
    }
    _report(n, calls, turns, wall, direct, measured, (ping_s, first_s))


def _report(
    n: int,
    calls: list[dict[str, Any]],
    turns: list[dict[str, Any]],
    wall: list[float],
    direct: list[float],
    measured: dict[str, list[float]],
    start_s: tuple[list[float], list[float]],
) -> None:
    ping_s, first_s = start_s
    floor_ms, pooled_ms = measured["floor"], measured["pooled"]
    steps = {s: [float(c["timings_ms"].get(s, 0.0)) for c in calls] for s in STEPS}
    total = [sum(c["timings_ms"].get(s, 0.0) for s in STEPS) for c in calls]
    identity = [sum(c["timings_ms"].get(s, 0.0) for s in IDENTITY_STEPS) for c in calls]
    cpu_s = [float(t.get("cpu_ms", 0.0)) / 1000 for t in turns]

    print(f"rhythm: {n} chart reads through the whole stack (loopback)")
    for step in STEPS:
        print(row(step, steps[step]))
        for part, within in PARTS.items():
            seen = [
                float(c["timings_ms"][part]) for c in calls if part in c["timings_ms"]
            ]
            if within == step and seen:
                print(row(f"  of which {part} ({len(seen)} calls)", seen))
    print(row("audit line (MCP's, not in the sum)", measured["audit"]))
    print(row("tool call (sum of steps)", total))
    print(row("  of which identity work", identity))
    print(row("full read call over MCP (client)", direct))
    print(row("whole question (runtime)", wall))
    print(row("floor: create, connect, read, drop", floor_ms))
    print(row("  same with libpq's verifier (4096 rounds)", measured["floor_libpq"]))
    print(row("pooled: one open connection", pooled_ms))
    print(row("IdP request, no work (JWKS)", measured["idle_idp"]))
    print(row("Vault request, no work (health)", measured["idle_vault"]))
    print("  the floor by phase, against the rhythm step that holds it (medians):")
    for phase, step in FLOOR_PHASES.items():
        floor_part = statistics.median(measured[f"floor_{phase}"])
        step_ms = statistics.median(steps[step])
        print(
            f"    {phase:<8} {floor_part:6.2f} ms   {step:<8} {step_ms:6.2f} ms"
            f"   extra {step_ms - floor_part:6.2f} ms"
        )
    before = zip(steps["introspect"], steps["exchange"], strict=True)
    idp_ms = statistics.median(a + b for a, b in before)
    print(f"    (none)               introspect + exchange {idp_ms:6.2f} ms")
    idle_hops = 2 * statistics.median(measured["idle_idp"]) + 2 * statistics.median(
        measured["idle_vault"]
    )
    print(
        f"  1.5 x floor leaves {0.5 * statistics.median(floor_ms):.2f} ms for all"
        " the floor does not do; the four identity requests (introspect, exchange,"
        f" mint, revoke) cost {idle_hops:.2f} ms doing no work"
    )
    print(row("runtime CPU per turn", cpu_s, "s "))
    print(row("process start to healthy /ping", ping_s, "s "))
    print(row("process start to first answer", first_s, "s "))

    med_x = statistics.median(total) / statistics.median(floor_ms)
    p99_x = percentile(total, 0.99) / percentile(floor_ms, 0.99)
    full_med_x = statistics.median(direct) / statistics.median(floor_ms)
    full_p99_x = percentile(direct, 0.99) / percentile(floor_ms, 0.99)
    pooled_x = statistics.median(total) / statistics.median(pooled_ms)
    libpq_x = statistics.median(total) / statistics.median(measured["floor_libpq"])
    print(f"  tool call / pooled: {pooled_x:.1f}x (median over median)")
    print(
        f"  tool call / libpq-verifier floor: {libpq_x:.2f}x (median over median;"
        " not the target: the floor above makes its credential as the leases do)"
    )
    print("targets (issue 7):")
    print(_target("tool call (steps) / floor, median", med_x, FLOOR_MEDIAN_X, "x"))
    print(_target("tool call (steps) / floor, p99", p99_x, FLOOR_P99_X, "x"))
    print(
        _target("full call over MCP / floor, median", full_med_x, FLOOR_MEDIAN_X, "x")
    )
    print(_target("full call over MCP / floor, p99", full_p99_x, FLOOR_P99_X, "x"))
    print(
        _target(
            "runtime CPU per turn, median",
            statistics.median(cpu_s),
            CPU_S_PER_TURN,
            "s",
        )
    )
    print(
        _target(
            "start to healthy /ping, median", statistics.median(ping_s), PING_S, "s"
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=200, help="chart reads")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("n must be at least 1")
    main(args.n)
