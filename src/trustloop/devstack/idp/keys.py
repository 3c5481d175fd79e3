"""The IdP's ES256 signing keys, generated in memory at start.

A :class:`SigningKeys` holds one active key and the keys still published for
verification. :meth:`SigningKeys.rotate` makes a fresh key active while the previous
ones stay in the JWKS until every token they signed has expired, so a rotation never
invalidates a live token. Validators pin ES256 per key (``alg`` in every JWK).
"""

from __future__ import annotations

import threading
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

from trustloop.devstack.jwtcheck import ALGORITHM


class SigningKeys:
    """An active ES256 key plus the retired keys still published for verification."""

    def __init__(self, *, keep_retired: int = 1) -> None:
        if keep_retired < 0:
            raise ValueError("keep_retired must not be negative")
        self._keep_retired = keep_retired
        self._lock = threading.Lock()
        self._active = _new_key()
        self._retired: list[ECKey] = []

    @property
    def active_kid(self) -> str:
        return str(self._active.kid)

    def rotate(self) -> str:
        """Make a fresh key active; returns its ``kid``."""
        with self._lock:
            self._retired.insert(0, self._active)
            del self._retired[self._keep_retired :]
            self._active = _new_key()
            return self.active_kid

    def sign(self, claims: dict[str, Any], *, typ: str) -> str:
        """A compact JWS over ``claims`` with header ``alg``, ``kid`` and ``typ``."""
        with self._lock:
            key = self._active
        header = {"alg": ALGORITHM, "kid": key.kid, "typ": typ}
        token: str = jwt.encode(header, claims, key, algorithms=[ALGORITHM])
        return token

    def public_keys(self) -> list[ECKey]:
        """Public halves of the active and retired keys, active first."""
        with self._lock:
            keys = [self._active, *self._retired]
        return [ECKey.import_key(_public_jwk(key)) for key in keys]

    def jwks(self) -> dict[str, Any]:
        """The JWKS document served at ``/oauth2/jwks`` (RFC 7517 §5)."""
        return {"keys": [_public_jwk(key) for key in self.public_keys()]}


def _new_key() -> ECKey:
    key: ECKey = ECKey.generate_key("P-256", auto_kid=True)
    return key


def _public_jwk(key: ECKey) -> dict[str, Any]:
    jwk: dict[str, Any] = dict(key.as_dict(private=False))
    jwk.update({"use": "sig", "alg": ALGORITHM, "kid": key.kid})
    return jwk
