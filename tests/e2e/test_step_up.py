"""A restricted patient's chart through the whole chain: step-up approved, denied, late.

The auto-answer cases each need their own stack (the setting is read at start-up);
the manual approval uses the shared one, answered by ``trustloop approve``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from stackkit import running_stack

from trustloop.cli.session import Answer, ask, sign_in
from trustloop.devstack.stack import Stack

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.e2e

ACHEN = "clin-achen"
STEP_UP_ACR = "urn:trustloop:acr:step-up"


@contextmanager
def _stack(factory: Callable[[str], Path], **overrides: Any) -> Iterator[Stack]:
    with running_stack(factory("stepup"), **overrides) as stack:
        yield stack


def _restricted_patient(stack: Stack) -> tuple[str, str]:
    assert stack.cluster is not None
    with psycopg.connect(stack.cluster.admin_conninfo()) as conn:
        row = conn.execute(
            "select p.id, p.name from clinical.patients p "
            "join clinical.care_team_members m on m.patient_id = p.id "
            "where m.clinician_sub = %s and p.sensitive order by p.name limit 1",
            (ACHEN,),
        ).fetchone()
    assert row is not None, "the demo data has no restricted patient for achen"
    return str(row[0]), str(row[1])


def _ask_chart(stack: Stack) -> tuple[str, Answer]:
    patient_id, name = _restricted_patient(stack)
    token = sign_in(stack.settings, "achen")
    return patient_id, ask(stack.settings, token, f"show me {name}'s chart")


def _audit(stack: Stack, system: str) -> list[dict[str, Any]]:
    path = stack.settings.audit_dir / f"{system}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _reads(answer: Answer) -> list[dict[str, object]]:
    return [t for t in answer.tools if t.get("name") == "read_patient_record"]


def _assert_stepped_up_read(stack: Stack, patient_id: str, answer: Answer) -> None:
    reads = _reads(answer)
    assert [r["status"] for r in reads] == ["success"]
    assert f"Patient/{patient_id}" in answer.text
    jti = reads[0]["obo_jti"]
    exchanged = [
        e
        for e in _audit(stack, "idp")
        if e["event"] == "token_exchanged" and e.get("jti") == jti
    ]
    assert [e["acr"] for e in exchanged] == [STEP_UP_ACR]
    calls = [e for e in _audit(stack, "mcp") if e.get("jti") == jti]
    assert [c["step_up"] for c in calls] == [True]


def test_an_approved_step_up_reads_the_restricted_chart(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    with _stack(pg_state_dir_factory, step_up_auto="approve") as stack:
        patient_id, answer = _ask_chart(stack)
        _assert_stepped_up_read(stack, patient_id, answer)
        events = [e["event"] for e in _audit(stack, "idp")]
    assert "step_up_started" in events
    assert "step_up_approved" in events


def test_a_denied_step_up_is_relayed_and_not_retried(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    with _stack(pg_state_dir_factory, step_up_auto="deny") as stack:
        _, answer = _ask_chart(stack)
        events = [e["event"] for e in _audit(stack, "idp")]

    assert len(_reads(answer)) == 1
    assert "the clinician declined the step-up" in answer.text
    assert "step_up_denied" in events


def test_an_unanswered_step_up_times_out(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    with _stack(pg_state_dir_factory, step_up_timeout_s=1.0) as stack:
        _, answer = _ask_chart(stack)
        events = [e["event"] for e in _audit(stack, "idp")]

    assert len(_reads(answer)) == 1
    assert "step-up approval timed out" in answer.text
    assert "step_up_timed_out" in events


def _approve_from_the_terminal(stack: Stack, done: threading.Event) -> None:
    """``trustloop approve --as achen`` until a push was there to approve."""
    env = stack.child_env("cli")
    command = [sys.executable, "-m", "trustloop.cli", "approve", "--as", "achen"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not done.is_set():
        approved = subprocess.run(command, env=env, capture_output=True, check=False)
        if approved.returncode == 0:
            return
        time.sleep(0.2)


def test_a_question_waits_for_trustloop_approve(stack: Stack) -> None:
    done = threading.Event()
    approver = threading.Thread(
        target=_approve_from_the_terminal, args=(stack, done), daemon=True
    )
    approver.start()
    try:
        patient_id, answer = _ask_chart(stack)
    finally:
        done.set()
        approver.join(timeout=30)

    _assert_stepped_up_read(stack, patient_id, answer)
