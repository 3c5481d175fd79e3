"""The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1).

:func:`parse_request` validates ``GET /oauth2/authorize``'s query and answers an
:class:`.AuthorizationRequest`, or raises one of two errors:

- :class:`ErrorPageError`: the client or the redirect URI is missing, unknown or
  not registered. §4.1.2.1: the server "SHOULD inform the resource owner of the
  error and MUST NOT automatically redirect the user-agent to the invalid
  redirection URI": an error page, never a redirect (no open redirector).
- :class:`ErrorRedirectError`: anything else (response type, PKCE, scope,
  state). §4.1.2.1: the error goes back to the client's redirect URI with
  ``error``, ``error_description``, ``state`` (when it was sent) and ``iss``
  (RFC 9207 §2).

Our rules beyond the RFCs' MUSTs: ``state`` is required (the client's CSRF
defence, RFC 9700 §4.7.1), PKCE with S256 is required (§2.1.1), and no
parameter may appear twice (§3.1).
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from trustloop.devstack.idp.clients import PublicClients
from trustloop.devstack.idp.login_state import AuthorizationRequest
from trustloop.devstack.idp.pkce import S256, valid_challenge

ALLOWED_SCOPES = frozenset({"openid", "profile", "offline_access"})
DEFAULT_SCOPE = "openid profile"
MAX_PARAM = 512


class ErrorPageError(Exception):
    """Shown to the person, never sent to a redirect URI."""


class ErrorRedirectError(Exception):
    """An RFC 6749 §4.1.2.1 error to send back to the (valid) redirect URI."""

    def __init__(
        self, redirect_uri: str, error: str, description: str, state: str | None
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.redirect_uri = redirect_uri
        self.error = error
        self.description = description
        self.state = state

    def location(self, issuer: str) -> str:
        params = {"error": self.error, "error_description": self.description}
        if self.state:
            params["state"] = self.state
        return redirect_to(self.redirect_uri, {**params, "iss": issuer})


def parse_request(query: QueryParams, clients: PublicClients) -> AuthorizationRequest:
    """The validated request, or :class:`ErrorPageError` / :class:`ErrorRedirectError`."""
    params = dict(query.multi_items())
    client = clients.get(params.get("client_id", ""))
    redirect_uri = params.get("redirect_uri", "")
    if client is None:
        raise ErrorPageError("This application is not known to the sign-in service.")
    if not redirect_uri or not client.allows_redirect(redirect_uri):
        raise ErrorPageError("The application sent an address that is not its own.")

    state = params.get("state") or None
    if len(params) != len(query.multi_items()):
        raise _back(redirect_uri, "invalid_request", "a parameter repeats", state)
    if state is None:
        raise _back(redirect_uri, "invalid_request", "state is required", None)
    if any(len(v) > MAX_PARAM for v in params.values()):
        raise _back(redirect_uri, "invalid_request", "a parameter is too long", state)
    if params.get("response_type") != "code":
        raise _back(
            redirect_uri, "unsupported_response_type", "only code is offered", state
        )
    if params.get("code_challenge_method") != S256:
        raise _back(
            redirect_uri, "invalid_request", "PKCE with S256 is required", state
        )
    challenge = params.get("code_challenge", "")
    if not valid_challenge(challenge):
        raise _back(redirect_uri, "invalid_request", "code_challenge is invalid", state)
    if "request" in params or "request_uri" in params:
        raise _back(
            redirect_uri, "request_not_supported", "request objects are not", state
        )

    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        state=state,
        scope=_scope(params.get("scope"), redirect_uri, state),
        nonce=params.get("nonce") or None,
        code_challenge=challenge,
    )


def redirect_to(redirect_uri: str, params: dict[str, str]) -> str:
    """``redirect_uri`` with ``params`` added to its query (§4.1.2)."""
    separator = "&" if "?" in redirect_uri else "?"
    return f"{redirect_uri}{separator}{urlencode(params)}"


def _scope(requested: str | None, redirect_uri: str, state: str) -> str:
    if requested is None:
        return DEFAULT_SCOPE
    scopes = requested.split()
    if not scopes or not set(scopes) <= ALLOWED_SCOPES:
        raise _back(redirect_uri, "invalid_scope", "the scope is not offered", state)
    return " ".join(dict.fromkeys(scopes))


def _back(
    redirect_uri: str, error: str, description: str, state: str | None
) -> ErrorRedirectError:
    return ErrorRedirectError(redirect_uri, error, description, state)
