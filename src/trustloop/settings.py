"""One settings object for every process, read from ``TRUSTLOOP_*`` variables.

Two profiles: ``local`` (the embedded development stack, the default) and ``aws``
(real Verify, Vault, SPIRE, Bedrock, AgentCore). No field holds a credential: the
processes authenticate with their SPIFFE identity or, for the clinician, with a
token obtained at sign-in.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Profile = Literal["local", "aws"]


# Vault's JWT auth ``jwks_url``, when the IdP's keys are served elsewhere than
# ``<idp_url>/oauth2/jwks`` (the fault tests put a switchable proxy there); read
# by the Vault stand-in alone, not a field of Settings.
IDP_JWKS_URL_ENV = "TRUSTLOOP_VAULT_IDP_JWKS_URL"


def unknown_variables(environ: Mapping[str, str]) -> dict[str, str | None]:
    """``TRUSTLOOP_*`` variables no part reads, each with the setting it may mean."""
    known = {variable_of(name) for name in Settings.model_fields}
    known.add(IDP_JWKS_URL_ENV)
    return {
        name: next(iter(difflib.get_close_matches(name, sorted(known), n=1)), None)
        for name in sorted(environ)
        if name.startswith("TRUSTLOOP_") and name not in known
    }


# The setting that places each part of the local stack (its URL).
URL_FIELD_OF_PART = {
    "spire": "spire_bundle_url",
    "idp": "idp_url",
    "vault": "vault_addr",
    "mcp": "mcp_url",
    "runtime": "runtime_url",
    "app": "app_url",
}
_URL_FIELDS = tuple(URL_FIELD_OF_PART.values())


def variable_of(field: str) -> str:
    """The environment variable that sets a field: ``TRUSTLOOP_<FIELD>``."""
    return f"TRUSTLOOP_{field.upper()}"


def _check_url(value: str) -> str:
    """An ``http(s)`` URL with a host, a valid port if any, and no credential."""
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password")
    if port is None and parts.netloc.endswith(":"):
        raise ValueError("the port after ':' is missing")
    return value


class Settings(BaseSettings):
    """Where each part listens and how they name each other."""

    model_config = SettingsConfigDict(
        env_prefix="TRUSTLOOP_",
        toml_file="trustloop.toml",
        extra="forbid",
        frozen=True,
    )

    profile: Profile = "local"
    state_dir: Path = Path(".trustloop")

    trust_domain: str = "trustloop.local"
    idp_url: str = "http://127.0.0.1:9400"
    spire_bundle_url: str = "http://127.0.0.1:9401"
    vault_addr: str = "http://127.0.0.1:8200"
    vault_audience: str = "trustloop-vault"
    vault_auth_role: str = "mcp-server"
    vault_creds_role: str = "clinical"
    mcp_url: str = "http://127.0.0.1:8000/mcp"
    runtime_url: str = "http://127.0.0.1:8080"
    # The clinician's web app (trustloop.app); its OIDC redirect is <app_url>/auth/callback.
    app_url: str = "http://127.0.0.1:3000"
    # How the app invokes the runtime (DESIGN.md, "three identities"): a bearer on
    # Authorization (jwt) or IAM-signed with the user token in a custom header (sigv4).
    app_invoke_mode: Literal["jwt", "sigv4"] = "jwt"
    # The IdP's exchange policy (docs/policy.md); None: the one shipped with it.
    idp_policy: Path | None = None

    pg_host: str = "127.0.0.1"
    pg_port: int = Field(default=5432, ge=1, le=65535)
    pg_dbname: str = "trustloop"

    # A restricted chart waits this long for the clinician's push approval.
    step_up_timeout_s: float = Field(default=60.0, gt=0)
    # Dev-only: the IdP answers every push itself (demos, tests); local only.
    step_up_auto: Literal["off", "approve", "deny"] = "off"

    model: Literal["offline", "bedrock"] = "offline"
    # Test capture of every model input (dev-only; holds chart data, never logs).
    model_transcript: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then ``TRUSTLOOP_*`` variables, then ``trustloop.toml``."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @field_validator(*_URL_FIELDS)
    @classmethod
    def _a_service_url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("mcp_url")
    @classmethod
    def _the_mcp_endpoint_has_a_path(cls, value: str) -> str:
        if urlsplit(value).path.strip("/") == "":
            raise ValueError(
                "must name the MCP endpoint's path too (http://127.0.0.1:8000/mcp):"
                " the URL is the resource clinicians' tokens are issued for"
            )
        return value

    @model_validator(mode="after")
    def _local_urls_name_their_port(self) -> Settings:
        """Locally ``up`` listens on each URL's port, so each must name one."""
        if self.profile == "local":
            for name in _URL_FIELDS:
                if urlsplit(getattr(self, name)).port is None:
                    raise ValueError(
                        f"{variable_of(name)}: the local profile listens on"
                        " this URL, so it must name a port (http://127.0.0.1:9400)"
                    )
        return self

    @model_validator(mode="after")
    def _auto_answer_is_local_only(self) -> Settings:
        if self.step_up_auto != "off" and self.profile != "local":
            raise ValueError("step_up_auto is dev-only: the local profile only")
        return self

    @property
    def mcp_resource(self) -> str:
        """The MCP server's resource identifier: the ``aud`` of clinician tokens."""
        return self.mcp_url

    @property
    def app_redirect_uri(self) -> str:
        return self.app_url.rstrip("/") + "/auth/callback"

    @property
    def mcp_spiffe_id(self) -> str:
        return f"spiffe://{self.trust_domain}/mcp-server"

    @property
    def runtime_spiffe_id(self) -> str:
        return f"spiffe://{self.trust_domain}/agent-runtime"

    @property
    def auditor_spiffe_id(self) -> str:
        """The one workload that may read the IdP's events (a SIEM forwarder)."""
        return f"spiffe://{self.trust_domain}/auditor"

    @property
    def idp_issuer(self) -> str:
        return self.idp_url.rstrip("/")

    @property
    def spiffe_socket_dir(self) -> Path:
        return self.state_dir / "spire" / "sockets"

    @property
    def audit_dir(self) -> Path:
        return self.state_dir / "audit"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"


def bind_address(url: str) -> tuple[str, int]:
    """Host and port a server for ``url`` listens on."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"URL must name a host and a port: {url!r}")
    return parts.hostname, parts.port


class ProfileError(RuntimeError):
    """A dev-only part was asked to run outside the ``local`` profile."""


def require_local(settings: Settings, what: str) -> None:
    """Refuse a dev-only part outside the ``local`` profile (STYLE: name the danger)."""
    if settings.profile != "local":
        raise ProfileError(
            f"{what} is a local development stand-in and refuses to run "
            f"with profile {settings.profile!r}"
        )
