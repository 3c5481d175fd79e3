"""Step-up: from the exchange's ``mfa_challenge`` to a stepped-up OBO token.

IBM Verify's shape (DESIGN.md, "Step-up"): with the ``mfa_challenge`` token as
bearer, list the clinician's factors (``GET /v2.0/factors``), start a push on the
push ("signature") authenticator (``POST /v1.0/authenticators/{id}/verifications``),
poll the transaction (``GET .../verifications/{txn}?returnJwt=true``) with a bounded
interval until ``VERIFY_SUCCESS``, ``VERIFY_FAILED`` or ``EXPIRED``, then redeem its
signed ``assertion`` with the jwt-bearer grant (:meth:`IdpClient.redeem_assertion`).

Consent (writes, docs/contracts.md "Writes") is the same push: the request also
carries the exact change, ``transactionData.additionalData: [{"name": "change",
"value": <text>}]``, whose SHA-256 the IdP checks against the challenge's
``change_sha256`` before it shows the change to the clinician.

Guessed where Verify's documentation is silent: the REST APIs live at the issuer's
origin (Verify: the tenant URL), the factor's ``attributes.authenticatorId`` names
the authenticator to push to, and an approved transaction carries ``assertion``.

Exceptions::

    StepUpError(IdpError)       the step-up did not yield an approval
    ├── StepUpDeniedError       the clinician declined (``VERIFY_FAILED``)
    └── StepUpTimedOutError     no answer in time (``EXPIRED`` or our deadline)

httpx's errors become :class:`IdpUnavailableError` at one choke point,
:meth:`StepUpClient._call`; the challenge and the assertion are never logged.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import anyio
import httpx

from trustloop.identity.oauth import IdpError, IdpUnavailableError, OAuthError

if TYPE_CHECKING:
    from trustloop.identity.oauth import IdpClient, IssuedToken
    from trustloop.identity.rar import AuthorizationDetail

# progress(elapsed_s, timeout_s, message): e.g. MCP's ctx.report_progress.
Progress = Callable[[float, float, str], Awaitable[None]]
ClientAssertion = Callable[[], Awaitable[str]]
APPROVE_ON_DEVICE = "approve on your device"
DEFAULT_TIMEOUT_S = 60.0
_MESSAGES = {
    "read": "Read the chart of {patient}?",
    "write_note": "Add a note to the chart of {patient}?",
    "update_medication": "Change a medication of {patient}?",
}
POLL_INTERVAL_S = 1.0
# A push notification's banner is short; the transaction shows the whole change.
NOTIFICATION_CHARS = 120


class StepUpError(IdpError):
    """The step-up ended without an approval."""


class StepUpDeniedError(StepUpError):
    """The clinician declined the push."""


class StepUpTimedOutError(StepUpError):
    """The push was not answered in time."""


class StepUpClient:
    """Runs one step-up per call; safe to share between calls."""

    def __init__(
        self,
        idp: IdpClient,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        poll_interval_s: float = POLL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout_s <= 0 or poll_interval_s <= 0:
            raise ValueError("the step-up timeout and poll interval must be positive")
        parts = urlsplit(idp.issuer)
        self._idp = idp
        self._base = f"{parts.scheme}://{parts.netloc}"
        self._timeout_s = timeout_s
        self._interval_s = poll_interval_s
        self._clock = clock

    async def approve(
        self,
        challenge: str,
        detail: AuthorizationDetail,
        *,
        client_assertion: ClientAssertion,
        progress: Progress | None = None,
        change_text: str | None = None,
    ) -> IssuedToken:
        """The OBO token for ``detail`` once the clinician approves the push.

        ``change_text`` is the canonical text of a write's change (its SHA-256 is
        the detail's ``change_sha256``); it goes to the IdP in the verification
        request and nowhere else.
        """
        authenticator, factor = await self._push_factor(challenge)
        transaction = await self._start(
            challenge, authenticator, factor, detail, change_text
        )

        assertion = await self._wait(challenge, transaction, progress)
        return await self._idp.redeem_assertion(
            assertion, client_assertion=await client_assertion(), detail=detail
        )

    async def _push_factor(self, challenge: str) -> tuple[str, str]:
        """The first enrolled, validated push factor: (authenticator id, factor id)."""
        body = await self._call("GET", "/v2.0/factors", challenge)
        for factor in body.get("factors") or []:
            if not isinstance(factor, dict) or factor.get("type") != "signature":
                continue
            if not factor.get("enabled", True) or not factor.get("validated", True):
                continue
            attributes = factor.get("attributes") or {}
            authenticator = attributes.get("authenticatorId") or factor.get("id")
            if isinstance(authenticator, str) and isinstance(factor.get("id"), str):
                return authenticator, factor["id"]
        raise StepUpDeniedError("the clinician has no push authenticator enrolled")

    async def _start(
        self,
        challenge: str,
        authenticator: str,
        factor: str,
        detail: AuthorizationDetail,
        change_text: str | None,
    ) -> str:
        # Verify shows the client's message; the stand-in writes its own.
        message = push_message(detail, change_text)
        transaction_data: dict[str, Any] = {"message": message}
        if change_text is not None:
            transaction_data["additionalData"] = [
                {"name": "change", "value": change_text}
            ]
        banner = _shortened(message, NOTIFICATION_CHARS)
        request = {
            "transactionData": transaction_data,
            "pushNotification": {"title": "trustloop", "message": banner},
            "authenticationMethods": [{"id": factor, "methodType": "signature"}],
            "logic": "OR",
            "expiresIn": int(self._timeout_s) or 1,
        }
        path = f"/v1.0/authenticators/{quote(authenticator, safe='')}/verifications"
        body = await self._call("POST", path, challenge, request)
        transaction = body.get("id")
        if not isinstance(transaction, str) or not transaction:
            raise IdpUnavailableError("malformed verification answer")
        return f"{path}/{quote(transaction, safe='')}"

    async def _wait(
        self, challenge: str, transaction: str, progress: Progress | None
    ) -> str:
        """Poll until the transaction leaves PENDING; its assertion when approved.

        Our own deadline is the timeout plus one interval, so an IdP that never
        expires the push cannot hold the call forever.
        """
        started = self._clock()
        deadline = started + self._timeout_s + self._interval_s
        while True:
            elapsed = self._clock() - started
            if progress is not None:
                await progress(elapsed, self._timeout_s, APPROVE_ON_DEVICE)
            body = await self._call("GET", f"{transaction}?returnJwt=true", challenge)
            state = body.get("state")
            if state == "VERIFY_SUCCESS":
                return _assertion(body)
            if state == "VERIFY_FAILED":
                raise StepUpDeniedError("the clinician declined the step-up")
            if state != "PENDING":
                raise StepUpTimedOutError("step-up approval timed out")

            remaining = deadline - self._clock()
            if remaining <= 0:
                raise StepUpTimedOutError("step-up approval timed out")
            await anyio.sleep(min(self._interval_s, remaining))

    async def _call(
        self,
        method: str,
        path: str,
        challenge: str,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The one choke point for Verify's REST APIs."""
        headers = {"Authorization": f"Bearer {challenge}", "Accept": "application/json"}
        try:
            response = await self._idp.http.request(
                method, self._base + path, headers=headers, json=json
            )
        except httpx.HTTPError as exc:
            name = type(exc).__name__
            raise IdpUnavailableError(f"cannot reach the IdP ({name})") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        if response.status_code == 401:
            raise OAuthError("invalid_token", "the step-up challenge was refused", 401)
        raise IdpUnavailableError(
            f"unexpected answer from the IdP (HTTP {response.status_code})"
        )


def push_message(detail: AuthorizationDetail, change_text: str | None) -> str:
    """What the clinician is asked: the action, the patient and the exact change."""
    patient = detail.identifier
    if change_text is None:
        template = _MESSAGES.get(detail.action, "Allow {action} on {patient}?")
        return template.format(patient=detail.resource_id, action=detail.action)
    if detail.action == "write_note":
        return f"Add this note to the chart of {patient}: \u201c{change_text}\u201d?"
    # ``MedicationRequest/<id>``, ``status=<s>``, then ``dosage=`` and the rest:
    # a dosage's own line breaks stay in it, all of it shown.
    resource, _, rest = change_text.partition("\nstatus=")
    status, _, dosage = rest.partition("\ndosage=")
    shown = [f"status {status}"] if status else []
    shown += [f"dosage {dosage}"] if dosage else []
    return f"Change {resource} of {patient}: {', '.join(shown)}?"


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _assertion(body: dict[str, Any]) -> str:
    assertion = body.get("assertion")
    if not isinstance(assertion, str) or not assertion:
        raise IdpUnavailableError("an approved transaction carried no assertion")
    return assertion
