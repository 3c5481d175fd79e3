"""The IdP's metadata: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2.

Lists only what this stand-in serves; the sign-in entries (authorization,
userinfo, device authorization, end session, PKCE methods) in the local profile,
where the login pages exist.
"""

from __future__ import annotations

from typing import Any

from trustloop.devstack.idp import code_grant, device, password_grant, refresh, step_up
from trustloop.devstack.jwtcheck import ALGORITHM
from trustloop.identity.rar import RarType
from trustloop.settings import Settings


def discovery_document(settings: Settings) -> dict[str, Any]:
    """OIDC Discovery 1.0 §3 / RFC 8414 §2, listing only what this slice serves."""
    issuer = settings.idp_issuer
    rar_types: list[RarType] = ["patient_record", "care_team_roster"]
    grants = [
        "urn:ietf:params:oauth:grant-type:token-exchange",
        step_up.JWT_BEARER_GRANT,
    ]
    sign_in: dict[str, Any] = {}
    if settings.profile == "local":
        grants.append("password")
        grants.extend([code_grant.GRANT_TYPE, refresh.GRANT_TYPE, device.GRANT_TYPE])
        sign_in = {
            "authorization_endpoint": f"{issuer}/oauth2/authorize",
            "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
            "device_authorization_endpoint": f"{issuer}/oauth2/device_authorization",
            "end_session_endpoint": f"{issuer}/oauth2/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "claims_supported": [
                "sub",
                "name",
                "preferred_username",
                "acr",
                "amr",
                "auth_time",
                "sid",
                "nonce",
            ],
            "acr_values_supported": ["urn:trustloop:acr:mfa"],
        }
    return {
        **sign_in,
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth2/token",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "jwks_uri": f"{issuer}/oauth2/jwks",
        "grant_types_supported": grants,
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": [ALGORITHM],
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": [ALGORITHM],
        "revocation_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": [ALGORITHM],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "subject_types_supported": ["public"],
        "scopes_supported": sorted(password_grant.ALLOWED_SCOPES | {"offline_access"}),
        "authorization_details_types_supported": rar_types,
    }
