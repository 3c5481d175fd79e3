"""Invoke the agent runtime from the web app, in either of DESIGN.md's two modes.

- ``jwt``: the clinician's access token is the bearer on ``Authorization`` (the
  runtime's ``customJWTAuthorizer`` on AgentCore; the local runtime).
- ``sigv4``: the app's own AWS identity signs the request (botocore's
  ``SigV4Auth``, service ``bedrock-agentcore``; credentials and region from
  botocore's usual chain, e.g. the task role, never from our settings) and the
  clinician's token rides ``X-Amzn-Bedrock-AgentCore-Runtime-Custom-User-Token``.

Either way the conversation id goes on the session header. Frames are yielded as
the runtime's SSE stream produces them (docs/contracts.md, "Agent runtime").

Errors::

    RuntimeInvokeError
    └── RuntimeUnavailableError   no answer, or not HTTP 200 with a stream
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from trustloop.app.runtime_client import (
    SESSION_HEADER,
    USER_TOKEN_HEADER,
    InvokeMode,
    parse_frame,
)

if TYPE_CHECKING:
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

SIGV4_SERVICE = "bedrock-agentcore"
Frame = dict[str, Any]


class RuntimeInvokeError(Exception):
    """The runtime could not be invoked."""


class RuntimeUnavailableError(RuntimeInvokeError):
    """The runtime did not answer, or answered something other than a stream."""


def invocations_url(runtime_url: str) -> str:
    """``<runtime_url>/invocations``, keeping a query such as AgentCore's qualifier."""
    parts = urlsplit(runtime_url)
    path = parts.path.rstrip("/") + "/invocations"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class SigV4Signer:
    """Signs one request as the app's AWS identity (the *application* identity)."""

    def __init__(self, credentials: Credentials, region: str) -> None:
        self._credentials = credentials
        self._region = region

    @classmethod
    def from_environment(cls) -> SigV4Signer:
        """Credentials and region from botocore's default chain (role, profile)."""
        import botocore.session  # type: ignore[import-untyped]

        session = botocore.session.get_session()
        credentials = session.get_credentials()
        region = session.get_config_variable("region")
        if credentials is None or not region:
            raise RuntimeInvokeError(
                "sigv4 invoke mode needs AWS credentials and a region"
            )
        return cls(credentials, str(region))

    def sign(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` plus ``Authorization``, ``X-Amz-Date`` (and a session token)."""
        from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
        from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]

        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(self._credentials, SIGV4_SERVICE, self._region).add_auth(request)
        return dict(request.headers.items())


class RuntimeInvoker:
    """Streams one question to the runtime; shared by every session."""

    def __init__(
        self,
        runtime_url: str,
        http: httpx.AsyncClient,
        *,
        mode: InvokeMode = "jwt",
        signer: SigV4Signer | None = None,
    ) -> None:
        if mode == "sigv4" and signer is None:
            raise ValueError("sigv4 invoke mode needs a signer")
        self.url = invocations_url(runtime_url)
        self.mode = mode
        self._http = http
        self._signer = signer

    def request_headers(
        self, body: bytes, *, access_token: str, session_id: str
    ) -> dict[str, str]:
        """The headers of one invocation in this mode (token included: never log)."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            SESSION_HEADER: session_id,
        }
        if self.mode == "jwt":
            headers["Authorization"] = f"Bearer {access_token}"
            return headers
        if self._signer is None:
            raise RuntimeInvokeError("sigv4 invoke mode needs a signer")
        headers[USER_TOKEN_HEADER] = access_token
        return self._signer.sign(self.url, body, headers)

    async def frames(
        self, prompt: str, *, access_token: str, session_id: str
    ) -> AsyncIterator[Frame]:
        """The runtime's frames as they arrive; the last is ``done`` or ``error``."""
        body = json.dumps({"prompt": prompt}).encode()
        headers = self.request_headers(
            body, access_token=access_token, session_id=session_id
        )
        try:
            async with self._http.stream(
                "POST", self.url, content=body, headers=headers
            ) as response:
                if response.status_code != 200:
                    raise RuntimeUnavailableError(
                        f"the runtime answered HTTP {response.status_code}"
                    )
                async for line in response.aiter_lines():
                    frame = parse_frame(line)
                    if frame is not None:
                        yield frame
        except httpx.HTTPError as exc:
            name = type(exc).__name__
            raise RuntimeUnavailableError(
                f"the runtime did not answer ({name})"
            ) from exc
