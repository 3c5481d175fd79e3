"""A step-up push nobody answers: the call fails closed when the push expires, no
login is minted, a late approval changes nothing, and the next push works."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from faultkit import (
    STEP_UP_TIMEOUT_S,
    ask,
    assert_clear_failure,
    obo_roles,
    restricted_patient,
)

from trustloop.cli.approve_cmd import answer_push

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e


def _idp_events(stack: Stack) -> list[dict[str, Any]]:
    path = stack.settings.audit_dir / "idp.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _approve_when_pending(stack: Stack, done: threading.Event) -> None:
    while not done.is_set():
        if answer_push(stack.settings, "achen", approve=True) is not None:
            return
        time.sleep(0.2)


def test_an_unanswered_step_up_fails_closed_and_the_next_one_works(
    stack: Stack, cluster_of: ClusterInfo, token: str
) -> None:
    patient_id, name = restricted_patient(cluster_of)
    question = f"show me the chart of Patient/{patient_id}"
    started = time.monotonic()

    unanswered = ask(stack, token, question)

    waited = time.monotonic() - started
    assert_clear_failure(unanswered, "step-up approval timed out")
    assert name not in unanswered.said
    assert waited >= STEP_UP_TIMEOUT_S  # it did wait for the clinician
    assert obo_roles(cluster_of) == []
    timed_out = [e for e in _idp_events(stack) if e["event"] == "step_up_timed_out"]
    assert len(timed_out) == 1
    # Too late: the expired push can no longer be approved.
    assert answer_push(stack.settings, "achen", approve=True) is None

    done = threading.Event()
    approver = threading.Thread(target=_approve_when_pending, args=(stack, done))
    approver.start()
    try:
        answered = ask(stack, token, question)
    finally:
        done.set()
        approver.join(timeout=30)

    assert answered.succeeded, answered
    assert f"Patient/{patient_id}" in answered.text
    assert obo_roles(cluster_of) == []
