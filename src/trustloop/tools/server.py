"""The MCP server: streamable HTTP at ``/mcp``, stateless, a resource server.

Every request carries the clinician's bearer token; :class:`IntrospectionVerifier`
checks it (active, ``aud`` = this server) before mcp routes the request, and each
tool call then runs the four-step rhythm with that request's own token. Stateless
so that no token outlives its request and any replica can answer any call.

:func:`build_app` takes its collaborators; :func:`wire_app` makes the rhythm and the
verifier from :class:`Settings` around the outside clients it is given (tests pass
stand-ins); :func:`serving_app` opens the production clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from trustloop.audit.chain import AuditLog
from trustloop.identity.idp_http import idp_http_client
from trustloop.identity.oauth import IdpClient
from trustloop.identity.rhythm import Rhythm
from trustloop.identity.spiffe import WorkloadIdentity
from trustloop.identity.step_up import StepUpClient
from trustloop.identity.types import PgConnector
from trustloop.identity.vault import VaultLeaseClient
from trustloop.settings import bind_address
from trustloop.tools.auth import IntrospectionVerifier, UnavailableMiddleware
from trustloop.tools.caller import request_introspection
from trustloop.tools.catalog import ClinicalTools, mcp_tools
from trustloop.tools.listing import StaticToolListing
from trustloop.tools.post_only import PostOnly

if TYPE_CHECKING:
    from mcp.server.auth.provider import TokenVerifier
    from starlette.applications import Starlette

    from trustloop.identity.types import (
        Connector,
        IdentityProvider,
        LeaseClient,
        StepUpFlow,
        SvidSource,
    )
    from trustloop.settings import Settings

INSTRUCTIONS = (
    "Healthcare tools acting for the signed-in clinician. Each call is authorized "
    "by the identity provider for one patient and one action. A result whose text "
    "starts with an OAuth error code (access_denied, invalid_token, ...) is final "
    "for this request: relay it, do not retry."
)
IDP_TIMEOUT_S = 5.0
# Connections kept to the IdP; a request beyond these waits for a free one, at
# most IDP_TIMEOUT_S. (With httpcore's pool, which polls every pooled socket on
# each request, 16 cost 14% of this process's CPU; aiohttp's does not poll.)
IDP_CONNECTIONS = 4


def build_server(
    settings: Settings, *, rhythm: Rhythm, verifier: TokenVerifier
) -> MCPServer:
    """The tools behind RFC 9728 metadata naming the IdP as authorization server.

    The tool set is static, so ``tools/list`` is answered from a result built
    once (:class:`StaticToolListing`); mcp lists the tools before every
    ``tools/call`` that has arguments.
    """
    server: MCPServer = MCPServer(
        "trustloop",
        instructions=INSTRUCTIONS,
        tools=mcp_tools(ClinicalTools(rhythm)),
        token_verifier=verifier,
        # Strings, not AnyHttpUrl: AuthSettings keeps a path-less issuer exact (no
        # trailing "/"), and RFC 8414 compares issuers as strings.
        auth=AuthSettings(
            issuer_url=settings.idp_issuer,  # type: ignore[arg-type]
            resource_server_url=settings.mcp_resource,  # type: ignore[arg-type]
            required_scopes=None,
        ),
    )
    server.middleware.append(StaticToolListing())
    return server


def build_app(
    settings: Settings, *, rhythm: Rhythm, verifier: TokenVerifier
) -> Starlette:
    """The ASGI app: ``/mcp`` and ``/.well-known/oauth-protected-resource/mcp``."""
    server = build_server(settings, rhythm=rhythm, verifier=verifier)
    path = urlsplit(settings.mcp_url).path or "/mcp"
    app = server.streamable_http_app(
        streamable_http_path=path,
        stateless_http=True,
        transport_security=transport_security(settings.mcp_url),
    )
    app.add_middleware(UnavailableMiddleware)
    app.add_middleware(PostOnly, path=path)
    return app


def wire_app(
    settings: Settings,
    *,
    idp: IdentityProvider,
    svids: SvidSource,
    vault: LeaseClient,
    connect: Connector,
    step_up: StepUpFlow | None = None,
) -> Starlette:
    """:func:`build_app` with the rhythm and the verifier made from ``settings``.

    Audit events go to ``<audit_dir>/mcp.jsonl``.
    """
    rhythm = Rhythm(
        idp=idp,
        svids=svids,
        vault=vault,
        connect=connect,
        audit=AuditLog(settings.audit_dir / "mcp.jsonl", "mcp"),
        issuer=settings.idp_issuer,
        vault_audience=settings.vault_audience,
        resource=settings.mcp_resource,
        step_up=step_up,
        introspected=request_introspection,
    )
    verifier = IntrospectionVerifier(
        idp, svids, issuer=settings.idp_issuer, resource=settings.mcp_resource
    )
    return build_app(settings, rhythm=rhythm, verifier=verifier)


def transport_security(mcp_url: str) -> TransportSecuritySettings:
    """DNS-rebinding protection that admits this server's own names and loopback.

    mcp answers 421 to any other ``Host``; it enables this check by itself only
    when bound to a loopback name, so it is configured here for every binding.
    """
    parts = urlsplit(mcp_url)
    _, port = bind_address(mcp_url)
    hosts = {parts.netloc, f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=sorted(hosts),
        allowed_origins=sorted(f"{parts.scheme}://{host}" for host in hosts),
    )


@asynccontextmanager
async def serving_app(settings: Settings) -> AsyncIterator[Starlette]:
    """The production app and the clients it needs, closed on the way out.

    The SPIFFE Workload API socket comes from ``SPIFFE_ENDPOINT_SOCKET``.
    """
    svids = WorkloadIdentity()
    vault = VaultLeaseClient(
        settings.vault_addr,
        auth_role=settings.vault_auth_role,
        creds_role=settings.vault_creds_role,
    )
    try:
        async with idp_http_client(
            timeout_s=IDP_TIMEOUT_S, connections=IDP_CONNECTIONS
        ) as http:
            idp = IdpClient(settings.idp_issuer, http)
            yield wire_app(
                settings,
                idp=idp,
                step_up=StepUpClient(idp, timeout_s=settings.step_up_timeout_s),
                svids=svids,
                vault=vault,
                connect=PgConnector(
                    settings.pg_host, settings.pg_port, settings.pg_dbname
                ),
            )
    finally:
        vault.close()
        svids.close()
