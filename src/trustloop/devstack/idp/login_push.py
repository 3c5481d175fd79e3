"""Login pushes: the second factor approved on the authenticator page.

When a clinician picks "send a push" on the login page, a :class:`LoginPush` is
started for them. It shows up on the demo authenticator (:mod:`.authenticator`)
beside step-up pushes, with the same Approve and Deny buttons and the same
states as a Verify transaction: ``PENDING``, ``VERIFY_SUCCESS``,
``VERIFY_FAILED``, ``EXPIRED`` (no answer within the step-up timeout). The login
page polls its push and finishes (or fails) the login on the answer.

Audit: ``login_push_started``, ``login_push_approved``, ``login_push_denied``
(ids only).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import structlog

from trustloop.audit.chain import AuditLog
from trustloop.devstack.idp.step_up import NotFoundError
from trustloop.devstack.jwtcheck import Clock

State = Literal["PENDING", "VERIFY_SUCCESS", "VERIFY_FAILED", "EXPIRED"]
AutoAnswer = Literal["off", "approve", "deny"]

log = structlog.get_logger("trustloop.devstack.idp")


@dataclass
class LoginPush:
    """One login push (the fields the authenticator shows)."""

    id: str
    sub: str
    message: str
    created: float
    expires: float
    state: State = "PENDING"


class LoginPushes:
    """Pending and answered login pushes, in memory."""

    def __init__(
        self,
        audit: AuditLog,
        *,
        timeout_s: float,
        auto: AutoAnswer = "off",
        clock: Clock = time.time,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("the push timeout must be positive")
        self._audit = audit
        self._timeout_s = timeout_s
        self._auto = auto
        self._clock = clock
        self._lock = threading.Lock()
        self._pushes: dict[str, LoginPush] = {}

    def start(self, sub: str, client_name: str) -> LoginPush:
        now = self._clock()
        push = LoginPush(
            id=str(uuid.uuid4()),
            sub=sub,
            message=f"Sign in to {client_name}?",
            created=now,
            expires=now + self._timeout_s,
        )
        with self._lock:
            self._forget_old()
            self._pushes[push.id] = push
        self._audit.append("login_push_started", transaction_id=push.id, sub=sub)
        if self._auto != "off":  # dev-only; Settings refuses it outside local
            self.answer(sub, push.id, approve=self._auto == "approve")
        return push

    def get(self, push_id: str) -> LoginPush | None:
        with self._lock:
            push = self._pushes.get(push_id)
            if push is not None:
                self._expire(push)
            return push

    def pending(self, sub: str) -> list[LoginPush]:
        """``sub``'s pending login pushes, oldest first."""
        with self._lock:
            mine = [p for p in self._pushes.values() if p.sub == sub]
            for push in mine:
                self._expire(push)
        pending = [p for p in mine if p.state == "PENDING"]
        return sorted(pending, key=lambda p: p.created)

    def answer(self, sub: str, push_id: str | None, *, approve: bool) -> LoginPush:
        """Approve or deny ``sub``'s push (the oldest pending one when no id)."""
        pending = self.pending(sub)
        if push_id is not None:
            pending = [p for p in pending if p.id == push_id]
        if not pending:
            raise NotFoundError
        push = pending[0]
        with self._lock:
            if push.state != "PENDING":
                raise NotFoundError
            push.state = "VERIFY_SUCCESS" if approve else "VERIFY_FAILED"
        event = "login_push_approved" if approve else "login_push_denied"
        self._audit.append(event, transaction_id=push.id, sub=sub)
        log.info(event, transaction_id=push.id, sub=sub)
        return push

    def _expire(self, push: LoginPush) -> None:
        if push.state == "PENDING" and self._clock() >= push.expires:
            push.state = "EXPIRED"

    def _forget_old(self) -> None:
        horizon = self._clock() - 2 * self._timeout_s
        for key in [k for k, p in self._pushes.items() if p.expires < horizon]:
            del self._pushes[key]
