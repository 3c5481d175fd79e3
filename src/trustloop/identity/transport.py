"""Where the production clients may send a token: HTTPS, or loopback for the local stack."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def require_secure(url: str, what: str) -> None:
    """Refuse a URL that is neither HTTPS nor plain HTTP to a loopback address.

    ``what`` names the service in the error ("the IdP", "Vault").
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return
    raise ValueError(f"{what} must be reached over HTTPS: {url!r}")


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
