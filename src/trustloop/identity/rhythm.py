"""The four-step rhythm every tool call runs (DESIGN.md, "the four-step rhythm").

1. **Introspect** the clinician's token at the IdP (RFC 7662), authenticating with a
   JWT-SVID client assertion (RFC 7523 §2.2). Inactive: "sign in again". Once per
   tool call: when the MCP server's bearer check already introspected this token
   for this very request, that answer is used (once) instead of asking again
   (``introspected``); nothing is cached across requests or calls.
2. **Exchange** it (RFC 8693) for a 60-second on-behalf-of (OBO) token:
   ``subject_token`` = the clinician's token, ``actor_token`` = our JWT-SVID,
   ``audience`` = Vault, ``authorization_details`` (RFC 9396) = one resource, one
   action. The IdP grants exactly that or refuses, or asks for a step-up
   (``mfa_challenge``): then a push to the clinician's device must be approved
   first (:mod:`trustloop.identity.step_up`), and progress is reported meanwhile.
3. **Lease**: log in to Vault with a JWT-SVID (``aud`` = Vault) and trade the OBO
   token for an ephemeral database login.
4. **Query and revoke**: connect as that login (``application_name`` = the OBO
   ``jti``), run the tool's query, close, and revoke the lease in ``finally``, on
   every path (errors and cancellation included).

The clinician's token goes to the IdP as ``subject_token`` and nowhere else: never
into a log, an audit line, an exception or a downstream request.

Exceptions::

    ToolCallError(code, description)   the call failed; ``str()`` is
                                       ``"<code>: <description>"`` with an OAuth
                                       error code first, safe to show the model

Library errors (IdP, Vault, Workload API, psycopg) become :class:`ToolCallError`
at one choke point, :func:`translate`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

import anyio
import anyio.to_thread
import psycopg
import structlog

from trustloop.audit.chain import AuditWriteError
from trustloop.identity.oauth import (
    IdpUnavailableError,
    Introspection,
    MfaChallengeError,
    OAuthError,
)
from trustloop.identity.rar import AuthorizationDetail
from trustloop.identity.spiffe import WorkloadApiError
from trustloop.identity.step_up import StepUpDeniedError, StepUpTimedOutError
from trustloop.identity.types import (
    Connection,
    Connector,
    IdentityProvider,
    LeaseClient,
    StepUpFlow,
    SvidSource,
)
from trustloop.identity.vault import VaultError, VaultUnavailableError

if TYPE_CHECKING:
    from trustloop.audit.chain import AuditLog
    from trustloop.identity.oauth import IssuedToken
    from trustloop.identity.step_up import Progress
    from trustloop.identity.vault import Lease

T = TypeVar("T")
ErrorCode = Literal[
    "invalid_token",
    "invalid_request",
    "access_denied",
    "not_found",
    "temporarily_unavailable",
    "server_error",
]
# The detail to ask for, or how to build it from the introspected ``sub``.
DetailFor = AuthorizationDetail | Callable[[str], AuthorizationDetail]


@dataclass(frozen=True)
class Introspected:
    """An RFC 7662 answer got for the request being served, and what it cost."""

    answer: Introspection
    elapsed_ms: float


# The answer the bearer check got for ``token`` in this same request, handed out
# at most once; None: introspect now.
IntrospectedFor = Callable[[str], Introspected | None]

CLEANUP_TIMEOUT_S = 10.0

log = structlog.get_logger(__name__)


class ToolCallError(Exception):
    """A tool call failed; ``str()`` starts with the OAuth error code."""

    def __init__(self, code: ErrorCode, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code: ErrorCode = code
        self.description = description


def sign_in_again() -> ToolCallError:
    return ToolCallError("invalid_token", "sign in again")


# -- what a tool sees, and what the audit line records -----------------------------


@dataclass
class CallRecord:
    """Everything the MCP audit line says about one call: ids, never secrets.

    ``timings_ms`` has one entry per step (``introspect``, ``exchange``, ``lease``,
    ``connect``, ``query``, ``close``, ``revoke``) and parts of steps, already
    counted in their step: ``svid`` (the JWT-SVIDs of the exchange), ``mint``
    (Vault's credential answer) and ``vault_login`` (only when the client token
    was renewed), both within ``lease``.
    """

    tool: str
    jti: str | None = None
    sub: str | None = None
    actor: str | None = None
    resource: str | None = None
    action: str | None = None
    decision: Literal["granted", "denied"] | None = None
    step_up: bool = False
    # True once the clinician approved a write's exact change on the consent push.
    consent: bool = False
    lease_id: str | None = None
    role: str | None = None
    lease_revoked: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    outcome: Literal["ok", "error", "cancelled"] = "error"
    error: str | None = None

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add_time(step, (time.perf_counter() - started) * 1000)

    def add_time(self, step: str, elapsed_ms: float) -> None:
        self.timings_ms[step] = round(self.timings_ms.get(step, 0.0) + elapsed_ms, 3)


@dataclass(frozen=True)
class ToolCall:
    """The granted call: a connection as the ephemeral role and the OBO ``jti``."""

    conn: Connection
    jti: str
    sub: str
    detail: AuthorizationDetail
    record: CallRecord = field(repr=False)

    async def run(self, query: Callable[[Connection], T]) -> T:
        """Run a synchronous query on the connection in a worker thread."""
        with self.record.timed("query"):
            return await anyio.to_thread.run_sync(query, self.conn)


# -- the rhythm --------------------------------------------------------------------


class Rhythm:
    """Runs the four steps around one tool call; safe to share between calls."""

    def __init__(
        self,
        *,
        idp: IdentityProvider,
        svids: SvidSource,
        vault: LeaseClient,
        connect: Connector,
        audit: AuditLog,
        issuer: str,
        vault_audience: str,
        resource: str,
        cleanup_timeout_s: float = CLEANUP_TIMEOUT_S,
        step_up: StepUpFlow | None = None,
        introspected: IntrospectedFor | None = None,
    ) -> None:
        if not (issuer and vault_audience and resource):
            raise ValueError("the rhythm needs an issuer, a Vault audience, a resource")
        self._idp = idp
        self._svids = svids
        self._vault = vault
        self._connect = connect
        self._audit = audit
        self._issuer = issuer
        self._vault_audience = vault_audience
        self._resource = resource
        self._cleanup_timeout_s = cleanup_timeout_s
        self._step_up = step_up
        self._introspected = introspected

    @asynccontextmanager
    async def call(
        self,
        user_token: str,
        detail: DetailFor,
        *,
        tool: str,
        progress: Progress | None = None,
        change_text: str | None = None,
    ) -> AsyncIterator[ToolCall]:
        """Introspect, exchange, lease and connect; close and revoke on the way out.

        Raises :class:`ToolCallError` for every failure, including those of the
        body; cancellation propagates unchanged (after the lease is revoked).
        ``progress`` hears "approve on your device" while a step-up waits;
        ``change_text`` is a write's exact change, for the consent push.
        """
        record = CallRecord(tool=tool)
        steps = self._steps(user_token, detail, record, progress, change_text)
        try:
            async with steps as call:
                yield call
        except anyio.get_cancelled_exc_class():
            record.outcome = "cancelled"
            raise
        except Exception as exc:
            error = translate(exc)
            record.error = error.code
            if error is exc:
                raise
            raise error from exc
        else:
            record.outcome = "ok"
        finally:
            self._finish(record)

    @asynccontextmanager
    async def _steps(
        self,
        user_token: str,
        detail_for: DetailFor,
        record: CallRecord,
        progress: Progress | None,
        change_text: str | None = None,
    ) -> AsyncIterator[ToolCall]:
        sub = await self._introspect(user_token, record)
        if isinstance(detail_for, AuthorizationDetail):
            detail = detail_for
        else:
            detail = _resolve(detail_for, sub)
        record.resource, record.action = detail.identifier, detail.action

        jti, obo_token = await self._exchange(
            user_token, detail, record, progress, change_text
        )
        lease = await self._lease(obo_token, record)
        try:
            conn = await self._open(lease, jti, record)
            try:
                yield ToolCall(conn, jti, sub, detail, record)
            finally:
                await self._close(conn, record)
        finally:
            await self._revoke(lease, record)

    async def _introspect(self, user_token: str, record: CallRecord) -> str:
        """Step 1, RFC 7662 §2.2: anything but an active token for us is refused.

        The bearer check's answer for this same request counts as this call's
        introspection (its time is recorded as the step's); it is handed out once.
        """
        prior = self._introspected(user_token) if self._introspected else None
        with record.timed("introspect"):
            assertion = await self._svids.afetch_jwt_svid(self._issuer)
            record.actor = assertion.spiffe_id
            if prior is None:
                found = await self._idp.introspect(
                    user_token, client_assertion=assertion.token
                )
            else:
                found = prior.answer
        if prior is not None:
            record.add_time("introspect", prior.elapsed_ms)

        if not found.active or not found.sub:
            raise sign_in_again()
        if self._resource not in audiences(found.aud):
            raise sign_in_again()
        record.sub = found.sub
        return found.sub

    async def _exchange(
        self,
        user_token: str,
        detail: AuthorizationDetail,
        record: CallRecord,
        progress: Progress | None,
        change_text: str | None = None,
    ) -> tuple[str, str]:
        """Step 2, RFC 8693 §2.1 with an RFC 9396 ``authorization_details``.

        The OBO comes either directly or, after an ``mfa_challenge``, from the
        approved step-up.
        """
        with record.timed("exchange"):
            # The IdP accepts an actor_token once (its jti); the client assertion
            # may be the cached SVID (RFC 7523 §3: replay checks are optional).
            with record.timed("svid"):
                assertion = await self._svids.afetch_jwt_svid(self._issuer)
                actor = await self._svids.afetch_fresh_jwt_svid(self._issuer)
            try:
                obo = await self._idp.exchange(
                    subject_token=user_token,
                    actor_token=actor.token,
                    client_assertion=assertion.token,
                    audience=self._vault_audience,
                    detail=detail,
                )
            except OAuthError as exc:
                record.decision = "denied" if exc.error == "access_denied" else None
                raise
            except MfaChallengeError as challenge:
                obo = await self._stepped_up(
                    challenge, detail, record, progress, change_text
                )

        record.decision, record.jti = "granted", obo.jti
        if obo.jti is None:  # nothing to name the login or the audit trail by
            raise ToolCallError("server_error", "the OBO token has no jti")
        structlog.contextvars.bind_contextvars(jti=obo.jti)
        return obo.jti, obo.access_token

    async def _stepped_up(
        self,
        challenge: MfaChallengeError,
        detail: AuthorizationDetail,
        record: CallRecord,
        progress: Progress | None,
        change_text: str | None = None,
    ) -> IssuedToken:
        """The OBO after the clinician approves the push; a refusal is final.

        A write's push carries its change: approving it is the clinician's consent.
        """
        record.step_up = True
        if self._step_up is None:
            record.decision = "denied"
            raise ToolCallError("access_denied", "step-up is not available here")

        async def client_assertion() -> str:
            # Fetched after the wait: the cached SVID may have rotated meanwhile.
            return (await self._svids.afetch_jwt_svid(self._issuer)).token

        try:
            obo = await self._step_up.approve(
                challenge.challenge,
                detail,
                client_assertion=client_assertion,
                progress=progress,
                change_text=change_text,
            )
        except (StepUpDeniedError, StepUpTimedOutError, OAuthError) as exc:
            record.decision = "denied"
            if change_text is not None and isinstance(exc, StepUpDeniedError):
                raise ToolCallError(
                    "access_denied", "the clinician declined the change"
                ) from exc
            raise
        record.consent = change_text is not None and detail.change_sha256 is not None
        return obo

    async def _lease(self, obo_token: str, record: CallRecord) -> Lease:
        """Step 3: Vault JWT login with our SVID, then the OBO token for a login."""
        with record.timed("lease"):
            if self._vault.needs_login():
                with record.timed("vault_login"):
                    svid = await self._svids.afetch_jwt_svid(self._vault_audience)
                    await anyio.to_thread.run_sync(self._vault.login, svid.token)
            with record.timed("mint"):
                lease = await anyio.to_thread.run_sync(self._vault.issue, obo_token)

        record.lease_id, record.role = lease.lease_id, lease.username
        return lease

    async def _open(self, lease: Lease, jti: str, record: CallRecord) -> Connection:
        """Step 4a: connect as the ephemeral role; ``application_name`` = ``jti``."""
        with record.timed("connect"):
            return await anyio.to_thread.run_sync(
                lambda: self._connect(
                    username=lease.username,
                    password=lease.password,
                    application_name=jti,
                )
            )

    async def _close(self, conn: Connection, record: CallRecord) -> None:
        try:
            await self._shielded(record, "close", conn.close)
        except Exception as exc:  # noqa: BLE001 - best effort, the result stands
            # The class only: a traceback renderer may print local variables.
            log.warning("connection_close_failed", error=type(exc).__name__)

    async def _revoke(self, lease: Lease, record: CallRecord) -> None:
        """Step 4b: revoke now; if that fails Vault's reaper is the backstop."""
        revoke = self._vault.revoke
        try:
            await self._shielded(record, "revoke", lambda: revoke(lease.lease_id))
        except Exception as exc:  # noqa: BLE001 - Vault's reaper is the backstop
            # The class only: the lease's password is a local variable up the stack.
            log.warning(
                "lease_revoke_failed",
                lease_id=lease.lease_id,
                error=type(exc).__name__,
            )
            return
        record.lease_revoked = True

    async def _shielded(
        self, record: CallRecord, step: str, work: Callable[[], object]
    ) -> None:
        """Run cleanup on a thread, immune to the caller's cancellation, bounded."""
        with anyio.CancelScope(shield=True), record.timed(step):
            with anyio.fail_after(self._cleanup_timeout_s):
                await anyio.to_thread.run_sync(work, abandon_on_cancel=True)

    def _finish(self, record: CallRecord) -> None:
        """One audit line and one log line per call; no record, no result."""
        log.info(
            "tool_called",
            tool=record.tool,
            jti=record.jti,
            outcome=record.outcome,
            error=record.error,
            lease_revoked=record.lease_revoked,
            timings_ms=record.timings_ms,
        )
        structlog.contextvars.unbind_contextvars("jti")
        try:
            self._audit.append("tool_call", **_audit_fields(record))
        except AuditWriteError as exc:
            log.error("audit_write_failed", tool=record.tool, jti=record.jti)
            if record.outcome == "ok":
                raise ToolCallError("server_error", "audit unavailable") from exc


def _resolve(
    detail_for: Callable[[str], AuthorizationDetail], sub: str
) -> AuthorizationDetail:
    try:
        return detail_for(sub)
    except ValueError as exc:  # pydantic: the sub is not a FHIR id
        raise sign_in_again() from exc


def _audit_fields(record: CallRecord) -> dict[str, object]:
    return {
        "tool": record.tool,
        "jti": record.jti,
        "sub": record.sub,
        "actor": record.actor,
        "resource": record.resource,
        "action": record.action,
        "decision": record.decision,
        "step_up": record.step_up,
        "consent": record.consent,
        "lease_id": record.lease_id,
        "role": record.role,
        "lease_revoked": record.lease_revoked,
        "timings_ms": record.timings_ms,
        "outcome": record.outcome,
        "error": record.error,
    }


def audiences(aud: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """RFC 7519 §4.1.3: ``aud`` is one string or an array of them."""
    if aud is None:
        return ()
    if isinstance(aud, str):
        return (aud,)
    return tuple(aud)


def _credential_expired() -> ToolCallError:
    """A statement cut off by its lease: the statement timeout (set shorter than
    the lease) or the reaper, which cancels running statements (SQLSTATE 57014)
    before it terminates the sessions of an ended lease. A server restart ends
    sessions with 57P01 instead, and stays ``temporarily_unavailable``."""
    return ToolCallError("invalid_token", "the database credential expired")


def translate(exc: Exception) -> ToolCallError:
    """The one choke point where outside errors become :class:`ToolCallError`.

    Says what the spec lets it say: the IdP's own ``error_description`` for a
    policy refusal, otherwise a fixed phrase per failure class.
    """
    match exc:
        case ToolCallError():
            return exc
        case StepUpDeniedError():
            return ToolCallError("access_denied", "the clinician declined the step-up")
        case StepUpTimedOutError():
            return ToolCallError("access_denied", "step-up approval timed out")
        case MfaChallengeError():
            return ToolCallError("access_denied", "step-up is required")
        case OAuthError(error="access_denied"):
            return ToolCallError("access_denied", exc.description or "access denied")
        case OAuthError(error="invalid_grant" | "invalid_token"):
            return sign_in_again()
        case OAuthError(error="temporarily_unavailable") | IdpUnavailableError():
            return ToolCallError("temporarily_unavailable", "identity provider")
        case OAuthError():
            return ToolCallError("server_error", "identity provider refused the call")
        case WorkloadApiError():
            return ToolCallError("temporarily_unavailable", "workload identity")
        case VaultUnavailableError():
            return ToolCallError("temporarily_unavailable", "credential service")
        case VaultError():
            return ToolCallError("server_error", "database credential refused")
        case psycopg.errors.QueryCanceled():
            return _credential_expired()
        case psycopg.errors.InsufficientPrivilege():
            # RLS, a missing privilege, or the write checks (SQLSTATE 42501).
            return ToolCallError("access_denied", "the database refused the write")
        case psycopg.OperationalError():
            return ToolCallError("temporarily_unavailable", "database")
        case TimeoutError():
            return ToolCallError("temporarily_unavailable", "timed out")
        case _:
            return ToolCallError("server_error", "internal error")
