"""Many clinicians at once through the whole stack: throughput, errors, leftovers, audit.

Starts the whole local stack (separate processes, loopback only), then N simulated
clinicians (threads; default 16, spread over the demo clinicians, each with its own
sign-in) each ask a fixed number of mixed questions through the agent runtime:
their roster, the chart of one of their own patients, and the chart of a patient
off their care team, which the IdP must refuse. Reports questions and tool calls
per second, unexpected failures against expected refusals, question latency
(median, p99), ``obo_`` roles left in ``pg_roles`` afterwards (must be 0), and the
audit lines per call per source, checking every granted MCP ``tool_call`` has its
IdP ``token_exchanged`` and Vault ``response`` records (by OBO ``jti``).

    .venv/bin/python bench/load.py [--clinicians 16] [--questions 12] [--max-seconds 240]

Bounded: a fixed number of questions and a wall-clock budget; stops the stack and
removes its temporary state directory at the end. Writes and step-ups are not in this release yet, so the mix is reads only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from trustloop.app.runtime_client import InvocationError, invoke
from trustloop.cli.load_cmd import load_into
from trustloop.cli.session import sign_in
from trustloop.devstack.postgres import ClusterInfo
from trustloop.devstack.stack import Stack
from trustloop.records.samples import samples_path
from trustloop.settings import Settings

DEMO_CLINICIANS = ("achen", "bokafor", "cwhite")
AUDIT_SOURCES = ("idp", "vault", "mcp", "runtime")
ROLES_WAIT_S = 15.0
NOT_YET = (
    "not measured: writes (notes, medication updates) and step-ups are not "
    "available in this release"
)


@dataclass
class Outcome:
    """One question: what was asked, what it should do, what it did, how long."""

    kind: str  # roster | own_chart | off_team
    ms: float
    tools: int
    expected: bool
    detail: str = ""


@dataclass
class Clinician:
    username: str
    own: list[str]
    off_team: list[str]
    outcomes: list[Outcome] = field(default_factory=list)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _patients(cluster: ClusterInfo, sub: str) -> tuple[list[str], list[str]]:
    """Non-sensitive patients on ``sub``'s care team, and a few off it."""
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        own = conn.execute(
            "select p.id from clinical.patients p join clinical.care_team_members m"
            " on m.patient_id = p.id where m.clinician_sub = %s and not p.sensitive"
            " order by p.id",
            (sub,),
        ).fetchall()
        off = conn.execute(
            "select p.id from clinical.patients p where not p.sensitive and p.id"
            " not in (select patient_id from clinical.care_team_members"
            " where clinician_sub = %s) order by p.id limit 3",
            (sub,),
        ).fetchall()
    return [str(r[0]) for r in own], [str(r[0]) for r in off]


def _question(c: Clinician, i: int) -> tuple[str, str]:
    kind = ("roster", "own_chart", "off_team")[i % 3]
    if kind == "roster":
        return kind, "list my patients"
    pool = c.own if kind == "own_chart" else c.off_team
    return kind, f"show me the chart of Patient/{pool[(i // 3) % len(pool)]}"


def _ask(settings: Settings, token: str, question: str) -> tuple[str, list[Any]]:
    """The answer text (or the error frame's) and the tool frames."""
    text, tools = "", []
    try:
        for frame in invoke(
            settings.runtime_url,
            question,
            access_token=token,
            session_id=str(uuid.uuid4()),
        ):
            if frame.get("type") == "text":
                text += str(frame.get("text", ""))
            elif frame.get("type") == "tool":
                tools.append(frame)
    except InvocationError as exc:
        return f"error: {exc}", tools
    return text, tools


def _judge(kind: str, text: str, tools: list[Any]) -> tuple[bool, str]:
    """Whether the question did what it must: answered, or refused by policy."""
    ok = bool(tools) and all(t.get("status") == "success" for t in tools)
    if kind == "off_team":
        refused = bool(tools) and tools[-1].get("status") == "error"
        if refused and "access_denied" in text:
            return True, ""
        return False, "an off-team chart was not refused with access_denied"
    if ok and not text.startswith("error:"):
        return True, ""
    return False, text[:120]


def _run_clinician(
    settings: Settings, c: Clinician, questions: int, deadline: float
) -> None:
    token = sign_in(settings, c.username)
    for i in range(questions):
        if time.monotonic() > deadline:
            return
        kind, question = _question(c, i)
        started = time.perf_counter()
        text, tools = _ask(settings, token, question)
        ms = (time.perf_counter() - started) * 1000
        expected, detail = _judge(kind, text, tools)
        c.outcomes.append(Outcome(kind, ms, len(tools), expected, detail))


def _audit_lines(audit_dir: Path) -> dict[str, int]:
    return {s: _count(audit_dir / f"{s}.jsonl") for s in AUDIT_SOURCES}


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _new_records(audit_dir: Path, before: dict[str, int]) -> dict[str, list[Any]]:
    records = {}
    for source in AUDIT_SOURCES:
        path = audit_dir / f"{source}.jsonl"
        lines = path.read_text().splitlines()[before[source] :]
        records[source] = [json.loads(line) for line in lines]
    return records


def _roles_left(cluster: ClusterInfo) -> int:
    """``obo_`` roles once the leases have had time to end (bounded wait)."""
    deadline = time.monotonic() + ROLES_WAIT_S
    while True:
        with psycopg.connect(cluster.admin_conninfo()) as conn:
            row = conn.execute(
                r"select count(*) from pg_roles where rolname like 'obo\_%'"
            ).fetchone()
        left = int(row[0]) if row else 0
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def _audit_report(records: dict[str, list[Any]], questions: int) -> list[str]:
    calls = [r for r in records["mcp"] if r.get("event") == "tool_call"]
    granted = {str(r["jti"]) for r in calls if r.get("jti")}
    denied = [r for r in calls if r.get("decision") == "denied"]
    exchanged = {
        str(r.get("jti")) for r in records["idp"] if r.get("event") == "token_exchanged"
    }
    idp_denied = [r for r in records["idp"] if r.get("event") == "exchange_denied"]
    vault_jtis = {
        str(r.get("jti"))
        for r in records["vault"]
        if r.get("type") == "response" and r.get("jti")
    }
    invocations = [r for r in records["runtime"] if r.get("event") == "invocation"]
    n = max(1, len(calls))
    missing_idp = granted - exchanged
    missing_vault = granted - vault_jtis
    complete = not missing_idp and not missing_vault and len(invocations) == questions
    return [
        f"  audit lines per tool call: idp {len(records['idp']) / n:.2f}, "
        f"vault {len(records['vault']) / n:.2f}, mcp {len(records['mcp']) / n:.2f}; "
        f"runtime {len(invocations) / max(1, questions):.2f} per question",
        f"  mcp tool_call: {len(calls)} ({len(granted)} granted, {len(denied)} denied);"
        f" idp token_exchanged {len(exchanged)}, exchange_denied {len(idp_denied)};"
        f" vault responses naming a jti {len(vault_jtis)}",
        f"  granted calls without an idp record: {len(missing_idp)}, without a vault"
        f" record: {len(missing_vault)}; runtime invocations {len(invocations)}"
        f" for {questions} questions -> {'complete' if complete else 'INCOMPLETE'}",
    ]


def main(clinicians: int, questions: int, max_seconds: float) -> None:
    state = Path(tempfile.mkdtemp(prefix="trustloop-load-"))
    state.chmod(0o711)
    stack = Stack.on_free_ports(state)
    stack.start()
    try:
        cluster = stack.cluster
        if cluster is None:
            raise SystemExit("PostgreSQL did not start")
        load_into(cluster, samples_path(), state)
        people = []
        for i in range(clinicians):
            username = DEMO_CLINICIANS[i % len(DEMO_CLINICIANS)]
            own, off = _patients(cluster, f"clin-{username}")
            people.append(Clinician(username, own, off))
        before = _audit_lines(stack.settings.audit_dir)

        deadline = time.monotonic() + max_seconds
        threads = [
            threading.Thread(
                target=_run_clinician, args=(stack.settings, c, questions, deadline)
            )
            for c in people
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started

        roles = _roles_left(cluster)
        records = _new_records(stack.settings.audit_dir, before)
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)

    outcomes = [o for c in people for o in c.outcomes]
    _print(clinicians, questions, wall, outcomes, roles, records)


def _print(
    clinicians: int,
    questions: int,
    wall: float,
    outcomes: list[Outcome],
    roles: int,
    records: dict[str, list[Any]],
) -> None:
    asked = len(outcomes)
    tool_calls = sum(o.tools for o in outcomes)
    refusals = sum(1 for o in outcomes if o.kind == "off_team" and o.expected)
    unexpected = [o for o in outcomes if not o.expected]
    ms = [o.ms for o in outcomes] or [0.0]
    print(
        f"load, {clinicians} clinicians x {questions} questions "
        f"(roster, own chart, off-team chart), whole stack, loopback"
    )
    print(f"  asked {asked} questions in {wall:.1f} s")
    print(f"  questions/s {asked / wall:6.1f}   tool calls/s {tool_calls / wall:6.1f}")
    print(f"  expected refusals (off-team, access_denied): {refusals}")
    print(f"  unexpected failures: {len(unexpected)}")
    for o in unexpected[:5]:
        print(f"    {o.kind}: {o.detail}")
    for kind in ("roster", "own_chart", "off_team"):
        k = [o.ms for o in outcomes if o.kind == kind] or [0.0]
        print(
            f"  {kind:<10} median {statistics.median(k):7.1f} ms   "
            f"p99 {_p(k, 0.99):7.1f} ms"
        )
    print(
        f"  all questions median {statistics.median(ms):7.1f} ms   "
        f"p99 {_p(ms, 0.99):7.1f} ms"
    )
    print(f"  obo_ roles left in pg_roles afterwards: {roles}")
    for line in _audit_report(records, asked):
        print(line)
    print(f"  writes, notes written vs found, step-ups: {NOT_YET}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clinicians", type=int, default=16)
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--max-seconds", type=float, default=240.0)
    args = parser.parse_args()
    main(args.clinicians, args.questions, args.max_seconds)
