"""``trustloop demo``: a scripted clinician session through the whole chain.

Starts a fresh local stack (its own state directory and free ports), loads the
bundled Synthea patients, signs in as a demo clinician and asks three questions:
the roster, a chart on the care team, and a chart outside it. Prints each answer,
the OBO ``jti`` of every tool call and the audit trail of one of them.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import psycopg

from trustloop.app.runtime_client import InvocationError
from trustloop.audit.trace import trace
from trustloop.cli.load_cmd import load_into
from trustloop.cli.output import console, fail
from trustloop.cli.session import Answer, ask, sign_in
from trustloop.cli.stack_cmd import start_and_report
from trustloop.devstack.demo import CLINICIANS
from trustloop.devstack.postgres import ClusterInfo
from trustloop.devstack.stack import Stack, StackError
from trustloop.records.samples import samples_path
from trustloop.settings import Settings

# The richest chart on the care team: most active medications, then conditions.
_ON_TEAM = """
select p.id, p.name from clinical.patients p
join clinical.care_team_members m on m.patient_id = p.id
where m.clinician_sub = %s and not p.sensitive
order by (select count(*) from clinical.medication_requests r
          where r.patient_id = p.id and r.resource->>'status' = 'active') desc,
         (select count(*) from clinical.conditions c where c.patient_id = p.id) desc,
         p.name
limit 1
"""
_OFF_TEAM = """
select p.id from clinical.patients p
where not exists (select 1 from clinical.care_team_members m
                  where m.patient_id = p.id and m.clinician_sub = %s)
order by p.id limit 1
"""


def demo() -> None:
    """Run the scripted session against a freshly started local stack."""
    stack = Stack.on_free_ports(Settings().state_dir / "demo")
    try:
        start_and_report(stack)
        if stack.cluster is None:
            fail("PostgreSQL did not start")
        load_into(stack.cluster, samples_path(), stack.settings.state_dir)
        _session(stack.settings, stack.cluster)
    except (StackError, InvocationError, OSError) as exc:
        fail(str(exc))
    finally:
        console.print("\nstopping the stack...")
        stack.stop()
        console.print("stopped")


def _session(settings: Settings, cluster: ClusterInfo) -> None:
    clinician = CLINICIANS[0]
    on_team, off_team = _pick_patients(cluster, clinician.sub)
    console.rule(f"signed in as {clinician.name} ({clinician.username})")
    token = sign_in(settings, clinician.username)
    questions = [
        "list my patients",
        f"show me {on_team}'s chart",
        f"show me the chart of Patient/{off_team}",
    ]
    answers = [_ask(settings, token, q) for q in questions]
    chart_jtis = answers[1].jtis
    if chart_jtis:
        _show_trail(settings, cluster, chart_jtis[-1])


def _pick_patients(cluster: ClusterInfo, sub: str) -> tuple[str, str]:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        on_team = conn.execute(_ON_TEAM, (sub,)).fetchone()
        off_team = conn.execute(_OFF_TEAM, (sub,)).fetchone()
    if on_team is None or off_team is None:
        fail("the demo population has no suitable patients; run `trustloop load`")
    return str(on_team[1]), str(off_team[0])


def _ask(settings: Settings, token: str, question: str) -> Answer:
    console.print(f"\n[bold cyan]> {question}[/]")
    answer = ask(settings, token, question, on_text=_print_chunk)
    console.print()
    for tool in answer.tools:
        console.print(
            f"[dim]  tool {tool.get('name')}: {tool.get('status')}, "
            f"OBO jti {tool.get('obo_jti') or '-'}[/]"
        )
    return answer


def _show_trail(settings: Settings, cluster: ClusterInfo, jti: str) -> None:
    events = trace(jti, settings.audit_dir, cluster.log_dir())
    counts = Counter(e.system for e in events)
    summary = ", ".join(f"{system} {n}" for system, n in sorted(counts.items()))
    console.print(f"\n[bold]audit trail of {jti}[/]: {summary}")
    command = Path(sys.executable).parent / "trustloop"
    console.print("[dim]  the whole timeline (the files stay after the demo):[/]")
    console.print(
        f"[dim]  TRUSTLOOP_STATE_DIR={settings.state_dir} {command} audit trace {jti}[/]"
    )


def _print_chunk(chunk: str) -> None:
    console.print(chunk, end="", markup=False)
