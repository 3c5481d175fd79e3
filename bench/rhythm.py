"""Per-call cost of the four-step rhythm, step by step, against its floor.

Starts the whole local stack (separate processes, loopback), asks N chart questions
as a demo clinician, and reads the MCP server's audit lines for the step timings.
The baseline, measured in the same run: what the same chart read costs with no
identity work at all (a fresh SCRAM login as a standing role, the same queries).

    .venv/bin/python bench/rhythm.py [N]

Bounded: N questions (default 40), loopback only, stops the stack at the end.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from trustloop.cli.load_cmd import load_into
from trustloop.cli.session import ask, sign_in
from trustloop.devstack.postgres import ClusterInfo
from trustloop.devstack.stack import Stack
from trustloop.records import queries
from trustloop.records.samples import samples_path

STEPS = ("introspect", "exchange", "lease", "connect", "query", "close", "revoke")


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _row(name: str, values: list[float]) -> str:
    med, p99 = statistics.median(values), _p(values, 0.99)
    return f"  {name:<26} median {med:7.2f} ms   p99 {p99:7.2f} ms"


def _baseline(cluster: ClusterInfo, patient_id: str, n: int) -> list[float]:
    """A standing login with a password, reading the same chart: no rhythm at all."""
    admin = cluster.admin_conninfo()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("drop role if exists bench_static")
        conn.execute(
            "create role bench_static login password 'bench-only' in role clinical_reader"
        )
        conn.execute(
            "insert into access.grants values ('bench_static', 'bench', 'bench', "
            "'patient_record', 'read', %s, false, now() + interval '1 hour') "
            "on conflict (role_name) do nothing",
            (patient_id,),
        )
    times = []
    try:
        for _ in range(n):
            started = time.perf_counter()
            with psycopg.connect(
                cluster.tcp_conninfo("bench_static", "bench-only")
            ) as c:
                queries.read_chart(c, patient_id)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("delete from access.grants where role_name = 'bench_static'")
            conn.execute("drop role bench_static")
    return times


def main(n: int) -> None:
    state = Path(tempfile.mkdtemp(prefix="trustloop-bench-"))
    state.chmod(0o711)
    stack = Stack.on_free_ports(state)
    stack.start()
    try:
        cluster = stack.cluster
        if cluster is None:
            raise SystemExit("PostgreSQL did not start")
        load_into(cluster, samples_path(), state)
        with psycopg.connect(cluster.admin_conninfo()) as conn:
            row = conn.execute(
                "select p.id, p.name from clinical.patients p join clinical.care_team_members m"
                " on m.patient_id = p.id where m.clinician_sub = 'clin-achen'"
                " and not p.sensitive order by p.name limit 1"
            ).fetchone()
        if row is None:
            raise SystemExit("no patient on achen's care team")
        patient_id, _name = str(row[0]), str(row[1])
        token = sign_in(stack.settings, "achen")
        question = f"show me the chart of Patient/{patient_id}"
        ask(stack.settings, token, question)  # warm-up: imports, first connections
        wall = []
        for _ in range(n):
            started = time.perf_counter()
            answer = ask(stack.settings, token, question)
            wall.append((time.perf_counter() - started) * 1000)
            if not answer.tools or answer.tools[-1]["status"] != "success":
                raise SystemExit(f"a chart read failed: {answer.tools}")
        lines = (stack.settings.audit_dir / "mcp.jsonl").read_text().splitlines()
        calls = [json.loads(x) for x in lines][-n:]
        baseline = _baseline(cluster, patient_id, n)
    finally:
        stack.stop()

    timings = {s: [float(c["timings_ms"].get(s, 0.0)) for c in calls] for s in STEPS}
    tool_total = [sum(c["timings_ms"].values()) for c in calls]
    identity = [
        sum(
            c["timings_ms"].get(s, 0.0)
            for s in ("introspect", "exchange", "lease", "revoke")
        )
        for c in calls
    ]
    print(f"rhythm, {n} chart reads through the whole stack (2 cores, loopback)")
    for step in STEPS:
        print(_row(step, timings[step]))
    print(_row("tool call (sum of steps)", tool_total))
    print(_row("  of which identity work", identity))
    print(_row("whole question (runtime)", wall))
    print(_row("baseline: login + read", baseline))
    ratio = statistics.median(tool_total) / statistics.median(baseline)
    print(f"  tool call / baseline: {ratio:.1f}x (median over median)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
