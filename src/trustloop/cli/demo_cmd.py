"""``trustloop demo``: a scripted clinician session through the whole chain.

Starts a fresh local stack (its own state directory and free ports), loads the
bundled Synthea patients, signs in as a demo clinician and holds one conversation
(one session id, so "his chart" means the patient just discussed): the roster, a
chart on the care team, a note added after the clinician's consent and read back,
a medication put on hold after consent, a chart outside the care team (refused),
a restricted patient's HbA1c results and chart (step-up approved), and the same
chart again, whose step-up is declined. A scripted device answers the pushes. Prints each
answer, the OBO ``jti`` of every tool call and the audit trail of one of them.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

from trustloop.app.runtime_client import InvocationError
from trustloop.audit.trace import trace
from trustloop.cli.approve_cmd import answer_push
from trustloop.cli.load_cmd import load_into
from trustloop.cli.output import console, fail
from trustloop.cli.session import Answer, ask, how_signed_in, sign_in, traced
from trustloop.cli.stack_cmd import start_and_report
from trustloop.devstack.demo import CLINICIANS
from trustloop.devstack.postgres import ClusterInfo, destroy_cluster
from trustloop.devstack.stack import Stack, StackError, supervisor_pid
from trustloop.devstack.state_folder import DEMO_FOLDER
from trustloop.devstack.state_marker import is_marked
from trustloop.records.samples import samples_path
from trustloop.settings import Settings

DEVICE_WAIT_S = 20.0

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
_RESTRICTED = """
select p.name from clinical.patients p
join clinical.care_team_members m on m.patient_id = p.id
where m.clinician_sub = %s and p.sensitive order by p.name limit 1
"""
# A care-team patient with HbA1c results (LOINC 4548-4).
_WITH_HBA1C = """
select p.name from clinical.patients p
join clinical.care_team_members m on m.patient_id = p.id
where m.clinician_sub = %s
  and exists (select 1 from clinical.observations o
              where o.patient_id = p.id and o.code = '4548-4')
order by p.name limit 1
"""
_PATIENT = """
select p.gender,
       (select r.display from clinical.medication_requests r
         where r.patient_id = p.id and r.resource->>'status' = 'active'
         order by r.authored_on desc nulls last, r.id limit 1)
from clinical.patients p where p.name = %s
"""
_NOTE = "Reviewed the home blood pressure log with the patient; continue the plan."


def demo() -> None:
    """Run the scripted session against a freshly started local stack."""
    state_dir = Settings().state_dir / DEMO_FOLDER
    _fresh_state(state_dir)
    stack = Stack.on_free_ports(state_dir)
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


def _fresh_state(state_dir: Path) -> None:
    """Each demo starts from nothing: no cluster, keys, audit or logs of the last."""
    if supervisor_pid(state_dir) is not None:
        fail(f"a demo is already running in {state_dir}/")
    if state_dir.is_symlink() or (
        state_dir.is_dir() and not is_marked(state_dir) and any(state_dir.iterdir())
    ):
        fail(
            f"{state_dir}/ was not made by trustloop's demo, so it is not emptied:"
            " move it, or set TRUSTLOOP_STATE_DIR to another folder"
        )
    destroy_cluster(state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)


def _session(settings: Settings, cluster: ClusterInfo) -> None:
    clinician = CLINICIANS[0]
    user = clinician.username
    on_team, off_team = _pick_patients(cluster, clinician.sub)
    token = sign_in(settings, user)
    how = how_signed_in(token)
    console.rule(f"signed in as {clinician.name} ({user}) with {how}")
    session = str(uuid.uuid4())  # one conversation: "his chart" is on_team's

    def say(question: str, device: bool | None = None) -> Answer:
        if device is None:
            return _ask(settings, token, question, session)
        with _device(settings, user, approve=device):
            return _ask(settings, token, question, session)

    say("list my patients")
    chart = say(f"show me {on_team}'s chart")
    _writes(cluster, on_team, say)
    say(f"show me the chart of Patient/{off_team}")
    with_labs = _one(cluster, _WITH_HBA1C, clinician.sub)
    if with_labs is not None:
        say(f"what were {with_labs}'s last HbA1c results?", device=True)
    restricted = _one(cluster, _RESTRICTED, clinician.sub)
    if restricted is not None:
        # Each call is its own step-up: approved once, then declined.
        say(f"show me {restricted}'s chart", device=True)
        say(f"show me {restricted}'s chart", device=False)
    if chart.jtis:
        _show_trail(settings, cluster, chart.jtis[-1])


def _writes(cluster: ClusterInfo, name: str, say: Callable[..., Answer]) -> None:
    """A note after consent, read back; then one medication put on hold."""
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        row = conn.execute(_PATIENT, (name,)).fetchone()
    gender, medication = (row[0], row[1]) if row is not None else (None, None)
    pronoun = {"male": "his", "female": "her"}.get(str(gender), "their")

    say(f"add a note to {pronoun} chart: {_NOTE}", device=True)
    say(f"show me {pronoun} chart")
    drug = re.search(r"\b[A-Za-z]{4,}\b", str(medication or ""))
    if drug is not None:
        say(f"put {pronoun} {drug.group(0).lower()} on hold", device=True)


def _one(cluster: ClusterInfo, sql: str, sub: str) -> str | None:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        row = conn.execute(sql, (sub,)).fetchone()
    return None if row is None else str(row[0])


@contextlib.contextmanager
def _device(settings: Settings, username: str, *, approve: bool) -> Iterator[None]:
    """The clinician's phone: answers the push (step-up or consent) when it comes."""
    done = threading.Event()

    def answer() -> None:
        deadline = time.monotonic() + DEVICE_WAIT_S
        while not done.is_set() and time.monotonic() < deadline:
            answered = answer_push(settings, username, approve=approve)
            if answered is not None:
                verb = "approves" if approve else "declines"
                console.print(
                    f"[magenta]  (device: the clinician {verb} "
                    f'"{answered.get("message")}")[/]'
                )
                return
            time.sleep(0.2)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


def _pick_patients(cluster: ClusterInfo, sub: str) -> tuple[str, str]:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        on_team = conn.execute(_ON_TEAM, (sub,)).fetchone()
        off_team = conn.execute(_OFF_TEAM, (sub,)).fetchone()
    if on_team is None or off_team is None:
        fail("the demo population has no suitable patients; run `trustloop load`")
    return str(on_team[1]), str(off_team[0])


def _ask(settings: Settings, token: str, question: str, session: str) -> Answer:
    console.print(f"\n[bold cyan]> {question}[/]", markup=True, highlight=False)
    answer = ask(settings, token, question, session_id=session, on_text=_print_chunk)
    console.print()
    for tool in answer.tools:
        console.print(f"[dim]  tool {tool.get('name')}: {traced(tool, token)}[/]")
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
