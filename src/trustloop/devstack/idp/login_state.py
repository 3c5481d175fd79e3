"""Login transactions: the state of one login between its pages.

A transaction starts at ``/oauth2/authorize`` (it then carries the validated
:class:`AuthorizationRequest`) or at the device page (it carries the
``user_code`` the clinician is approving). It is bound to the browser that
started it: the ``trustloop_browser`` cookie (``HttpOnly``, ``SameSite=Lax``) must
come back with every form, and each form carries the transaction's CSRF token.
It ends after :data:`MAX_FAILURES` wrong passwords or codes, after
:data:`LOGIN_TTL_S`, or when it has produced its answer.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from trustloop.devstack.demo import Clinician
from trustloop.devstack.jwtcheck import Clock

LOGIN_TTL_S = 10 * 60
MAX_FAILURES = 5
# Bounds memory when /oauth2/authorize is hammered; the oldest login is dropped.
MAX_LIVE = 10_000
BROWSER_COOKIE = "trustloop_browser"


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request (RFC 6749 §4.1.1 and RFC 7636 §4.3)."""

    client_id: str
    redirect_uri: str
    state: str
    scope: str
    nonce: str | None
    code_challenge: str


@dataclass
class LoginTransaction:
    """One login in progress; ``clinician`` is set once the password matched."""

    id: str
    browser: str
    csrf: str
    expires: float
    request: AuthorizationRequest | None = None
    user_code: str | None = None
    clinician: Clinician | None = None
    failures: int = 0
    push_id: str | None = None
    # The second factor passed (for a device login: waiting for Approve/Deny).
    amr: tuple[str, ...] | None = None

    def csrf_matches(self, token: str) -> bool:
        return hmac.compare_digest(self.csrf.encode(), token.encode())


class LoginTransactions:
    """Transactions by id, each usable only from its own browser."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[str, LoginTransaction] = {}

    def start(
        self,
        browser: str,
        *,
        request: AuthorizationRequest | None = None,
        user_code: str | None = None,
    ) -> LoginTransaction:
        transaction = LoginTransaction(
            id=secrets.token_urlsafe(16),
            browser=browser,
            csrf=secrets.token_urlsafe(24),
            expires=self._clock() + LOGIN_TTL_S,
            request=request,
            user_code=user_code,
        )
        with self._lock:
            self._forget_expired()
            while len(self._live) >= MAX_LIVE:
                del self._live[next(iter(self._live))]
            self._live[transaction.id] = transaction
        return transaction

    def find(self, transaction_id: str, browser: str) -> LoginTransaction | None:
        """The live transaction ``transaction_id`` if ``browser`` started it."""
        with self._lock:
            transaction = self._live.get(transaction_id)
        if transaction is None or transaction.expires <= self._clock():
            return None
        if not browser or not hmac.compare_digest(
            transaction.browser.encode(), browser.encode()
        ):
            return None
        return transaction

    def failed(self, transaction: LoginTransaction) -> bool:
        """Count a wrong password or code; True when the transaction is over."""
        transaction.failures += 1
        if transaction.failures < MAX_FAILURES:
            return False
        self.finish(transaction)
        return True

    def finish(self, transaction: LoginTransaction) -> None:
        with self._lock:
            self._live.pop(transaction.id, None)

    def _forget_expired(self) -> None:
        now = self._clock()
        for key in [k for k, t in self._live.items() if t.expires <= now]:
            del self._live[key]


def new_browser_id() -> str:
    return secrets.token_urlsafe(24)
