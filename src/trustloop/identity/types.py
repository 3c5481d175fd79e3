"""The rhythm's collaborators, as structural types (STYLE: one types.py per boundary).

The production classes fit them (:class:`~trustloop.identity.oauth.IdpClient`,
:class:`~trustloop.identity.spiffe.WorkloadIdentity`,
:class:`~trustloop.identity.vault.VaultLeaseClient`, :class:`PgConnector`); tests
inject small fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import psycopg

if TYPE_CHECKING:
    from trustloop.identity.oauth import Introspection, IssuedToken
    from trustloop.identity.rar import AuthorizationDetail
    from trustloop.identity.spiffe import JwtSvidToken
    from trustloop.identity.step_up import ClientAssertion, Progress
    from trustloop.identity.vault import Lease

Connection = psycopg.Connection[Any]


class SvidSource(Protocol):
    async def afetch_jwt_svid(self, audience: str) -> JwtSvidToken: ...

    async def afetch_fresh_jwt_svid(self, audience: str) -> JwtSvidToken: ...


class Introspector(Protocol):
    async def introspect(
        self, token: str, *, client_assertion: str
    ) -> Introspection: ...


class IdentityProvider(Introspector, Protocol):
    async def exchange(
        self,
        *,
        subject_token: str,
        actor_token: str,
        client_assertion: str,
        audience: str,
        detail: AuthorizationDetail,
    ) -> IssuedToken: ...


class StepUpFlow(Protocol):
    """:class:`~trustloop.identity.step_up.StepUpClient`: a challenge to an OBO.

    ``change_text``: a write's canonical change, shown on the consent push.
    """

    async def approve(
        self,
        challenge: str,
        detail: AuthorizationDetail,
        *,
        client_assertion: ClientAssertion,
        progress: Progress | None = None,
        change_text: str | None = None,
    ) -> IssuedToken: ...


class LeaseClient(Protocol):
    """Vault: JWT login (kept until it nears expiry), then leases issued and revoked."""

    def needs_login(self) -> bool: ...

    def login(self, svid: str) -> object: ...

    def issue(self, obo_token: str) -> Lease: ...

    def revoke(self, lease_id: str) -> object: ...


class Connector(Protocol):
    def __call__(
        self, *, username: str, password: str, application_name: str
    ) -> Connection: ...


@dataclass(frozen=True)
class PgConnector:
    """Connects as an ephemeral role over TCP (SCRAM), one connection per call."""

    host: str
    port: int
    dbname: str
    connect_timeout_s: int = 5

    def __call__(
        self, *, username: str, password: str, application_name: str
    ) -> Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            dbname=self.dbname,
            user=username,
            password=password,
            application_name=application_name,
            connect_timeout=self.connect_timeout_s,
        )
