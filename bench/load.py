"""Many clinicians at once through the whole stack: throughput, errors, leftovers, audit.

Starts the whole local stack (separate processes, loopback only, step-ups and
consent pushes approved automatically: ``step_up_auto="approve"``), signs in N
simulated clinicians (default 16, spread over the three demo clinicians: two
physicians and a nurse), then runs them at once, each a fixed number of mixed
tool calls (bench/load_sessions.py): roster, charts, labs, a restricted chart
(step-up), an off-team chart (refused by the IdP), a clinical note and a
medication change (refused for the nurse).

    .venv/bin/python bench/load.py [--direct] [--clinicians 16] [--calls 24]
                                   [--max-seconds 240]

``--direct``: every call is an MCP tool call straight to the MCP server (the
50 calls/s target of issue 7 is about tool calls); otherwise reads are questions
through the agent runtime and writes direct tool calls.

Reports calls per second, unexpected errors, expected refusals, latency,
``obo_`` roles left in ``pg_roles`` (must be 0), notes and medication changes
written against rows found by OBO ``jti`` (must match), audit lines per call per
source and whether the trail is complete. Bounded by the call count and a
wall-clock budget; prints figures, never fails on them; stops the stack and
removes its state directory at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import psycopg
from cpu import snapshot, spent
from load_checks import (
    audit_figures,
    audit_sizes,
    new_records,
    roles_left,
    rows_by_jti,
)
from load_sessions import Clinician, Outcome, Patients, run_direct, run_runtime

from trustloop.cli.load_cmd import load_into
from trustloop.cli.session import sign_in
from trustloop.devstack.stack import Stack
from trustloop.records.samples import samples_path

if TYPE_CHECKING:
    from load_checks import AuditFigures

    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.settings import Settings

DEMO_CLINICIANS = (
    ("achen", "physician"),
    ("bokafor", "physician"),
    ("cwhite", "nurse"),
)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _patients(cluster: ClusterInfo, sub: str) -> Patients:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        team = conn.execute(
            "select p.id, p.sensitive from clinical.patients p"
            " join clinical.care_team_members m on m.patient_id = p.id"
            " where m.clinician_sub = %s order by p.id",
            (sub,),
        ).fetchall()
        off = conn.execute(
            "select p.id from clinical.patients p where not p.sensitive and p.id"
            " not in (select patient_id from clinical.care_team_members"
            " where clinician_sub = %s) order by p.id limit 3",
            (sub,),
        ).fetchall()
        meds = conn.execute(
            "select r.patient_id, r.id from clinical.medication_requests r"
            " join clinical.care_team_members m on m.patient_id = r.patient_id"
            " join clinical.patients p on p.id = r.patient_id"
            " where m.clinician_sub = %s and not p.sensitive order by r.id",
            (sub,),
        ).fetchall()
    return Patients(
        own=[str(r[0]) for r in team if not r[1]],
        restricted=[str(r[0]) for r in team if r[1]],
        off_team=[str(r[0]) for r in off],
        medications=[(str(r[0]), str(r[1])) for r in meds],
    )


def _clinicians(stack: Stack, cluster: ClusterInfo, n: int) -> list[Clinician]:
    people = []
    for i in range(n):
        username, role = DEMO_CLINICIANS[i % len(DEMO_CLINICIANS)]
        patients = _patients(cluster, f"clin-{username}")
        if not patients.own or not patients.off_team or not patients.medications:
            raise SystemExit(f"{username} has no patients to load the stack with")
        people.append(Clinician(username, role, i, patients))
    # Each with its own sign-in, before the clock starts.
    with ThreadPoolExecutor(max_workers=4) as pool:
        tokens = pool.map(lambda c: sign_in(stack.settings, c.username), people)
        for c, token in zip(people, tokens, strict=True):
            c.token = token
    return people


async def _run_all(
    settings: Settings, people: list[Clinician], calls: int, direct: bool, budget: float
) -> tuple[float, float]:
    """When the clinicians started (``perf_counter``) and how long they all took."""
    run = run_direct if direct else run_runtime
    deadline = time.monotonic() + budget
    started = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for c in people:
            tasks.start_soon(run, settings, c, calls, deadline)
    return started, time.perf_counter() - started


def _all_calling(people: list[Clinician], started: float) -> tuple[int, float]:
    """Calls finished while every clinician was still calling, and that window.

    The window closes when the first clinician makes its last call: after that
    fewer are calling, so the overall rate mixes in a tail with less load.
    """
    ends = [max(o.ended for o in c.outcomes) for c in people if c.outcomes]
    if len(ends) < len(people):
        return 0, 0.0  # a clinician made no call at all
    closes = min(ends)
    done = sum(1 for c in people for o in c.outcomes if o.ended <= closes)
    return done, closes - started


def main(clinicians: int, calls: int, budget: float, direct: bool) -> None:
    state = Path(tempfile.mkdtemp(prefix="trustloop-load-"))
    state.chmod(0o711)
    stack = Stack.on_free_ports(state, step_up_auto="approve")
    stack.start()
    try:
        cluster = stack.cluster
        if cluster is None:
            raise SystemExit("PostgreSQL did not start")
        load_into(cluster, samples_path(), state)
        people = _clinicians(stack, cluster, clinicians)
        before = audit_sizes(stack.settings.audit_dir)
        cpu_before = snapshot(stack)
        started, wall = anyio.run(
            _run_all, stack.settings, people, calls, direct, budget
        )
        cpu = spent(cpu_before, snapshot(stack))

        outcomes = [o for c in people for o in c.outcomes]
        roles = roles_left(cluster)
        written = {
            kind: [o.obo_jti for o in outcomes if o.kind == kind and o.obo_jti]
            for kind in ("note", "medication")
        }
        found = {
            "note": rows_by_jti(cluster, "notes", written["note"]),
            "medication": rows_by_jti(
                cluster, "medication_changes", written["medication"]
            ),
        }
        figures = audit_figures(new_records(stack.settings.audit_dir, before))
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)

    mode = "direct MCP tool calls" if direct else "reads through the runtime"
    print(f"load: {clinicians} clinicians x {calls} calls, {mode}, loopback")
    _print_calls(outcomes, wall, direct)
    done, window = _all_calling(people, started)
    if window > 0:
        print(
            f"  while all {clinicians} were calling: {done} calls in {window:.1f} s:"
            f" {done / window:.1f} calls/s"
        )
    _print_cpu(cpu, len(outcomes), wall)
    print(f"  obo_ roles left in pg_roles afterwards: {roles}")
    for kind, table in (("note", "notes"), ("medication", "medication_changes")):
        print(
            f"  {kind}s written {len(written[kind])}, rows in clinical.{table}"
            f" under their OBO jti {found[kind]}"
        )
    _print_audit(figures, len(outcomes), direct)


def _print_calls(outcomes: list[Outcome], wall: float, direct: bool) -> None:
    n = len(outcomes)
    refused = sum(1 for o in outcomes if o.refused)
    unexpected = [o for o in outcomes if not o.expected]
    print(f"  calls {n} in {wall:.1f} s: {n / wall:.1f} calls/s")
    print(f"  unexpected errors {len(unexpected)}; expected refusals {refused}")
    for o in unexpected[:5]:
        print(f"    {o.kind}: {o.detail}")
    for kind in (
        "roster",
        "chart",
        "labs",
        "restricted",
        "off_team",
        "note",
        "medication",
    ):
        ms = [o.ms for o in outcomes if o.kind == kind]
        if ms:
            print(
                f"  {kind:<11} {len(ms):4d} calls  median {statistics.median(ms):7.1f}"
                f" ms  p99 {_p(ms, 0.99):7.1f} ms"
            )
    every = [o.ms for o in outcomes] or [0.0]
    print(
        f"  {'all':<11} {n:4d} calls  median {statistics.median(every):7.1f} ms"
        f"  p99 {_p(every, 0.99):7.1f} ms"
    )


def _print_cpu(cpu: dict[str, float], calls: int, wall: float) -> None:
    """Where the 2 cores went: CPU ms per call per process, and the total."""
    per = ", ".join(
        f"{name} {1000 * s / max(1, calls):.1f}"
        for name, s in sorted(cpu.items(), key=lambda kv: -kv[1])
        if s > 0
    )
    total = sum(cpu.values())
    print(f"  CPU ms per call by process: {per}")
    print(
        f"  CPU {total:.1f} s over {wall:.1f} s wall: {total / wall:.2f} cores busy"
        f" of {os.cpu_count()}"
    )


def _print_audit(f: AuditFigures, outcomes: int, direct: bool) -> None:
    per = ", ".join(f"{s} {v:.2f}" for s, v in f.per_call.items())
    print(f"  audit lines per MCP tool call: {per}")
    print(
        f"  mcp tool_call {f.calls} ({f.granted} granted, {f.denied} denied,"
        f" {f.step_ups} stepped up); idp token_exchanged {f.exchanged},"
        f" exchange_denied {f.exchange_denied}; vault responses {f.vault_jtis}"
    )
    runtime = "" if direct else f"; runtime invocations {f.invocations}"
    verdict = "complete" if f.complete else "INCOMPLETE"
    print(
        f"  granted calls without an idp record {f.missing_idp}, without a vault"
        f" record {f.missing_vault}; refusals unrecorded at the idp"
        f" {f.denied_unrecorded}{runtime} -> {verdict}"
    )
    if f.calls != outcomes:
        print(f"  note: {outcomes} calls made, {f.calls} MCP tool_call lines")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--direct", action="store_true", help="MCP tool calls only")
    parser.add_argument("--clinicians", type=int, default=16)
    parser.add_argument("--calls", type=int, default=24, help="calls per clinician")
    parser.add_argument("--max-seconds", type=float, default=240.0)
    args = parser.parse_args()
    if args.clinicians < 1 or args.calls < 1 or args.max_seconds <= 0:
        parser.error("clinicians, calls and max-seconds must be positive")
    main(args.clinicians, args.calls, args.max_seconds, args.direct)
