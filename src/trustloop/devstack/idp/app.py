"""The IdP's HTTP surface (Starlette), on IBM Verify's paths.

Routes: ``GET /.well-known/openid-configuration`` (RFC 8414 / OIDC Discovery),
``GET /oauth2/jwks``, ``POST /oauth2/token`` (``password`` in the local profile,
token exchange), ``POST /oauth2/introspect``, ``POST /oauth2/revoke`` and
``POST /oauth2/logout`` (see :mod:`.revocation`),
``GET /v1.0/events`` (the audit events, for the auditor workload's JWT-SVID;
see :mod:`.events`), step-up on Verify's paths (``GET /v2.0/factors``, ``POST
/v1.0/authenticators/{id}/verifications``, ``GET`` of one, the jwt-bearer grant;
see :mod:`.step_up`) and, in the local profile only, the demo authenticator
(``/authenticator``, :mod:`.authenticator`). Sign-in (local profile; see
:mod:`.sign_in`): ``GET /oauth2/authorize`` and the login pages under
``/oauth2/login``, the ``authorization_code``, ``refresh_token`` and
``device_code`` grants, ``POST /oauth2/device_authorization``, the ``/device``
pages and ``/oauth2/userinfo``. Every error is an RFC 6749 §5.2 JSON answer with
``Cache-Control: no-store``; so is every token answer (§5.1).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from trustloop.audit.chain import AuditLog, AuditWriteError
from trustloop.body_limit import BodyLimit
from trustloop.devstack.idp import (
    password_grant,
    step_up,
    token_exchange,
)
from trustloop.devstack.idp.authenticator import Authenticator
from trustloop.devstack.idp.client_auth import ClientAuthenticator
from trustloop.devstack.idp.directory import Directory, directory_file
from trustloop.devstack.idp.discovery import discovery_document
from trustloop.devstack.idp.errors import NO_STORE, OAuthProblem, invalid_request
from trustloop.devstack.idp.events import (
    EventsApi,
    Forbidden,
    Unauthorized,
    forbidden_headers,
    unauthorized_headers,
)
from trustloop.devstack.idp.introspection import Introspection
from trustloop.devstack.idp.keys import SigningKeys
from trustloop.devstack.idp.policy import CareTeamFacts, CareTeamPolicy, load_policy
from trustloop.devstack.idp.revocation import Revocation
from trustloop.devstack.idp.sign_in import SignIn, build_sign_in
from trustloop.devstack.idp.tokens import AccessTokens, TokenIssuer
from trustloop.devstack.idp.users import DemoUsers
from trustloop.devstack.jwtcheck import Clock, JwksCache
from trustloop.settings import Settings

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024

Handler = Callable[[Mapping[str, str]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Idp:
    """The IdP's parts, reachable from the app as ``app.state.idp`` (tests)."""

    settings: Settings
    keys: SigningKeys
    issuer: TokenIssuer
    access_tokens: AccessTokens
    grants: Mapping[str, Handler]
    introspection: Introspection
    events: EventsApi
    revocation: Revocation
    logout: Revocation
    step_up: step_up.StepUp
    authenticator: Authenticator | None
    sign_in: SignIn | None = None
    facts: CareTeamFacts | None = None  # what the policy decides on


def build_idp(
    settings: Settings,
    *,
    svid_keys: JwksCache | None = None,
    facts: CareTeamFacts | None = None,
    users: DemoUsers | None = None,
    clock: Clock = time.time,
) -> Idp:
    """Wire the IdP; by default from the stack (SPIFFE JWKS, state dir, policy file)."""
    issuer_url = settings.idp_issuer
    keys = SigningKeys(clock=clock)
    audit = AuditLog(settings.audit_dir / "idp.jsonl", "idp")
    svid_keys = svid_keys or JwksCache(f"{settings.spire_bundle_url.rstrip('/')}/keys")
    clients = ClientAuthenticator(
        svid_keys, issuer=issuer_url, trust_domain=settings.trust_domain, clock=clock
    )
    issuer = TokenIssuer(
        keys, issuer=issuer_url, mcp_resource=settings.mcp_resource, clock=clock
    )
    access_tokens = AccessTokens(
        keys, issuer=issuer_url, mcp_resource=settings.mcp_resource, clock=clock
    )
    facts = facts or Directory(directory_file(settings.state_dir))
    policy = CareTeamPolicy(facts, load_policy(settings.idp_policy))
    stepping = step_up.StepUp(
        keys=keys,
        issuer_url=issuer_url,
        tokens=issuer,
        access_tokens=access_tokens,
        policy=policy,
        clients=clients,
        exchange_clients=frozenset({settings.mcp_spiffe_id}),
        vault_audience=settings.vault_audience,
        audit=audit,
        timeout_s=settings.step_up_timeout_s,
        # Settings refuses an auto answer outside local; ignore it here too.
        auto=settings.step_up_auto if settings.profile == "local" else "off",
        clock=clock,
    )
    exchange = token_exchange.TokenExchange(
        clients=clients,
        exchange_clients=frozenset({settings.mcp_spiffe_id}),
        access_tokens=access_tokens,
        issuer=issuer,
        vault_audience=settings.vault_audience,
        policy=policy,
        audit=audit,
        step_up=stepping,
        clock=clock,
    )
    grants: dict[str, Handler] = {
        token_exchange.GRANT_TYPE: exchange,
        step_up.JWT_BEARER_GRANT: stepping,
    }
    authenticator = None
    sign_in = None
    if settings.profile == "local":
        users = users or DemoUsers.from_state_dir(settings.state_dir)
        grants[password_grant.GRANT_TYPE] = password_grant.PasswordGrant(
            users=users, issuer=issuer, audit=audit
        )
        sign_in = build_sign_in(
            issuer_url=issuer_url,
            app_redirect_uri=settings.app_redirect_uri,
            keys=keys,
            issuer=issuer,
            access_tokens=access_tokens,
            users=users,
            audit=audit,
            push_timeout_s=settings.step_up_timeout_s,
            auto=settings.step_up_auto,
            clock=clock,
        )
        grants.update(sign_in.grants)
        authenticator = Authenticator(stepping, users, sign_in.pushes)
    introspection = Introspection(
        clients=clients,
        access_tokens=access_tokens,
        audit=audit,
        resources={settings.mcp_spiffe_id: settings.mcp_resource},
    )
    events = EventsApi(
        audit.path,
        clients=clients,
        readers=frozenset({settings.auditor_spiffe_id}),
        clock=clock,
    )
    revocation, logout = (
        Revocation(
            clients=clients,
            access_tokens=access_tokens,
            audit=audit,
            session=session,
            public=sign_in.clients if sign_in else None,
            refresh=sign_in.refresh if sign_in else None,
            sessions=sign_in.sessions if sign_in else None,
        )
        for session in (False, True)
    )
    parts = (keys, issuer, access_tokens, grants, introspection, events)
    return Idp(
        settings, *parts, revocation, logout, stepping, authenticator, sign_in, facts
    )


def create_app(idp: Idp) -> Starlette:
    """The Starlette app serving ``idp``."""
    discovery = discovery_document(idp.settings)

    async def openid_configuration(request: Request) -> Response:
        return JSONResponse(discovery)

    async def jwks(request: Request) -> Response:
        return JSONResponse(idp.keys.jwks())

    async def token(request: Request) -> Response:
        return await _answer(request, _dispatch_grant(idp.grants))

    async def introspect(request: Request) -> Response:
        return await _answer(request, idp.introspection)

    async def events(request: Request) -> Response:
        return await _events(request, idp.events)

    async def revoke(request: Request) -> Response:
        return await _answer(request, idp.revocation)

    async def logout(request: Request) -> Response:
        return await _answer(request, idp.logout)

    async def factors(request: Request) -> Response:
        auth = request.headers.get("authorization")
        return _verify_api(lambda: (200, idp.step_up.factors(auth)))

    async def verifications(request: Request) -> Response:
        auth = request.headers.get("authorization")
        authenticator = request.path_params["authenticator"]
        body = await request.body()
        return _verify_api(lambda: (202, idp.step_up.start(auth, authenticator, body)))

    async def verification(request: Request) -> Response:
        auth = request.headers.get("authorization")
        params = request.path_params
        return _verify_api(
            lambda: (
                200,
                idp.step_up.transaction(auth, params["authenticator"], params["txn"]),
            )
        )

    verify_path = "/v1.0/authenticators/{authenticator}/verifications"
    app = Starlette(
        routes=[
            Route("/v2.0/factors", factors),
            Route(verify_path, verifications, methods=["POST"]),
            Route(verify_path + "/{txn}", verification),
            Route("/.well-known/openid-configuration", openid_configuration),
            Route("/oauth2/jwks", jwks),
            Route("/oauth2/token", token, methods=["POST"]),
            Route("/oauth2/introspect", introspect, methods=["POST"]),
            Route("/v1.0/events", events),
            Route("/oauth2/revoke", revoke, methods=["POST"]),
            Route("/oauth2/logout", logout, methods=["POST"]),
        ]
    )
    if idp.sign_in is not None:
        _add_sign_in_routes(app, idp.sign_in)
    if idp.authenticator is not None:
        page = idp.authenticator
        app.add_route("/authenticator", page.page, methods=["GET"])
        app.add_route("/authenticator", page.sign_in, methods=["POST"])
        app.add_route("/authenticator/answer", page.answer_form, methods=["POST"])
        app.add_route("/authenticator/answers", page.answer_json, methods=["POST"])
    # Before any handler reads it: /oauth2/token read 200 MB before refusing it.
    app.add_middleware(
        BodyLimit,
        max_bytes=MAX_FORM_BYTES,
        error=lambda reason: {"error": "invalid_request", "error_description": reason},
        event="idp_request_refused",
    )
    app.state.idp = idp
    return app


def _add_sign_in_routes(app: Starlette, sign_in: SignIn) -> None:
    login, device_pages = sign_in.login, sign_in.device_pages

    async def device_authorization(request: Request) -> Response:
        return await _answer(request, sign_in.device_authorization)

    app.add_route("/oauth2/authorize", login.authorize, methods=["GET"])
    app.add_route("/oauth2/login", login.password, methods=["POST"])
    app.add_route("/oauth2/login/factor", login.factor, methods=["GET"])
    app.add_route("/oauth2/login/otp", login.otp, methods=["POST"])
    app.add_route("/oauth2/login/push", login.push, methods=["POST"])
    app.add_route("/oauth2/login/push", login.push_status, methods=["GET"])
    app.add_route("/oauth2/login.css", login.stylesheet, methods=["GET"])
    app.add_route(
        "/oauth2/device_authorization", device_authorization, methods=["POST"]
    )
    app.add_route("/device", device_pages.start, methods=["GET"])
    app.add_route("/device/confirm", device_pages.confirm_page, methods=["GET"])
    app.add_route("/device/confirm", device_pages.confirm, methods=["POST"])
    app.add_route("/oauth2/userinfo", sign_in.userinfo.handle, methods=["GET", "POST"])


def _dispatch_grant(grants: Mapping[str, Handler]) -> Handler:
    async def handle(form: Mapping[str, str]) -> dict[str, Any]:
        grant = grants.get(form.get("grant_type", ""))
        if grant is None:
            raise OAuthProblem("unsupported_grant_type", "grant_type is not supported")
        return await grant(form)

    return handle


async def _answer(request: Request, handler: Handler) -> Response:
    """Parse the form, run ``handler``, render the answer or the §5.2 error."""
    try:
        form = await _form(request)
        body = await handler(form)
    except OAuthProblem as problem:
        return problem.response()
    except AuditWriteError:
        # No audit record, no answer: the IdP fails closed.
        return OAuthProblem(
            "server_error", "the request could not be recorded", 500
        ).response()
    return JSONResponse(body, headers=NO_STORE)


def _verify_api(work: Callable[[], tuple[int, dict[str, Any]]]) -> Response:
    """A Verify REST answer: 401 without a valid mfa_challenge bearer, 404 unknown."""
    try:
        status, body = work()
    except step_up.BearerError:
        problem = {"error": "invalid_token", "error_description": "bearer required"}
        headers = {**NO_STORE, "WWW-Authenticate": 'Bearer error="invalid_token"'}
        return JSONResponse(problem, status_code=401, headers=headers)
    except step_up.NotFoundError:
        problem = {"error": "not_found", "error_description": "no such resource"}
        return JSONResponse(problem, status_code=404, headers=NO_STORE)
    except OAuthProblem as refused:  # a consent push whose change does not match
        return refused.response()
    except AuditWriteError:
        problem = {"error": "server_error", "error_description": "not recorded"}
        return JSONResponse(problem, status_code=500, headers=NO_STORE)
    return JSONResponse(body, status_code=status, headers=NO_STORE)


async def _events(request: Request, api: EventsApi) -> Response:
    """``GET /v1.0/events``: 401 without a valid JWT-SVID, 403 for one not the
    auditor's, 400 for a bad parameter."""
    try:
        body = await api(request.headers.get("authorization"), request.query_params)
    except Unauthorized:
        problem = {"error": "invalid_token", "error_description": "JWT-SVID required"}
        return JSONResponse(problem, status_code=401, headers=unauthorized_headers())
    except Forbidden:
        problem = {
            "error": "insufficient_scope",
            "error_description": "only the auditor workload reads events",
        }
        return JSONResponse(problem, status_code=403, headers=forbidden_headers())
    except OAuthProblem as problem:
        return problem.response()
    return JSONResponse(body, headers=NO_STORE)


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded body; RFC 6749 §3.2: no parameter may appear twice."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type.lower() != FORM_TYPE:
        raise invalid_request(f"the body must be {FORM_TYPE}")
    body = await request.body()  # at most MAX_FORM_BYTES (create_app's BodyLimit)
    try:
        pairs = parse_qsl(
            body.decode(), keep_blank_values=True, strict_parsing=bool(body)
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid_request("the body is not a valid form") from exc
    form = dict(pairs)
    if len(form) != len(pairs):
        raise invalid_request("a parameter appears more than once")
    return form
