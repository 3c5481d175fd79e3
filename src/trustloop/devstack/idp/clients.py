"""The public clients that may sign a clinician in, and their redirect URIs.

Both are public clients (RFC 6749 §2.1) that prove possession with PKCE S256
(RFC 7636) and send no credential:

- ``trustloop-web`` (the web app): one redirect URI, ``Settings.app_redirect_uri``,
  compared as an exact string (OAuth 2.0 Security BCP, RFC 9700 §4.1.1).
- ``trustloop-cli`` (the command line): the device grant (RFC 8628) and, for
  the scripted sign-in of tests and the demo, the authorization code flow with a
  loopback redirect ``http://127.0.0.1:<any port>/callback`` (RFC 8252 §7.3: the
  port of a native app's loopback listener may vary; nothing else may).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from trustloop.devstack.idp.errors import OAuthProblem, invalid_client
from trustloop.identity.oauth import CLI_CLIENT_ID

WEB_CLIENT_ID = "trustloop-web"
LOOPBACK_CALLBACK_PATH = "/callback"


@dataclass(frozen=True)
class PublicClient:
    """A registered public client: its id and where codes may be sent."""

    client_id: str
    redirect_uris: frozenset[str]
    loopback: bool = False

    def allows_redirect(self, redirect_uri: str) -> bool:
        """Exact match, or (native apps) the loopback callback on any port."""
        if redirect_uri in self.redirect_uris:
            return True
        return self.loopback and _is_loopback_callback(redirect_uri)


class PublicClients:
    """The registry: ``trustloop-web`` and ``trustloop-cli``."""

    def __init__(self, *, app_redirect_uri: str) -> None:
        self._clients = {
            WEB_CLIENT_ID: PublicClient(WEB_CLIENT_ID, frozenset({app_redirect_uri})),
            CLI_CLIENT_ID: PublicClient(CLI_CLIENT_ID, frozenset(), loopback=True),
        }

    def get(self, client_id: str) -> PublicClient | None:
        return self._clients.get(client_id)

    def authenticate(self, form: Mapping[str, str]) -> PublicClient:
        """The public client named by ``client_id``; any credential is refused."""
        if "client_assertion" in form or "client_secret" in form:
            raise OAuthProblem(
                "invalid_client", "a public client sends no credential", 401
            )
        client = self._clients.get(form.get("client_id", ""))
        if client is None:
            raise invalid_client("unknown client")
        return client


def _is_loopback_callback(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and parts.netloc == f"127.0.0.1:{port}"
        and port is not None
        and parts.path == LOOPBACK_CALLBACK_PATH
        and not parts.query
        and not parts.fragment
    )
