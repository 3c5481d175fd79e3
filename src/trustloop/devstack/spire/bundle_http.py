"""The trust bundle as JWKS over HTTP, shaped like SPIRE's OIDC discovery provider.

``GET {base}/keys`` answers the very bytes ``FetchJWTBundles`` returns for the
trust domain; ``GET {base}/.well-known/openid-configuration`` names it as
``jwks_uri`` so OIDC-minded verifiers (the IdP, Vault's JWT auth) can find it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from starlette.requests import Request

_NO_STORE = {"Cache-Control": "no-store"}


def bundle_app(jwks: bytes | Callable[[], bytes], base_url: str) -> Starlette:
    """A Starlette app serving ``jwks`` (or what it returns) under ``base_url``."""
    base = base_url.rstrip("/")
    prefix = urlsplit(base).path
    discovery = {
        "issuer": base,
        "jwks_uri": f"{base}/keys",
        "authorization_endpoint": "",
        "response_types_supported": ["id_token"],
        "subject_types_supported": [],
        "id_token_signing_alg_values_supported": ["ES256"],
    }

    async def keys(request: Request) -> Response:
        document = jwks() if callable(jwks) else jwks
        return Response(document, media_type="application/json", headers=_NO_STORE)

    async def openid_configuration(request: Request) -> Response:
        return JSONResponse(discovery)

    routes = [
        Route(f"{prefix}/keys", keys, methods=["GET"]),
        Route(
            f"{prefix}/.well-known/openid-configuration",
            openid_configuration,
            methods=["GET"],
        ),
    ]
    return Starlette(routes=routes)
